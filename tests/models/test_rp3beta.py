"""rp3beta against known answers: W by hand and by its dense formula on tiny matrices, the
popularity penalty, blocks against one shot, scores and explanations as sums over the seeds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import segue.features.cooccurrence as cooccurrence
from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Queries
from segue.models.config import config_from_pairs
from segue.models.rp3beta import RP3betaConfig, RP3betaRecommender, similarity
from segue.models.topn import top_n_sparse
from tests.models.test_contract import QUERIES, planted_data

# 4 playlists × 5 tracks. Lengths 3, 2, 2, 4; popularities 2, 4, 2, 2, 1.
HAND = np.array(
    [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=np.float32
)


def as_data(dense: np.ndarray) -> PlaylistData:
    p, t = dense.shape
    return PlaylistData(
        sp.csr_matrix(dense),
        np.arange(p, dtype=np.int32),
        [""] * p,
        np.arange(t, dtype=np.int32),
        np.arange(t, dtype=np.int32),
    )


def dense_reference(x: np.ndarray, config: RP3betaConfig) -> tuple[np.ndarray, np.ndarray]:
    """(W [t, t] with each row's top n_neighbors kept, row scales [t]) by the formula, densely."""
    x = (np.asarray(x) > 0).astype(np.float64)
    lengths, pop = x.sum(axis=1), x.sum(axis=0)
    p_ui = x / np.where(lengths > 0, lengths, 1)[:, None]  # playlist → track
    p_iu = x.T / np.where(pop > 0, pop, 1)[:, None]  # track → playlist
    w = (
        (p_iu**config.alpha)
        @ (p_ui**config.alpha)
        * np.where(pop > 0, pop, 1)[None, :] ** -config.beta
    )
    np.fill_diagonal(w, 0)
    kept = np.zeros_like(w)
    for i in range(len(w)):  # tiny reference: at most 100 tracks
        order = np.lexsort((np.arange(len(w)), -w[i]))
        top = [j for j in order[: config.n_neighbors] if w[i, j] > 0]
        kept[i, top] = w[i, top]
    total = kept.sum(axis=1)
    scale = (
        np.where(total > 0, 1 / np.where(total > 0, total, 1), 1)
        if config.normalize_rows
        else np.ones(len(w))
    )
    return kept, scale


def test_similarity_of_the_hand_made_matrix_by_hand():
    # alpha 1, beta 0: W(i, j) = Σ_{p ∋ i, j} 1 / (pop(i) · len(p)).
    got = RP3betaRecommender(RP3betaConfig(alpha=1.0, beta=0.0, normalize_rows=False)).fit(
        as_data(HAND)
    )
    w = got.similarity.toarray()
    assert w[0].tolist() == pytest.approx([0, 1 / 2 * (1 / 3 + 1 / 2), 1 / 2 * 1 / 3, 0, 0])
    assert w[1].tolist() == pytest.approx(
        [
            1 / 4 * (1 / 3 + 1 / 2),
            0,
            1 / 4 * (1 / 3 + 1 / 4),
            1 / 4 * (1 / 2 + 1 / 4),
            1 / 4 * 1 / 4,
        ]
    )
    assert w[4].tolist() == pytest.approx([0, 1 / 4, 1 / 4, 1 / 4, 0])
    # alpha 0.5, beta 1: W(4, 1) = 1^-0.5 · 4^-0.5 · 4^-1 (track 4 is only in the 4-track playlist).
    model = RP3betaRecommender(RP3betaConfig(alpha=0.5, beta=1.0, normalize_rows=False)).fit(
        as_data(HAND)
    )
    assert model.similarity[4, 1] == pytest.approx(0.5 / 4)
    assert model.similarity[4, 3] == pytest.approx(0.5 / 2)


HAND_CONFIGS = [
    RP3betaConfig(alpha=1.0, beta=0.0, normalize_rows=False),
    RP3betaConfig(alpha=0.5, beta=0.7),
    RP3betaConfig(alpha=0.75, beta=0.3, n_neighbors=2),
    RP3betaConfig(alpha=1.3, beta=1.0, n_neighbors=1, normalize_rows=False),
]


@pytest.mark.parametrize(
    "config",
    HAND_CONFIGS,
    ids=lambda c: f"a{c.alpha}-b{c.beta}-k{c.n_neighbors}-{c.normalize_rows}",
)
def test_similarity_of_the_hand_made_matrix_equals_the_dense_formula(config):
    model = RP3betaRecommender(config).fit(as_data(HAND))
    expected, scale = dense_reference(HAND, config)
    got = model.similarity.toarray()
    assert model.similarity.dtype == np.float32
    # The hand-made matrix has ties at some cuts: the kernel breaks them by the lower id, as the
    # reference does, so the kept entries are the same.
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.row_scale, scale, rtol=1e-6)
    if config.normalize_rows:
        rows = (model.row_scale[:, None] * got).sum(axis=1)
        np.testing.assert_allclose(rows[rows > 0], 1, rtol=1e-6)


def test_repeated_tracks_count_once():
    repeated = sp.csr_matrix(HAND * np.array([2, 1, 1, 3, 1], dtype=np.float32))
    config = RP3betaConfig(alpha=0.5, beta=0.5)
    np.testing.assert_array_equal(
        similarity(repeated, config).toarray(), similarity(sp.csr_matrix(HAND), config).toarray()
    )


def test_beta_demotes_a_popular_track():
    # Seed 0 is with the hit (track 1) in two playlists and with the niche track 2 in one; the hit
    # is also in eight playlists without the seed (popularity 10 against 1).
    rows = [[0, 1], [0, 1], [0, 2]] + [[1, 3 + p % 4] for p in range(8)]
    dense = np.zeros((len(rows), 7), dtype=np.float32)
    for p, tracks in enumerate(rows):
        dense[p, tracks] = 1
    data, query = as_data(dense), Queries.from_lists([[0]])
    plain = RP3betaRecommender(RP3betaConfig(alpha=1.0, beta=0.0)).fit(data)
    penalised = RP3betaRecommender(RP3betaConfig(alpha=1.0, beta=0.5)).fit(data)
    assert plain.recommend(query, n=2).ids[0].tolist() == [1, 2]
    assert penalised.recommend(query, n=2).ids[0].tolist() == [2, 1]
    # The ratio hit / niche shrinks by exactly (pop(niche) / pop(hit))^beta = 10^-0.5.
    ratio = lambda m: m.similarity[0, 1] / m.similarity[0, 2]  # noqa: E731
    assert ratio(plain) == pytest.approx(2.0)  # two shared playlists against one
    assert ratio(penalised) == pytest.approx(ratio(plain) * 10**-0.5, rel=1e-6)


@pytest.fixture(scope="module")
def data():
    return planted_data()


@pytest.mark.parametrize("n_neighbors", [15, 100])
def test_blocks_equal_one_shot(data, monkeypatch, n_neighbors):
    config = RP3betaConfig(alpha=0.75, beta=0.5, n_neighbors=n_neighbors)
    one_shot = similarity(data.matrix, config)  # the planted data fit one block
    # The same kernel in blocks of at most 3 track rows, on one thread and on four.
    monkeypatch.setattr(cooccurrence, "_MAX_BLOCK_ROWS", 3)
    monkeypatch.setattr(cooccurrence, "_BLOCK_WORK", 1)
    for threads in (1, 4):
        blocks = similarity(
            data.matrix, RP3betaConfig(**{**config.__dict__, "num_threads": threads})
        )
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(blocks, name), getattr(one_shot, name))
    # And against the one-shot sparse product P_iu^α · P_ui^α · diag(pop^-β) (scipy, sparse).
    x = sp.csr_matrix(data.matrix > 0, dtype=np.float64)
    lengths, pop = np.diff(x.indptr), np.asarray(x.sum(axis=0)).ravel()
    p_ui = sp.diags(1.0 / lengths) @ x
    p_iu = sp.diags(1.0 / pop) @ sp.csr_matrix(x.T)
    product = sp.csr_matrix(
        p_iu.power(config.alpha) @ p_ui.power(config.alpha) @ sp.diags(pop**-config.beta)
    )
    product.setdiag(0)
    product.eliminate_zeros()
    ids, values = top_n_sparse(product, n_neighbors)
    got = one_shot.toarray()
    for i in range(data.n_tracks):
        kept = ids[i][ids[i] >= 0]
        row = np.flatnonzero(got[i])
        assert len(row) == len(kept)
        np.testing.assert_allclose(got[i, row], product[i, row].toarray().ravel(), rtol=1e-5)
        # Ties at the cut may be broken either way by rounding: the kept values are the best.
        assert got[i, row].min() >= values[i, len(kept) - 1] * (1 - 1e-5)


def test_scores_are_row_scaled_sums_over_the_distinct_seeds(data):
    config = RP3betaConfig(alpha=0.75, beta=0.5, n_neighbors=100)
    model = RP3betaRecommender(config).fit(data)
    w, scale = dense_reference(data.matrix.toarray(), config)
    queries = Queries.from_lists([[0, 1, 2, 1], [30], [60, 61, 62, 63, 64]])
    ranking = model.recommend(queries, n=20)
    for row in range(len(queries)):
        seeds = np.unique(queries.seeds(row))
        expected = (scale[seeds, None] * w[seeds]).sum(axis=0)
        expected[seeds] = -np.inf
        order = np.lexsort((np.arange(len(expected)), -expected))[:20]
        np.testing.assert_allclose(ranking.scores[row], expected[order], rtol=1e-5)
        assert ranking.ids[row].tolist() == order.tolist()


def test_explanation_shares_are_the_seeds_terms(data):
    model = RP3betaRecommender(RP3betaConfig(n_neighbors=100)).fit(data)
    w, scale = dense_reference(data.matrix.toarray(), model.config)
    track = int(model.recommend(QUERIES.slice(0, 1), 1).ids[0, 0])
    explanation = model.explain(QUERIES, 0, [track])[0]
    seeds = QUERIES.seeds(0)
    terms = scale[seeds] * w[seeds, track]
    by_seed = {
        item["track_id"]: item["share"] for item in explanation.evidence if item["kind"] == "seed"
    }
    for seed, term in zip(seeds.tolist(), terms, strict=True):
        assert by_seed.get(seed, 0.0) == pytest.approx(term / terms.sum(), rel=1e-5)
    leading = max(by_seed, key=by_seed.get)
    assert explanation.text.startswith(f"Because the playlist has track {leading}")


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(SegueError, match=r"beta must be a finite number at least 0, got -0\.1"):
        RP3betaConfig(beta=-0.1)
    with pytest.raises(SegueError, match="alpha must be a finite number at least 0"):
        RP3betaConfig(alpha=-1.0)
    with pytest.raises(SegueError, match="alpha must be a finite number at least 0, got nan"):
        RP3betaConfig(alpha=float("nan"))
    with pytest.raises(SegueError, match="n_neighbors must be at least 1, got 0"):
        RP3betaConfig(n_neighbors=0)
    with pytest.raises(SegueError, match="n_neighbors must be at least 1"):
        config_from_pairs(RP3betaConfig, ["n_neighbors=-5"])
    assert config_from_pairs(RP3betaConfig, ["beta=0.7", "normalize_rows=false"]) == RP3betaConfig(
        beta=0.7, normalize_rows=False
    )
