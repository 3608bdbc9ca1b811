"""The hybrid: query groups, the validation carve, weight tuning with known answers, fusion, explanations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation.split import hold_out_queries
from segue.models.base import Queries, Recommender
from segue.models.ensemble import scaled_lists as _scaled_lists
from segue.models.hybrid import (
    N_GROUPS,
    HybridConfig,
    HybridRecommender,
    query_groups,
    tune_weights,
)
from segue.models.registry import get_model_class
from tests.models.test_contract import QUERIES, planted_data

SMALL = HybridConfig(components="title,itemknn,als", validation_per_group=20)


@pytest.fixture(scope="module")
def data():
    return planted_data()


@pytest.fixture(scope="module")
def model(data):
    return HybridRecommender(SMALL).fit(data)


def test_groups_follow_title_and_seed_count():
    seeds = [
        [],
        [],
        [4],
        [1, 2],
        list(range(7)),
        list(range(8)),
        list(range(17)),
        list(range(18)),
        list(range(62)),
        list(range(63)),
        [5, 5, 5],
    ]
    titles = ["x", "", "x", "", "x", "x", "", "x", "", "x", "x"]
    groups = query_groups(Queries.from_lists(seeds, titles))
    # class 0: 0 seeds, 1: 1, 2: 2–7, 3: 8–17, 4: 18–62, 5: 63+; a repeated seed counts once.
    assert groups.tolist() == [1, 0, 3, 4, 5, 7, 6, 9, 8, 11, 3]
    assert groups.max() < N_GROUPS


def test_the_carve_holds_out_whole_playlists_and_splits_their_tracks(data):
    held = hold_out_queries(data, per_group=10, rng=np.random.default_rng(0))
    chosen = np.isin(data.pids, held.queries.pids)
    assert held.train.n_playlists == data.n_playlists - chosen.sum()
    assert not np.isin(held.train.pids, held.queries.pids).any()
    assert held.train.n_tracks == data.n_tracks
    # Every held-out playlist: seeds + truth are exactly its tracks, with no overlap.
    row_of = {int(p): i for i, p in enumerate(data.pids)}
    for q in range(len(held.queries)):
        tracks = set(data.matrix[row_of[int(held.queries.pids[q])]].indices.tolist())
        seeds, truth = set(held.queries.seeds(q).tolist()), set(held.truth[q].tolist())
        assert not seeds & truth and seeds | truth == tracks
    # The planted playlists have 9–14 tracks: room for 0, 1 or 5 seeds and 5 tracks to find
    # (groups 1–5); each group's seed count and title flag is what the query shows.
    assert set(held.groups.tolist()) == {1, 2, 3, 4, 5}
    np.testing.assert_array_equal(held.groups, query_groups(held.queries))
    assert len(held.queries) <= 0.2 * data.n_playlists


def _long_playlists(n_playlists: int, length: int, titled: float, seed: int = 0) -> PlaylistData:
    """Playlists all of one long length over 2,000 tracks; a share ``titled`` has a title."""
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(2000, length, replace=False) for _ in range(n_playlists)])
    rows = np.repeat(np.arange(n_playlists), length)
    matrix = sp.csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols)), shape=(n_playlists, 2000)
    )
    names = [f"list {i}" if rng.random() < titled else "" for i in range(n_playlists)]
    return PlaylistData(
        matrix,
        np.arange(n_playlists, dtype=np.int64),
        names,
        np.arange(2000, dtype=np.int32) % 50,
        np.arange(2000, dtype=np.int32) % 300,
        None,
    )


def test_the_carve_fills_every_group_when_all_playlists_are_long():
    # Only long playlists (as real curated ones are): every group but the empty query gets its
    # equal share of the 20% budget, 1,000 playlists → 200 → 18 per group for 11 groups.
    data = _long_playlists(1000, 160, titled=0.7)
    held = hold_out_queries(data, per_group=300, rng=np.random.default_rng(1))
    counts = held.counts()
    assert counts[0] == 0 and (counts[1:] == 200 // 11).all()
    np.testing.assert_array_equal(held.groups, query_groups(held.queries))
    # Seed counts are the groups' own; the title is shown exactly in the titled groups.
    from segue.evaluation.split import SEED_CLASSES

    np.testing.assert_array_equal(
        held.queries.lengths(), [SEED_CLASSES[g // 2] for g in held.groups]
    )
    assert all(
        bool(t) == bool(g % 2) for t, g in zip(held.queries.titles, held.groups, strict=True)
    )


def test_the_carve_caps_seed_counts_by_length():
    # 60-track playlists leave no room for 100 seeds: those groups stay empty, the rest fill.
    held = hold_out_queries(
        _long_playlists(600, 60, titled=1.0), per_group=5, rng=np.random.default_rng(2)
    )
    counts = held.counts()
    assert counts[10] == counts[11] == 0 and (counts[1:10] == 5).all()


def test_a_thin_group_keeps_the_overall_weights_and_title_rules_title_only_queries():
    # Group 1 (title only) has 10 queries where only component A (the title model) answers;
    # group 9 (title + 25 seeds) has 3 queries: too few, so it keeps the overall weights.
    truth = [np.array([1])] * 10 + [np.array([4])] * 40 + [np.array([6])] * 3
    a = _lists([{1: 1.0, 8: 0.5}] * 10 + [{8: 1.0, 4: 0.1}] * 40 + [{8: 1.0}] * 3)
    b = _lists([{}] * 10 + [{4: 1.0, 8: 0.2}] * 40 + [{6: 1.0}] * 3)
    groups = np.array([1] * 10 + [7] * 40 + [9] * 3)
    weights = tune_weights([a, b], truth, groups, min_queries=10)
    overall = tune_weights([a, b], truth, np.zeros(len(truth), dtype=np.int64), min_queries=10)[0]
    assert weights[1, 0] > 0  # title-only queries keep the title model
    np.testing.assert_array_equal(weights[9], overall)
    np.testing.assert_array_equal(weights[0], overall)  # no queries at all


def _lists(rows: list[dict[int, float]], n_tracks: int = 10) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [t for row in rows for t in row]
    v = [s for row in rows for s in row.values()]
    return sp.csr_matrix((np.array(v, dtype=np.float32), (r, c)), shape=(len(rows), n_tracks))


def test_tuning_finds_the_component_that_is_right_for_each_group():
    # Queries 0–1 (group 1: titled, no seeds): component A ranks the truth first, B ranks junk.
    # Queries 2–3 (group 5: titled, 5 seeds): the other way round.
    truth = [np.array([1, 2]), np.array([3]), np.array([4, 5]), np.array([6])]
    a = _lists([{1: 1.0, 2: 0.9, 7: 0.5}, {3: 1.0, 8: 0.4}, {8: 1.0, 9: 0.9}, {7: 1.0, 9: 0.5}])
    b = _lists([{8: 1.0, 9: 0.9}, {9: 1.0, 7: 0.3}, {4: 1.0, 5: 0.8, 9: 0.2}, {6: 1.0}])
    weights = tune_weights([a, b], truth, np.array([1, 1, 5, 5]), min_queries=1)
    assert weights.shape == (N_GROUPS, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights[1, 0] > weights[1, 1] and weights[5, 1] > weights[5, 0]
    # Fused with its group's weights, each query's truth comes first.
    for q, g in ((0, 1), (2, 5)):
        fused = weights[g, 0] * a[q].toarray()[0] + weights[g, 1] * b[q].toarray()[0]
        assert set(np.argsort(-fused, kind="stable")[:2].tolist()) == set(truth[q].tolist())


def test_scaled_lists_drop_seeds_padding_repeats_and_cut_at_depth():
    batch = Queries.from_lists([[3], []])
    ids = np.array([[3, 5, 5, 7, -1, 2], [1, 2, 4, 6, 8, 9]])
    scores = np.array(
        [[9.0, 4.0, 4.0, 2.0, 0.0, -1.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]], dtype=np.float32
    )
    lists = _scaled_lists(batch, ids, scores, depth=3, n_tracks=10).toarray()
    # Row 0: seed 3 and the repeat of 5 dropped, the top score (5 → 4.0) scales to 1, track 2's
    # negative score is dropped. Row 1: only the first three tracks.
    assert lists[0].tolist() == pytest.approx([0, 0, 0, 0, 0, 1.0, 0, 0.5, 0, 0])
    assert np.flatnonzero(lists[1]).tolist() == [1, 2, 4]
    assert lists[1, 1] == 1.0 and lists[1, 4] == pytest.approx(0.6)


def test_scores_are_the_weighted_sum_of_the_components_scaled_lists(model):
    ranking = model.recommend(QUERIES, n=20)
    groups = query_groups(QUERIES)
    for row in range(len(QUERIES)):
        one = QUERIES.slice(row, row + 1)
        expected = sum(
            model.weights[groups[row], c] * model._component_lists(comp, one).toarray()[0]
            for c, comp in enumerate(model.components)
        )
        scored = ~np.isnan(ranking.scores[row])
        np.testing.assert_allclose(
            ranking.scores[row][scored], expected[ranking.ids[row][scored]], rtol=1e-5
        )
        assert np.all(np.diff(ranking.scores[row][scored]) <= 1e-7)


def test_weights_are_tuned_per_group_and_described(model):
    assert model.weights.shape == (N_GROUPS, 3)
    np.testing.assert_allclose(model.weights.sum(axis=1), 1.0)
    assert model.tuned_groups.sum() > 0
    labels = model.describe_weights()
    assert labels[1][0] == "title, 0 seeds" and set(labels[1][1]) == {"title", "itemknn", "als"}
    # A title-only query can only be answered by the title component: its group leans on it
    # (the other two have nothing to say without seeds, so any weight on them changes nothing).
    title_only = model.recommend(Queries.from_lists([[]], ["rock"]), n=10).ids[0]
    assert np.sum(title_only < 30) >= 8


def test_explanations_name_components_with_their_weights(model):
    ranking = model.recommend(QUERIES, n=5)
    explanations = model.explain(QUERIES, 0, ranking.ids[0])
    for e in explanations:
        kinds = {item["kind"] for item in e.evidence}
        assert kinds <= {"component", "popularity"}
        components = [item for item in e.evidence if item["kind"] == "component"]
        assert sum(item["share"] for item in e.evidence) == pytest.approx(1.0)
        for item in components:
            assert (
                item["component"] in {"title", "itemknn", "als"}
                and item["weight"] > 0
                and item["text"]
            )
            assert sum(sub["share"] for sub in item["evidence"]) == pytest.approx(1.0)
        assert e.text.startswith(components[0]["text"].rstrip("."))
    # The rock query has rock seeds and the title "rock": the leading explanation cites a seed or the title.
    assert any("Because the playlist has" in e.text or "rock" in e.text for e in explanations)


def test_save_load_keeps_components_and_weights(model, tmp_path):
    model.save(tmp_path / "hybrid")
    loaded = Recommender.load(tmp_path / "hybrid")
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert [c.name for c in loaded.components] == ["title", "itemknn", "als"]
    np.testing.assert_array_equal(
        loaded.recommend(QUERIES, 30).ids, model.recommend(QUERIES, 30).ids
    )
    a = loaded.explain(QUERIES, 1, loaded.recommend(QUERIES, 3).ids[1])
    b = model.explain(QUERIES, 1, model.recommend(QUERIES, 3).ids[1])
    assert [e.text for e in a] == [e.text for e in b]


def test_component_params_reach_the_components(data):
    config = HybridConfig(
        components="itemknn,als",
        params={"als": {"factors": "8"}, "itemknn": {"n_neighbors": 5}},
        validation_per_group=10,
    )
    assert config.params == {"als": {"factors": 8}, "itemknn": {"n_neighbors": 5}}  # typed
    fitted = HybridRecommender(config).fit(data)
    assert fitted.components[1].item_factors.shape[1] == 8
    assert np.diff(fitted.components[0].similarity.indptr).max() <= 5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"components": "title,nope"}, "unknown model 'nope'"),
        ({"components": ""}, "components is empty"),
        ({"components": "als,als"}, "listed twice"),
        ({"components": "hybrid"}, "cannot contain a hybrid"),
        ({"components": "gat"}, "cannot contain a gat"),
        ({"params": {"svd": {"factors": 3}}}, "given for svd, which is not among the components"),
        ({"params": {"als": {"nope": 3}}}, "hybrid: als: unknown parameter nope"),
        ({"params": {"als": {"factors": "many"}}}, "not a valid int"),
        ({"params": {"als": {"factors": 2.5}}}, "factors: expected an integer"),
        ({"depth": 0}, "depth must be at least 1"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(SegueError, match=message):
        HybridConfig(**{"components": "title,itemknn,als", **params})


def test_registered():
    assert get_model_class("hybrid") is HybridRecommender


def test_fit_from_fitted_components_equals_fit(data, model):
    fitted = [
        get_model_class(n)(c).fit(data)
        for n, c in HybridRecommender(SMALL).component_configs().items()
    ]
    reused = HybridRecommender(SMALL).fit_from(data, fitted)
    np.testing.assert_array_equal(reused.weights, model.weights)
    np.testing.assert_array_equal(
        reused.recommend(QUERIES, 30).ids, model.recommend(QUERIES, 30).ids
    )
    with pytest.raises(SegueError, match="expected components"):
        HybridRecommender(SMALL).fit_from(data, fitted[:2])
    other = [
        get_model_class(n)(c).fit(planted_data(seed=5))
        for n, c in HybridRecommender(SMALL).component_configs().items()
    ]
    other[0].trained_on = {"path": "elsewhere", "n_playlists": 1}
    with pytest.raises(SegueError, match="was trained on elsewhere"):
        HybridRecommender(SMALL).fit_from(data, other)


def test_fit_from_a_directory_loads_the_components_after_tuning_and_checks_them(
    data, model, tmp_path
):
    for component in model.components:
        component.save(tmp_path / component.name)
    reused = HybridRecommender(SMALL).fit_from_directory(data, tmp_path)
    np.testing.assert_array_equal(reused.weights, model.weights)
    np.testing.assert_array_equal(
        reused.recommend(QUERIES, 30).ids, model.recommend(QUERIES, 30).ids
    )
    # A component saved with other parameters, or none at all, is refused by name.
    other = HybridConfig(
        components="title,itemknn,als", params={"als": {"factors": 8}}, validation_per_group=20
    )
    with pytest.raises(
        SegueError,
        match=r"als model in .* trained with other parameters: factors=128 \(configured 8\)",
    ):
        HybridRecommender(other).fit_from_directory(data, tmp_path)
    with pytest.raises(SegueError, match="no trained model in"):
        HybridRecommender(SMALL).fit_from_directory(data, tmp_path / "nowhere")


def test_a_saved_ensemble_shares_its_loaded_components_files_and_outlives_them(
    data, model, tmp_path
):
    import os
    import shutil

    from segue.models.base import ARRAYS_FILE, write_model

    trained = tmp_path / "models"
    for component in model.components:
        component.save(trained / component.name)
    reused = HybridRecommender(SMALL).fit_from_directory(data, trained)
    reused.save(tmp_path / "hybrid")
    for name in ("title", "itemknn", "als"):
        shared = tmp_path / "hybrid" / "components" / name / ARRAYS_FILE
        assert os.stat(shared).st_ino == os.stat(trained / name / ARRAYS_FILE).st_ino  # one file
        assert os.stat(shared).st_nlink == 2
    expected = model.recommend(QUERIES, 30).ids
    # The components' own directories retrained (atomically: new files) or deleted: the
    # ensemble keeps the files it was saved with.
    model.components[1].save(trained / "itemknn")
    shutil.rmtree(trained / "als")
    loaded = Recommender.load(tmp_path / "hybrid")
    np.testing.assert_array_equal(loaded.recommend(QUERIES, 30).ids, expected)

    # Saved again after loading, the components are shared with the first copy; a component
    # fitted in memory (no file holds it) is written in full.
    loaded.save(tmp_path / "again")
    first = tmp_path / "hybrid" / "components" / "title" / ARRAYS_FILE
    assert os.stat(first).st_nlink == 3  # the trained title, the hybrid, the copy
    model.save(tmp_path / "fitted")
    assert os.stat(tmp_path / "fitted" / "components" / "title" / ARRAYS_FILE).st_nlink == 1
    np.testing.assert_array_equal(
        Recommender.load(tmp_path / "again").recommend(QUERIES, 30).ids, expected
    )

    # A directory saved before components had their own (arrays inside the ensemble's file,
    # under <component>/<key>) still loads.
    inline = {f"{c.name}/{k}": v for c in model.components for k, v in c.learned_arrays().items()}
    params = model.saved_params()
    with write_model(tmp_path / "old", model, params, {**model.saved_arrays(), **inline}):
        pass
    old = Recommender.load(tmp_path / "old")
    np.testing.assert_array_equal(old.recommend(QUERIES, 30).ids, expected)

    # A component directory replaced by a model with other parameters is refused by name.
    shutil.rmtree(tmp_path / "again" / "components" / "als")
    get_model_class("als")(get_model_class("als").Config(factors=8)).fit(data).save(
        tmp_path / "again" / "components" / "als"
    )
    with pytest.raises(
        SegueError,
        match=r"components/als/params.json: holds als with other parameters than the hybrid",
    ):
        Recommender.load(tmp_path / "again")
