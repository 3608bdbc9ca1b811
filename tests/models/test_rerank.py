"""The two-stage ranker: labels and recall, no leak from held-out playlists, faithful explanations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation.split import hold_out_queries
from segue.features.ranking import Candidates
from segue.models.base import Queries, Recommender
from segue.models.registry import get_model_class
from segue.models.rerank import (
    RerankConfig,
    RerankRecommender,
    _labels,
    _pool_recall,
    _top_per_query,
)
from tests.models.test_contract import QUERIES, planted_data

SMALL = RerankConfig(components="title,itemknn,als", validation_per_group=20)


@pytest.fixture(scope="module")
def data():
    return planted_data()


@pytest.fixture(scope="module")
def model(data):
    return RerankRecommender(SMALL).fit(data)


def test_labels_mark_each_querys_own_held_out_tracks():
    candidates = Candidates(
        np.array([0, 3, 5]), np.array([4, 7, 9, 4, 2]), np.zeros((5, 0), np.float32)
    )
    # Track 4 is held out for query 1 only; track 9 for query 0.
    assert _labels(candidates, [np.array([9, 11]), np.array([4])]).tolist() == [0, 0, 1, 1, 0]


def test_pool_recall_counts_held_out_tracks_within_each_size():
    a = sp.csr_matrix(np.array([[0.9, 0.8, 0.7, 0.0], [0.0, 0.0, 0.0, 0.5]], dtype=np.float32))
    # Query 0 holds out 1 and 2 (places 2 and 3 of its pool), query 1 holds out 0 (not pooled).
    recall = _pool_recall([a], [np.array([1, 2]), np.array([0])], (1, 2, 3))
    assert recall == pytest.approx([0.0, 0.25, 0.5])


def test_top_per_query_orders_by_score_and_pads():
    candidates = Candidates(np.array([0, 3, 3]), np.array([5, 6, 7]), np.zeros((3, 0), np.float32))
    ids, scores = _top_per_query(candidates, np.array([0.1, 0.9, 0.1]), 2)
    assert ids.tolist() == [[6, 5], [-1, -1]] and scores[0].tolist() == pytest.approx([0.9, 0.1])


def _random_data(seed: int, n_playlists: int) -> PlaylistData:
    rng = np.random.default_rng(seed)
    rows = [rng.choice(60, rng.integers(5, 40), replace=False) for _ in range(n_playlists)]
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows), indptr), shape=(n_playlists, 60)
    )
    matrix.sort_indices()
    names = ["" if rng.random() < 0.3 else f"t{i % 5}" for i in range(n_playlists)]
    return PlaylistData(
        matrix,
        np.arange(n_playlists, dtype=np.int32) * 7 + 3,
        names,
        (np.arange(60) % 9).astype(np.int32),
        (np.arange(60) % 13).astype(np.int32),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_playlists=st.integers(10, 120), per_group=st.integers(1, 30))
def test_no_carved_playlist_or_held_out_track_reaches_training(seed, n_playlists, per_group):
    data = _random_data(seed, n_playlists)
    held = hold_out_queries(data, per_group, np.random.default_rng(seed))
    # The playlists the carve shows as queries are gone from the data the components train on...
    assert not np.isin(held.train.pids, held.queries.pids).any()
    assert held.train.n_playlists + len(held.queries) == data.n_playlists
    # ...and every query's seeds and held-out tracks are its playlist's tracks, split without overlap.
    row_of = {int(p): i for i, p in enumerate(data.pids)}
    for q in range(len(held.queries)):
        tracks = data.matrix[row_of[int(held.queries.pids[q])]].indices
        seeds, truth = held.queries.seeds(q), held.truth[q]
        assert not np.isin(truth, seeds).any()
        np.testing.assert_array_equal(np.sort(np.concatenate([seeds, truth])), np.sort(tracks))
    # The kept playlists are untouched.
    kept = np.isin(data.pids, held.train.pids)
    assert (data.matrix[kept] != held.train.matrix).nnz == 0


def test_the_ranker_trains_its_components_without_the_carved_playlists(data, monkeypatch):
    seen: list[np.ndarray] = []
    original = Recommender.fit

    def spy(self, fitted_on):
        seen.append(np.asarray(fitted_on.pids).copy())
        return original(self, fitted_on)

    monkeypatch.setattr(Recommender, "fit", spy)
    RerankRecommender(SMALL).fit(data)
    held = hold_out_queries(
        data,
        SMALL.validation_per_group,
        np.random.default_rng([SMALL.seed, 6161, 0]),
        max_share=SMALL.max_share,
    )
    # seen[0] is the ranker's own fit; then 3 components per carve, 3 carves (30 queries each on
    # 300 playlists: fewer than training_queries), then the final fits on everything.
    tuning, final = seen[1:10], seen[10:]
    assert len(tuning) == 9 and len(final) == 3
    for pids in tuning[:3]:
        assert not np.isin(pids, held.queries.pids).any()
        assert len(pids) == data.n_playlists - len(held.queries)
    for pids in final:
        np.testing.assert_array_equal(pids, data.pids)


def test_title_only_queries_are_ranked_by_the_title_model(model, data):
    title = get_model_class("title")().fit(data)
    queries = Queries.from_lists([[], []], ["rock", "jazz"])
    np.testing.assert_array_equal(
        model.recommend(queries, 20).ids, title.recommend(queries, 20).ids
    )
    explanation = model.explain(queries, 0, model.recommend(queries, 3).ids[0])
    assert all(e.evidence[0]["component"] == "title" for e in explanation)


def test_explanations_are_the_trees_own_contributions(model):
    row = 0
    one = QUERIES.slice(row, row + 1)
    candidates = model._pool(one)
    raw = model.booster.predict(candidates.features, raw_score=True)
    contributions = model.booster.predict(candidates.features, pred_contrib=True)
    # TreeSHAP: per candidate, the contributions and the bias add up to the score that ranked it.
    np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=1e-6, atol=1e-6)
    top = model.recommend(QUERIES, 5).ids[row]
    explanations = model.explain(QUERIES, row, top)
    lift = contributions[:, :-1] - contributions[:, :-1].mean(axis=0)
    at = {int(t): i for i, t in enumerate(candidates.track_ids)}
    for e in explanations:
        items = [i for i in e.evidence if i["kind"] == "feature"]
        assert items, e
        values = [i["contribution"] for i in items]
        assert values == sorted(values, reverse=True) and values[0] > 0
        # The leading source's contribution is the lift of its columns for this track.
        source = items[0]["source"]
        from segue.models.rerank import _sources

        columns = _sources([c.name for c in model.components])[source]
        assert lift[at[e.track_id], columns].sum() == pytest.approx(values[0])


def test_candidate_recall_is_recorded_and_saved(model, tmp_path):
    assert (
        len(model.candidate_recall) == 3
        and 0 < model.candidate_recall[0] <= model.candidate_recall[-1] <= 1
    )
    model.save(tmp_path / "rerank")
    loaded = Recommender.load(tmp_path / "rerank")
    np.testing.assert_array_equal(loaded.candidate_recall, model.candidate_recall)
    np.testing.assert_array_equal(
        loaded.recommend(QUERIES, 30).ids, model.recommend(QUERIES, 30).ids
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"components": "title,hybrid"}, "cannot contain a hybrid"),
        ({"components": "rerank"}, "cannot contain a rerank"),
        ({"n_candidates": 0}, "n_candidates must be at least 1"),
        ({"leaves": 1}, "leaves must be at least 2"),
        ({"learning_rate": 0.0}, "learning_rate must be in"),
        ({"max_share": 1.0}, "max_share must be in"),
        ({"max_folds": 0}, "max_folds must be at least 1"),
        ({"objective": "xgb"}, "objective must be"),
    ],
)
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(SegueError, match=message):
        RerankConfig(**params)
