"""Score rankings against a challenge-style split, with confidence intervals and paired tests.

:func:`evaluate` takes the held-out truth of a split (an :class:`EvaluationTask`) and one
ranking per model, computes every per-query metric once per model (one hit matrix per model,
shared by all truth-based metrics) and aggregates them per challenge category and over all
queries; :func:`write_report` turns the result into ``evaluation.json``, ``evaluation.md`` and
one figure per headline metric.

Statistics (all seeded, so a result is reproducible bit for bit):

* **Means** are plain means over the queries of a group (``"all"`` or a category ``"1"`` ..
  ``"10"``); only categories that hold queries are groups.
* **Confidence intervals** are 95% percentile intervals of a stratified bootstrap with
  ``n_bootstrap`` replicates: each category's queries are resampled with replacement within the
  category (an index matrix ``[n_bootstrap, m]`` drawn once per category from
  ``np.random.default_rng(seed)``, categories in ascending order), and a replicate of ``"all"``
  is the union of the same replicate of every category, so it keeps the categories' sizes. The
  replicate means of all metrics of all models come from one matrix product per category
  (resample counts ``[n_bootstrap, m]`` @ per-query values ``[m, metrics x models]``).
* **Paired bootstrap**: the resamples do not depend on the models, so every model sees the same
  ones, and the CI of a difference ``a - b`` is the percentile interval of the replicate
  differences. A model's CIs do not change when other models are added.
* **Comparisons** (``comparisons``): by default (``"best_and_popular"``) each model against the
  best one (highest mean R-precision over all queries; the first in ``rankings`` on a tie) and
  against ``popular`` when a model of that name is present, each pair once; ``"all_pairs"``
  compares every pair. A pair is oriented as the models come in ``rankings``: ``diff`` is
  ``model_a - model_b``. Every pair is tested on the three headline metrics, over all queries
  and in every category.
* **p-values**: two-sided paired sign-flip test of the per-query differences ``d``. Conditional on
  ``|d|`` the statistic ``T = sum(d)`` flips to ``sum(e_i |d_i|)`` with independent random signs
  ``e_i``: mean 0, variance ``V = sum(d^2)``. The ``"all"`` test is the stratified one: ``T`` and
  ``V`` are the sums of the categories' (signs are drawn per query, so stratifying by category
  changes neither). Which p is computed depends on the effective number of queries
  ``n_eff = V^2 / sum(d^4)`` (the number of equal differences that would give the same
  kurtosis; zeros do not count):

  - ``n_eff >= 100``: the normal approximation ``p = erfc(max(|T| - c, 0) / sqrt(2 V))``, with
    the continuity correction ``c`` = the smallest non-zero ``|d|`` (exactly half the lattice
    step when all differences share one size, the worst case for the normal; negligible when the
    sizes vary). Checked against exact sign-flip distributions (by convolution) of equal,
    two-level, R-precision-like and clicks-like differences at p from 0.05 down to 1e-5: never
    below the exact p, and above it by at most 1.5x at ``n_eff`` = 100 and 1.15x from 400 (the
    uncorrected normal is up to 25% too small on a lattice). One constructed case, equal
    differences plus a single tiny one, comes out up to 9% too small. The approximation costs
    nothing per comparison and resolves any p, so Holm over hundreds of comparisons can still
    reach significance, which a fixed number of flips cannot (below).
  - ``n_eff < 100`` (small categories, clicks differences dominated by a few queries), where the
    normal tail is several times too large (3-4x at ``n_eff`` = 20 and p = 3e-5): Monte Carlo sign
    flips of the queries with a non-zero difference, drawn from
    ``np.random.default_rng((seed, 1))``, at most ``n_permutations`` of them, and sequential
    (Besag & Clifford 1991): a comparison stops at the draw ``L`` that makes 20 flipped
    statistics ``|T*| >= |T|``, with ``p = 20 / L``; one that never does gets ``p = (1 +
    #{|T*| >= |T|}) / (1 + n_permutations)``. Unless given, ``n_permutations`` is
    ``min(200_000, ceil(20 m / alpha))`` for the size ``m`` of the row's Holm family, so the
    smallest attainable adjusted p is ``alpha / 20`` (families up to 500 comparisons); stopping
    spends the draws on the comparisons with small p, where they decide something. A
    fixed number of flips cannot serve every family size: with 2,000 flips the smallest p is
    1/2001, and Holm over 200 comparisons lifts it to about 0.1, above alpha, so nothing could
    ever be significant.
  - every ``d`` is 0 (identical models on the group): ``p = 1.0`` exactly.

  Each comparison row says which in ``test`` (``"normal"``, ``"permutation"`` or ``"none"``).
* **Multiple comparisons**: Holm-Bonferroni (:func:`holm`) over two separate families: the
  ``"all"`` rows (the compared pairs x headline metrics: the primary, confirmatory family) and the
  per-category rows (pairs x metrics x categories, together). ``significant`` is
  ``p_adjusted < 0.05`` within the row's family.

Headline metrics are ``r_precision``, ``ndcg`` (the rules-text variant) and ``clicks`` (lower
is better: ``better`` names the model with the lower clicks).
"""

from __future__ import annotations

import itertools
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from segue.colours import model_colour
from segue.data.challenge import CATEGORY_BY_NUMBER
from segue.errors import SegueError
from segue.evaluation import metrics as ranking_metrics
from segue.io import atomic_file, write_json, write_text

__all__ = [
    "HEADLINE_METRICS",
    "EvaluationResult",
    "EvaluationTask",
    "evaluate",
    "holm",
    "write_report",
]

HEADLINE_METRICS: tuple[str, ...] = ("r_precision", "ndcg", "clicks")
"""The metrics compared pairwise, plotted and shown first (the challenge's three)."""

LOWER_IS_BETTER: frozenset[str] = frozenset({"clicks"})
"""Metrics where a smaller value is better (for ``better`` and the bold cells of the report)."""

CONFIDENCE = 0.95
ALPHA = 0.05
CHALLENGE_LENGTH = 500
CHALLENGE_NO_HIT_CLICKS = 51
"""Clicks of a ranking without any hit: the challenge's value for its 500-track lists."""

_CHUNK = 4_000_000  # elements per resampling block: bounds memory, never changes a result

COMPARISONS: tuple[str, ...] = ("best_and_popular", "all_pairs")
"""Values of ``evaluate(comparisons=...)``: which model pairs are tested (see the module doc)."""

POPULAR = "popular"
"""The model every other one is compared with under ``"best_and_popular"``, when present."""

NORMAL_MIN_EFFECTIVE_QUERIES = 100
"""From this effective number of queries ``sum(d^2)^2 / sum(d^4)`` a p-value is the normal one."""

_RESOLUTION = 20  # Monte Carlo flips per unit of m / alpha: smallest adjusted p = alpha / 20
_STOP_EXCEEDANCES = 20  # a column stops after this many |T*| >= |T|: p to 1/sqrt(20) = 22%
_MAX_PERMUTATIONS = 200_000  # beyond, flips cost more time than the few small groups are worth

METRIC_LABELS: dict[str, str] = {
    "r_precision": "R-precision",
    "r_precision_artist": "R-precision (artist credit)",
    "ndcg": "NDCG (rules)",
    "ndcg_common": "NDCG (common)",
    "clicks": "Clicks",
    "mrr": "MRR",
    "artist_diversity": "artist diversity",
    "novelty": "novelty (bits)",
    "popularity_bias": "popularity (ARP)",
    "long_tail_share": "long-tail share",
    "catalog_coverage": "catalog coverage",
}

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationTask:
    """What every ranking is scored against: the held-out truth of a challenge-style split.

    ``truth`` ids may be ``>= n_items`` (tracks unknown to training): they count in ``|G|`` but
    can never be hit. ``track_artist`` must cover every truth id; ``item_popularity`` is indexed
    by catalog id (``< n_items``). The arrays are checked (and converted) on construction;
    a malformed task raises ``ValueError``.
    """

    pids: np.ndarray  # int64 [q]
    categories: np.ndarray  # int8 [q], 1..10 (challenge categories)
    truth: list[np.ndarray]  # q arrays of int64 track ids
    track_artist: np.ndarray  # int32 [n_items + n_unknown]: artist id per track id
    item_popularity: np.ndarray  # int64 [n_items]: training playlists containing each track
    n_playlists: int  # training playlists
    n_items: int  # tracks in the training catalog

    def __post_init__(self) -> None:
        self.pids = np.asarray(self.pids, dtype=np.int64).reshape(-1)
        self.categories = np.asarray(self.categories).reshape(-1).astype(np.int8)
        self.truth = [np.asarray(t).reshape(-1).astype(np.int64) for t in self.truth]
        self.track_artist = np.asarray(self.track_artist).reshape(-1)
        self.item_popularity = np.asarray(self.item_popularity).reshape(-1)
        self.n_playlists = int(self.n_playlists)
        self.n_items = int(self.n_items)
        q = self.pids.size
        if q == 0:
            raise ValueError("evaluation task has no queries")
        if self.categories.size != q or len(self.truth) != q:
            raise ValueError(
                f"evaluation task is inconsistent: {q} pids, {self.categories.size} categories, "
                f"{len(self.truth)} truth rows"
            )
        bad = ~np.isin(self.categories, list(CATEGORY_BY_NUMBER))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"pid {int(self.pids[i])} has category {int(self.categories[i])}, not 1..10"
            )
        if self.n_items < 1 or self.n_playlists < 1:
            raise ValueError("n_items and n_playlists must be positive")
        if self.item_popularity.size != self.n_items:
            raise ValueError(
                f"item_popularity has {self.item_popularity.size} entries, n_items is "
                f"{self.n_items}"
            )
        top = max((int(t.max()) for t in self.truth if t.size), default=-1)
        low = min((int(t.min()) for t in self.truth if t.size), default=0)
        if low < 0:
            raise ValueError("truth track ids must be non-negative")
        if self.track_artist.size < max(top + 1, self.n_items):
            raise ValueError(
                f"track_artist has {self.track_artist.size} entries; it must cover the catalog "
                f"({self.n_items}) and every truth id (max {top})"
            )

    def take(self, rows: np.ndarray) -> EvaluationTask:
        """The task of the queries ``rows`` (int [k]) only, same catalog: what a partition of
        the queries is scored against."""
        return EvaluationTask(
            self.pids[rows],
            self.categories[rows],
            [self.truth[i] for i in rows],
            self.track_artist,
            self.item_popularity,
            self.n_playlists,
            self.n_items,
        )


@dataclass
class _TruthCSR:
    """Truth as sorted, deduplicated CSR (what ``metrics`` reads fastest)."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]


def _truth_csr(truth: list[np.ndarray]) -> _TruthCSR:
    lengths = np.fromiter((t.size for t in truth), dtype=np.int64, count=len(truth))
    ids = np.concatenate(truth) if lengths.sum() else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(truth), dtype=np.int64), lengths)
    stride = int(ids.max()) + 1 if ids.size else 1
    keys = rows * stride + ids
    if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        keys = np.sort(keys)  # np.unique's hash-based path is slower than sort + mask
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    rows = keys // stride
    indptr = np.zeros(len(truth) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(truth)), out=indptr[1:])
    return _TruthCSR(indptr=indptr, indices=keys - rows * stride)


def _check_ranking(name: str, ranking: Any, q: int, n_items: int) -> NDArray[np.int64]:
    r = np.asarray(ranking)
    if r.ndim != 2 or not np.issubdtype(r.dtype, np.integer):
        raise ValueError(
            f"ranking of model {name!r} must be a 2-D integer array [queries, tracks], "
            f"got {r.dtype} with shape {r.shape}"
        )
    if r.shape[0] != q:
        raise ValueError(
            f"ranking of model {name!r} has {r.shape[0]} rows but the task has {q} queries"
        )
    r = r.astype(np.int64, copy=False)
    if r.size:
        lo, hi = int(r.min()), int(r.max())
        if lo < ranking_metrics.PAD:
            raise ValueError(
                f"ranking of model {name!r} contains id {lo}; ids are >= 0, or -1 for padding"
            )
        if hi >= n_items:
            raise ValueError(
                f"ranking of model {name!r} contains id {hi}, outside the training catalog "
                f"(n_items={n_items})"
            )
    return r


# --------------------------------------------------------------------------------------------
# Per-query metrics
# --------------------------------------------------------------------------------------------


def metric_names(k_values: tuple[int, ...] = (10, 100)) -> list[str]:
    """The per-query metrics :func:`evaluate` reports, in report order.

    >>> metric_names((10,))[:6]
    ['r_precision', 'r_precision_artist', 'ndcg', 'ndcg_common', 'clicks', 'precision@10']
    """
    names = ["r_precision", "r_precision_artist", "ndcg", "ndcg_common", "clicks"]
    for k in k_values:
        names += [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}"]
    return [*names, "mrr", "artist_diversity", "novelty", "popularity_bias", "long_tail_share"]


def _per_query(
    task: EvaluationTask, truth: _TruthCSR, r: NDArray[np.int64], k_values: tuple[int, ...]
) -> dict[str, FloatArray]:
    h = ranking_metrics.hit_matrix(r, truth)  # once per model; every truth-based metric reuses it
    no_hit = max(CHALLENGE_NO_HIT_CLICKS, -(-r.shape[1] // 10) + 1)
    out = {
        "r_precision": ranking_metrics.r_precision(r, truth, hits=h),
        "r_precision_artist": ranking_metrics.r_precision_artist(
            r, truth, task.track_artist, hits=h
        ),
        "ndcg": ranking_metrics.ndcg_rules(r, truth, hits=h),
        "ndcg_common": ranking_metrics.ndcg_common(r, truth, hits=h),
        "clicks": ranking_metrics.clicks(r, truth, hits=h, no_hit_value=no_hit),
    }
    for k in k_values:
        out[f"precision@{k}"] = ranking_metrics.precision_at_k(r, truth, k, hits=h)
        out[f"recall@{k}"] = ranking_metrics.recall_at_k(r, truth, k, hits=h)
        out[f"ndcg@{k}"] = ranking_metrics.ndcg_at_k(r, truth, k, hits=h)
        out[f"hit_rate@{k}"] = ranking_metrics.hit_rate_at_k(r, truth, k, hits=h)
    out["mrr"] = ranking_metrics.mrr(r, truth, hits=h)
    # Beyond accuracy ignores the order within a row: sort once so the metrics' own sorts are
    # cheap passes over sorted rows.
    s = np.sort(r, axis=1)
    out["artist_diversity"] = ranking_metrics.artist_diversity(s, task.track_artist)
    out["novelty"] = ranking_metrics.novelty(s, task.item_popularity, task.n_playlists)
    out["popularity_bias"] = ranking_metrics.popularity_bias(s, task.item_popularity)
    out["long_tail_share"] = ranking_metrics.long_tail_share(s, task.item_popularity)
    return out


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def holm(p_values: Any) -> FloatArray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order.

    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m, dtype=np.float64)
    out[order] = np.minimum(adj, 1.0)
    return out


def _bootstrap_sums(values: FloatArray, n_bootstrap: int, rng: np.random.Generator) -> FloatArray:
    """Sums of the columns of ``values [m, p]`` over ``n_bootstrap`` resamples of its rows.

    The index matrix ``[n_bootstrap, m]`` is drawn (in row blocks when large), turned into
    resample counts, and multiplied by ``values``: ``[n_bootstrap, p]``.
    """
    m, p = values.shape
    sums = np.empty((n_bootstrap, p), dtype=np.float64)
    block = max(1, _CHUNK // m)
    for start in range(0, n_bootstrap, block):
        b = min(block, n_bootstrap - start)
        idx = rng.integers(0, m, size=(b, m))
        idx += (np.arange(b, dtype=np.int64) * m)[:, None]
        counts = np.bincount(idx.reshape(-1), minlength=b * m).reshape(b, m)
        sums[start : start + b] = counts.astype(np.float64) @ values
    return sums


def _n_permutations(family_size: int) -> int:
    """Monte Carlo sign flips so that Holm over ``family_size`` tests can reach ``alpha / 20``."""
    return min(_MAX_PERMUTATIONS, math.ceil(_RESOLUTION * family_size / ALPHA))


def _sign_flip_p_values(
    diffs: FloatArray, n_perm: int, rng: np.random.Generator
) -> tuple[FloatArray, list[str]]:
    """Two-sided paired sign-flip p-values of the column sums of ``diffs [m, c]`` (float64).

    Returns ``p`` (float64 ``[c]``) and the method per column: ``"normal"``, ``"permutation"``
    (at most ``n_perm`` sequential Monte Carlo flips drawn from ``rng``) or ``"none"`` (all
    zero: ``p = 1.0``).
    """
    c = diffs.shape[1]
    total = diffs.sum(axis=0)
    var = np.square(diffs).sum(axis=0)
    fourth = np.square(np.square(diffs)).sum(axis=0)
    n_eff = np.divide(np.square(var), fourth, out=np.zeros(c), where=fourth > 0)
    p = np.ones(c, dtype=np.float64)
    method = np.where(var > 0, "permutation", "none").astype(object)
    normal = (var > 0) & (n_eff >= NORMAL_MIN_EFFECTIVE_QUERIES)
    if normal.any():
        # Continuity correction: the smallest step a single flip can take |T| by, halved.
        step = np.where(diffs[:, normal] != 0, np.abs(diffs[:, normal]), np.inf).min(axis=0)
        z = np.maximum(np.abs(total[normal]) - step, 0.0) / np.sqrt(2.0 * var[normal])
        p[normal] = special.erfc(z)
        method[normal] = "normal"
    flip = np.flatnonzero((var > 0) & ~normal)
    if flip.size:
        p[flip] = _monte_carlo_p(diffs[:, flip], n_perm, rng)
    return p, list(method)


def _monte_carlo_p(diffs: FloatArray, n_perm: int, rng: np.random.Generator) -> FloatArray:
    """Sequential Monte Carlo sign-flip p-values per column of ``diffs [m, c]``: float64 ``[c]``.

    Sign vectors are drawn in blocks ``[b, rows]`` (never a ``[n_perm, c]`` array), over the rows
    where a still running column is non-zero. A column stops at the draw ``L`` that brings its
    count of ``|T*| >= |T|`` to ``_STOP_EXCEEDANCES``, with ``p = _STOP_EXCEEDANCES / L``; one
    that never gets there has ``p = (1 + count) / (1 + n_perm)``. Both are valid p-values
    (Besag & Clifford 1991, "Sequential Monte Carlo p-values", Biometrika 78: 301-304).
    """
    c = diffs.shape[1]
    # Summation-order noise must not turn a tie into a miss.
    threshold = np.abs(diffs.sum(axis=0)) - 1e-9 * (np.abs(diffs).sum(axis=0) + 1e-300)
    p = np.empty(c, dtype=np.float64)
    count = np.zeros(c, dtype=np.int64)
    active = np.arange(c)
    done_draws, block = 0, 1024  # small first blocks: most columns stop within them
    while done_draws < n_perm and active.size:
        d = diffs[:, active]
        d = d[(d != 0).any(axis=1)]  # a zero difference adds nothing under either sign
        b = min(block, n_perm - done_draws, max(1, _CHUNK // d.shape[0]))
        bits = rng.integers(0, 2, size=(b, d.shape[0]), dtype=np.int8).astype(np.float64)
        flipped = 2.0 * (bits @ d) - d.sum(axis=0)  # signs 2 bits - 1, without a pass over them
        hits = np.abs(flipped) >= threshold[active]
        running = count[active] + np.cumsum(hits, axis=0, dtype=np.int64)  # [b, active]
        stop = running[-1] >= _STOP_EXCEEDANCES
        at = np.argmax(running[:, stop] >= _STOP_EXCEEDANCES, axis=0)  # first such draw
        p[active[stop]] = _STOP_EXCEEDANCES / (done_draws + at + 1.0)
        count[active] = running[-1]
        active = active[~stop]
        done_draws += b
        block *= 2
    p[active] = (1.0 + count[active]) / (1.0 + n_perm)
    return p


def _better(metric: str, diff: float, a: str, b: str) -> str | None:
    if diff == 0 or not math.isfinite(diff):
        return None
    a_higher = diff > 0
    return a if a_higher != (metric in LOWER_IS_BETTER) else b


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Means with bootstrap CIs per model, group and metric, and the paired comparisons.

    ``table[model][group][metric]`` is ``{"mean", "ci_low", "ci_high", "n"}`` (``n`` = queries
    in the group); ``catalog_coverage`` is a set statistic, not a per-query mean, and has
    ``ci_low = ci_high = None``. Each entry of ``comparisons`` holds ``model_a``, ``model_b``,
    ``metric``, ``group``, ``family`` (``"all"`` or ``"category"``: the Holm family), ``n``,
    ``diff`` (mean of ``a - b``), ``ci_low``, ``ci_high``, ``test`` (how ``p_value`` was
    computed: ``"normal"``, ``"permutation"`` or ``"none"``), ``p_value``, ``p_adjusted``,
    ``significant`` and ``better`` (the model with the better mean, direction-aware; None on a
    tie -- read it together with ``significant``).
    """

    models: list[str]
    groups: list[str]
    table: dict[str, dict[str, dict[str, dict[str, Any]]]]
    comparisons: list[dict[str, Any]]
    metrics: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> EvaluationResult:
        """The result :meth:`to_json` wrote (``evaluation.json``), read back."""
        return cls(
            models=list(document["models"]),
            groups=list(document["groups"]),
            table=document["table"],
            comparisons=list(document.get("comparisons", [])),
            metrics=list(document.get("metrics", [])),
            settings=dict(document.get("settings", {})),
        )

    def headline(self, metrics: Sequence[str] = ("r_precision", "ndcg", "clicks")) -> str:
        """A plain-text table: one row per model, each metric's mean over all queries with its
        95% CI (what ``segue evaluate`` and ``segue demo`` print)."""
        labels = {"r_precision": "R-precision", "ndcg": "NDCG", "clicks": "clicks"}
        rows = [f"{'model':<20} " + " ".join(f"{labels.get(m, m):>22}" for m in metrics)]
        for model in self.models:
            cells = []
            for metric in metrics:
                c = self.table[model]["all"][metric]
                cells.append(f"{c['mean']:.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}]")
            rows.append(f"{model:<20} " + " ".join(f"{cell:>22}" for cell in cells))
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        """The result as plain Python types (str, int, float, bool, None, list, dict)."""
        return _plain(
            {
                "models": self.models,
                "groups": self.groups,
                "group_labels": {g: _group_label(g) for g in self.groups},
                "metrics": self.metrics,
                "headline_metrics": list(HEADLINE_METRICS),
                "lower_is_better": sorted(LOWER_IS_BETTER),
                "settings": self.settings,
                "table": self.table,
                "comparisons": self.comparisons,
            }
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj)
    return obj


def _group_label(group: str) -> str:
    if group == "all":
        return "all queries"
    return f"{group} — {CATEGORY_BY_NUMBER[int(group)].label}"


def evaluate(
    task: EvaluationTask,
    rankings: dict[str, np.ndarray],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    k_values: tuple[int, ...] = (10, 100),
    comparisons: str = "best_and_popular",
    n_permutations: int | None = None,
    per_query: dict[str, dict[str, FloatArray]] | None = None,
) -> EvaluationResult:
    """Score every model's ranking against ``task``; see the module doc for the statistics.

    ``rankings[name]`` is an int array ``[q, n]`` of catalog track ids (``< task.n_items``),
    row ``i`` answering ``task.pids[i]``, ``-1`` = padding. ``clicks`` of a row without any hit
    is 51, the challenge's value, whatever ``n`` (shorter lists are not rewarded).
    ``comparisons`` is ``"best_and_popular"`` or ``"all_pairs"``; ``n_permutations`` (Monte
    Carlo sign flips, for the comparisons too small for the normal approximation) is chosen from
    the Holm family size when None.

    ``per_query[model]``, when given for a model, holds its per-query values (each metric of
    :func:`metric_names`, float64 [q]) already computed for its ranking elsewhere (by Spark
    tasks, each on a part of the queries: :mod:`segue.spark.batch`); they are used as given.

    Raises :class:`SegueError` when ``rankings`` is empty and ``ValueError`` (naming the model)
    when a ranking is not a 2-D integer array, has the wrong number of rows, or holds ids below
    -1 or outside the catalog, and on an unknown ``comparisons``.
    """
    k_values = _check_arguments(rankings, n_bootstrap, k_values, comparisons, n_permutations)
    models = [str(name) for name in rankings]
    q = task.pids.size
    checked = {
        str(name): _check_ranking(str(name), r, q, task.n_items) for name, r in rankings.items()
    }
    truth = _truth_csr(task.truth)
    names = metric_names(k_values)
    n_met = len(names)

    # Per-query values of every model, one column per (model, metric): [q, models * metrics].
    values = np.empty((q, len(models) * n_met), dtype=np.float64)
    for j, model in enumerate(models):
        given = (per_query or {}).get(model)
        if given is not None and (
            set(given) != set(names) or any(np.shape(given[m]) != (q,) for m in names)
        ):
            raise ValueError(f"per-query values of model {model!r} must be {names} of [{q}] each")
        computed = given if given is not None else _per_query(task, truth, checked[model], k_values)
        for i, name in enumerate(names):
            values[:, j * n_met + i] = computed[name]

    cats = [c for c in sorted(CATEGORY_BY_NUMBER) if (task.categories == c).any()]
    members = {str(c): np.flatnonzero(task.categories == c) for c in cats}
    groups = ["all", *members]
    means, reps = _bootstrap(values, members, n_bootstrap, seed)
    table = _table(task, models, names, checked, members, means, reps)

    rp = means["all"][np.arange(len(models)) * n_met + names.index("r_precision")]
    best = models[int(np.argmax(rp))]  # argmax: the first of tied models
    references = [best, *([POPULAR] if POPULAR in models and best != POPULAR else [])]
    pairs = [
        (a, b)
        for a, b in itertools.combinations(range(len(models)), 2)
        if comparisons == "all_pairs" or models[a] in references or models[b] in references
    ]
    family_sizes = {
        "all": len(pairs) * len(HEADLINE_METRICS),
        "category": len(pairs) * len(HEADLINE_METRICS) * len(members),
    }
    n_perm = {f: n_permutations or _n_permutations(m) for f, m in family_sizes.items()}
    rows = _compare(models, names, values, members, groups, means, reps, pairs, n_perm, seed)
    settings = {
        "n_queries": q,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "confidence": CONFIDENCE,
        "alpha": ALPHA,
        "k_values": list(k_values),
        "ranking_lengths": {m: int(checked[m].shape[1]) for m in models},
        "bootstrap": "stratified by category, percentile interval, paired across models",
        "comparisons": comparisons,
        "best_model": best,
        "reference_models": references if comparisons == "best_and_popular" else None,
        "family_sizes": family_sizes,
        "test": "two-sided paired sign-flip test of the mean difference, stratified by category",
        "p_value": (
            "normal approximation with continuity correction where the effective number of "
            f"queries sum(d^2)^2 / sum(d^4) >= {NORMAL_MIN_EFFECTIVE_QUERIES}, otherwise "
            "at most n_permutations sequential Monte Carlo sign flips; 1 where every "
            "difference is 0"
        ),
        "normal_min_effective_queries": NORMAL_MIN_EFFECTIVE_QUERIES,
        "n_permutations": n_perm,
        "tests_used": {
            family: {
                t: sum(r["family"] == family and r["test"] == t for r in rows)
                for t in ("normal", "permutation", "none")
            }
            for family in ("all", "category")
        },
        "correction": "Holm-Bonferroni within the 'all' family and within the category family",
    }
    return EvaluationResult(
        models=models,
        groups=groups,
        table=table,
        comparisons=rows,
        metrics=[*names, "catalog_coverage"],
        settings=settings,
    )


def _check_arguments(rankings, n_bootstrap, k_values, comparisons, n_permutations):
    """``k_values`` as ints, after refusing what :func:`evaluate` cannot score."""
    if not rankings:
        raise SegueError("no rankings to evaluate")
    if comparisons not in COMPARISONS:
        raise ValueError(
            f"comparisons must be one of {', '.join(map(repr, COMPARISONS))}, got {comparisons!r}"
        )
    if n_bootstrap < 1 or (n_permutations is not None and n_permutations < 1):
        raise ValueError("n_bootstrap and n_permutations must be positive")
    k_values = tuple(int(k) for k in k_values)
    if any(k < 1 for k in k_values) or len(set(k_values)) != len(k_values):
        raise ValueError(f"k_values must be distinct positive integers, got {k_values}")
    models = [str(name) for name in rankings]
    if len(set(models)) != len(models):
        raise ValueError("model names must be distinct")
    return k_values


def _bootstrap(
    values: FloatArray, members: dict[str, np.ndarray], n_bootstrap: int, seed: int
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Per group (``"all"`` and each category), the mean of every column of ``values``
    [q, columns] and its stratified bootstrap replicates [B, columns]: each category resampled
    on its own, the same resamples for every column (so comparisons are paired)."""
    rng = np.random.default_rng(seed)
    means: dict[str, FloatArray] = {"all": values.mean(axis=0)}
    reps: dict[str, FloatArray] = {}
    total = np.zeros((n_bootstrap, values.shape[1]), dtype=np.float64)
    for g, idx in members.items():
        sums = _bootstrap_sums(values[idx], n_bootstrap, rng)
        total += sums
        means[g] = values[idx].mean(axis=0)
        reps[g] = sums / idx.size
    reps["all"] = total / values.shape[0]
    return means, reps


def _table(task, models, names, checked, members, means, reps) -> dict:
    """``table[model][group][metric]`` = mean, percentile CI and n; plus catalog coverage."""
    q_lo, q_hi = 50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)
    bounds = {g: np.percentile(reps[g], [q_lo, q_hi], axis=0) for g in means}
    sizes = {"all": task.pids.size} | {g: idx.size for g, idx in members.items()}
    n_met = len(names)
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for j, model in enumerate(models):
        rows = table[model] = {}
        rank_m = checked[model]
        for g in means:
            cells = rows[g] = {}
            for i, name in enumerate(names):
                col = j * n_met + i
                cells[name] = {
                    "mean": float(means[g][col]),
                    "ci_low": float(bounds[g][0, col]),
                    "ci_high": float(bounds[g][1, col]),
                    "n": int(sizes[g]),
                }
            sub = rank_m if g == "all" else rank_m[members[g]]
            cells["catalog_coverage"] = {
                "mean": float(ranking_metrics.catalog_coverage(sub, task.n_items)),
                "ci_low": None,
                "ci_high": None,
                "n": int(sizes[g]),
            }
    return table


def _compare(
    models: list[str],
    names: list[str],
    values: FloatArray,
    members: dict[str, NDArray[np.int64]],
    groups: list[str],
    means: dict[str, FloatArray],
    reps: dict[str, FloatArray],
    model_pairs: list[tuple[int, int]],
    n_perm: dict[str, int],
    seed: int,
) -> list[dict[str, Any]]:
    n_met = len(names)
    pairs = [(a, b, metric) for a, b in model_pairs for metric in HEADLINE_METRICS]
    if not pairs:
        return []
    col_a = np.array([a * n_met + names.index(m) for a, _, m in pairs])
    col_b = np.array([b * n_met + names.index(m) for _, b, m in pairs])
    diffs = values[:, col_a] - values[:, col_b]  # [q, comparisons]

    perm_rng = np.random.default_rng((seed, 1))
    tests = {
        g: _sign_flip_p_values(diffs, n_perm["all"], perm_rng)
        if g == "all"
        else _sign_flip_p_values(diffs[members[g]], n_perm["category"], perm_rng)
        for g in groups
    }

    q_lo, q_hi = 50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)
    rows: list[dict[str, Any]] = []
    for g in groups:
        point = means[g][col_a] - means[g][col_b]
        lo, hi = np.percentile(reps[g][:, col_a] - reps[g][:, col_b], [q_lo, q_hi], axis=0)
        n = int(values.shape[0] if g == "all" else members[g].size)
        p_vals, methods = tests[g]
        for c, (a, b, metric) in enumerate(pairs):
            diff = float(point[c])
            rows.append(
                {
                    "model_a": models[a],
                    "model_b": models[b],
                    "metric": metric,
                    "group": g,
                    "family": "all" if g == "all" else "category",
                    "n": n,
                    "diff": diff,
                    "ci_low": float(lo[c]),
                    "ci_high": float(hi[c]),
                    "test": methods[c],
                    "p_value": float(p_vals[c]),
                    "p_adjusted": None,
                    "significant": False,
                    "better": _better(metric, diff, models[a], models[b]),
                }
            )
    for family in ("all", "category"):
        members_f = [r for r in rows if r["family"] == family]
        adjusted = holm([r["p_value"] for r in members_f])
        for r, p in zip(members_f, adjusted, strict=True):
            r["p_adjusted"] = float(p)
            r["significant"] = bool(p < ALPHA)
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(metric: str, v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    if metric in ("clicks", "novelty"):
        return f"{v:.3f}"
    if metric == "popularity_bias":
        return f"{v:,.1f}"
    return f"{v:.4f}"


def _cell(metric: str, c: dict[str, Any]) -> str:
    if c["ci_low"] is None:
        return _fmt(metric, c["mean"])
    return f"{_fmt(metric, c['mean'])} [{_fmt(metric, c['ci_low'])}, {_fmt(metric, c['ci_high'])}]"


def _label(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    return metric


def _best(result: EvaluationResult, group: str, metric: str) -> set[str]:
    vals = {m: result.table[m][group][metric]["mean"] for m in result.models}
    if len(vals) < 2:
        return set()
    pick = min if metric in LOWER_IS_BETTER else max
    top = pick(vals.values())
    return {m for m, v in vals.items() if v == top}


def _fmt_p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"  # never "0.0000": no p-value is 0


def _significance_text(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """What the significance table of ``rows`` (the ``"all"`` comparisons) tested, and how."""
    if s["comparisons"] == "all_pairs":
        scope = "every pair of models"
    else:
        scope = "each model against the best by R-precision (`" + s["reference_models"][0] + "`)"
        if len(s["reference_models"]) > 1:
            scope += " and against `" + s["reference_models"][1] + "`"
    used = {t: sum(r["test"] == t for r in rows) for t in ("normal", "permutation", "none")}
    how = []
    if used["normal"]:
        how.append(
            f"{used['normal']} by the normal approximation of the sign-flip distribution "
            f"(continuity-corrected; at least {s['normal_min_effective_queries']} effective "
            "queries)"
        )
    if used["permutation"]:
        how.append(
            f"{used['permutation']} by up to {s['n_permutations']['all']:,} Monte Carlo sign "
            "flips (sequential: each stops at its 20th flip as extreme as the observed)"
        )
    if used["none"]:
        how.append(f"{used['none']} with p = 1 (the models agree on every query)")
    return (
        f"Two-sided paired sign-flip test of the mean difference, {scope}, on the headline "
        f"metrics: {len(rows)} comparisons, p-values of " + "; ".join(how) + ". "
        f"Holm-Bonferroni over these {len(rows)}; significant = adjusted p < {s['alpha']}. "
        "Per-category comparisons (Holm within their own family) are in `evaluation.json`."
    )


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _markdown(result: EvaluationResult, title: str) -> str:
    s = result.settings
    lines = [
        f"# {title}",
        "",
        f"{s['n_queries']:,} queries, {len(result.models)} model(s): "
        + ", ".join(f"`{m}`" for m in result.models)
        + f". Means with {int(s['confidence'] * 100)}% stratified bootstrap CIs "
        f"({s['n_bootstrap']:,} replicates, seed {s['seed']}).",
        "",
        "## Overall",
        "",
        _md_row(["model", *(_label(m) for m in HEADLINE_METRICS)]),
        _md_row(["---", *("---:" for _ in HEADLINE_METRICS)]),
    ]
    best = {m: _best(result, "all", m) for m in HEADLINE_METRICS}
    for model in result.models:
        cells = []
        for metric in HEADLINE_METRICS:
            text = _cell(metric, result.table[model]["all"][metric])
            cells.append(f"**{text}**" if model in best[metric] else text)
        lines.append(_md_row([f"`{model}`", *cells]))

    lines += ["", "## Per category", ""]
    for metric in HEADLINE_METRICS:
        direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        lines += [
            f"### {_label(metric)}{direction}",
            "",
            _md_row(["category", *(f"`{m}`" for m in result.models), "n"]),
            _md_row(["---", *("---:" for _ in result.models), "---:"]),
        ]
        for g in [*result.groups[1:], "all"]:
            top = _best(result, g, metric)
            cells = []
            for model in result.models:
                text = _cell(metric, result.table[model][g][metric])
                cells.append(f"**{text}**" if model in top else text)
            n = result.table[result.models[0]][g][metric]["n"]
            lines.append(_md_row([_group_label(g), *cells, f"{n:,}"]))
        lines.append("")

    lines += ["## Significance (all queries)", ""]
    rows = [c for c in result.comparisons if c["group"] == "all"]
    if rows:
        lines += [
            _significance_text(s, rows),
            "",
            _md_row(
                ["A", "B", "metric", "A − B [95% CI]", "p", "p (Holm)", "significant", "better"]
            ),
            _md_row(["---", "---", "---", "---:", "---:", "---:", "---", "---"]),
        ]
        for c in rows:
            m = c["metric"]
            diff = f"{c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
            lines.append(
                _md_row(
                    [
                        f"`{c['model_a']}`",
                        f"`{c['model_b']}`",
                        _label(m),
                        diff,
                        _fmt_p(c["p_value"]),
                        _fmt_p(c["p_adjusted"]),
                        "yes" if c["significant"] else "no",
                        f"`{c['better']}`" if c["better"] is not None else "–",
                    ]
                )
            )
    else:
        lines.append("Only one model: nothing to compare.")

    lines += [
        "",
        "## All metrics (all queries)",
        "",
        _md_row(["metric", *(f"`{m}`" for m in result.models)]),
        _md_row(["---", *("---:" for _ in result.models)]),
    ]
    for metric in result.metrics:
        lines.append(
            _md_row(
                [metric, *(_cell(metric, result.table[m]["all"][metric]) for m in result.models)]
            )
        )

    lines += [
        "",
        "## Notes",
        "",
        "- **R-precision**: distinct held-out tracks among the first |G| recommendations, "
        "divided by |G| (G = the held-out tracks; tracks unknown to training count in |G| but "
        "cannot be hit). `r_precision_artist` adds the challenge's 0.25 artist credit.",
        "- **NDCG** (`ndcg`) is the variant of the RecSys Challenge 2018 rules text: DCG = "
        "rel₁ + Σᵢ₌₂ relᵢ / log₂ i, normalised by the ideal DCG over the number of relevant "
        "tracks actually retrieved. `ndcg_common` is the usual variant with the ideal DCG over "
        "min(|G|, 500) relevant tracks; it also penalises relevant tracks never retrieved.",
        "- **Clicks**: refreshes of 10 tracks before the first relevant one, "
        "⌊(rank − 1) / 10⌋; 51 when none of the list is relevant. **Lower is better.**",
        "- `@k` metrics are the standard precision, recall, NDCG (1/log₂(i+1) discount) and hit "
        "rate at k; `mrr` is the reciprocal rank of the first hit over the whole list.",
        "- Beyond accuracy, over each full list: artist diversity = distinct artists / "
        "distinct tracks; novelty = mean −log₂(popularity / training playlists); popularity "
        "(ARP) = mean training popularity; long-tail share = fraction outside the short head "
        "(the most popular tracks carrying 80% of training interactions); catalog coverage = "
        "distinct recommended tracks / catalog size, over the group's queries (no CI).",
        "- CIs are stratified bootstrap percentile intervals: queries are resampled with "
        'replacement within each category, so "all" keeps the categories\' sizes; every model '
        "sees the same resamples (paired), which also gives the CIs of the differences.",
        "",
    ]
    return "\n".join(lines)


def _figure(result: EvaluationResult, metric: str, title: str, dest: Path) -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # never switch (and close) a live pyplot session
        matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure registry to leak into

    groups = [*result.groups[1:], "all"]
    x = np.arange(len(groups), dtype=np.float64)
    x[-1] += 0.5  # set "all" apart
    n_models = len(result.models)
    width = 0.8 / n_models
    fig = Figure(figsize=(11, 4.5), dpi=110, layout="constrained")
    ax = fig.subplots()
    for j, model in enumerate(result.models):
        cells = [result.table[model][g][metric] for g in groups]
        mean = np.array([c["mean"] for c in cells])
        err = np.array(
            [
                [max(c["mean"] - c["ci_low"], 0.0) for c in cells],
                [max(c["ci_high"] - c["mean"], 0.0) for c in cells],
            ]
        )
        ax.bar(
            x + (j - (n_models - 1) / 2) * width,
            mean,
            width=width,
            yerr=err,
            capsize=2,
            error_kw={"elinewidth": 0.8},
            label=model,
            color=model_colour(model),
        )
    ax.axvline((x[-2] + x[-1]) / 2 if len(x) > 1 else -1, color="0.6", ls=":", lw=1)
    ticks = [
        "all queries"
        if g == "all"
        else f"{g}\n" + textwrap.fill(CATEGORY_BY_NUMBER[int(g)].label, 14)
        for g in groups
    ]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_xlabel("challenge category")
    direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    ax.set_ylabel(_label(metric) + direction)
    pct = int(result.settings.get("confidence", CONFIDENCE) * 100)
    ax.set_title(f"{title}: {_label(metric)} by category (mean, {pct}% bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, ncols=min(n_models, 4), loc="best")
    with atomic_file(dest, "wb") as handle:  # temp file in out_dir, then os.replace
        fig.savefig(handle, format="png")


def _ranking_and_heatmap(result: EvaluationResult, title: str, dest: Path) -> None:
    """Left: models sorted by R-precision over all queries, with CIs. Right: R-precision per
    category × model, the same order, each category's best boxed."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    metric = "r_precision"
    order = sorted(result.models, key=lambda m: result.table[m]["all"][metric]["mean"])
    groups = [g for g in result.groups if g != "all"]
    fig = Figure(figsize=(12, 0.42 * len(order) + 1.8), dpi=110, layout="constrained")
    bars, heat = fig.subplots(1, 2, width_ratios=(1, 2.2))
    cells = [result.table[m]["all"][metric] for m in order]
    means = np.array([c["mean"] for c in cells])
    errors = np.array(
        [[c["mean"] - c["ci_low"] for c in cells], [c["ci_high"] - c["mean"] for c in cells]]
    )
    bars.barh(order, means, xerr=np.clip(errors, 0, None), capsize=2,
              color=[model_colour(m) for m in order])  # fmt: skip
    bars.set_xlabel(f"{_label(metric)}, all queries (95% CI)")
    bars.grid(axis="x", alpha=0.3)
    bars.set_axisbelow(True)
    rows = order[::-1]  # imshow draws row 0 at the top: the best model, as in the bars
    values = np.array([[result.table[m][g][metric]["mean"] for g in groups] for m in rows])
    image = heat.imshow(values, aspect="auto", cmap="viridis")
    heat.set_xticks(range(len(groups)), [f"c{g}" for g in groups])
    heat.set_yticks(range(len(rows)), rows)
    best = values.argmax(axis=0)
    for j, i in enumerate(best.tolist()):
        heat.add_patch(
            matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="white", lw=2)
        )
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            heat.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=7,
                      color="white" if values[i, j] < values.max() * 0.6 else "black")  # fmt: skip
    heat.set_xlabel("challenge category (c1 title only … c10 title + random 100 tracks)")
    fig.colorbar(image, ax=heat, label=_label(metric), shrink=0.8)
    fig.suptitle(f"{title}: models ranked, and {_label(metric)} per category (best boxed)")
    with atomic_file(dest, "wb") as handle:
        fig.savefig(handle, format="png")


def write_report(
    result: EvaluationResult, out_dir: Path, *, title: str = "Evaluation"
) -> list[Path]:
    """Write ``evaluation.json``, ``evaluation.md``, ``fig_<metric>.png`` per headline metric
    and ``fig_ranking.png`` (models ranked; category × model heatmap).

    Every file is written atomically into ``out_dir`` (created if needed); returns the paths in
    that order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "evaluation.json", out_dir / "evaluation.md"]
    write_json(paths[0], result.to_json())
    write_text(paths[1], _markdown(result, title))
    for metric in HEADLINE_METRICS:
        dest = out_dir / f"fig_{metric}.png"
        _figure(result, metric, title, dest)
        paths.append(dest)
    if result.groups[1:] and "r_precision" in result.metrics:
        dest = out_dir / "fig_ranking.png"
        _ranking_and_heatmap(result, title, dest)
        paths.append(dest)
    return paths


def verdict(document: dict[str, Any], metric: str = "r_precision") -> list[str]:
    """What an evaluation decides, in sentences (Markdown): the best model overall on ``metric``
    and by how much it leads the next, with the interval and whether the paired test calls it
    significant; which model is best in each category; the best model against popularity.

    ``document`` is :meth:`EvaluationResult.to_json` (``evaluation.json``).

    >>> doc = {
    ...     "models": ["popular", "a", "b"],
    ...     "groups": ["all", "1", "2"],
    ...     "group_labels": {"1": "1 — title only", "2": "2 — first 5 tracks"},
    ...     "table": {
    ...         "popular": {g: {"r_precision": {"mean": 0.02}} for g in ("all", "1", "2")},
    ...         "a": {"all": {"r_precision": {"mean": 0.14}}, "1": {"r_precision": {"mean": 0.05}},
    ...               "2": {"r_precision": {"mean": 0.20}}},
    ...         "b": {"all": {"r_precision": {"mean": 0.13}}, "1": {"r_precision": {"mean": 0.07}},
    ...               "2": {"r_precision": {"mean": 0.18}}},
    ...     },
    ...     "comparisons": [
    ...         {"model_a": "a", "model_b": "b", "metric": "r_precision", "group": "all",
    ...          "diff": 0.01, "ci_low": 0.004, "ci_high": 0.016, "p_adjusted": 0.002,
    ...          "significant": True},
    ...     ],
    ... }
    >>> for line in verdict(doc):
    ...     print(line)
    **a** has the best R-precision: 0.1400, ahead of **b** (0.1300) by +0.0100 [+0.0040, +0.0160], a significant lead (paired test, Holm-adjusted p = 0.0020).
    Best per category: **a** in 1 of 2 (2 — first 5 tracks), **b** in 1 (1 — title only).
    Against popularity (0.0200): **a** is 7.0 × better.
    """
    table, models = document["table"], list(document["models"])
    label = {"r_precision": "R-precision", "ndcg": "NDCG", "clicks": "clicks"}.get(metric, metric)
    lower = metric in LOWER_IS_BETTER
    sign = -1.0 if lower else 1.0
    ranked = sorted(models, key=lambda m: -sign * table[m]["all"][metric]["mean"])
    best = ranked[0]
    value = table[best]["all"][metric]["mean"]
    lines = []
    if len(ranked) > 1:
        second = ranked[1]
        other = table[second]["all"][metric]["mean"]
        test = next(
            (
                c
                for c in document.get("comparisons", [])
                if c["group"] == "all"
                and c["metric"] == metric
                and {c["model_a"], c["model_b"]} == {best, second}
            ),
            None,
        )
        lead = f"ahead of **{second}** ({other:.4f})"
        if test is None:
            lines.append(
                f"**{best}** has the best {label}: {value:.4f}, {lead}; the two were not compared "
                "by a paired test (`segue evaluate --comparisons all-pairs` does)."
            )
        else:
            flip = 1 if test["model_a"] == best else -1
            low, high = sorted((flip * test["ci_low"], flip * test["ci_high"]))
            p = test["p_adjusted"]
            p_text = "< 0.0001" if p < 1e-4 else f"= {p:.4f}"
            kind = "a significant lead" if test["significant"] else "not a significant lead"
            lines.append(
                f"**{best}** has the best {label}: {value:.4f}, {lead} by "
                f"{flip * test['diff']:+.4f} [{low:+.4f}, {high:+.4f}], {kind} "
                f"(paired test, Holm-adjusted p {p_text})."
            )
    else:
        lines.append(f"**{best}** is the only model: {label} {value:.4f}.")
    groups = [g for g in document["groups"] if g != "all"]
    if groups and len(ranked) > 1:
        winners: dict[str, list[str]] = {}
        for g in groups:
            top = min(ranked, key=lambda m: -sign * table[m][g][metric]["mean"])
            winners.setdefault(top, []).append(document.get("group_labels", {}).get(g, g))
        parts = sorted(winners.items(), key=lambda kv: (-len(kv[1]), ranked.index(kv[0])))
        text = ", ".join(
            f"**{m}** in {len(gs)}{f' of {len(groups)}' if i == 0 else ''} ({'; '.join(gs)})"
            for i, (m, gs) in enumerate(parts)
        )
        lines.append(f"Best per category: {text}.")
    if "popular" in table and best != "popular":
        base = table["popular"]["all"][metric]["mean"]
        if base > 0 and not lower:
            lines.append(
                f"Against popularity ({base:.4f}): **{best}** is {value / base:.1f} × better."
            )
    return lines
