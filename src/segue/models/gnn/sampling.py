"""Sampling for graph training, in numpy, vectorised: neighbours, negatives, edge splits.

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse``, and neither is built for
torch 2.13 (the version segue pins); the samplers here need neither and do exactly what the
trainers need: a bounded number of neighbours per node (so a batch's memory does not depend on
how popular its tracks are), edges that must stay invisible (the batch's own supervision edges)
masked out, and negatives that are never positives of their row.

Every function takes an explicit ``numpy.random.Generator``; nothing here loops over rows in
Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64: the concatenation of ``arange(s, s + l)`` for each (s, l).

    >>> ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(total, dtype=np.int64)


def sample_neighbors(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, fanout: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``fanout`` neighbours of each of ``nodes`` in a CSR adjacency (row = node).

    A node with at most ``fanout`` neighbours gets all of them; a node with more gets ``fanout``
    drawn uniformly **with replacement** (vectorised; for a popular track with thousands of
    playlists a repeat is rare, and an estimate that averages the draws stays unbiased).
    ``fanout < 0`` means all neighbours.

    Returns ``(owner, neighbor)``: int64 arrays [m], ``owner`` the position in ``nodes`` each
    neighbour was drawn for, in order of ``nodes``.

    >>> indptr, indices = np.array([0, 2, 2, 5]), np.array([7, 8, 1, 2, 3])
    >>> owner, nbr = sample_neighbors(indptr, indices, np.array([0, 1, 2]), 5, np.random.default_rng(0))
    >>> owner.tolist(), nbr.tolist()
    ([0, 0, 2, 2, 2], [7, 8, 1, 2, 3])
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    start = indptr[nodes].astype(np.int64)
    degree = indptr[nodes + 1].astype(np.int64) - start
    if fanout < 0:
        owner = np.repeat(np.arange(len(nodes), dtype=np.int64), degree)
        return owner, indices[ranges(start, degree)].astype(np.int64)
    full = degree <= fanout
    take = np.where(full, degree, fanout)
    owner = np.repeat(np.arange(len(nodes), dtype=np.int64), take)
    offset = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(take) - take, take)
    drawn = ~full[owner]
    offset[drawn] = (rng.random(int(drawn.sum())) * degree[owner[drawn]]).astype(np.int64)
    return owner, indices[start[owner] + offset].astype(np.int64)


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


def sample_negatives(rows: np.ndarray, positive_keys: np.ndarray, n_items: int, row_degree: np.ndarray,
                     rng: np.random.Generator, candidates: np.ndarray | None = None,
                     max_rounds: int = 100) -> np.ndarray:
    """One negative item per entry of ``rows``: uniform over ``candidates`` (default: every item),
    **never a positive of that row** (``positive_keys`` from :func:`edge_keys` of the row × item
    matrix the positives come from).

    Draws are repeated only for the entries that hit a positive, so the cost is a few vectorised
    passes. A row holding every candidate has no negative: refused. ``row_degree`` int [n_rows].

    >>> m = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 1]]))
    >>> sample_negatives(np.array([0, 0, 1]), edge_keys(m), 4, np.diff(m.indptr), np.random.default_rng(0)).tolist()
    [3, 3, 2]
    """
    rows = np.asarray(rows, dtype=np.int64)
    pool = n_items if candidates is None else len(candidates)
    if len(rows) and int(np.max(row_degree[rows])) >= pool and candidates is None:
        raise SegueError("a row holds every item: it has no negative to sample")
    out = np.empty(len(rows), dtype=np.int64)
    todo = np.arange(len(rows))
    for _ in range(max_rounds):
        draw = rng.integers(0, pool, size=len(todo))
        items = draw if candidates is None else candidates[draw]
        out[todo] = items
        bad = contains(positive_keys, rows[todo], items, n_items)
        todo = todo[bad]
        if len(todo) == 0:
            return out
    raise SegueError(f"could not draw negatives for {len(todo)} rows in {max_rounds} rounds "
                     "(rows that hold nearly every item)")


def sample_within_rows(indptr: np.ndarray, rows: np.ndarray, sizes: np.ndarray, rng: np.random.Generator,
                       skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each ``rows[i]``, ``sizes[i]`` distinct entry positions of that CSR row drawn without
    replacement, never position ``skip[i]`` (an absolute position in ``indices``, or -1).

    Returns ``(owner, position)``: int64 arrays, owner = i, positions absolute in ``indices``.
    Cost is linear in the total length of the rows (random keys, one sort), so callers bound
    the rows' lengths (playlists are ≤ 250 tracks; longer rows are truncated by the caller).
    """
    rows = np.asarray(rows, dtype=np.int64)
    start = indptr[rows].astype(np.int64)
    length = indptr[rows + 1].astype(np.int64) - start
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), length)
    position = ranges(start, length)
    key = rng.random(len(position))
    if skip is not None:
        key[position == np.asarray(skip, dtype=np.int64)[owner]] = 2.0  # sorted last, never taken
    order = np.lexsort((key, owner))
    owner, position = owner[order], position[order]
    rank = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    keep = rank < np.asarray(sizes, dtype=np.int64)[owner]
    return owner[keep], position[keep]


# --------------------------------------------------------------------------------------------
# Held-out edges
# --------------------------------------------------------------------------------------------


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


def split_edges(matrix: sp.csr_matrix, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), *,
                order: np.ndarray | None = None, rows: np.ndarray | None = None, min_edges: int = 3,
                seed: int = 0) -> EdgeSplit:
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
        raise SegueError(f"edge split fractions must be ≥ 0, sum to 1 and leave training edges, got {fractions}")
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    n_rows = matrix.shape[0]
    degree = np.diff(matrix.indptr).astype(np.int64)
    owner = np.repeat(np.arange(n_rows, dtype=np.int64), degree)
    key = np.asarray(order, dtype=np.float64) if order is not None else np.random.default_rng(seed).random(matrix.nnz)
    if len(key) != matrix.nnz:
        raise SegueError(f"order has {len(key)} entries for {matrix.nnz} edges")
    sorted_edges = np.lexsort((np.arange(matrix.nnz), key, owner))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[sorted_edges] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1].astype(np.int64), degree)
    cut = np.zeros(n_rows, dtype=bool)
    cut[np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)] = True
    cut &= degree >= min_edges
    n_val = np.where(cut & (val_share > 0), np.maximum(1, np.floor(val_share * degree + 0.5)), 0).astype(np.int64)
    n_test = np.where(cut & (test_share > 0), np.maximum(1, np.floor(test_share * degree + 0.5)), 0).astype(np.int64)
    excess = np.maximum(n_val + n_test - (degree - 1), 0)   # keep one training edge
    n_test = np.maximum(n_test - excess, np.where(cut & (test_share > 0), 1, 0))
    n_val = np.minimum(n_val, np.maximum(degree - 1 - n_test, 0))
    n_train = degree - n_val - n_test
    part = np.where(rank < n_train[owner], 0, np.where(rank < (n_train + n_val)[owner], 1, 2))

    def take(p: int) -> sp.csr_matrix:
        keep = part == p
        indptr = np.concatenate(([0], np.cumsum(np.bincount(owner[keep], minlength=n_rows))))
        return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)

    return EdgeSplit(take(0), take(1), take(2))
