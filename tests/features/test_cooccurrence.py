"""The co-occurrence kernel against a dense brute force: values, the top-k cut with its tie rule,
factors, weights, and independence from the thread count and the block size."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import segue.features.cooccurrence as cooccurrence
from segue.features.cooccurrence import top_k_cooccurrence


def reference(
    w: np.ndarray, k: int, row_factor: np.ndarray, column_factor: np.ndarray
) -> np.ndarray:
    co = w.T @ w
    np.fill_diagonal(co, 0)
    key = co * column_factor[None, :]
    out = np.zeros_like(co)
    for i in range(len(co)):
        order = [j for j in np.lexsort((np.arange(len(co)), -key[i])) if co[i, j] != 0][:k]
        out[i, order] = co[i, order] * row_factor[i] * column_factor[order]
    return out


@pytest.mark.parametrize("k", [1, 3, 8, 40])
@pytest.mark.parametrize("weighted", [False, True])
def test_equals_the_dense_reference(k, weighted):
    rng = np.random.default_rng(k)
    w = (rng.random((60, 40)) < 0.15).astype(np.float64)
    if weighted:
        w *= rng.integers(1, 4, size=w.shape)  # small integers: exact ties stay ties
    pop = np.maximum(w.astype(bool).sum(axis=0), 1).astype(np.float64)
    factors = (pop**-0.7, pop**-0.3) if weighted else (np.ones(40), np.ones(40))
    got = top_k_cooccurrence(sp.csr_matrix(w), k, row_factor=factors[0], column_factor=factors[1])
    assert got.has_sorted_indices and got.dtype == np.float32
    np.testing.assert_allclose(got.toarray(), reference(w, k, *factors), rtol=1e-6)
    assert np.diff(got.indptr).max() <= k


def test_ties_at_the_cut_go_to_the_lower_track():
    # Track 0 co-occurs once with each of 1..5: with k = 2 it keeps 1 and 2.
    w = sp.csr_matrix(
        np.array(
            [
                [1, 1, 0, 0, 0, 0],
                [1, 0, 1, 0, 0, 0],
                [1, 0, 0, 1, 0, 0],
                [1, 0, 0, 0, 1, 0],
                [1, 0, 0, 0, 0, 1],
            ],
            dtype=np.float32,
        )
    )
    assert top_k_cooccurrence(w, 2)[0].indices.tolist() == [1, 2]


def test_threads_and_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(3)
    w = sp.random(300, 120, density=0.05, random_state=rng, format="csr", dtype=np.float32)
    w.data[:] = 1
    one = top_k_cooccurrence(w, 7, num_threads=1)
    monkeypatch.setattr(cooccurrence, "_MAX_BLOCK_ROWS", 13)
    many = top_k_cooccurrence(w, 7, num_threads=0)
    assert (one != many).nnz == 0 and np.array_equal(one.indices, many.indices)


def test_refuses_k_below_one():
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k_cooccurrence(sp.csr_matrix((2, 2), dtype=np.float32), 0)
