"""Live updates (``Recommender.add_playlists``): learning new playlists without retraining.

The right answer is a refit on the training playlists plus the new ones: popularity and
playlistknn must match it exactly; itemknn must match it on the rows of the touched tracks and
differ elsewhere only by the documented factor (``segue/models/itemknn.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import LiveUpdateUnsupported, Queries, Recommender
from segue.models.registry import available, get_model_class
from tests.models.test_contract import QUERIES, planted_data

# New playlists: a rock/jazz crossover pairing tracks that never met in training (5 and 40),
# a country one, and one with a repeated track (counts once).
NEW = Queries.from_lists(
    [[5, 40, 41, 7], [70, 71, 72], [12, 12, 13]], ["crossover", "country", "rock"]
)


def with_new(data: PlaylistData, new: Queries) -> PlaylistData:
    """``data`` with the playlists of ``new`` appended (what a refit would train on)."""
    extra = sp.csr_matrix(
        (np.ones(len(new.seed_ids), np.float32), new.seed_ids, new.indptr),
        shape=(len(new), data.n_tracks),
    )
    extra.sum_duplicates()
    extra.data[:] = 1
    return PlaylistData(
        sp.vstack([data.matrix, extra], format="csr"),
        np.concatenate((data.pids, 1000 + np.arange(len(new), dtype=np.int32))),
        [*data.names, *new.titles],
        data.track_artist,
        data.track_album,
    )


@pytest.fixture(scope="module")
def data() -> PlaylistData:
    return planted_data()


def test_popularity_and_its_order_match_a_recount(data):
    model = get_model_class("popular")().fit(data)
    rng = np.random.default_rng(0)
    grown = data
    for _ in range(5):  # several rounds, with ties and with tracks overtaking each other
        new = Queries.from_lists(
            [rng.choice(100, size=rng.integers(1, 30)).tolist() for _ in range(7)]
        )
        model.add_playlists(new)
        grown = with_new(grown, new)
        expected = grown.track_popularity
        np.testing.assert_array_equal(model.popularity, expected)
        np.testing.assert_array_equal(model._popular_order, np.lexsort((np.arange(100), -expected)))
    assert model.n_playlists == grown.n_playlists
    refit = get_model_class("popular")().fit(grown)
    np.testing.assert_array_equal(
        model.recommend(QUERIES, 30).ids, refit.recommend(QUERIES, 30).ids
    )


def test_playlistknn_live_equals_a_refit(data):
    config = get_model_class("playlistknn").Config(max_seed_playlists=0)
    model = get_model_class("playlistknn")(config).fit(data)
    model.add_playlists(NEW.slice(0, 1))
    model.add_playlists(NEW.slice(1, 3))  # two updates: the live part grows
    refit = get_model_class("playlistknn")(config).fit(with_new(data, NEW))
    probe = Queries.from_lists([[5], [40, 41], [70], [0, 1, 2], [12]])
    live, fresh = model.recommend(probe, 40), refit.recommend(probe, 40)
    np.testing.assert_array_equal(live.ids, fresh.ids)
    np.testing.assert_allclose(live.scores, fresh.scores, rtol=1e-5)
    for row in range(len(probe)):
        a = model.explain(probe, row, live.ids[row, :5])
        b = refit.explain(probe, row, fresh.ids[row, :5])
        assert [e.text for e in a] == [e.text for e in b]


def test_playlistknn_new_playlist_becomes_a_neighbour(data):
    model = get_model_class("playlistknn")().fit(data)
    before = model.recommend(Queries.from_lists([[5]]), 10).ids[0]
    assert 40 not in before  # rock seed: no jazz before
    # Each new playlist [5, 40] has cosine 1/√2 with the query [5] (vote 0.5); a training
    # playlist holding 5 has cosine 1/√len. Twenty new ones outvote all training voters together.
    holders = data.matrix[:, 5].nonzero()[0]
    old_votes = (1.0 / np.diff(data.matrix.indptr)[holders]).sum()
    assert old_votes < 20 * 0.5
    model.add_playlists(Queries.from_lists([[5, 40]] * 20))
    after = model.recommend(Queries.from_lists([[5]]), 10).ids[0]
    assert after[0] == 40
    explanation = model.explain(Queries.from_lists([[5]]), 0, [40])[0]
    assert explanation.evidence[0]["track_id"] == 5


@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_itemknn_touched_rows_equal_a_refit_and_others_differ_by_the_documented_factor(data, alpha):
    config = get_model_class("itemknn").Config(n_neighbors=200, alpha=alpha)  # ≥ tracks: no cut-off
    model = get_model_class("itemknn")(config).fit(data)
    scale_old = model.row_scale.copy()
    model.add_playlists(NEW)
    grown = with_new(data, NEW)
    live = model._rows(np.arange(100)).toarray()
    refit = get_model_class("itemknn")(config).fit(grown)
    truth = refit.similarity.toarray()
    touched = np.unique(NEW.seed_ids)
    np.testing.assert_allclose(live[touched], truth[touched], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.row_scale[touched], refit.row_scale[touched], rtol=1e-5)
    # Untouched rows keep sim(k, i) at i's old popularity: truth · (pop_new(i) / pop_old(i))^(1-α),
    # and their old row scale.
    factor = (grown.track_popularity / data.track_popularity) ** (1 - alpha)
    others = np.setdiff1d(np.arange(100), touched)
    np.testing.assert_allclose(live[others], truth[others] * factor[None, :], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.row_scale[others], scale_old[others])
    assert (factor[touched] > 1).all()  # the approximation is real, not vacuous


def test_itemknn_sequential_updates_stay_within_the_documented_bound(data):
    config = get_model_class("itemknn").Config(n_neighbors=200)
    model = get_model_class("itemknn")(config).fit(data)
    for row in range(len(NEW)):  # one playlist at a time: staleness compounds
        model.add_playlists(NEW.slice(row, row + 1))
    grown = with_new(data, NEW)
    live = model._rows(np.arange(100)).toarray()
    truth = get_model_class("itemknn")(config).fit(grown).similarity.toarray()
    factor = (grown.track_popularity / data.track_popularity) ** (1 - config.alpha)
    # Stale entries only overestimate, by at most the column's popularity growth.
    assert (live >= truth * (1 - 1e-5) - 1e-7).all()
    assert (live <= truth * factor[None, :] * (1 + 1e-5) + 1e-7).all()
    assert np.array_equal(live > 0, truth > 0)


def test_itemknn_new_pair_is_recommended_and_explained(data):
    config = get_model_class("itemknn").Config(alpha=0.5, normalize_rows=False)  # the plain cosine
    model = get_model_class("itemknn")(config).fit(data)
    assert 40 not in model.recommend(Queries.from_lists([[5]]), 20).ids[0]
    model.add_playlists(Queries.from_lists([[5, 40]] * 5))
    ranking = model.recommend(Queries.from_lists([[5]]), 90)
    # They never met in training: the cosine is the 5 new co-occurrences over the new popularities.
    pop = data.track_popularity
    at = list(ranking.ids[0]).index(40)
    assert ranking.scores[0, at] == pytest.approx(
        5 / np.sqrt((pop[5] + 5) * (pop[40] + 5)), rel=1e-5
    )
    assert model.explain(Queries.from_lists([[5]]), 0, [40])[0].evidence[0]["track_id"] == 5


@pytest.mark.parametrize("name", ["popular", "itemknn", "playlistknn"])
def test_saving_after_live_updates_keeps_them(name, data, tmp_path):
    model = get_model_class(name)().fit(data)
    model.add_playlists(NEW)
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    np.testing.assert_array_equal(loaded.popularity, model.popularity)
    np.testing.assert_array_equal(
        loaded.recommend(QUERIES, 30).ids, model.recommend(QUERIES, 30).ids
    )


LIVE = {"popular", "itemknn", "playlistknn"}


@pytest.mark.parametrize("name", [n for n, _ in available("playlists") if n not in LIVE])
def test_models_that_cannot_learn_live_say_so_and_stay_unchanged(name, data):
    model = get_model_class(name)().fit(data)
    assert not model.learns_live
    before = model.recommend(QUERIES, 20).ids
    popularity = model.popularity.copy()
    with pytest.raises(LiveUpdateUnsupported, match="cannot learn new playlists live"):
        model.add_playlists(NEW)
    np.testing.assert_array_equal(model.popularity, popularity)
    np.testing.assert_array_equal(model.recommend(QUERIES, 20).ids, before)


def test_bm25_itemknn_refuses_and_bad_ids_are_refused(data):
    model = get_model_class("itemknn")(get_model_class("itemknn").Config(similarity="bm25")).fit(
        data
    )
    with pytest.raises(LiveUpdateUnsupported, match="cosine only"):
        model.add_playlists(NEW)
    with pytest.raises(SegueError, match=r"out of range 0\.\.99"):
        get_model_class("popular")().fit(data).add_playlists(Queries.from_lists([[3, 100]]))
    assert all(get_model_class(n)().learns_live for n in LIVE)
