"""Vectorised building blocks the models share: seed matrices and best-n selection.

Everything here works on whole batches at once (no Python loop over queries or tracks) and breaks
score ties by the lower track id, so rankings are the same on every machine and batch size.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
