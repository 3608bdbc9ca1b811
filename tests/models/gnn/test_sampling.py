"""Samplers: bounded neighbours, negatives that are never positives, held-out edge splits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models.gnn.playlist import PlaylistExamples
from segue.models.gnn.sampling import (
    contains,
    csr_contains,
    edge_keys,
    sample_negatives,
    sample_neighbors,
    sample_within_rows,
    split_edges,
)


def random_matrix(rows: int, cols: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(rows, cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    matrix.data[:] = 1
    matrix.sort_indices()
    return matrix


def test_neighbours_are_real_and_bounded():
    matrix = random_matrix(50, 80, 0.2, seed=1)
    nodes = np.arange(50)
    owner, nbr = sample_neighbors(matrix.indptr, matrix.indices, nodes, 5, np.random.default_rng(0))
    degree = np.diff(matrix.indptr)
    counts = np.bincount(owner, minlength=50)
    assert np.array_equal(counts, np.minimum(degree, 5))
    dense = matrix.toarray()
    assert dense[nodes[owner], nbr].all()                     # every neighbour is a real edge
    small = degree <= 5                                       # all of them when few
    for node in np.flatnonzero(small):
        assert sorted(nbr[owner == node].tolist()) == matrix[node].indices.tolist()
    _, nbr_all = sample_neighbors(matrix.indptr, matrix.indices, nodes, -1, np.random.default_rng(0))
    assert len(nbr_all) == matrix.nnz


def test_negatives_are_never_positives_of_their_row():
    matrix = random_matrix(40, 30, 0.6, seed=2)               # dense rows: many collisions
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


def test_within_row_samples_are_distinct_and_skip_the_target():
    matrix = random_matrix(30, 60, 0.3, seed=4)
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 30, size=200)
    skip = matrix.indptr[rows] + (rng.random(200) * np.diff(matrix.indptr)[rows]).astype(int)
    sizes = np.minimum(np.diff(matrix.indptr)[rows] - 1, 7)
    owner, position = sample_within_rows(matrix.indptr, rows, sizes, rng, skip=skip)
    assert np.array_equal(np.bincount(owner, minlength=200), sizes)
    assert not np.any(position == skip[owner])
    assert np.all((position >= matrix.indptr[rows][owner]) & (position < matrix.indptr[rows + 1][owner]))
    pairs = owner * matrix.nnz + position
    assert len(np.unique(pairs)) == len(pairs)                 # without replacement


def test_playlist_examples_hide_the_target_from_its_context():
    matrix = random_matrix(60, 40, 0.25, seed=6)
    examples = PlaylistExamples(matrix, max_context=5)
    dense = matrix.toarray()
    for batch in examples.epoch(np.random.default_rng(7), 500, 128):
        assert dense[batch.playlist, batch.positive].all()
        assert not dense[batch.playlist, batch.negative].any()
        assert np.all(batch.context_track != batch.positive[batch.context_owner])
        assert dense[batch.playlist[batch.context_owner], batch.context_track].all()
        assert np.array_equal(np.bincount(batch.context_owner, minlength=batch.size), batch.context_size)
        assert batch.context_size.min() >= 1 and batch.context_size.max() <= 5


def test_split_edges_by_time_and_at_random():
    matrix = random_matrix(100, 50, 0.3, seed=8)
    order = np.random.default_rng(9).random(matrix.nnz)
    split = split_edges(matrix, (0.7, 0.15, 0.15), order=order, min_edges=3)
    total = split.train + split.validation + split.test
    assert (total != matrix).nnz == 0 and total.max() == 1     # a partition of the edges
    owner = np.repeat(np.arange(100), np.diff(matrix.indptr))
    for row in range(100):
        mine = order[owner == row]
        cols = matrix[row].indices
        by_time = cols[np.argsort(mine)]
        n_train, n_val = split.train[row].nnz, split.validation[row].nnz
        assert sorted(by_time[:n_train]) == split.train[row].indices.tolist()
        assert sorted(by_time[n_train:n_train + n_val]) == split.validation[row].indices.tolist()
        if len(cols) >= 3:
            assert n_train >= 1 and n_val >= 1 and split.test[row].nnz >= 1
            assert abs(n_train - 0.7 * len(cols)) <= 1.5
        else:
            assert n_train == len(cols)
    again = split_edges(matrix, seed=3)
    assert (again.test != split_edges(matrix, seed=3).test).nnz == 0   # seeded
    with pytest.raises(SegueError, match="fractions"):
        split_edges(matrix, (0.5, 0.6, -0.1))
