"""playlistknn against two references: the scipy formulation it replaced (two sparse products and
a sort of every entry; the kernel must give the same float32 numbers and the same order) and a
dense brute force of the definition (cosine to every training playlist, top neighbours by
similarity then lower id, votes = cosine ** power)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.models.base import Queries
from segue.models.playlistknn import PlaylistKNNConfig, PlaylistKNNRecommender
from segue.models.topn import seed_matrix, top_n_sparse
from tests.models.test_contract import QUERIES, planted_data


def scipy_candidates(model: PlaylistKNNRecommender, queries: Queries, n: int):
    """The implementation before the kernel (sparse products, ``top_n_sparse``), kept as a reference."""
    seeds = seed_matrix(queries, model.n_tracks)
    similarity = seeds @ model.reach
    if model._live_members is not None:
        similarity = sp.hstack([similarity, seeds @ model._live_reach], format="csr")
    query_norm = np.sqrt(np.maximum(np.diff(seeds.indptr), 1)).astype(np.float32)
    ids, sims = top_n_sparse(similarity, model.config.n_neighbors)
    sims = (sims / query_norm[:, None]) ** model.config.power
    keep = ids >= 0
    rows = np.repeat(np.arange(len(queries)), keep.sum(axis=1))
    weights = sp.csr_matrix(
        (sims[keep], (rows, ids[keep])), shape=(len(queries), similarity.shape[1])
    )
    if model._live_members is None:
        return top_n_sparse(weights @ model.members, n)
    p = model.members.shape[0]
    return top_n_sparse(weights[:, :p] @ model.members + weights[:, p:] @ model._live_members, n)


def brute_force(data: PlaylistData, queries: Queries, config: PlaylistKNNConfig, n: int):
    """Scores [q, n_tracks] float64 by the definition, dense (no cap on seed reach)."""
    x = data.matrix.toarray().astype(np.float64)
    out = np.zeros((len(queries), data.n_tracks))
    for row in range(len(queries)):
        seeds = np.unique(queries.seeds(row))
        if not len(seeds):
            continue
        cosine = x[:, seeds].sum(axis=1) / np.sqrt(x.sum(axis=1)) / np.sqrt(len(seeds))
        order = np.lexsort((np.arange(len(x)), -cosine))
        near = [p for p in order[: config.n_neighbors] if cosine[p] > 0]
        out[row] = (cosine[near] ** config.power) @ x[near]
    return out


def random_data(seed: int, playlists: int = 3000, tracks: int = 2000) -> PlaylistData:
    """Playlists of 1–60 tracks drawn with Zipf-like popularity: many exact similarity ties
    (playlists of equal length sharing one seed) and hits reached by many playlists."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, tracks + 1) ** 0.8
    rows = [
        np.unique(rng.choice(tracks, size=rng.integers(1, 61), p=weights / weights.sum()))
        for _ in range(playlists)
    ]
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows), indptr), shape=(playlists, tracks)
    )
    return PlaylistData(
        matrix,
        np.arange(playlists, dtype=np.int32),
        [""] * playlists,
        np.arange(tracks, dtype=np.int32),
        np.arange(tracks, dtype=np.int32),
    )


def random_queries(seed: int, q: int, tracks: int) -> Queries:
    rng = np.random.default_rng(seed)
    lengths = rng.choice([0, 1, 5, 10, 25, 100], size=q)
    return Queries.from_lists([rng.choice(tracks, size=int(k)).tolist() for k in lengths])


@pytest.mark.parametrize(
    "config",
    [
        PlaylistKNNConfig(),
        PlaylistKNNConfig(n_neighbors=7, power=1.0),
        PlaylistKNNConfig(n_neighbors=50, max_seed_playlists=40, seed=3),
    ],
    ids=["default", "k7", "capped"],
)
def test_kernel_gives_the_scipy_products_numbers(config):
    data = random_data(1)
    model = PlaylistKNNRecommender(config).fit(data)
    queries = random_queries(2, 300, data.n_tracks)
    for n in (30, 700):
        ids, scores = model._candidates(queries, n)
        expected_ids, expected_scores = scipy_candidates(model, queries, n)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(scores, expected_scores)


def test_kernel_with_playlists_learned_live_gives_the_scipy_products_numbers():
    data = random_data(4)
    model = PlaylistKNNRecommender(PlaylistKNNConfig(n_neighbors=40)).fit(data)
    model.add_playlists(random_queries(5, 50, data.n_tracks))
    model.add_playlists(random_queries(6, 20, data.n_tracks))
    queries = random_queries(7, 200, data.n_tracks)
    ids, scores = model._candidates(queries, 200)
    expected_ids, expected_scores = scipy_candidates(model, queries, 200)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)
    assert (ids >= 0).any()


@pytest.mark.parametrize(
    "config", [PlaylistKNNConfig(n_neighbors=20), PlaylistKNNConfig(n_neighbors=300, power=3.0)]
)
def test_scores_equal_the_dense_definition(config):
    data = planted_data()
    queries = Queries.from_lists(
        [*(QUERIES.seeds(r).tolist() for r in range(len(QUERIES))), [0, 30, 60, 90, 91]]
    )
    model = PlaylistKNNRecommender(config).fit(data)
    ids, scores = model._candidates(queries, 100)
    expected = brute_force(data, queries, config, 100)
    for row in range(len(queries)):
        got = ids[row][ids[row] >= 0]
        assert len(got) == np.count_nonzero(expected[row])
        np.testing.assert_allclose(scores[row][: len(got)], expected[row][got], rtol=1e-5)
        # Best first; equal scores (within float32 rounding) by id.
        assert (np.diff(scores[row][: len(got)]) <= 1e-6).all()
