"""Vectorised building blocks the models share: seed matrices and best-n selection, including
:func:`top_k_factors`, the best-n scan over item vectors of every model that scores by a dot
product (the factor models, embed, the sequence and graph models); how it works is told in
:mod:`segue.models.factor`'s docstring.

Everything here works on whole batches at once (no Python loop over queries or tracks) and breaks
score ties by the lower track id, so rankings are the same on every machine and batch size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from segue.errors import SegueError
from segue.models.base import Queries


def seed_matrix(queries: Queries, n_tracks: int, dtype=np.float32) -> sp.csr_matrix:
    """Queries as a CSR matrix [q, n_tracks] of ``dtype`` with 1.0 per seed track.

    A track repeated in a query counts once; rows without seeds are empty.

    >>> seed_matrix(Queries.from_lists([[2, 0, 2], []]), 4).toarray().tolist()
    [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """
    matrix = sp.csr_matrix(
        (
            np.ones(len(queries.seed_ids), dtype=dtype),
            queries.seed_ids.astype(np.int32),
            queries.indptr.astype(np.int64),
        ),
        shape=(len(queries), n_tracks),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def dense_columns(matrix: sp.csr_matrix, columns) -> np.ndarray:
    """``matrix[:, columns].toarray()`` (float64 [rows, len(columns)]) in O(stored entries).

    scipy's column indexing allocates per call an array as wide as the matrix (2.3M tracks at
    MPD scale: milliseconds); explanations pick a few hundred columns of a few rows.

    >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]))
    >>> dense_columns(m, [2, 0, 2]).tolist()
    [[1.0, 0.0, 1.0], [0.0, 3.0, 0.0]]
    """
    matrix = sp.csr_matrix(matrix)
    columns = np.asarray(columns, dtype=np.int64)
    out = np.zeros((matrix.shape[0], len(columns)), dtype=np.float64)
    if not len(columns) or not matrix.nnz:
        return out
    order = np.argsort(columns, kind="stable")
    wanted = columns[order]
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    lo = np.searchsorted(wanted, matrix.indices, side="left")
    hi = np.searchsorted(wanted, matrix.indices, side="right")
    hit = hi > lo
    # A column asked for twice gets the value twice: expand each hit over its run of equal columns.
    counts = (hi - lo)[hit]
    entry_rows = np.repeat(rows[hit], counts)
    values = np.repeat(matrix.data[hit], counts)
    starts = np.repeat(lo[hit], counts)
    offsets = np.arange(len(starts)) - np.repeat(np.cumsum(counts) - counts, counts)
    out[entry_rows, order[starts + offsets]] = values
    return out


def top_n_sparse(matrix: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest stored entries of each CSR row, best first.

    Returns ``ids`` int64 [rows, n] (column indices, -1 where a row has fewer than ``n``
    positive entries) and ``scores`` float32 [rows, n] (0 in padding). Entries ≤ 0 are not
    candidates. Ties go to the lower column index.

    >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 1.0, 2.0], [0, 0, 0, 0], [3, 0, 0, 0]]))
    >>> ids, scores = top_n_sparse(m, 2)
    >>> ids.tolist(), scores.tolist()
    ([[1, 3], [-1, -1], [0, -1]], [[2.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    """
    matrix = sp.csr_matrix(matrix)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keep = matrix.data > 0
    rows, cols, vals = rows[keep], matrix.indices[keep].astype(np.int64), matrix.data[keep]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(matrix.shape[0]))
    rank = np.arange(len(rows)) - starts[rows]
    take = rank < n
    ids = np.full((matrix.shape[0], n), -1, dtype=np.int64)
    scores = np.zeros((matrix.shape[0], n), dtype=np.float32)
    ids[rows[take], rank[take]] = cols[take]
    scores[rows[take], rank[take]] = vals[take]
    return ids, scores


def top_n_dense(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest entries of each row of a dense [rows, cols] array, best first.

    ``-inf`` entries are never picked (-1 in ``ids`` instead). Ties go to the lower column.

    >>> ids, best = top_n_dense(np.array([[0.5, 2.0, -np.inf, 2.0]]), 3)
    >>> ids.tolist(), best.tolist()
    ([[1, 3, 0]], [[2.0, 2.0, 0.5]])
    """
    rows, cols = scores.shape
    n_take = min(n, cols)
    part = (
        np.argpartition(-scores, n_take - 1, axis=1)[:, :n_take]
        if n_take < cols
        else np.broadcast_to(np.arange(cols), (rows, cols)).copy()
    )
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1) if rows else part
    part = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    # argpartition may cut a run of equal scores arbitrarily; the lexsort then orders what was
    # kept. Exact ties at the boundary are rare with float scores and only swap equal scores.
    ids = np.where(np.isfinite(values), part, -1).astype(np.int64)
    out_scores = np.where(np.isfinite(values), values, 0).astype(np.float32)
    if n_take < n:
        ids = np.pad(ids, ((0, 0), (0, n - n_take)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, n - n_take)))
    return ids, out_scores


# Scoring (see top_k_factors): queries per block (one thread each), items per product chunk
# (float32 [block, chunk] = 8 MiB stays in cache), every how many items the threshold sample
# takes one, and extra candidates kept for the exact re-scoring.
_BLOCK = 128
_CHUNK = 16_384
_SAMPLE_STRIDE = 64
_MARGIN = 16
# The norm-ordered head holds the 1/_HEAD_SHARE of the items with the longest vectors (at 1M
# playlists a block's rows need 3–4% of the SVD's and ALS's items at the median, 11% at most
# before the scan tightens their thresholds; rows needing more are scanned in full). A float32
# product exceeds |u||y| by at most about f·2⁻²⁴ relatively; _BOUND_SLACK is far above that.
_HEAD_SHARE = 4
_BOUND_SLACK = 1e-3
# Queries per chunk of the re-scoring (float64 [chunk, k + margin, f] at a time).
_RESCORE_CHUNK = 64


def cpu_threads(num_threads: int) -> int:
    """``num_threads`` as a positive count: 0 means every core this process may use."""
    if num_threads < 0:
        raise SegueError(f"num_threads must be ≥ 0 (0 = all cores), got {num_threads}")
    return num_threads or len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class NormHead:
    """The items with the longest factor vectors, longest first, for a scan that stops early.

    ``ids`` int64 [h]: item ids by decreasing Euclidean norm (equal norms: lower id first);
    ``items`` float32 [h, f]: their vectors; ``norms`` float64 [h + 1]: their norms, then the
    longest norm of an item outside the head (0 when there is none); ``position`` int32 [n]:
    each item's place in ``ids``, ``h`` for items outside the head.
    """

    ids: np.ndarray
    items: np.ndarray
    norms: np.ndarray
    position: np.ndarray

    @classmethod
    def build(cls, items: np.ndarray, share: int = _HEAD_SHARE) -> NormHead:
        """The head of ``items`` (float32 [n, f]): its ``ceil(n / share)`` longest vectors."""
        items = np.ascontiguousarray(items, dtype=np.float32)
        n = len(items)
        norms = np.empty(n, dtype=np.float64)
        for start in range(0, n, 65_536):  # float64 squares a chunk at a time
            chunk = items[start : start + 65_536].astype(np.float64)
            norms[start : start + len(chunk)] = np.sqrt((chunk * chunk).sum(axis=1))
        order = np.argsort(-norms, kind="stable")
        h = min(n, -(-n // share))
        position = np.full(n, h, dtype=np.int32)
        position[order[:h]] = np.arange(h, dtype=np.int32)
        rest = norms[order[h]] if h < n else 0.0
        return cls(
            order[:h].astype(np.int64),
            items[order[:h]],
            np.append(norms[order[:h]], rest),
            position,
        )


def top_k_factors(
    items: np.ndarray,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    num_threads: int = 0,
    head: NormHead | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items per row of ``users`` by inner product, best first.

    ``items`` float32 [n_items, f]; ``users`` float [q, f] (float64 keeps its precision in the
    final scores); ``exclude`` an optional CSR [q, n_items] whose stored columns are never
    returned for that row; ``num_threads`` 0 = all cores. Returns ``ids`` int64 [q, k] (-1
    where fewer than ``k`` items are left) and ``scores`` float32 [q, k] (0 there). Ties go to
    the lower item id.

    How, and why not simply ``users @ items.T``: at 2.26M tracks that product is a 9 GB float32
    array per 1,000 queries, and even in blocks of 100 queries (implicit's ``topk``) writing
    and re-reading it from memory costs four times the arithmetic. Here each block of
    :data:`_BLOCK` queries (one per thread) first scores every :data:`_SAMPLE_STRIDE`-th item;
    the score that about 3(k + 16) items would beat over the whole catalog becomes a
    per-query threshold. Then the items are scored in cache-sized chunks and only entries at or
    above the threshold are kept (a few thousand per query). A query left with too few
    (a sample that ran too hot) is scored in full. The ``k + 16`` best candidates are finally
    re-scored in float64 by numpy reductions whose order depends on ``f`` alone: OpenBLAS
    rounds a row of a float32 product differently by its place in the block, and this keeps a
    query's ranking and scores the same alone and in any batch.

    With ``head`` (:meth:`NormHead.build` of ``items``), the rows of a block whose thresholds
    put every item outside the head out of reach (``|y| |u| (1 + slack) < threshold``) scan the
    head only, longest vectors first, and stop at the first chunk that none of them can use.
    """
    from concurrent.futures import ThreadPoolExecutor

    items = np.ascontiguousarray(items, dtype=np.float32)
    exact = np.asarray(users, dtype=np.float64)
    q, n = exact.shape[0], items.shape[0]
    k = min(k, n)
    if q == 0 or k == 0:
        return np.full((q, k), -1, dtype=np.int64), np.zeros((q, k), dtype=np.float32)
    wide = min(k + _MARGIN, n)
    approx = exact.astype(np.float32)
    exclude = (
        sp.csr_matrix((q, n), dtype=np.float32)
        if exclude is None
        else sp.csr_matrix(exclude, copy=True)
    )
    exclude.sum_duplicates()  # an item listed twice must not count twice against what is left
    blocks = [slice(s, min(s + _BLOCK, q)) for s in range(0, q, _BLOCK)]

    def block(rows: slice) -> np.ndarray:
        ids = np.full((rows.stop - rows.start, wide), -1, dtype=np.int64)
        live = np.flatnonzero(approx[rows].any(axis=1))  # a zero query has nothing to rank
        if len(live):
            ids[live] = _candidate_block(items, approx[rows][live], exclude[rows][live], wide, head)
        return ids

    threads = min(cpu_threads(num_threads), len(blocks))
    # BLAS on one thread: the parallelism is over query blocks (numpy releases the GIL).
    with threadpool_limits(1, "blas"):
        if threads == 1:
            ids = np.vstack([block(rows) for rows in blocks])
        else:
            with ThreadPoolExecutor(threads) as pool:
                ids = np.vstack(list(pool.map(block, blocks)))
    rescored = np.zeros(ids.shape, dtype=np.float32)
    for start in range(0, q, _RESCORE_CHUNK):
        rows = slice(start, min(start + _RESCORE_CHUNK, q))
        gathered = items[np.maximum(ids[rows], 0)].astype(np.float64)  # [r, wide, f]
        rescored[rows] = (gathered * exact[rows, None, :]).sum(axis=2)  # pairwise over f
    rescored[ids < 0] = 0
    order = np.lexsort(
        (np.where(ids < 0, np.iinfo(np.int64).max, ids), -rescored, ids < 0), axis=1
    )[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(rescored, order, axis=1)


def _candidate_block(
    items: np.ndarray,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    wide: int,
    head: NormHead | None = None,
) -> np.ndarray:
    """int64 [b, wide]: for float32 ``users`` [b, f], the ``wide`` best non-excluded items by the
    float32 product, best first, -1 padded (see :func:`top_k_factors`)."""
    b, n = len(users), len(items)
    excluded = (
        np.repeat(np.arange(b, dtype=np.int64), np.diff(exclude.indptr)) * n + exclude.indices
    )
    lowest = np.finfo(np.float32).min  # above the -inf that marks excluded entries
    threshold = np.full((b, 1), lowest, dtype=np.float32)
    sample = items[::_SAMPLE_STRIDE]
    rank = 3 * wide * len(sample) // n  # expect ~3·wide items at or above the threshold
    sampled = 1 <= rank < len(sample) // 2
    if sampled:
        scores = users @ sample.T  # [b, n / stride]
        threshold[:, 0] = -np.partition(-scores, rank - 1, axis=1)[:, rank - 1]
    # Rows whose threshold puts every item outside the head out of reach scan the head alone.
    fits = np.zeros(b, dtype=bool)
    if sampled and head is not None:
        lengths = np.sqrt((users.astype(np.float64) ** 2).sum(axis=1))
        fits = head.norms[-1] < _cutoff(threshold, lengths)
    if fits.all():
        rows, cols = _scan_head(head, users, threshold, excluded, n, wide, lengths)
    elif not fits.any():
        rows, cols = _scan(items, users, threshold, excluded, wide)
    else:
        inside, outside = np.flatnonzero(fits), np.flatnonzero(~fits)
        r1, c1 = _scan_head(
            head,
            users[inside],
            threshold[inside],
            _rows_of(excluded, n, inside),
            n,
            wide,
            lengths[inside],
        )
        r2, c2 = _scan(
            items, users[outside], threshold[outside], _rows_of(excluded, n, outside), wide
        )
        rows, cols = np.concatenate((inside[r1], outside[r2])), np.concatenate((c1, c2))
    # A sample that ran hot leaves a row short of ``wide`` while more items remain: rescan it.
    available = np.minimum(wide, n - np.diff(exclude.indptr))
    short = np.flatnonzero(np.bincount(rows, minlength=b) < available) if sampled else []
    if len(short):
        again = _rows_of(excluded, n, short)
        r2, c2 = _scan(
            items, users[short], np.full((len(short), 1), lowest, dtype=np.float32), again, wide
        )
        keep = ~np.isin(rows, short)
        rows, cols = np.concatenate((rows[keep], short[r2])), np.concatenate((cols[keep], c2))
    order = np.lexsort((np.arange(len(rows)), rows))  # rows grouped, each row's order kept
    rows, cols = rows[order], cols[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    ids = np.full((b, wide), -1, dtype=np.int64)
    ids[rows, position] = cols
    return ids


def _rows_of(excluded: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """Keys ``row·n + col`` of ``excluded`` that fall in ``rows`` (sorted int [r]), renumbered
    for a block made of those rows alone."""
    mine = np.isin(excluded // n, rows)
    return np.searchsorted(rows, excluded[mine] // n) * n + excluded[mine] % n


def _scan_head(
    head: NormHead,
    users: np.ndarray,
    threshold: np.ndarray,
    excluded: np.ndarray,
    n: int,
    wide: int,
    lengths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_scan` over ``head``'s items only (longest first), for rows whose thresholds put
    every item outside it out of reach; ``excluded`` keyed ``row·n + item id``."""
    h = len(head.ids)
    place = head.position[excluded % n].astype(np.int64)
    inside = place < h
    return _scan(
        head.items,
        users,
        threshold,
        (excluded[inside] // n) * h + place[inside],
        wide,
        labels=head.ids,
        norms=head.norms[:-1],
        lengths=lengths,
    )


def _cutoff(threshold: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """float64 [b]: the norm an item needs to possibly score ``threshold`` (float32 [b, 1])
    against users of norm ``lengths`` (float64 [b]) — its float32 product is at most
    ``|y| |u| (1 + slack)``. A threshold ≤ 0 puts no item out of reach."""
    return threshold[:, 0].astype(np.float64) / (lengths * (1 + _BOUND_SLACK))


def _scan(
    items: np.ndarray,
    users: np.ndarray,
    threshold: np.ndarray,
    excluded: np.ndarray,
    wide: int,
    labels: np.ndarray | None = None,
    norms: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``wide`` best entries per row of ``users @ items.T`` (float32) among those at or above
    ``threshold`` (float32 [b, 1], updated in place) and not in ``excluded`` (keys row·n + col):
    (rows, cols) int64, each row best first (ties: lower col).

    Items are scored :data:`_CHUNK` at a time. Whenever more than ``4·wide`` entries per row
    have piled up, each full row keeps only its ``wide`` best and its threshold rises to just
    above the last of them (a later item with an equal score has a higher id and loses the tie),
    so memory stays bounded even when many items tie (say, all the zero-factor ones).

    ``labels`` (int64 [n]): the item ids of the rows of ``items`` when they are not ``0..n-1``
    (a :class:`NormHead`); ``cols`` are then labels and ``excluded`` is keyed by row of
    ``items``. Items are then not in id order, so the threshold rises only to the last kept
    score (an equal score may still win its tie). ``norms`` (float64 [n], decreasing) and
    ``lengths`` (float64 [b], the users' norms): the scan stops at the first chunk whose
    longest vector cannot reach any row's threshold.
    """
    b, n = len(users), len(items)
    width = min(_CHUNK, n)
    out = np.empty(b * width, dtype=np.float32)
    mask = np.empty(b * width, dtype=bool)
    # Excluded entries by column, so each chunk finds its own with two binary searches.
    by_col = np.argsort(excluded % n, kind="stable")
    ex_rows, ex_cols = excluded[by_col] // n, excluded[by_col] % n
    rows, cols, vals = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending_size = 0

    def tighten(final: bool) -> None:
        nonlocal rows, cols, vals, pending, pending_size
        rows = np.concatenate([rows, *(p[0] for p in pending)])
        cols = np.concatenate([cols, *(p[1] for p in pending)])
        vals = np.concatenate([vals, *(p[2] for p in pending)])
        pending, pending_size = [], 0
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        position = np.arange(len(rows)) - np.searchsorted(rows, rows)
        take = position < wide
        if not final:
            last = position == wide - 1
            threshold[rows[last], 0] = (
                vals[last] if labels is not None else np.nextafter(vals[last], np.float32(np.inf))
            )
        rows, cols, vals = rows[take], cols[take], vals[take]

    for start in range(0, n, width):
        if norms is not None and norms[start] < _cutoff(threshold, lengths).min():
            break  # the rest is shorter still: out of every row's reach
        w = min(width, n - start)
        scores, above = out[: b * w].reshape(b, w), mask[: b * w].reshape(b, w)
        np.matmul(users, items[start : start + w].T, out=scores)
        lo, hi = np.searchsorted(ex_cols, (start, start + w))
        scores[ex_rows[lo:hi], ex_cols[lo:hi] - start] = -np.inf
        np.greater_equal(scores, threshold, out=above)
        flat = np.flatnonzero(above)  # 1-D: far faster than a 2-D nonzero
        r, c = np.divmod(flat, w)
        pending.append((r, c + start if labels is None else labels[c + start], out[flat]))
        pending_size += len(r)
        if pending_size + len(rows) > 4 * wide * b:
            tighten(final=False)
    tighten(final=True)
    return rows, cols
