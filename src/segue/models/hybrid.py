"""``hybrid``: weighted fusion of other models, the weights tuned per kind of query on held-out playlists.

**Query groups.** A challenge playlist is described by whether it has a title and how many seed
tracks it shows (0, 1, 5, 10, 25 or 100), and the best mix differs between them: a title-only
playlist can only lean on ``title``, a playlist with 100 seeds on the neighbourhood and factor
models. Any query is put in the group of its title flag and its nearest seed-count class
(:func:`segue.evaluation.split.seed_groups`), so the weights apply to any continuation request,
not only to challenge entries.

**Fit.** (1) A validation set is carved from the training data itself
(:func:`segue.evaluation.split.hold_out_queries`: up to ``validation_per_group`` playlists for
every group, whatever the playlists' lengths, some tracks shown as seeds and the rest held out,
the playlists removed from a tuning copy of the training data) — so the weights never see a test
playlist, whatever data ``fit`` is given. (2) Every component is fitted on the tuning copy and answers the validation
queries. (3) Per group, weights are tuned by coordinate search (each weight scaled by a few
factors in turn, the best kept, until nothing improves) to maximise mean R-precision + mean NDCG
(the common variant, IDCG over min(|G|, 500)) of the fused top 500; groups are tuned starting
from the weights tuned on all queries together. A group with fewer than ``MIN_GROUP_QUERIES``
validation queries (only on tiny data) keeps those overall weights, and the log and
:meth:`describe_weights` say so: no group borrows another group's weights. (4) The components
are refitted on all the data.

**Scoring.** Each component's list for a query is its first ``depth`` tracks that are not seeds;
its scores are divided by the list's top score (negative scores count 0), so every component
speaks on the same 0–1 scale whatever its own units. A track's fused score is
``Σ_c w_{g,c} · s_c(t)`` over the components whose list holds it. The depth is per query (not per
batch), so a query's ranking does not depend on the batch it came in.

**Explanations.** A track's evidence is one ``"component"`` item per component that scored it,
with the component's share of the fused score, its weight and its own explanation (``text``,
``evidence``); the sentence is built from the leading components' sentences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation import metrics as ranking_metrics
from segue.evaluation.split import N_GROUPS, group_label, hold_out_queries
from segue.models.base import Explanation, Queries
from segue.models.ensemble import Ensemble, check_components, query_groups
from segue.models.explain import popularity_explanation, shares
from segue.models.registry import register
from segue.models.topn import top_n_sparse

log = logging.getLogger(__name__)

MIN_GROUP_QUERIES = 10  # fewer: a group keeps the overall weights
_SCALES = (0.0, 0.25, 0.5, 2.0, 4.0)  # coordinate-search moves of one weight
_TUNE_LENGTH = 500  # list length the weights are tuned for (the challenge's)


@dataclass(frozen=True)
class HybridConfig:
    """``components``: comma-separated model names, each with its defaults unless ``params``
    says otherwise (``{"als": {"factors": 128}}``; ``--param als.factors=128``).
    ``depth``: tracks taken from each component per query. ``validation_per_group``:
    playlists per query group carved from the training data to tune the weights.
    ``seed``: the carve's random seed."""

    components: str = "title,playlistknn,itemknn,als,svd"  # comma-separated models to fuse
    # each component's parameters by its name: {"als": {"factors": 128}}, --param als.factors=128
    params: dict = field(default_factory=dict, hash=False)
    depth: int = 1000  # tracks (not seeds) taken from each component's list per query
    validation_per_group: int = 300  # playlists per query group carved to tune the weights
    seed: int = 0  # seed of the validation carve

    def __post_init__(self):
        if self.depth < 1:
            raise SegueError(f"hybrid: depth must be at least 1, got {self.depth}")
        if self.validation_per_group < 1:
            raise SegueError(
                f"hybrid: validation_per_group must be at least 1, got {self.validation_per_group}"
            )
        check_components(self, "hybrid")


@register
class HybridRecommender(Ensemble):
    name = "hybrid"
    description = "Weighted fusion of title, kNN and factor models; weights tuned per query kind on held-out playlists."
    Config = HybridConfig

    def _tune(self, data: PlaylistData, configs: dict) -> None:
        """Steps 1–3 of the fit: the validation carve, the components fitted on the rest, the weights."""
        held = hold_out_queries(
            data, self.config.validation_per_group, np.random.default_rng([self.config.seed, 5151])
        )
        groups, counts = held.groups, held.counts()
        log.info(
            "hybrid: tuning %d weights per query group on %d validation playlists carved from %s training "
            "playlists (%s)",
            len(configs),
            len(held.queries),
            f"{data.n_playlists:,}",
            "; ".join(f"{group_label(g)}: {counts[g]}" for g in range(N_GROUPS)),
        )
        # Group 0 (no title, no seed) is never carved: no component has anything to say there.
        thin = [f"'{group_label(g)}'" for g in range(1, N_GROUPS) if counts[g] < MIN_GROUP_QUERIES]
        if thin:
            log.warning(
                "hybrid: fewer than %d validation queries for %s: these groups keep the weights tuned on "
                "all queries",
                MIN_GROUP_QUERIES,
                ", ".join(thin),
            )
        lists = self._carved_lists(held, configs)
        self.weights = tune_weights(lists, held.truth, groups)
        self.tuned_groups = counts

    def _own_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "tuned_groups": self.tuned_groups}

    def _load_own_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"]
        self.tuned_groups = arrays["tuned_groups"]
        names = list(self.component_configs())
        if self.weights.shape != (N_GROUPS, len(names)):
            raise SegueError(
                f"hybrid: saved weights have shape {self.weights.shape}, expected "
                f"{(N_GROUPS, len(names))} for components {', '.join(names)}"
            )

    # --- scoring -------------------------------------------------------------------------------
    def _fused(self, queries: Queries) -> tuple[sp.csr_matrix, list[sp.csr_matrix], np.ndarray]:
        """Fused scores [q, n_tracks] CSR, each component's scaled lists, and the weights [q, C]."""
        lists = [self._component_lists(c, queries) for c in self.components]
        weights = self.weights[query_groups(queries)]  # [q, C]
        fused = sp.csr_matrix((len(queries), self.n_tracks), dtype=np.float32)
        for c, scaled in enumerate(lists):
            fused = fused + sp.diags(weights[:, c].astype(np.float32)) @ scaled
        return sp.csr_matrix(fused), lists, weights

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        fused, _, _ = self._fused(queries)
        return top_n_sparse(fused, n)

    # --- explain -------------------------------------------------------------------------------
    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        track_ids = np.asarray(track_ids, dtype=np.int64)
        one = queries.slice(row, row + 1)
        _, lists, weights = self._fused(one)
        parts = (
            np.array([lst[0, track_ids].toarray()[0] for lst in lists]) * weights[0][:, None]
        )  # [C, t]
        subs = [
            c.explain(one, 0, track_ids) if parts[i].any() else None
            for i, c in enumerate(self.components)
        ]
        out = []
        for j, track in enumerate(track_ids.tolist()):
            share = shares(parts[:, j])
            if share.sum() == 0:
                out.append(popularity_explanation(self, track))
                continue
            order = [int(i) for i in np.argsort(-share, kind="stable") if share[i] > 0]
            evidence = [
                {
                    "kind": "component",
                    "component": self.components[i].name,
                    "share": float(share[i]),
                    "weight": float(weights[0, i]),
                    "text": subs[i][j].text,
                    "evidence": subs[i][j].evidence,
                }
                for i in order
            ]
            out.append(
                Explanation(
                    track,
                    evidence,
                    _combine(
                        [subs[i][j].text for i in order[:2] if i == order[0] or share[i] >= 0.2]
                    ),
                )
            )
        return out

    def describe_weights(self) -> list[tuple[str, dict[str, float], int]]:
        """(group label, {component: weight}, validation queries it was tuned on) per group."""
        names = [c.name for c in self.components]
        return [
            (
                group_label(g),
                dict(zip(names, self.weights[g].round(3).tolist(), strict=True)),
                int(self.tuned_groups[g]),
            )
            for g in range(N_GROUPS)
        ]


def tune_weights(
    lists: list[sp.csr_matrix],
    truth: list[np.ndarray],
    groups: np.ndarray,
    min_queries: int = MIN_GROUP_QUERIES,
) -> np.ndarray:
    """Weights float64 [N_GROUPS, C] (each row sums to 1) maximising mean R-precision + mean NDCG.

    ``lists``: per component, CSR [q, n_tracks] of scaled scores (see :func:`_scaled_lists`);
    ``truth``: q int arrays of held-out ids; ``groups`` int [q] (see :func:`query_groups`). A group
    with fewer than ``min_queries`` queries gets the weights tuned on all queries.
    """
    n_components = len(lists)
    union = lists[0].copy()
    for lst in lists[1:]:
        union = union + lst
    union = sp.csr_matrix(union)
    union.sort_indices()
    rows = np.repeat(np.arange(union.shape[0]), np.diff(union.indptr))
    cols = union.indices.astype(np.int64)
    # values[c] aligned with the union's entries: the component's scaled score or 0.
    values = np.zeros((n_components, len(cols)))
    stride = np.int64(union.shape[1])
    union_keys = rows * stride + cols
    for c, lst in enumerate(lists):
        lst = sp.csr_matrix(lst)
        keys = np.repeat(np.arange(lst.shape[0]), np.diff(lst.indptr)) * stride + lst.indices
        values[c, np.searchsorted(union_keys, keys)] = lst.data
    truth_rows = np.repeat(np.arange(len(truth)), [len(t) for t in truth])
    truth_keys = truth_rows * stride + (
        np.concatenate(truth).astype(np.int64) if truth else np.zeros(0, np.int64)
    )
    hit = np.isin(union_keys, truth_keys)
    lengths = np.array([len(np.unique(t)) for t in truth], dtype=np.int64)

    def search(start: np.ndarray, members: np.ndarray) -> np.ndarray:
        """Coordinate search from ``start`` over the queries ``members`` (sorted int array)."""
        entry = np.isin(rows, members)
        r, c, h, v = (
            np.searchsorted(members, rows[entry]),
            cols[entry],
            hit[entry],
            values[:, entry],
        )
        indptr = np.searchsorted(r, np.arange(len(members) + 1))  # entries stay grouped by row
        hit_pos = np.flatnonzero(h)
        hit_row = r[hit_pos]
        dummy_truth = [np.arange(length) for length in lengths[members]]  # only |G| is read
        ranking = np.full((len(members), _TUNE_LENGTH), -1, dtype=np.int64)

        def objective(weights: np.ndarray) -> float:
            fused = weights @ v
            # Only the held-out tracks' places matter: count, per hit, the row's entries ranked
            # above it (higher fused score, ties by id) instead of sorting every row's entries.
            rank = _ranks_of(indptr, fused, c, hit_pos, hit_row)
            keep = (rank < _TUNE_LENGTH) & (fused[hit_pos] > 0)
            hits = np.zeros(ranking.shape, dtype=bool)
            hits[hit_row[keep], rank[keep]] = True
            return float(
                ranking_metrics.r_precision(ranking, dummy_truth, hits=hits).mean()
                + ranking_metrics.ndcg_common(ranking, dummy_truth, hits=hits).mean()
            )

        best, best_value = start, objective(start)
        improved = True
        while improved:
            improved = False
            for comp in range(n_components):
                for scale in _SCALES:
                    trial = best.copy()
                    trial[comp] = (
                        trial[comp] * scale
                        if trial[comp] > 0
                        else (scale / n_components if scale > 1 else 0)
                    )
                    if trial.sum() <= 0 or np.allclose(trial / trial.sum(), best):
                        continue
                    trial /= trial.sum()
                    value = objective(trial)
                    if value > best_value + 1e-9:
                        best, best_value, improved = trial, value, True
        return best

    everyone = np.arange(len(truth))
    overall = (
        search(np.full(n_components, 1.0 / n_components), everyone)
        if len(truth)
        else np.full(n_components, 1.0 / n_components)
    )
    weights = np.empty((N_GROUPS, n_components))
    for g in range(N_GROUPS):
        members = np.flatnonzero(groups == g)
        # Too few queries to tune on: the weights tuned on all queries (logged by the caller).
        weights[g] = search(overall, members) if len(members) >= min_queries else overall
    return weights


@numba.njit(cache=True, parallel=True)
def _ranks_of(indptr, fused, cols, positions, rows):  # pragma: no cover - compiled
    """Place (0-based) of each entry ``positions[k]`` within its row ``rows[k]`` when the row's
    entries ``indptr[r]:indptr[r + 1]`` are ordered by ``fused`` descending, then ``cols``
    ascending. int64 [len(positions)]; O(row length) per entry, rows in parallel."""
    out = np.empty(len(positions), dtype=np.int64)
    for k in numba.prange(len(positions)):
        h, row = positions[k], rows[k]
        fh, ch = fused[h], cols[h]
        count = 0
        for j in range(indptr[row], indptr[row + 1]):  # branch-free, so it vectorises
            count += (fused[j] > fh) | ((fused[j] == fh) & (cols[j] < ch))
        out[k] = count
    return out


def _combine(texts: list[str]) -> str:
    """One sentence from the leading components' sentences.

    >>> _combine(["Because the playlist has A, and playlists with it often include this.",
    ...           "Playlists called 'chill' often include it (5 of 9)."])
    "Because the playlist has A, and playlists with it often include this; also, playlists called 'chill' often include it (5 of 9)."
    """
    if len(texts) == 1:
        return texts[0]
    first, second = texts[0].rstrip("."), texts[1]
    return f"{first}; also, {second[:1].lower()}{second[1:]}"
