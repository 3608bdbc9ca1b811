"""``rerank``: a two-stage ranker — candidates from the components, ordered by LightGBM learning to rank.

The method of the RecSys Challenge 2018's best teams (vl6, Avito, Creamy Fireflies: candidate
generation by several recommenders, then gradient-boosted trees over their scores and over
track and seed statistics), built on segue's components.

**Fit.** (1) Validation queries of every query group are carved from the training data
(:func:`segue.evaluation.split.hold_out_queries`, the same carve as the hybrid's, ``max_share``
of the playlists at a time, repeated on other playlists up to ``max_folds`` times until
``training_queries`` are carved); the test playlists of a split are never in ``fit``'s data, so
they reach no step. (2) Every component is fitted on the rest and answers the carved queries; their lists are pooled and described by
:func:`segue.features.ranking.candidate_features`; a candidate's label is 1 when it is one of the
query's held-out tracks. The recall of the held-out tracks in the pool at 500, 1,000 and 2,000
candidates is recorded (``candidate_recall``): the ceiling of what stage two can find. (3) A
LightGBM ranking model is trained on 80% of the carved queries and early-stopped on NDCG@100
of the other 20% (``early_stopping`` rounds without improvement; the best iteration is kept).
Its objective is XE-NDCG (``rank_xendcg``, Bruch 2019, "An alternative cross entropy loss for
learning-to-rank"): a listwise loss whose cost is linear in the candidates, where LambdaRank's
pairs cost ``candidates × truncation`` per query; on the real dev split it trained 2.3× faster per
tree and ranked as well (validation R-precision 0.1432 vs 0.1409); ``objective=lambdarank``
remains available.
(4) The components are refitted on all the data (:class:`segue.models.ensemble.Ensemble`).

**Scoring.** A query's pool (``n_candidates`` tracks) is scored by the trees; tracks outside the
pool are not candidates (the base back-fills with popular tracks if a pool is short). A query
without seeds keeps its pool order, the title components' blend: its only evidence is the title,
and the trees learn from seeded queries (which is why they are trained on those alone).

**Explanations.** LightGBM's per-feature contributions (``pred_contrib``, TreeSHAP) of the
track's score, grouped by source (each component; the seeds' artists and albums; co-occurrence
with the seeds; popularity). The evidence lists the sources that raised the track's score
above the query's average candidate, with their shares; the sentence quotes the leading
component's own explanation and names the ranker's leading signals.

The booster is saved as LightGBM's text model inside ``arrays.npz`` (a uint8 array), so loading
needs no pickle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation.split import hold_out_queries
from segue.features.ranking import (
    QUERY_FEATURES,
    Candidates,
    Cooccurrence,
    candidate_features,
    feature_names,
)
from segue.models.base import Explanation, Queries, csr_arrays, csr_from_arrays
from segue.models.ensemble import Ensemble, check_components, query_groups
from segue.models.explain import popularity_explanation
from segue.models.registry import register

log = logging.getLogger(__name__)

RECALL_AT = (500, 1000, 2000)
# LightGBM runs on one thread: its OpenMP threads spin while they wait, and on a machine shared
# with other work that waiting costs more than a second core gives (800,000 candidates: 1.18 s
# per tree on one thread, 2.41 s on two, with other jobs running; a 6,000-candidate training
# took 28 s on two threads and 0.05 s on one).
LIGHTGBM_THREADS = 1


@dataclass(frozen=True)
class RerankConfig:
    """``components``: comma-separated model names whose lists are the candidates and whose
    scores are features (``params``: theirs by name, ``{"als": {"factors": 128}}``). ``depth``: tracks taken
    from each component. ``n_candidates``: pool size per query. ``cooccurrence_k``: co-occurring
    tracks kept per track for the co-occurrence features. ``validation_per_group``: playlists per
    query group carved from the training data to train the ranker; ``max_share``: at most this
    share of the playlists carved at once; ``training_queries``: carves are repeated (each with
    its own components, up to ``max_folds``) until this many queries are carved. ``trees``, ``learning_rate``, ``leaves``, ``min_child``:
    LightGBM's ``num_iterations`` (upper bound), ``learning_rate``, ``num_leaves``,
    ``min_data_in_leaf``; ``early_stopping``: rounds without NDCG@100 gain on the 20% of carved
    queries held back. ``seed``: the carve's and LightGBM's seed."""

    # comma-separated models whose lists are the candidates and whose scores are features
    components: str = "title,itemknn,playlistknn,rp3beta,als"
    # each component's parameters by its name: {"als": {"factors": 128}}, --param als.factors=128
    params: dict = field(default_factory=dict, hash=False)
    depth: int = 500  # tracks taken from each component's list per query
    n_candidates: int = 1000  # candidate pool size per query, the tracks the trees re-rank
    cooccurrence_k: int = 200  # co-occurring tracks kept per track for the co-occurrence features
    validation_per_group: int = 300  # playlists per query group carved to train the ranker
    max_share: float = 0.1  # largest share of the training playlists carved at once, (0, 1)
    training_queries: int = 3000  # carves are repeated until this many queries are carved
    max_folds: int = 3  # most carves (each refits the components)
    objective: str = "rank_xendcg"  # LightGBM ranking objective: rank_xendcg or lambdarank
    trees: int = 600  # LightGBM's num_iterations (an upper bound: early stopping)
    learning_rate: float = 0.05  # LightGBM's learning_rate (shrinkage), (0, 1]
    leaves: int = 31  # LightGBM's num_leaves per tree (≥ 2)
    min_child: int = 50  # LightGBM's min_data_in_leaf
    # boosting rounds without NDCG@100 gain on the 20% of carved queries held back before stopping
    early_stopping: int = 40
    seed: int = 0  # seed of the carves and of LightGBM

    def __post_init__(self):
        for name in (
            "depth",
            "n_candidates",
            "cooccurrence_k",
            "validation_per_group",
            "training_queries",
            "max_folds",
            "trees",
            "leaves",
            "min_child",
            "early_stopping",
        ):
            if getattr(self, name) < 1:
                raise SegueError(f"rerank: {name} must be at least 1, got {getattr(self, name)}")
        if self.leaves < 2:
            raise SegueError(f"rerank: leaves must be at least 2, got {self.leaves}")
        if not 0 < self.learning_rate <= 1:
            raise SegueError(f"rerank: learning_rate must be in (0, 1], got {self.learning_rate}")
        if self.objective not in ("lambdarank", "rank_xendcg"):
            raise SegueError(
                f"rerank: objective must be lambdarank or rank_xendcg, got {self.objective!r}"
            )
        if not 0 < self.max_share < 1:
            raise SegueError(f"rerank: max_share must be in (0, 1), got {self.max_share}")
        check_components(self, "rerank")


@register
class RerankRecommender(Ensemble):
    name = "rerank"
    description = "Two-stage ranker: the components' candidates re-ranked by LightGBM on their scores and seed statistics."
    Config = RerankConfig

    # --- fit -----------------------------------------------------------------------------------
    def _tune(self, data: PlaylistData, configs: dict) -> None:
        # Small data yields few queries per carve: carve again (other playlists held out, the
        # components refitted) until there are enough. On the real dev split three carves of 10%
        # beat one of 20% (validation R-precision 0.1451 vs 0.1437); at 1M playlists one carve
        # holds 3,300 queries and is enough.
        parts, truth, self.tuned_groups = [], [], 0
        fold = 0
        while fold < self.config.max_folds and len(truth) < self.config.training_queries:
            candidates, fold_truth, counts = self._carve(data, configs, fold)
            if not fold_truth:
                break
            parts.append(candidates)
            truth += fold_truth
            self.tuned_groups = self.tuned_groups + counts
            fold += 1
        if not parts:
            raise SegueError(
                f"rerank: {data.n_playlists} training playlists leave no validation queries to carve"
            )
        candidates = _concatenate(parts)
        labels = _labels(candidates, truth)
        self.booster_text, self.curve = self._train_booster(candidates, labels, list(configs))
        self._booster = None
        self.track_artist, self.track_album = data.track_artist, data.track_album
        self.cooccurrence = self._cooccurrence(data)

    def _carve(
        self, data: PlaylistData, configs: dict, fold: int
    ) -> tuple[Candidates, list[np.ndarray], np.ndarray]:
        """One carve of validation queries: components fitted on the rest, the queries' pools and
        features, their held-out tracks, and how many queries each group got."""
        held = hold_out_queries(
            data,
            self.config.validation_per_group,
            np.random.default_rng([self.config.seed, 6161, fold]),
            max_share=self.config.max_share,
        )
        log.info(
            "rerank: carve %d: %d validation playlists from %s training playlists",
            fold + 1,
            len(held.queries),
            f"{data.n_playlists:,}",
        )
        lists = self._carved_lists(held, configs)
        cooccurrence = self._cooccurrence(held.train)
        if fold == 0:  # the pool's recall at several sizes, from one pool as large as the largest
            self.candidate_recall = _pool_recall(lists, held.truth, RECALL_AT)
            log.info(
                "rerank: recall of the held-out tracks among the candidates: %s",
                ", ".join(
                    f"{r:.3f} at {n:,}"
                    for n, r in zip(RECALL_AT, self.candidate_recall, strict=True)
                ),
            )
        candidates = candidate_features(
            lists,
            held.queries,
            held.groups,
            held.train.track_popularity,
            data.track_artist,
            data.track_album,
            cooccurrence,
            self.config.n_candidates,
            self.config.depth,
        )
        return candidates, held.truth, held.counts()

    def _cooccurrence(self, data: PlaylistData) -> Cooccurrence:
        return Cooccurrence.build(data.matrix, data.track_artist, self.config.cooccurrence_k)

    def _train_booster(
        self, candidates: Candidates, labels: np.ndarray, names: list[str]
    ) -> tuple[str, np.ndarray]:
        """Train the ranking model on 80% of the queries, early-stopped on NDCG@100 of the rest.

        Returns the booster as LightGBM text and the validation curve float64 [iterations]."""
        import lightgbm as lgb

        n_queries = len(candidates.indptr) - 1
        sizes = np.diff(candidates.indptr)
        # Queries that can teach the trees: seeded (unseeded ones keep their pool order, see
        # _candidates) and with a held-out track among their candidates.
        rows = candidates.rows()
        seeded = (
            np.bincount(
                rows,
                weights=candidates.features[:, feature_names(names).index("seed_count")] > 0,
                minlength=n_queries,
            )
            > 0
        )
        useful = np.flatnonzero(
            (np.bincount(rows, weights=labels, minlength=n_queries) > 0) & seeded
        )
        if len(useful) < 2:
            raise SegueError(
                f"rerank: only {len(useful)} of {n_queries} carved queries have a held-out track among "
                "their candidates; the training data is too small to train the ranker"
            )
        rng = np.random.default_rng([self.config.seed, 6162])
        is_valid = np.zeros(n_queries, dtype=bool)
        is_valid[rng.choice(useful, max(1, len(useful) // 5), replace=False)] = True

        def dataset(select: np.ndarray, reference=None):
            keep = np.isin(rows, select)
            return lgb.Dataset(
                candidates.features[keep],
                labels[keep],
                group=sizes[select],
                feature_name=[n.replace(":", "__") for n in feature_names(names)],
                reference=reference,
                free_raw_data=True,
            )

        train_queries = useful[~is_valid[useful]]
        train = dataset(train_queries)
        valid = dataset(np.flatnonzero(is_valid), reference=train)
        params = {
            "objective": self.config.objective,
            "metric": "ndcg",
            "eval_at": [100],
            "learning_rate": self.config.learning_rate,
            "num_leaves": self.config.leaves,
            "min_data_in_leaf": self.config.min_child,
            "lambdarank_truncation_level": 100,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "seed": self.config.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "num_threads": LIGHTGBM_THREADS,
        }
        curve: dict = {}
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.config.trees,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(self.config.early_stopping, verbose=False),
                lgb.record_evaluation(curve),
                _log_every(50),
            ],
        )
        values = np.asarray(curve["valid"]["ndcg@100"], dtype=np.float64)
        log.info(
            "rerank: %d trees (best iteration %d of %d run; validation NDCG@100 %.4f)",
            booster.best_iteration,
            booster.best_iteration,
            len(values),
            values[booster.best_iteration - 1],
        )
        return booster.model_to_string(num_iteration=booster.best_iteration), values

    # --- persistence ---------------------------------------------------------------------------
    def _own_arrays(self) -> dict[str, np.ndarray]:
        return {
            "booster": np.frombuffer(self.booster_text.encode(), dtype=np.uint8),
            "curve": self.curve,
            "candidate_recall": np.asarray(self.candidate_recall, dtype=np.float64),
            "tuned_groups": self.tuned_groups,
            "track_artist": self.track_artist,
            "track_album": self.track_album,
            "artist_popularity": self.cooccurrence.artist_popularity,
            **csr_arrays("tracks", self.cooccurrence.tracks),
            **csr_arrays("artists", self.cooccurrence.artists),
        }

    def _load_own_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.booster_text = arrays["booster"].tobytes().decode()
        self.curve, self.candidate_recall = arrays["curve"], arrays["candidate_recall"]
        self.tuned_groups = arrays["tuned_groups"]
        self.track_artist, self.track_album = arrays["track_artist"], arrays["track_album"]
        self.cooccurrence = Cooccurrence(
            csr_from_arrays("tracks", arrays),
            csr_from_arrays("artists", arrays),
            arrays["artist_popularity"],
        )
        self._booster = None

    @property
    def booster(self):
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    # --- scoring -------------------------------------------------------------------------------
    def _pool(self, queries: Queries) -> Candidates:
        lists = [self._component_lists(c, queries) for c in self.components]
        return candidate_features(
            lists,
            queries,
            query_groups(queries),
            self.popularity,
            self.track_artist,
            self.track_album,
            self.cooccurrence,
            self.config.n_candidates,
            self.config.depth,
        )

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        candidates = self._pool(queries)
        scores = (
            self.booster.predict(candidates.features, num_threads=LIGHTGBM_THREADS)
            if len(candidates.track_ids)
            else np.zeros(0)
        )
        # A query without seeds has only its title's evidence: its pool order (the title
        # components' blend) is kept rather than asking trees trained on seeded queries.
        unseeded = np.diff(queries.indptr)[candidates.rows()] == 0
        scores = np.where(unseeded, candidates.features[:, self._blend_column], scores)
        return _top_per_query(candidates, scores, n)

    @property
    def _blend_column(self) -> int:
        return feature_names([c.name for c in self.components]).index("blend")

    # --- explain -------------------------------------------------------------------------------
    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        track_ids = np.asarray(track_ids, dtype=np.int64)
        one = queries.slice(row, row + 1)
        if len(one.seed_ids) == 0:
            return self._explain_unseeded(one, track_ids)
        candidates = self._pool(one)
        contributions = self.booster.predict(candidates.features, pred_contrib=True, num_threads=1)[
            :, :-1
        ]
        # Relative to the query's average candidate: what lifted this track above the others.
        lift = contributions - contributions.mean(axis=0, keepdims=True)
        names = [c.name for c in self.components]
        sources = _sources(names)
        labels = list(sources)
        membership = np.zeros((lift.shape[1], len(labels)))
        for j, columns in enumerate(sources.values()):
            membership[columns, j] = 1.0
        where = {int(t): i for i, t in enumerate(candidates.track_ids.tolist())}
        at = np.array([where.get(t, -1) for t in track_ids.tolist()], dtype=np.int64)
        by_source = np.where(
            at[:, None] >= 0, lift[np.maximum(at, 0)] @ membership, 0.0
        )  # [t, sources]
        # The sentence quotes the leading component's own explanation: one call per component.
        component_of = {label: i for i, label in enumerate(labels) if label in names}
        leading = np.full(len(track_ids), -1)
        for k in range(len(track_ids)):
            order = [j for j in np.argsort(-by_source[k], kind="stable") if by_source[k, j] > 0]
            leading[k] = next(
                (names.index(labels[j]) for j in order if labels[j] in component_of), -1
            )
        quoted: dict[int, str] = {}
        for c in np.unique(leading[leading >= 0]).tolist():
            tracks = track_ids[leading == c]
            try:
                texts = [e.text for e in self.components[c].explain(one, 0, tracks)]
            except NotImplementedError:
                texts = [f"Ranked high by {names[c]}."] * len(tracks)
            quoted.update(zip(tracks.tolist(), texts, strict=True))
        out = []
        for k, track in enumerate(track_ids.tolist()):
            if at[k] < 0:
                out.append(
                    popularity_explanation(
                        self,
                        track,
                        "Not among the ranker's candidates: "
                        f"a popular track, in {int(self.popularity[track]):,} training playlists.",
                    )
                )
                continue
            ordered = sorted(
                (
                    (labels[j], float(by_source[k, j]))
                    for j in range(len(labels))
                    if by_source[k, j] > 0
                ),
                key=lambda kv: (-kv[1], kv[0]),
            )
            if not ordered:
                out.append(
                    popularity_explanation(
                        self,
                        track,
                        "Ranked by the ranker without a signal above "
                        "the other candidates'; a popular track.",
                    )
                )
                continue
            total = sum(v for _, v in ordered)
            evidence = [
                {"kind": "feature", "source": label, "contribution": value, "share": value / total}
                for label, value in ordered
            ]
            tail = f"the ranker weighed most: {' and '.join(label for label, _ in ordered[:2])}."
            text = (
                f"{quoted[track].rstrip('.')}; {tail}"
                if track in quoted
                else f"Ranked by the seeds' statistics; {tail}"
            )
            out.append(Explanation(track, evidence, text))
        return out

    def _explain_unseeded(self, one: Queries, track_ids: np.ndarray) -> list[Explanation]:
        """A query without seeds is ranked by its components' blend (see ``_candidates``): each
        track is explained by the component that scored it highest."""
        lists = np.array(
            [self._component_lists(c, one)[0, track_ids].toarray()[0] for c in self.components]
        )
        out = []
        for j, track in enumerate(track_ids.tolist()):
            if not lists[:, j].any():
                out.append(popularity_explanation(self, track))
                continue
            component = self.components[int(np.argmax(lists[:, j]))]
            own = component.explain(one, 0, [track])[0]
            out.append(
                Explanation(
                    track,
                    [
                        {
                            "kind": "component",
                            "component": component.name,
                            "share": 1.0,
                            "text": own.text,
                            "evidence": own.evidence,
                        }
                    ],
                    own.text,
                )
            )
        return out


def _sources(components: list[str]) -> dict[str, list[int]]:
    """Feature columns grouped by what they say (query-level columns left out: they are the
    same for every candidate of a query and cannot order them)."""
    names = feature_names(components)
    groups: dict[str, list[int]] = {c: [] for c in components}
    extra = {
        "lists": "agreement of the components",
        "blend": "agreement of the components",
        "blend_rank": "agreement of the components",
        "log_popularity": "popularity",
        "artist_share": "the seeds' artists",
        "album_share": "the seeds' albums",
        "artist_cooc_max": "the seeds' artists",
        "artist_cooc_mean": "the seeds' artists",
        "artist_cooc_share": "the seeds' artists",
    }
    for i, name in enumerate(names):
        if name in QUERY_FEATURES:
            continue
        if ":" in name:
            groups[name.split(":")[0]].append(i)
        elif name.startswith("cooc_"):
            groups.setdefault("co-occurrence with the seeds", []).append(i)
        else:
            groups.setdefault(extra[name], []).append(i)
    return groups


def _concatenate(parts: list[Candidates]) -> Candidates:
    """Several batches' pools as one (queries in order)."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *(p.indptr[-1] for p in parts[:-1])])
    indptr = np.concatenate([[0], *(p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True))])
    return Candidates(
        indptr.astype(np.int64),
        np.concatenate([p.track_ids for p in parts]),
        np.concatenate([p.features for p in parts]),
    )


def _labels(candidates: Candidates, truth: list[np.ndarray]) -> np.ndarray:
    """float32 [m]: 1 where a candidate is one of its query's held-out tracks."""
    rows = candidates.rows()
    stride = np.int64(
        max(
            int(candidates.track_ids.max(initial=0)),
            max((int(t.max(initial=0)) for t in truth), default=0),
        )
        + 1
    )
    truth_keys = np.concatenate(
        [np.full(len(t), q, dtype=np.int64) * stride + t for q, t in enumerate(truth)]
        or [np.zeros(0, np.int64)]
    )
    return np.isin(rows * stride + candidates.track_ids, truth_keys).astype(np.float32)


def _pool_recall(lists, truth: list[np.ndarray], sizes: tuple[int, ...]) -> list[float]:
    """Mean over queries of the share of held-out tracks among the pool's first ``size`` candidates."""
    from segue.features.ranking import pool

    indptr, ids, _ = pool(lists, max(sizes))
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    place = np.arange(len(ids)) - indptr[rows]
    labels = _labels(Candidates(indptr, ids, np.zeros((len(ids), 0), np.float32)), truth)
    lengths = np.array([max(len(t), 1) for t in truth], dtype=np.float64)
    return [
        float(
            (
                np.bincount(rows, weights=labels * (place < size), minlength=len(truth)) / lengths
            ).mean()
        )
        for size in sizes
    ]


def _top_per_query(
    candidates: Candidates, scores: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` candidates per query by score (ties by pool order): ids int64 [b, n] (-1 padding),
    scores float32 [b, n]."""
    b = len(candidates.indptr) - 1
    rows = candidates.rows()
    order = np.lexsort((np.arange(len(scores)), -scores, rows))
    place = np.arange(len(order)) - candidates.indptr[rows[order]]
    keep = place < n
    ids = np.full((b, n), -1, dtype=np.int64)
    out = np.zeros((b, n), dtype=np.float32)
    ids[rows[order][keep], place[keep]] = candidates.track_ids[order][keep]
    out[rows[order][keep], place[keep]] = scores[order][keep]
    return ids, out


def _log_every(period: int):
    def callback(env) -> None:
        if env.iteration % period == 0 and env.evaluation_result_list:
            _, metric, value, _ = env.evaluation_result_list[0]
            log.info("rerank: tree %d, validation %s %.4f", env.iteration + 1, metric, value)

    return callback
