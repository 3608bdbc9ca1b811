"""Sampling for graph training, in numpy, vectorised: negatives, edge membership, edge splits.

Negatives are never positives of their row; edge splits hold out edges per row (at random or by
time) so that validation and test edges stay out of the graph the models propagate over.

Every function takes an explicit ``numpy.random.Generator`` where it draws; nothing here loops
over rows in Python."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.arrays import ranges
from segue.errors import SegueError


def edge_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """int64 [nnz], sorted: ``row * n_cols + col`` of every stored entry (a CSR with sorted
    indices gives them already sorted). Used to test membership with ``searchsorted``."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = rows * np.int64(matrix.shape[1]) + matrix.indices.astype(np.int64)
    if len(keys) > 1 and np.any(keys[1:] <= keys[:-1]):
        keys = np.unique(keys)
    return keys


def contains(keys: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """bool: whether each (row, col) is among the sorted ``keys`` of :func:`edge_keys`.

    >>> m = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]]))
    >>> contains(edge_keys(m), np.array([0, 0, 1]), np.array([0, 2, 0]), 3).tolist()
    [False, True, True]
    """
    query = np.asarray(rows, dtype=np.int64) * np.int64(n_cols) + np.asarray(cols, dtype=np.int64)
    if len(keys) == 0:
        return np.zeros(len(query), dtype=bool)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[at] == query


def csr_contains(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """bool: whether each (row, col) is a stored entry of a CSR with **sorted** indices.

    A vectorised binary search inside each row's slice (log2 of the longest row passes), so it
    needs no 64-bit key per edge (528 MB at 66M edges).

    >>> m = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]]))
    >>> csr_contains(m.indptr, m.indices, np.array([0, 0, 1, 1]), np.array([0, 2, 0, 2])).tolist()
    [False, True, True, False]
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols)
    lo = indptr[rows].astype(np.int64)
    end = indptr[rows + 1].astype(np.int64)
    hi = end.copy()
    if len(indices) == 0:
        return np.zeros(len(rows), dtype=bool)
    last = len(indices) - 1
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        right = active & (indices[np.minimum(mid, last)] < cols)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return (lo < end) & (indices[np.minimum(lo, last)] == cols)


def sample_negatives(
    rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
    max_rounds: int = 100,
) -> np.ndarray:
    """One negative item per entry of ``rows``: uniform over the items, **never a positive of
    that row** in the CSR (``indptr``, sorted ``indices``) the positives come from.

    Draws are repeated only for the entries that hit a positive, so the cost is a few vectorised
    passes. A row holding every item has no negative: refused.

    >>> m = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 1]]))
    >>> sample_negatives(np.array([0, 0, 1]), m.indptr, m.indices, 4, np.random.default_rng(0)).tolist()
    [3, 3, 2]
    """
    rows = np.asarray(rows, dtype=np.int64)
    pool = n_items
    if len(rows) and int(np.max(indptr[rows + 1] - indptr[rows])) >= pool:
        raise SegueError("a row holds every item: it has no negative to sample")
    out = np.empty(len(rows), dtype=np.int64)
    todo = np.arange(len(rows))
    for _ in range(max_rounds):
        items = rng.integers(0, pool, size=len(todo))
        out[todo] = items
        bad = csr_contains(indptr, indices, rows[todo], items)
        todo = todo[bad]
        if len(todo) == 0:
            return out
    raise SegueError(
        f"could not draw negatives for {len(todo)} rows in {max_rounds} rounds "
        "(rows that hold nearly every item)"
    )


@dataclass
class EdgeSplit:
    """Rows × items edges cut in three: ``train`` (the only edges message passing may use),
    ``validation`` and ``test`` (held out), each a CSR of the input's shape with sorted indices."""

    train: sp.csr_matrix
    validation: sp.csr_matrix
    test: sp.csr_matrix

    def held_out_rows(self, part: str = "validation") -> np.ndarray:
        """int64: rows with at least one edge in ``part``."""
        matrix = self.validation if part == "validation" else self.test
        return np.flatnonzero(np.diff(matrix.indptr) > 0)


def split_edges(
    matrix: sp.csr_matrix,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    *,
    order: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    min_edges: int = 3,
    seed: int = 0,
) -> EdgeSplit:
    """Per row, the first ``fractions[0]`` of its edges train, the next ``fractions[1]``
    validate, the rest test.

    ``order`` (float/int [nnz], aligned with ``matrix.data``): the edges' time (listening time,
    position in a playlist); without it a seeded random order ("held-out edges"). Only ``rows``
    (default: all) are cut, and only those with at least ``min_edges`` edges; each held-out part
    with a positive fraction gets at least one edge of such a row and training keeps at least one.

    >>> m = sp.csr_matrix(np.ones((2, 10)))
    >>> s = split_edges(m, order=np.tile(np.arange(10), 2), rows=np.array([0]))
    >>> s.train[0].indices.tolist(), s.validation[0].indices.tolist(), s.test[0].indices.tolist()
    ([0, 1, 2, 3, 4, 5], [6, 7], [8, 9])
    >>> s.train[1].nnz
    10
    """
    train_share, val_share, test_share = fractions
    if min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9 or train_share <= 0:
        raise SegueError(
            f"edge split fractions must be ≥ 0, sum to 1 and leave training edges, got {fractions}"
        )
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_sorted_indices:
        matrix = matrix.copy()
        matrix.sort_indices()
    n_rows = matrix.shape[0]
    degree = np.diff(matrix.indptr).astype(np.int64)
    if order is not None and len(order) != matrix.nnz:
        raise SegueError(f"order has {len(order)} entries for {matrix.nnz} edges")
    cut = np.zeros(n_rows, dtype=bool)
    cut[np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)] = True
    cut &= degree >= min_edges
    # Only the cut rows' edges are ranked (a validation carve of 500 playlists out of 1M touches
    # 0.05% of the edges); every other edge stays in training.
    cut_rows = np.flatnonzero(cut)
    positions = ranges(matrix.indptr[cut_rows], degree[cut_rows])
    owner = np.repeat(cut_rows, degree[cut_rows])
    key = (
        np.asarray(order, dtype=np.float64)[positions]
        if order is not None
        else np.random.default_rng(seed).random(matrix.nnz)[positions]
    )
    sorted_edges = np.lexsort((positions, key, owner))
    starts = np.repeat(np.cumsum(degree[cut_rows]) - degree[cut_rows], degree[cut_rows])
    rank = np.empty(len(positions), dtype=np.int64)
    rank[sorted_edges] = np.arange(len(positions)) - starts
    d = degree[cut_rows]
    n_val = np.where(val_share > 0, np.maximum(1, np.floor(val_share * d + 0.5)), 0).astype(
        np.int64
    )
    n_test = np.where(test_share > 0, np.maximum(1, np.floor(test_share * d + 0.5)), 0).astype(
        np.int64
    )
    excess = np.maximum(n_val + n_test - (d - 1), 0)  # keep one training edge
    n_test = np.maximum(n_test - excess, 1 if test_share > 0 else 0)
    n_val = np.minimum(n_val, np.maximum(d - 1 - n_test, 0))
    n_train = d - n_val - n_test
    local = np.repeat(np.arange(len(cut_rows)), d)
    cut_part = np.where(
        rank < n_train[local], 0, np.where(rank < (n_train + n_val)[local], 1, 2)
    ).astype(np.int8)
    part = np.zeros(matrix.nnz, dtype=np.int8)
    part[positions] = cut_part

    def take(p: int) -> sp.csr_matrix:
        keep = part == p
        counts = (
            degree - np.bincount(owner[cut_part != 0], minlength=n_rows)
            if p == 0
            else np.bincount(owner[cut_part == p], minlength=n_rows)
        )
        indptr = np.concatenate(([0], np.cumsum(counts)))
        return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)

    return EdgeSplit(take(0), take(1), take(2))
