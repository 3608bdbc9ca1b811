"""The Recommender contract, for every registered model (new models are covered automatically)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Queries, Recommender
from segue.models.config import config_from_pairs
from segue.models.registry import available, get_model_class

MODEL_NAMES = [name for name, _ in available("playlists")]


def planted_data(seed: int = 0) -> PlaylistData:
    """Three clear genres of 30 tracks (0-29, 30-59, 60-89) plus 10 global hits (90-99).

    Each playlist takes 8–12 tracks of one genre (popular ones more often) and 1–2 hits.
    Track 90 is the most popular track overall.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(300):
        genre = p % 3
        weights = 1.0 / np.arange(1, 31)
        own = genre * 30 + rng.choice(
            30, size=rng.integers(8, 13), replace=False, p=weights / weights.sum()
        )
        hits = 90 + rng.choice(
            10, size=rng.integers(1, 3), replace=False, p=np.r_[0.5, np.full(9, 0.5 / 9)]
        )
        rows.append(np.unique(np.concatenate((own, hits))))
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows), indptr), shape=(300, 100)
    )
    names = [("rock", "jazz", "country")[p % 3] for p in range(300)]
    return PlaylistData(
        matrix,
        np.arange(300, dtype=np.int32),
        names,
        (np.arange(100) // 5).astype(np.int32),
        (np.arange(100) // 10).astype(np.int32),
    )


QUERIES = Queries.from_lists(
    [[0, 1, 2], [30, 31], [], [60, 61, 62, 63, 64], [90]], ["rock", "jazz", "country", "", "rock"]
)


@pytest.fixture(scope="module")
def data() -> PlaylistData:
    return planted_data()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_exactly_n_unique_non_seed_ids(name, data):
    model = get_model_class(name)().fit(data)
    ranking = model.recommend(QUERIES, n=40)
    assert ranking.ids.shape == ranking.scores.shape == (5, 40)
    assert ranking.ids.dtype == np.int32 and ranking.scores.dtype == np.float32
    for row in range(len(QUERIES)):
        ids = ranking.ids[row]
        assert len(set(ids.tolist())) == 40
        assert not set(ids.tolist()) & set(QUERIES.seeds(row).tolist())
        assert ids.min() >= 0 and ids.max() < data.n_tracks


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batch_equals_single_and_is_deterministic(name, data):
    model = get_model_class(name)().fit(data)
    batch = model.recommend(QUERIES, n=25)
    for row in range(len(QUERIES)):
        single = model.recommend(QUERIES.slice(row, row + 1), n=25)
        np.testing.assert_array_equal(single.ids[0], batch.ids[row])
    np.testing.assert_array_equal(model.recommend(QUERIES, n=25).ids, batch.ids)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_refit_equals_fit(name, data):
    fresh = get_model_class(name)().fit(data).recommend(QUERIES, n=20).ids
    model = get_model_class(name)().fit(planted_data(seed=99))
    np.testing.assert_array_equal(model.fit(data).recommend(QUERIES, n=20).ids, fresh)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_save_load_round_trip(name, data, tmp_path):
    model = get_model_class(name)().fit(data)
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    a, b = model.recommend(QUERIES, n=30), loaded.recommend(QUERIES, n=30)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_refuses_more_than_the_catalog_and_untrained_use(name, data):
    with pytest.raises(SegueError, match="not trained"):
        get_model_class(name)().recommend(QUERIES, n=5)
    with pytest.raises(SegueError, match="too few"):
        get_model_class(name)().fit(data).recommend(QUERIES, n=96)


def test_popular_ranks_the_most_popular_non_seed_first(data):
    ranking = get_model_class("popular")().fit(data).recommend(QUERIES, n=10)
    order = np.lexsort((np.arange(100), -data.track_popularity))
    assert order[0] == 90
    assert ranking.ids[0, 0] == 90 and ranking.ids[4, 0] == order[1]  # query 4 has 90 as a seed
    assert ranking.scores[0, 0] == data.track_popularity[90]


def test_backfill_is_marked_and_fills_short_candidate_lists(data):
    class Few(Recommender):
        name = "few"

        def _fit(self, data):
            pass

        def _candidates(self, queries, n):
            return np.tile([5, 5, -1, 7], (len(queries), 1)), np.tile(
                [3.0, 3.0, 0.0, 1.0], (len(queries), 1)
            )

    ranking = Few().fit(data).recommend(Queries.from_lists([[7], []]), n=6)
    assert ranking.ids[0, 0] == 5 and 7 not in ranking.ids[0]  # repeat dropped, seed dropped
    assert ranking.ids[1, :2].tolist() == [5, 7]
    assert np.isnan(ranking.scores[1, 2:]).all() and ranking.scores[1, 1] == 1.0
    assert ranking.ids[1, 2] == 90  # back-fill by popularity


def test_params_parse_and_unknown_keys_are_refused():
    @dataclass(frozen=True)
    class Config:
        n_neighbors: int = 10
        alpha: float = 0.5
        normalize: bool = True

    assert config_from_pairs(Config, ["n_neighbors=5", "alpha=0.25", "normalize=false"]) == Config(
        5, 0.25, False
    )
    with pytest.raises(
        SegueError, match=r"unknown parameter n_factors .*takes: alpha, n_neighbors, normalize"
    ):
        config_from_pairs(Config, ["n_factors=3"])
    with pytest.raises(SegueError, match="'many' is not a valid int"):
        config_from_pairs(Config, ["n_neighbors=many"])
    with pytest.raises(SegueError, match="expected key=value"):
        config_from_pairs(Config, ["alpha"])
    with pytest.raises(SegueError, match="unknown model 'nope'"):
        get_model_class("nope")


def test_queries_from_challenge_drop_unknown_seeds():
    entries = [
        {
            "pid": 7,
            "name": "chill",
            "tracks": [{"track_uri": "a"}, {"track_uri": "zz"}, {"track_uri": "b"}],
        },
        {"pid": 8, "tracks": []},
    ]
    queries, unknown = Queries.from_challenge(entries, {"a": 3, "b": 1})
    assert unknown == 1 and queries.seeds(0).tolist() == [3, 1] and queries.seeds(1).tolist() == []
    assert queries.titles == ["chill", ""] and queries.pids.tolist() == [7, 8]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_explanations_cover_each_track_with_shares_that_add_up(name, data):
    model = get_model_class(name)().fit(data)
    ranking = model.recommend(QUERIES, n=10)
    for row in range(len(QUERIES)):
        tracks = ranking.ids[row, :5]
        explanations = model.explain(QUERIES, row, tracks)
        assert [e.track_id for e in explanations] == tracks.tolist()
        for e in explanations:
            assert e.text and e.evidence
            assert all(item["share"] >= 0 and "kind" in item for item in e.evidence)
            assert sum(item["share"] for item in e.evidence) == pytest.approx(1.0)


# Models that use the seeds or the title (everything but the popularity floor) must keep to the
# planted genre: the rock query (rock seeds, title "rock") may not drift into jazz or country.
PERSONAL = [name for name in MODEL_NAMES if name != "popular"]


@pytest.mark.parametrize("name", PERSONAL)
def test_recommendations_keep_to_the_planted_genre(name, data):
    model = get_model_class(name)().fit(data)
    top = model.recommend(QUERIES, n=10).ids
    assert np.sum((top[0] >= 30) & (top[0] < 90)) <= 1, top[0]  # rock seeds + "rock"
    if name != "title":  # title reads titles only
        assert np.sum((top[3] < 60) | (top[3] >= 90)) <= 3, top[3]  # country seeds, no title


def test_similar_is_the_one_track_continuation(data):
    model = get_model_class("popular")().fit(data)
    similar = model.similar([90, 3], n=5)
    assert similar.ids.shape == (2, 5) and 90 not in similar.ids[0] and 3 not in similar.ids[1]
    with pytest.raises(SegueError, match="out of range"):
        model.similar([100])
