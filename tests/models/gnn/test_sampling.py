"""Samplers: bounded neighbours, negatives that are never positives, held-out edge splits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models.gnn.sampling import (
    contains,
    csr_contains,
    edge_keys,
    sample_negatives,
    split_edges,
)


def random_matrix(rows: int, cols: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(
        rows, cols, density=density, format="csr", random_state=seed, dtype=np.float32
    )
    matrix.data[:] = 1
    matrix.sort_indices()
    return matrix


def test_negatives_are_never_positives_of_their_row():
    matrix = random_matrix(40, 30, 0.6, seed=2)  # dense rows: many collisions
    rows = np.repeat(np.arange(40), 200)
    negatives = sample_negatives(rows, matrix.indptr, matrix.indices, 30, np.random.default_rng(3))
    assert not matrix.toarray()[rows, negatives].any()
    # …and they cover the non-positives (uniform, not a fixed few)
    assert len(set(zip(rows.tolist(), negatives.tolist(), strict=True))) == 40 * 30 - matrix.nnz
    full = sp.csr_matrix(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(SegueError, match="every item"):
        sample_negatives(np.array([0]), full.indptr, full.indices, 4, np.random.default_rng(0))


def test_csr_membership_matches_the_dense_matrix():
    matrix = random_matrix(70, 90, 0.15, seed=11)
    rng = np.random.default_rng(12)
    rows, cols = rng.integers(0, 70, 5000), rng.integers(0, 90, 5000)
    expected = matrix.toarray()[rows, cols] > 0
    assert np.array_equal(csr_contains(matrix.indptr, matrix.indices, rows, cols), expected)
    assert np.array_equal(contains(edge_keys(matrix), rows, cols, 90), expected)


def test_split_edges_by_time_and_at_random():
    matrix = random_matrix(100, 50, 0.3, seed=8)
    order = np.random.default_rng(9).random(matrix.nnz)
    split = split_edges(matrix, (0.7, 0.15, 0.15), order=order, min_edges=3)
    total = split.train + split.validation + split.test
    assert (total != matrix).nnz == 0 and total.max() == 1  # a partition of the edges
    owner = np.repeat(np.arange(100), np.diff(matrix.indptr))
    for row in range(100):
        mine = order[owner == row]
        cols = matrix[row].indices
        by_time = cols[np.argsort(mine)]
        n_train, n_val = split.train[row].nnz, split.validation[row].nnz
        assert sorted(by_time[:n_train]) == split.train[row].indices.tolist()
        assert sorted(by_time[n_train : n_train + n_val]) == split.validation[row].indices.tolist()
        if len(cols) >= 3:
            assert n_train >= 1 and n_val >= 1 and split.test[row].nnz >= 1
            assert abs(n_train - 0.7 * len(cols)) <= 1.5
        else:
            assert n_train == len(cols)
    again = split_edges(matrix, seed=3)
    assert (again.test != split_edges(matrix, seed=3).test).nnz == 0  # seeded
    with pytest.raises(SegueError, match="fractions"):
        split_edges(matrix, (0.5, 0.6, -0.1))
