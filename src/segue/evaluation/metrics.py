"""Ranking metrics for playlist continuation, vectorized over a batch of queries.

Every metric is a pure function whose first two arguments are ``(ranking, truth)``; per-query
metrics return a ``float64`` array with one value per query (average it yourself, e.g. per
challenge category).

Inputs
------
``ranking``
    Integer array ``[q, n]`` (int32 or int64) of recommended track ids, best first. The value
    ``-1`` is padding ("no recommendation"): it never counts as a hit and is not a
    recommendation for the beyond-accuracy metrics. Ids below ``-1`` are rejected. A row may
    repeat an id; only the **first occurrence** of an id counts (a repeated relevant track is
    credited once, at its first rank; later copies are misses).
``truth``
    The held-out ids of each query, either a ``scipy.sparse`` CSR matrix ``[q, n_items]`` (the
    column indices of the stored entries are the ids; stored values are ignored) or any object
    with ``indptr``/``indices``, or a sequence of ``q`` 1-D integer arrays. Truth is a *set*:
    repeated ids count once, their order is irrelevant. Ids must be non-negative. Empty rows
    are allowed; every metric documents its value for them (never NaN).

The work is shared through :func:`hit_matrix` (``bool [q, n]``, first occurrences only, padding
never hits); every truth-based metric accepts a precomputed matrix as ``hits=`` and
:func:`challenge_metrics` computes it once for all RecSys Challenge 2018 metrics.

Notation below: ``G`` is the truth set of a query, ``R`` its ranking, ``n`` the ranking length
(``ranking.shape[1]``, 500 in the challenge), ranks are 1-based.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from segue.arrays import sorted_unique

__all__ = [
    "PAD",
    "artist_diversity",
    "as_truth_lists",
    "catalog_coverage",
    "challenge_metrics",
    "clicks",
    "head_mask",
    "hit_matrix",
    "hit_rate_at_k",
    "long_tail_share",
    "mrr",
    "ndcg_at_k",
    "ndcg_common",
    "ndcg_rules",
    "novelty",
    "popularity_bias",
    "precision_at_k",
    "r_precision",
    "r_precision_artist",
    "recall_at_k",
]

PAD = -1
"""Padding value in a ranking row: no recommendation at that rank."""

ARTIST_CREDIT = 0.25
"""Partial credit of an artist-only match in :func:`r_precision_artist`."""

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TruthSets:
    """Truth as deduplicated CSR: row ``i`` is ``ids[indptr[i]:indptr[i + 1]]``, sorted."""

    indptr: IntArray
    ids: IntArray

    @property
    def n_queries(self) -> int:
        return self.indptr.size - 1

    @property
    def lengths(self) -> IntArray:
        return np.diff(self.indptr)

    @property
    def rows(self) -> IntArray:
        return np.repeat(np.arange(self.n_queries, dtype=np.int64), self.lengths)


def _csr_parts(truth: Any) -> tuple[IntArray, IntArray] | None:
    """``(indptr, indices)`` of a CSR-like object (converting other scipy formats), or None."""
    if not (hasattr(truth, "indptr") and hasattr(truth, "indices")):
        tocsr = getattr(truth, "tocsr", None)
        if tocsr is None or isinstance(truth, np.ndarray):
            return None
        truth = tocsr()
    indptr = np.asarray(truth.indptr, dtype=np.int64)
    indices = np.asarray(truth.indices, dtype=np.int64)[indptr[0] : indptr[-1]]
    return indptr - indptr[0], indices


def _as_truth_sets(truth: Any, n_queries: int | None = None) -> _TruthSets:
    if isinstance(truth, _TruthSets):
        ts = truth
    else:
        parts = _csr_parts(truth)
        if parts is None:
            rows = []
            for i, row in enumerate(truth):
                arr = np.asarray(row)
                if arr.ndim != 1:
                    raise ValueError(f"truth row {i} must be 1-D, got shape {arr.shape}")
                if arr.size and arr.dtype.kind not in "iu":
                    raise TypeError(f"truth row {i} must hold integer ids, got {arr.dtype}")
                rows.append(arr.astype(np.int64, copy=False))
            lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=len(rows))
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
            indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        else:
            indptr, indices = parts
        if indices.size and indices.min() < 0:
            raise ValueError("truth ids must be non-negative")
        q = indptr.size - 1
        row_of = np.repeat(np.arange(q, dtype=np.int64), np.diff(indptr))
        stride = int(indices.max()) + 1 if indices.size else 1
        keys = row_of * stride + indices
        if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            keys = sorted_unique(keys)
            row_of = keys // stride
            indices = keys - row_of * stride
            indptr = np.zeros(q + 1, dtype=np.int64)
            np.cumsum(np.bincount(row_of, minlength=q), out=indptr[1:])
        ts = _TruthSets(indptr=indptr, ids=indices)
    if n_queries is not None and ts.n_queries != n_queries:
        raise ValueError(f"truth has {ts.n_queries} rows but ranking has {n_queries} queries")
    return ts


def as_truth_lists(truth: Any) -> list[IntArray]:
    """Truth in any accepted form as a list of per-query id sets.

    ``truth`` is a CSR matrix (or CSR-like object) or a sequence of 1-D integer arrays. Returns
    one ``int64`` 1-D array per query holding its distinct ids in ascending order.

    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(([1, 1, 1], [4, 2, 7], [0, 2, 2, 3]), shape=(3, 8))
    >>> [a.tolist() for a in as_truth_lists(m)]
    [[2, 4], [], [7]]
    >>> [a.tolist() for a in as_truth_lists([[5, 3, 5], []])]
    [[3, 5], []]
    """
    ts = _as_truth_sets(truth)
    return [a.copy() for a in np.split(ts.ids, ts.indptr[1:-1])] if ts.n_queries else []


def _as_ranking(ranking: ArrayLike) -> IntArray:
    r = np.asarray(ranking)
    if r.ndim != 2:
        raise ValueError(f"ranking must be 2-D [queries, recommendations], got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise TypeError(f"ranking must hold integer ids, got {r.dtype}")
    r = r.astype(np.int64, copy=False)
    if r.size and r.min() < PAD:
        raise ValueError(f"ranking ids must be >= 0, or {PAD} for padding")
    return r


def _as_k(k: int | None, n: int) -> int:
    if k is None:
        return n
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    return k


def _as_lookup(values: ArrayLike, name: str) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (indexed by track id), got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------
# Hit matrix
# --------------------------------------------------------------------------------------------


def _hits(r: IntArray, ts: _TruthSets) -> BoolArray:
    q, n = r.shape
    flat_hits = np.zeros(q * n, dtype=bool)
    if ts.ids.size == 0 or r.size == 0:
        return flat_hits.reshape(q, n)
    flat = r.reshape(-1)
    stride = max(int(flat.max()), int(ts.ids.max())) + 1
    # Ids held out by any query; the extra last slot is what padding (-1) looks up: False.
    present = np.zeros(stride + 1, dtype=bool)
    present[ts.ids] = True
    cand = np.flatnonzero(present[flat])
    cand_keys = (cand // n) * stride + flat[cand]
    truth_keys = ts.rows * stride + ts.ids  # ascending: rows ascending, ids sorted per row
    pos = np.searchsorted(truth_keys, cand_keys)
    np.minimum(pos, truth_keys.size - 1, out=pos)
    match = truth_keys[pos] == cand_keys
    cand, cand_keys = cand[match], cand_keys[match]
    # cand is in row-major (rank) order, so a stable sort puts each key's first occurrence first.
    order = np.argsort(cand_keys, kind="stable")
    sorted_keys = cand_keys[order]
    first = np.ones(order.size, dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    flat_hits[cand[order[first]]] = True
    return flat_hits.reshape(q, n)


def hit_matrix(ranking: ArrayLike, truth: Any) -> BoolArray:
    """Which recommendations are hits: ``bool [q, n]``.

    ``hits[i, j]`` is True iff ``ranking[i, j]`` is in query ``i``'s truth and is the first
    occurrence of that id in the row; padding (``-1``) never hits. ``ranking`` is int
    ``[q, n]``; ``truth`` is CSR or a sequence of ``q`` integer arrays (see the module doc).

    >>> hit_matrix([[3, 9, 3, -1], [1, 2, 5, 6]], [[3, 5], []]).astype(int)
    array([[1, 0, 0, 0],
           [0, 0, 0, 0]])
    """
    r = _as_ranking(ranking)
    return _hits(r, _as_truth_sets(truth, r.shape[0]))


def _prepare(
    ranking: ArrayLike, truth: Any, hits: ArrayLike | None
) -> tuple[IntArray, _TruthSets, BoolArray]:
    r = _as_ranking(ranking)
    ts = _as_truth_sets(truth, r.shape[0])
    if hits is None:
        h = _hits(r, ts)
    else:
        h = np.asarray(hits)
        if h.shape != r.shape or h.dtype != np.bool_:
            raise ValueError(
                f"hits must be a bool array of the ranking's shape {r.shape}, "
                f"got {h.dtype} {h.shape}"
            )
    return r, ts, h


def _ratio(num: ArrayLike, den: ArrayLike) -> FloatArray:
    """``num / den`` as float64, 0.0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _prefix_counts(h: BoolArray, width: IntArray) -> IntArray:
    """Per row, the number of True entries among the first ``width[i]`` columns."""
    q, n = h.shape
    if n == 0:
        return np.zeros(q, dtype=np.int64)
    csum = np.cumsum(h, axis=1, dtype=np.int32)
    w = np.minimum(width, n)
    got = csum[np.arange(q), np.maximum(w - 1, 0)].astype(np.int64)
    return np.where(w > 0, got, 0)


# --------------------------------------------------------------------------------------------
# RecSys Challenge 2018 metrics
# --------------------------------------------------------------------------------------------


def _r_precision(ts: _TruthSets, h: BoolArray) -> FloatArray:
    lengths = ts.lengths
    return _ratio(_prefix_counts(h, lengths), lengths)


def r_precision(ranking: ArrayLike, truth: Any, *, hits: ArrayLike | None = None) -> FloatArray:
    """R-precision (RecSys Challenge 2018, track level): ``|G ∩ R[:|G|]| / |G|``.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``.
    Only the first ``|G|`` ranks are looked at (all ``n`` when ``|G| > n``, the denominator
    staying ``|G|``). **Empty truth gives 0.0** (not NaN, so averages stay defined).

    >>> r_precision([[7, 1, 2, 3], [4, 5, 6, 8], [1, 2, 3, 4]], [[1, 3], [9], []])
    array([0.5, 0. , 0. ])
    """
    _, ts, h = _prepare(ranking, truth, hits)
    return _r_precision(ts, h)


def _r_precision_artist(
    r: IntArray, ts: _TruthSets, h: BoolArray, track_artist: NDArray[Any]
) -> FloatArray:
    q, n = r.shape
    lengths = ts.lengths
    tracks = _prefix_counts(h, lengths).astype(np.float64)
    width = int(min(lengths.max(initial=0), n))
    if width == 0:
        return _ratio(tracks, lengths)
    rw, hw = r[:, :width], h[:, :width]
    window = np.arange(width) < lengths[:, None]
    valid = window & (rw >= 0)
    rw_artist = track_artist[np.where(valid, rw, 0)].astype(np.int64)
    truth_artist = track_artist[ts.ids].astype(np.int64)
    lo = min(int(rw_artist.min()), int(truth_artist.min(initial=0)))
    hi = max(int(rw_artist.max()), int(truth_artist.max(initial=0)))
    stride = hi - lo + 1
    row_keys = np.arange(q, dtype=np.int64)[:, None] * stride + (rw_artist - lo)
    g_keys = sorted_unique(ts.rows * stride + (truth_artist - lo))  # artists of G
    exact_keys = sorted_unique(row_keys[valid & hw])  # artists credited via exact matches
    cand = sorted_unique(row_keys[valid & ~hw])  # artists of the other recommendations
    cand = cand[np.isin(cand, g_keys, assume_unique=True)]
    cand = cand[~np.isin(cand, exact_keys, assume_unique=True)]
    artists = np.bincount(cand // stride, minlength=q)
    return _ratio(tracks + ARTIST_CREDIT * artists, lengths)


def r_precision_artist(
    ranking: ArrayLike,
    truth: Any,
    track_artist: ArrayLike,
    *,
    hits: ArrayLike | None = None,
) -> FloatArray:
    """R-precision with the challenge's artist partial credit.

    ``ranking`` int ``[q, n]``; ``truth`` CSR or ``q`` int arrays; ``track_artist`` int
    ``[n_tracks]`` maps a track id to its artist id. Returns float64 ``[q]``.

    With ``W = R[:|G|]`` (padding and repeated ids included in the ``|G|`` positions)::

        T = { t in W : t in G }                         exact matches (distinct tracks)
        A = { artist(r) : r in W, r != -1, r not an exact match }
              ∩ { artist(g) : g in G }
              \\ { artist(t) : t in T }
        score = (|T| + 0.25 * |A|) / |G|

    Each artist of ``G`` earns the 0.25 at most once, and never when one of its tracks already
    earned a full point in the window (so the score never exceeds 1). **Empty truth gives 0.0.**

    >>> track_artist = [0, 0, 1, 1, 2, 3]
    >>> # G = {0, 2, 4}: track 0 matches exactly (artist 0 is then used up); track 3 is not in G
    >>> # but its artist 1 is (via track 2): +0.25; track 1 (artist 0) earns nothing.
    >>> r_precision_artist([[0, 3, 1, 2]], [[0, 2, 4]], track_artist)
    array([0.41666667])
    """
    r, ts, h = _prepare(ranking, truth, hits)
    return _r_precision_artist(r, ts, h, _as_lookup(track_artist, "track_artist"))


def _rules_discount(n: int) -> FloatArray:
    """Challenge discounts for ranks ``1..n``: ``1`` at rank 1, ``1/log2(i)`` after."""
    d = np.ones(n, dtype=np.float64)
    if n > 1:
        d[1:] = 1.0 / np.log2(np.arange(2, n + 1, dtype=np.float64))
    return d


def _dcg(h: BoolArray, discount: FloatArray) -> FloatArray:
    if h.shape[1] == 0:
        return np.zeros(h.shape[0], dtype=np.float64)
    # A row-wise sum, not a matrix-vector product: BLAS blocks a product by the matrix's shape,
    # so a query's value would change in the last bit with the batch it is scored in (the Spark
    # engine scores the queries in parts and must give the local figures exactly).
    return np.where(h, discount[: h.shape[1]], 0.0).sum(axis=1)


def _ndcg_rules(h: BoolArray) -> FloatArray:
    d = _rules_discount(h.shape[1])
    ideal = np.concatenate(([0.0], np.cumsum(d)))
    return _ratio(_dcg(h, d), ideal[h.sum(axis=1)])


def _ndcg_common(ts: _TruthSets, h: BoolArray) -> FloatArray:
    d = _rules_discount(h.shape[1])
    ideal = np.concatenate(([0.0], np.cumsum(d)))
    return _ratio(_dcg(h, d), ideal[np.minimum(ts.lengths, h.shape[1])])


def ndcg_rules(ranking: ArrayLike, truth: Any, *, hits: ArrayLike | None = None) -> FloatArray:
    """NDCG exactly as the RecSys Challenge 2018 rules text defines it ("rules" variant).

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``::

        DCG  = rel_1 + sum_{i=2..n} rel_i / log2(i)
        IDCG = 1 + sum_{i=2..|G ∩ R|} 1 / log2(i)      (0 when G ∩ R is empty)
        NDCG = DCG / IDCG                               (0.0 when IDCG = 0)

    The ideal DCG runs over the number of relevant tracks *actually retrieved*, so a ranking
    that retrieves one relevant track at rank 1 scores 1.0 however large ``G`` is. Compare
    :func:`ndcg_common`. Empty truth or no hit gives 0.0.

    >>> ndcg_rules([[5, 1, 6, 2], [1, 2, 3, 4]], [[1, 2, 9], [7]])  # (1 + 1/2) / (1 + 1)
    array([0.75, 0.  ])
    """
    _, _, h = _prepare(ranking, truth, hits)
    return _ndcg_rules(h)


def ndcg_common(ranking: ArrayLike, truth: Any, *, hits: ArrayLike | None = None) -> FloatArray:
    """NDCG, common variant: the rules' DCG over the ideal of ``min(|G|, n)`` relevant tracks.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``::

        DCG  = rel_1 + sum_{i=2..n} rel_i / log2(i)     (same as ndcg_rules)
        IDCG = 1 + sum_{i=2..min(|G|, n)} 1 / log2(i)   (n = ranking length, 500 in the challenge)

    This is what most challenge write-ups and evaluation scripts compute; unlike
    :func:`ndcg_rules` it penalizes relevant tracks that were not retrieved at all. Empty truth
    gives 0.0.

    >>> ndcg_common([[5, 1, 6, 2], [1, 2, 3, 4]], [[1, 2, 9], [7]])  # 1.5 / (1 + 1 + 1/log2(3))
    array([0.57014065, 0.        ])
    """
    _, ts, h = _prepare(ranking, truth, hits)
    return _ndcg_common(ts, h)


def _clicks(h: BoolArray, no_hit_value: int | None) -> FloatArray:
    q, n = h.shape
    if no_hit_value is None:
        no_hit_value = -(-n // 10) + 1
    if n == 0:
        return np.full(q, float(no_hit_value))
    first = h.argmax(axis=1)
    return np.where(h.any(axis=1), first // 10, no_hit_value).astype(np.float64)


def clicks(
    ranking: ArrayLike,
    truth: Any,
    *,
    hits: ArrayLike | None = None,
    no_hit_value: int | None = None,
) -> FloatArray:
    """Recommended Songs clicks (RecSys Challenge 2018): refreshes of 10 before a hit.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``
    (lower is better): ``floor((rank of the first relevant track - 1) / 10)``. When no
    recommendation is relevant (including empty truth) the value is ``no_hit_value``, by
    default ``ceil(n / 10) + 1``: **51 for the challenge's n = 500**, as in the rules; pass
    ``no_hit_value=51`` to keep the challenge's value for shorter rankings.

    >>> hits_at = [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # rank 1
    ...            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],   # rank 10
    ...            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],   # rank 11
    ...            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]   # none: ceil(12 / 10) + 1
    >>> ranking = [[100 + 10 * i + j for j in range(12)] for i in range(4)]
    >>> truth = [[r for r, x in zip(row, hr) if x] for row, hr in zip(ranking, hits_at)]
    >>> clicks(ranking, truth)
    array([0., 0., 1., 3.])
    """
    _, _, h = _prepare(ranking, truth, hits)
    return _clicks(h, no_hit_value)


def challenge_metrics(
    ranking: ArrayLike, truth: Any, track_artist: ArrayLike | None = None
) -> dict[str, FloatArray]:
    """All RecSys Challenge 2018 metrics per query, sharing one hit matrix.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays, ``track_artist`` optional int
    ``[n_tracks]``. Returns float64 ``[q]`` arrays under ``"r_precision"``, ``"ndcg"`` (the
    rules variant, :func:`ndcg_rules`), ``"ndcg_common"``, ``"clicks"`` and, when
    ``track_artist`` is given, ``"r_precision_artist"``.

    >>> # Every track by artist 0: query 2 misses track 6 in its window of 1 but earns the
    >>> # artist credit through track 1; query 1's artist is used up by its exact match.
    >>> m = challenge_metrics([[4, 2, 8], [1, 5, 6]], [[2, 3], [6]], track_artist=[0] * 10)
    >>> for name, values in m.items():
    ...     print(f"{name:<18}", values.round(3).tolist())
    r_precision        [0.5, 0.0]
    ndcg               [1.0, 0.631]
    ndcg_common        [0.5, 0.631]
    clicks             [0.0, 0.0]
    r_precision_artist [0.5, 0.25]
    """
    r, ts, h = _prepare(ranking, truth, None)
    out = {
        "r_precision": _r_precision(ts, h),
        "ndcg": _ndcg_rules(h),
        "ndcg_common": _ndcg_common(ts, h),
        "clicks": _clicks(h, None),
    }
    if track_artist is not None:
        out["r_precision_artist"] = _r_precision_artist(
            r, ts, h, _as_lookup(track_artist, "track_artist")
        )
    return out


# --------------------------------------------------------------------------------------------
# Top-k accuracy metrics
# --------------------------------------------------------------------------------------------


def precision_at_k(
    ranking: ArrayLike, truth: Any, k: int, *, hits: ArrayLike | None = None
) -> FloatArray:
    """Precision@k: hits among the first ``k`` ranks divided by ``k``.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``.
    Padding, repeated ids and ranks past ``n`` (when ``k > n``) count as misses; the
    denominator is always ``k``.

    >>> precision_at_k([[3, 1, 3, -1], [1, 2, 3, 4]], [[3, 4], []], 4)
    array([0.25, 0.  ])
    """
    _, _, h = _prepare(ranking, truth, hits)
    k = _as_k(k, h.shape[1])
    return h[:, :k].sum(axis=1) / float(k)


def recall_at_k(
    ranking: ArrayLike, truth: Any, k: int, *, hits: ArrayLike | None = None
) -> FloatArray:
    """Recall@k: distinct relevant tracks among the first ``k`` ranks divided by ``|G|``.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``.
    **Empty truth gives 0.0.**

    >>> recall_at_k([[3, 1, 4, 5], [1, 2, 3, 4]], [[3, 4, 9, 8], []], 2)
    array([0.25, 0.  ])
    """
    _, ts, h = _prepare(ranking, truth, hits)
    k = _as_k(k, h.shape[1])
    return _ratio(h[:, :k].sum(axis=1), ts.lengths)


def ndcg_at_k(
    ranking: ArrayLike, truth: Any, k: int, *, hits: ArrayLike | None = None
) -> FloatArray:
    """Standard binary-relevance NDCG@k (not the challenge's formula).

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``::

        DCG@k  = sum_{i=1..k} rel_i / log2(i + 1)
        IDCG@k = sum_{i=1..min(|G|, k)} 1 / log2(i + 1)

    Ranks past ``n`` (when ``k > n``) are misses. Empty truth gives 0.0.

    >>> ndcg_at_k([[5, 1, 2, 7]], [[1, 2]], 3)  # (1/log2(3) + 1/2) / (1 + 1/log2(3))
    array([0.6934264])
    """
    _, ts, h = _prepare(ranking, truth, hits)
    k = _as_k(k, h.shape[1])
    d = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    ideal = np.concatenate(([0.0], np.cumsum(d)))
    return _ratio(_dcg(h[:, :k], d), ideal[np.minimum(ts.lengths, k)])


def hit_rate_at_k(
    ranking: ArrayLike, truth: Any, k: int, *, hits: ArrayLike | None = None
) -> FloatArray:
    """HitRate@k: 1.0 if any of the first ``k`` ranks is relevant, else 0.0.

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``.

    >>> hit_rate_at_k([[5, 1, 2], [5, 6, 7]], [[2], [1]], 3)
    array([1., 0.])
    """
    _, _, h = _prepare(ranking, truth, hits)
    k = _as_k(k, h.shape[1])
    return h[:, :k].any(axis=1).astype(np.float64)


def mrr(
    ranking: ArrayLike, truth: Any, k: int | None = None, *, hits: ArrayLike | None = None
) -> FloatArray:
    """Reciprocal rank of the first relevant recommendation (within the first ``k`` if given).

    ``ranking`` int ``[q, n]``, ``truth`` CSR or ``q`` int arrays; returns float64 ``[q]``;
    0.0 when no relevant track is ranked (empty truth included). Average it for MRR.

    >>> mrr([[5, 1, 2], [5, 6, 7], [7, 8, 9]], [[2, 1], [1], [9]], k=2)
    array([0.5, 0. , 0. ])
    """
    _, _, h = _prepare(ranking, truth, hits)
    hk = h[:, : _as_k(k, h.shape[1])]
    if hk.shape[1] == 0:
        return np.zeros(hk.shape[0], dtype=np.float64)
    return np.where(hk.any(axis=1), 1.0 / (hk.argmax(axis=1) + 1.0), 0.0)


# --------------------------------------------------------------------------------------------
# Beyond accuracy
# --------------------------------------------------------------------------------------------


def _topk_items(ranking: ArrayLike, k: int | None) -> tuple[IntArray, BoolArray]:
    """The top-k of each row, **sorted by id**, and a mask of its distinct non-padding ids.

    Only for the beyond-accuracy metrics, which do not depend on the order within a row:
    ``ids[mask]`` holds each recommended track of a row once.
    """
    r = _as_ranking(ranking)
    ids = np.sort(r[:, : _as_k(k, r.shape[1])], axis=1)
    q, n = ids.shape
    distinct = np.empty((q, n), dtype=bool)
    if n:
        distinct[:, 0] = True
        np.not_equal(ids[:, 1:], ids[:, :-1], out=distinct[:, 1:])
        distinct &= ids >= 0
    return ids, distinct


def _masked_mean(values: FloatArray, mask: BoolArray) -> FloatArray:
    return _ratio(np.where(mask, values, 0.0).sum(axis=1), mask.sum(axis=1))


def catalog_coverage(ranking: ArrayLike, n_items: int, k: int | None = None) -> float:
    """Catalog coverage (a scalar over the whole batch, not per query).

    Distinct track ids recommended in the first ``k`` ranks of any row (padding ignored)
    divided by ``n_items``; ``ranking`` is int ``[q, n]`` with ids below ``n_items``.

    >>> catalog_coverage([[0, 1, 2], [2, 3, -1]], n_items=10)
    0.4
    >>> catalog_coverage([[0, 1, 2], [2, 3, -1]], n_items=10, k=1)
    0.2
    """
    r = _as_ranking(ranking)
    r = r[:, : _as_k(k, r.shape[1])]
    n_items = operator.index(n_items)
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    ids = r[r >= 0]
    if ids.size and ids.max() >= n_items:
        raise ValueError(f"ranking holds id {int(ids.max())}, not below n_items={n_items}")
    seen = np.zeros(n_items, dtype=bool)
    seen[ids] = True
    return int(seen.sum()) / n_items


def artist_diversity(
    ranking: ArrayLike, track_artist: ArrayLike, k: int | None = None
) -> FloatArray:
    """Intra-list artist diversity per query: distinct artists / distinct tracks in the top k.

    ``ranking`` int ``[q, n]``, ``track_artist`` int ``[n_tracks]`` (track id -> artist id);
    returns float64 ``[q]`` in ``(0, 1]``, 1.0 when every recommended track is by a different
    artist. Padding and repeated track ids are not counted (neither in the numerator nor in
    the denominator); a row without any recommendation gives 0.0.

    >>> artist_diversity([[0, 1, 2, 2, -1], [-1, -1, -1, -1, -1]], [7, 7, 8])
    array([0.66666667, 0.        ])
    """
    r, m = _topk_items(ranking, k)
    ta = _as_lookup(track_artist, "track_artist")
    if r.shape[1] == 0:
        return np.zeros(r.shape[0], dtype=np.float64)
    big = np.iinfo(np.int64).max
    a = np.where(m, ta[np.where(m, r, 0)].astype(np.int64), big)
    a.sort(axis=1)
    distinct = (a[:, 0] != big).astype(np.int64)
    distinct += ((a[:, 1:] != a[:, :-1]) & (a[:, 1:] != big)).sum(axis=1)
    return _ratio(distinct, m.sum(axis=1))


def novelty(
    ranking: ArrayLike,
    item_popularity: ArrayLike,
    n_playlists: int,
    k: int | None = None,
) -> FloatArray:
    """Novelty per query: mean self-information of the recommended tracks.

    ``ranking`` int ``[q, n]``; ``item_popularity`` ``[n_tracks]`` counts (e.g. playlists
    containing each track in the training data); ``n_playlists`` the number of playlists those
    counts come from. Returns float64 ``[q]``: the mean over the distinct, non-padding tracks
    of the top ``k`` of ``-log2(max(pop_i, 1) / n_playlists)`` -- a zero popularity is smoothed
    to 1 so unseen tracks get the finite maximum ``log2(n_playlists)``. A row without any
    recommendation gives 0.0.

    >>> novelty([[0, 1, 2, -1]], [8, 2, 0], n_playlists=8)  # (0 + 2 + 3) / 3
    array([1.66666667])
    """
    r, m = _topk_items(ranking, k)
    if n_playlists <= 0:
        raise ValueError(f"n_playlists must be positive, got {n_playlists}")
    pop = _as_lookup(item_popularity, "item_popularity").astype(np.float64)
    info = -np.log2(np.maximum(pop, 1.0) / float(n_playlists))
    return _masked_mean(info[np.where(m, r, 0)], m)


def popularity_bias(
    ranking: ArrayLike, item_popularity: ArrayLike, k: int | None = None
) -> FloatArray:
    """Average recommendation popularity (ARP) per query.

    ``ranking`` int ``[q, n]``, ``item_popularity`` ``[n_tracks]`` counts; returns float64
    ``[q]``: the mean popularity of the distinct, non-padding tracks in the top ``k``; a row
    without any recommendation gives 0.0.

    >>> popularity_bias([[0, 1, 1, -1], [2, 2, 2, 2]], [10, 4, 0])
    array([7., 0.])
    """
    r, m = _topk_items(ranking, k)
    pop = _as_lookup(item_popularity, "item_popularity").astype(np.float64)
    return _masked_mean(pop[np.where(m, r, 0)], m)


def head_mask(item_popularity: ArrayLike, head_share: float = 0.8) -> BoolArray:
    """The short head: ``bool [n_tracks]``, True for the most popular tracks.

    Sort tracks by popularity, most popular first, and walk down until the cumulative count
    reaches ``head_share`` of all interactions; the popularity ``p*`` of the track reached is
    the threshold and the head is every track with ``pop >= p*`` (so ties at the boundary are
    all head, and the head may cover a little more than ``head_share``). Tracks with zero
    popularity are never head; with no interactions at all the head is empty. ``head_share``
    is in ``(0, 1]``; the default 0.8 is the usual "head = the tracks carrying 80% of the
    interactions, long tail = the rest".

    >>> head_mask([50, 30, 10, 10, 0], head_share=0.8).tolist()   # 50 + 30 = 80 of 100
    [True, True, False, False, False]
    >>> head_mask([50, 25, 10, 10, 5], head_share=0.8).tolist()   # reaches 80 at the 10s
    [True, True, True, True, False]
    """
    pop = _as_lookup(item_popularity, "item_popularity").astype(np.float64)
    if not 0.0 < head_share <= 1.0:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    if pop.size and pop.min() < 0:
        raise ValueError("item_popularity must be non-negative")
    total = pop.sum()
    if total <= 0:
        return np.zeros(pop.size, dtype=bool)
    s = np.sort(pop)[::-1]
    cut = int(np.searchsorted(np.cumsum(s), head_share * total, side="left"))
    threshold = s[min(cut, s.size - 1)]
    return (pop >= threshold) & (pop > 0)


def long_tail_share(
    ranking: ArrayLike,
    item_popularity: ArrayLike,
    head_share: float = 0.8,
    k: int | None = None,
) -> FloatArray:
    """Long-tail share per query: fraction of recommended tracks outside the short head.

    ``ranking`` int ``[q, n]``, ``item_popularity`` ``[n_tracks]`` counts; returns float64
    ``[q]``: among the distinct, non-padding tracks of the top ``k``, the fraction not in
    :func:`head_mask` ``(item_popularity, head_share)``; a row without any recommendation
    gives 0.0.

    >>> long_tail_share([[0, 2, 3, 3, -1], [1, 0, -1, -1, -1]], [50, 30, 10, 10, 0])
    array([0.66666667, 0.        ])
    """
    r, m = _topk_items(ranking, k)
    tail = ~head_mask(item_popularity, head_share)
    return _masked_mean(tail[np.where(m, r, 0)].astype(np.float64), m)
