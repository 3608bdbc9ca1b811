"""The ``title`` model on hand-made playlists whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import ARRAYS_FILE, Queries, Recommender
from segue.models.config import config_from_pairs
from segue.models.registry import get_model_class
from segue.models.title import TitleConfig, TitleRecommender, _keep_top_per_row

N_TRACKS = 40
CHILL = {0, 1, 2, 3}
WORKOUT = [10, 11, 12]  # in 20, 15 and 10 of the 20 workout playlists
POPULAR = [30, 31, 32]  # in every untitled playlist: the most popular tracks overall


def titled_data() -> PlaylistData:
    """121 playlists: 60 untitled ones of popular tracks (30–39), and titled groups:

    * "chill" ×20: tracks 0, 1, 2 in all, 3 in half;   * "chill vibes" ×10: tracks 0 and 5;
    * "Workout" ×20: 10 in all, 11 in 15, 12 in 10;     * "rock" ×10: tracks 20 and 21;
    * "jams 2k17" ×1: tracks 25 and 26 (a title seen once).
    """
    rows, names = [], []
    for i in range(60):
        rows.append([*POPULAR, 33 + i % 7])
        names.append("")
    for i in range(20):
        rows.append([0, 1, 2] + ([3] if i % 2 else []))
        names.append("chill")
    for i in range(20):
        rows.append([10] + ([11] if i < 15 else []) + ([12] if i < 10 else []))
        names.append("Workout")
    rows += [[0, 5]] * 10 + [[20, 21]] * 10 + [[25, 26]]
    names += ["chill vibes"] * 10 + ["rock"] * 10 + ["jams 2k17"]
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows).astype(np.int32), indptr),
        shape=(len(rows), N_TRACKS),
    )
    matrix.sort_indices()
    return PlaylistData(
        matrix,
        np.arange(len(rows), dtype=np.int32),
        names,
        np.arange(N_TRACKS, dtype=np.int32),
        np.arange(N_TRACKS, dtype=np.int32),
    )


@pytest.fixture(scope="module")
def data() -> PlaylistData:
    return titled_data()


@pytest.fixture(scope="module")
def model(data) -> TitleRecommender:
    return TitleRecommender().fit(data)


def rank(model, titles, n=10, seeds=None):
    return model.recommend(Queries.from_lists(seeds or [[] for _ in titles], titles), n=n)


def test_is_registered_with_a_description():
    cls = get_model_class("title")
    assert cls is TitleRecommender and cls.description and "\n" not in cls.description


def test_exact_title_ranks_its_tracks_first_by_how_many_playlists_hold_them(model):
    ranking = rank(model, ["Workout", "rock"])
    assert ranking.ids[0, :3].tolist() == WORKOUT
    assert ranking.ids[1, :2].tolist() == [20, 21]
    assert not np.isnan(ranking.scores[:, :3]).any()
    assert np.all(np.diff(ranking.scores[0, :5]) <= 0)


@pytest.mark.parametrize("title", ["workouts", "WORKOUT!!", "  work-outs ", "Wooorkout 💪"])
def test_spelling_variants_find_the_workout_playlists(model, title):
    assert rank(model, [title]).ids[0, :3].tolist() == WORKOUT


@pytest.mark.parametrize("title", ["Chiiill 😎", "CHILL!!!", "chill 🔥🔥", "chil"])
def test_stretched_and_emoji_titles_find_chill(model, title):
    ranking = rank(model, [title])
    assert set(ranking.ids[0, :3].tolist()) <= CHILL
    assert ranking.ids[0, 0] == 0  # in "chill" and in the neighbour "chill vibes"
    evidence = model.explain(Queries.from_lists([[]], [title]), 0, ranking.ids[0, :1])[0].evidence
    assert evidence[0]["kind"] == "title" and evidence[0]["title"] in ("chill", "chill vibes")


def test_exact_match_dominates_and_neighbours_add(model):
    ranking = rank(model, ["chill"], n=12)
    ids = ranking.ids[0].tolist()
    assert ids[:3] == [0, 1, 2]  # chill's own tracks lead
    # Track 5 is only in "chill vibes", a neighbour: it gets a real score, below chill's track 3,
    # and above tracks more popular overall (10, 11) that no chill-like title holds.
    assert not np.isnan(ranking.scores[0, ids.index(5)])
    assert ids.index(3) < ids.index(5) < min(ids.index(10), ids.index(11))


def test_unknown_or_missing_title_is_pure_popularity(model, data):
    popular = get_model_class("popular")().fit(data).recommend(Queries.from_lists([[], []]), n=10)
    ranking = rank(model, ["zzqx qqq", ""])
    np.testing.assert_array_equal(ranking.ids, popular.ids)
    assert np.isnan(ranking.scores).all()


def test_seeds_are_ignored_except_for_removal(model):
    ranking = rank(model, ["Workout", "Workout"], seeds=[[], [10]])
    assert ranking.ids[1, :2].tolist() == [11, 12]
    assert ranking.ids[0, 1:].tolist()[:9] == ranking.ids[1, :9].tolist()


def test_rarely_seen_title_defers_to_popularity_unless_shrinkage_is_off(data):
    shrunk = rank(TitleRecommender().fit(data), ["jams 2k17"], n=30).ids[0].tolist()
    assert shrunk[:3] == POPULAR  # one playlist is weak evidence...
    unplayed = [shrunk.index(t) for t in np.flatnonzero(data.track_popularity == 0) if t in shrunk]
    assert max(shrunk.index(25), shrunk.index(26)) < min(unplayed)  # ...but it is evidence
    raw = rank(TitleRecommender(TitleConfig(shrinkage=0.0)).fit(data), ["jams 2k17"]).ids[0]
    assert raw[:2].tolist() == [25, 26]


def test_max_tracks_per_title_keeps_the_most_frequent(data):
    model = TitleRecommender(TitleConfig(max_tracks_per_title=2)).fit(data)
    assert np.diff(model._counts.indptr).max() == 2
    workout = model._key_index["workout"]
    assert model._counts[workout].indices.tolist() == [10, 11]
    assert model._counts[workout].data.tolist() == [20, 15]


def test_keep_top_per_row_breaks_ties_by_lower_column():
    m = sp.csr_matrix(np.array([[2.0, 1, 2, 2, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 7]]))
    assert _keep_top_per_row(m, 2).toarray().tolist() == [
        [2, 0, 2, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 7],
    ]


def test_explanations_name_the_title_and_shares_add_up(model):
    queries = Queries.from_lists([[], [], []], ["Chill", "chiiill 😎", ""])
    explained = model.explain(queries, 0, [0, 5, 30])
    first = explained[0]
    assert first.evidence[0] == {
        "kind": "title",
        "title": "chill",
        "share": pytest.approx(first.evidence[0]["share"]),
        "playlists": 20,
        "title_playlists": 20,
        "similarity": 1.0,
        "exact": True,
    }
    assert "Playlists called 'Chill' often include it (20 of 20)" in first.text
    assert any(
        e["kind"] == "title" and e["title"] == "chill vibes" and e["playlists"] == 10
        for e in first.evidence
    )
    assert any(e["kind"] == "popularity" for e in first.evidence)
    neighbour_only = explained[1]
    assert [e["title"] for e in neighbour_only.evidence if e["kind"] == "title"] == ["chill vibes"]
    assert not neighbour_only.evidence[0]["exact"]
    assert explained[2].evidence == [{"kind": "popularity", "playlists": 60, "share": 1.0}]
    for e in [*explained, *model.explain(queries, 1, [0, 1, 31]), *model.explain(queries, 2, [30])]:
        assert sum(item["share"] for item in e.evidence) == pytest.approx(1.0)
        assert all(item["share"] >= 0 for item in e.evidence) and e.text
    assert "like 'chiiill 😎'" in model.explain(queries, 1, [1])[0].text
    assert "no title" in model.explain(queries, 2, [30])[0].text


def test_save_load_round_trip_is_identical_and_pickle_free(model, data, tmp_path):
    model.save(tmp_path / "title")
    with np.load(tmp_path / "title" / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
    loaded = Recommender.load(tmp_path / "title")
    assert isinstance(loaded, TitleRecommender) and loaded.config == model.config
    titles = ["Workout", "chill", "Chiiill 😎", "jams 2k17", "", "nothing like it", "rock", "vibes"]
    a, b = rank(model, titles, n=30), rank(loaded, titles, n=30)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert loaded._examples == model._examples and loaded._keys == model._keys
    queries = Queries.from_lists([[]], ["chill"])
    assert [e.evidence for e in loaded.explain(queries, 0, [0, 5])] == [
        e.evidence for e in model.explain(queries, 0, [0, 5])
    ]


def test_batch_of_repeated_titles_equals_single_queries(model):
    titles = ["chill", "Workout", "chill", "", "Chill!", "rock", "workouts"]
    batch = rank(model, titles, n=15)
    for row, title in enumerate(titles):
        np.testing.assert_array_equal(rank(model, [title], n=15).ids[0], batch.ids[row])


def test_no_titles_at_all_gives_popularity(data):
    untitled = PlaylistData(
        data.matrix, data.pids, [""] * data.n_playlists, data.track_artist, data.track_album
    )
    model = TitleRecommender().fit(untitled)
    assert np.isnan(rank(model, ["chill"]).scores).all()


def test_params_parse_and_unknown_or_bad_values_are_refused():
    config = config_from_pairs(TitleConfig, ["n_neighbors=5", "min-similarity=0.5", "shrinkage=0"])
    assert config == TitleConfig(n_neighbors=5, min_similarity=0.5, shrinkage=0.0)
    with pytest.raises(
        SegueError,
        match=r"unknown parameter n_factors .*takes: max_tracks_per_title, min_similarity",
    ):
        config_from_pairs(TitleConfig, ["n_factors=3"])
    with pytest.raises(SegueError, match="'many' is not a valid int"):
        config_from_pairs(TitleConfig, ["n_neighbors=many"])
    with pytest.raises(SegueError, match=r"min_similarity must be in \(0, 1\]"):
        config_from_pairs(TitleConfig, ["min_similarity=2"])
    with pytest.raises(SegueError, match="max_tracks_per_title must be ≥ 1"):
        TitleConfig(max_tracks_per_title=0)
