"""itemknn against a brute-force reference: dense co-occurrence, the similarity by its formula,
the top neighbours per row, row scales, and the scores of queries as sums over the seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segue.errors import SegueError
from segue.models.base import Queries
from segue.models.itemknn import ItemKNNConfig, ItemKNNRecommender
from tests.models.test_contract import QUERIES, planted_data


@pytest.fixture(scope="module")
def data():
    return planted_data()


def brute_force(data, config: ItemKNNConfig) -> tuple[np.ndarray, np.ndarray]:
    """(similarity [t, t] with only each row's top n_neighbors kept, row scales [t]) — dense."""
    x = data.matrix.toarray().astype(np.float64)
    pop = x.sum(axis=0)
    if config.similarity == "cosine":
        co = x.T @ x
        np.fill_diagonal(co, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = co / (pop[:, None] ** config.alpha * pop[None, :] ** (1 - config.alpha))
        sim = np.nan_to_num(sim)
    else:  # BM25 as implicit weighs the tracks × playlists matrix: tracks are the documents
        idf = np.log(x.shape[1]) - np.log1p(x.sum(axis=1))  # per playlist
        norm = 1 - config.bm25_b + config.bm25_b * pop / pop.mean()  # per track
        w = x * ((config.bm25_k1 + 1) / (config.bm25_k1 * norm[None, :] + 1)) * idf[:, None]
        sim = w.T @ w
        np.fill_diagonal(sim, 0)
    kept = np.zeros_like(sim)
    for i in range(len(sim)):  # tiny reference: 100 tracks
        order = np.lexsort((np.arange(len(sim)), -sim[i]))
        top = [j for j in order[: config.n_neighbors] if sim[i, j] > 0]
        kept[i, top] = sim[i, top]
    best = kept.max(axis=1)
    scale = (
        np.where(best > 0, 1 / np.where(best > 0, best, 1), 1)
        if config.normalize_rows
        else np.ones(len(kept))
    )
    return kept, scale


CONFIGS = [
    ItemKNNConfig(n_neighbors=100, alpha=0.5, normalize_rows=False),
    ItemKNNConfig(n_neighbors=100, alpha=0.9),
    ItemKNNConfig(n_neighbors=15, alpha=0.9),
    ItemKNNConfig(n_neighbors=7, alpha=0.7, normalize_rows=False),
    ItemKNNConfig(n_neighbors=100, similarity="bm25"),
]


@pytest.mark.parametrize(
    "config",
    CONFIGS,
    ids=lambda c: f"{c.similarity}-a{c.alpha}-k{c.n_neighbors}-{c.normalize_rows}",
)
def test_neighbours_equal_the_brute_force_reference(data, config):
    model = ItemKNNRecommender(config).fit(data)
    expected, scale = brute_force(data, config)
    got = model.similarity.toarray()
    if config.n_neighbors >= data.n_tracks - 1:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    else:
        # With a cut-off, each row keeps n_neighbors entries whose values match the reference's
        # and are its best: ties at the cut can be broken either way by the kernel.
        for i in range(data.n_tracks):
            row = np.flatnonzero(got[i])
            assert len(row) == min(config.n_neighbors, np.count_nonzero(_full(data, config)[i]))
            np.testing.assert_allclose(got[i, row], _full(data, config)[i, row], rtol=1e-5)
            assert got[i, row].min() >= np.sort(expected[i])[::-1][len(row) - 1] * (1 - 1e-5)
    np.testing.assert_allclose(model.row_scale, scale, rtol=1e-5)


def _full(data, config):
    return brute_force(data, ItemKNNConfig(**{**config.__dict__, "n_neighbors": data.n_tracks}))[0]


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["cosine", "asymmetric"])
def test_scores_are_row_scaled_sums_over_the_distinct_seeds(data, config):
    model = ItemKNNRecommender(config).fit(data)
    sim, scale = brute_force(data, config)
    queries = Queries.from_lists([[0, 1, 2, 1], [30], [60, 61, 62, 63, 64]])
    ranking = model.recommend(queries, n=20)
    for row in range(len(queries)):
        seeds = np.unique(queries.seeds(row))
        expected = (scale[seeds, None] * sim[seeds]).sum(axis=0)
        expected[seeds] = -np.inf
        order = np.lexsort((np.arange(len(expected)), -expected))[:20]
        assert ranking.ids[row].tolist() == order.tolist()
        np.testing.assert_allclose(ranking.scores[row], expected[order], rtol=1e-5)


def test_explanation_shares_are_the_seeds_terms(data):
    model = ItemKNNRecommender(ItemKNNConfig(n_neighbors=100)).fit(data)
    sim, scale = brute_force(data, model.config)
    track = int(model.recommend(QUERIES.slice(0, 1), 1).ids[0, 0])
    explanation = model.explain(QUERIES, 0, [track])[0]
    seeds = QUERIES.seeds(0)
    terms = scale[seeds] * sim[seeds, track]
    by_seed = {
        item["track_id"]: item["share"] for item in explanation.evidence if item["kind"] == "seed"
    }
    for seed, term in zip(seeds.tolist(), terms, strict=True):
        assert by_seed.get(seed, 0.0) == pytest.approx(term / terms.sum(), rel=1e-5)


def test_bad_parameters_are_refused():
    with pytest.raises(SegueError, match=r"alpha must be within 0\.\.1"):
        ItemKNNConfig(alpha=1.5)
    with pytest.raises(SegueError, match="similarity must be one of cosine, bm25"):
        ItemKNNConfig(similarity="jaccard")
    with pytest.raises(SegueError, match="n_neighbors must be at least 1"):
        ItemKNNConfig(n_neighbors=0)


def test_a_model_saved_without_row_scales_asks_for_retraining(data, tmp_path):
    from segue.errors import InputFileError
    from segue.models.base import Recommender

    ItemKNNRecommender(ItemKNNConfig(n_neighbors=10)).fit(data).save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k != "row_scale"}
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    # As an older segue saved it: no digests in params.json (a file that lost an array behind
    # its digests' back is refused earlier, as not matching them).
    params = json.loads((tmp_path / "m" / "params.json").read_text())
    del params["arrays"]
    (tmp_path / "m" / "params.json").write_text(json.dumps(params))
    with pytest.raises(InputFileError, match=r"has no array 'row_scale'.*retrain it"):
        Recommender.load(tmp_path / "m")
