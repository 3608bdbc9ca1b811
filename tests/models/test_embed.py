"""``embed``: known answers on hand-made co-occurrence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Queries, Recommender
from segue.models.config import config_from_pairs
from segue.models.embed import EmbedConfig, EmbedRecommender


def make_data(rows: list[list[int]], n_tracks: int) -> PlaylistData:
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows).astype(np.int32), indptr),
        shape=(len(rows), n_tracks),
    )
    return PlaylistData(
        matrix,
        np.arange(len(rows), dtype=np.int32),
        [""] * len(rows),
        np.arange(n_tracks, dtype=np.int32),
        np.arange(n_tracks, dtype=np.int32),
    )


# Group A {0, 1, 2}: every pair together twice. Group B {3, 4, 5}: every pair once. Track 6 is
# the most popular but always alone; track 7 is never played. The log1p co-occurrence matrix is
# ln3·(J − I) on A, ln2·(J − I) on B and zero elsewhere: rank 6 with singular values 2ln3, ln3,
# ln3, 2ln2, ln2, ln2, so 6 components keep it exactly and embedding cosines are the cosines of
# its rows: 1/2 inside a group (rows [0, a, a] and [a, 0, a]), 0 across groups.
ROWS = [[0, 1, 2], [0, 1, 2], [3, 4, 5], [6], [6], [6]]


@pytest.fixture(scope="module")
def model() -> EmbedRecommender:
    return EmbedRecommender().fit(make_data(ROWS, 8))


def test_vocabulary_is_the_played_tracks_by_popularity(model):
    assert model.vocabulary.tolist() == [6, 0, 1, 2, 3, 4, 5]
    assert model.embeddings.shape == (7, 6)  # components capped at v - 1
    np.testing.assert_allclose(np.linalg.norm(model.embeddings[1:], axis=1), 1, rtol=1e-6)
    assert not model.embeddings[0].any()  # track 6 co-occurs with nothing


def test_cosines_are_those_of_the_co_occurrence_rows(model):
    e = model.embeddings[model.position[[0, 1, 2, 3, 4]]].astype(np.float64)
    cos = e @ e.T
    np.testing.assert_allclose(cos[0, [1, 2]], 0.5, atol=1e-5)
    np.testing.assert_allclose(cos[3, 4], 0.5, atol=1e-5)
    np.testing.assert_allclose(cos[:3, 3:], 0, atol=1e-5)


def test_one_seed_gets_its_group_at_cosine_one_half(model):
    ranking = model.recommend(Queries.from_lists([[0], [4]]), n=2)
    assert [sorted(r) for r in ranking.ids.tolist()] == [[1, 2], [3, 5]]  # equal up to rounding
    np.testing.assert_allclose(ranking.scores, 0.5, atol=1e-5)


def test_two_seeds_score_the_cosine_to_their_centroid(model):
    """|e0 + e1|² = 1 + 1 + 2·½ = 3, and e2·(e0 + e1) = 1: cos = 1/√3."""
    ranking = model.recommend(Queries.from_lists([[0, 1]]), n=1)
    assert ranking.ids.tolist() == [[2]]
    np.testing.assert_allclose(ranking.scores[0, 0], 1 / np.sqrt(3), atol=1e-5)
    [e] = model.explain(Queries.from_lists([[1, 0]]), 0, [2])
    assert sorted(item["track_id"] for item in e.evidence) == [0, 1]
    assert [item["share"] for item in e.evidence] == pytest.approx([0.5, 0.5], abs=1e-5)


def test_seeds_outside_the_vocabulary_are_ignored():
    small = EmbedRecommender(EmbedConfig(vocabulary_size=4)).fit(make_data(ROWS, 8))
    assert small.vocabulary.tolist() == [6, 0, 1, 2]
    with_outsider = small.recommend(Queries.from_lists([[0, 4], [0]]), n=2)
    assert with_outsider.ids[0].tolist() == with_outsider.ids[1].tolist()
    assert sorted(with_outsider.ids[0].tolist()) == [1, 2]
    np.testing.assert_array_equal(with_outsider.scores[0], with_outsider.scores[1])
    [e] = small.explain(Queries.from_lists([[4, 0]]), 0, [1])
    assert [item["track_id"] for item in e.evidence] == [0]


def test_no_usable_seed_means_popularity(model):
    """Track 6's embedding is all zero and track 7 has none: no evidence, so popularity."""
    ranking = model.recommend(Queries.from_lists([[6], [7], []]), n=3)
    assert ranking.ids.tolist() == [[0, 1, 2], [6, 0, 1], [6, 0, 1]]
    assert np.isnan(ranking.scores).all()
    [e] = model.explain(Queries.from_lists([[7]]), 0, [6])
    assert e.evidence[0]["kind"] == "popularity"


def test_damping_is_log1p_of_the_counts():
    """Unequal counts inside a group: 0–1 twice, 0–2 and 1–2 once. The rows of the damped
    matrix are [0, ln3, ln2], [ln3, 0, ln2], [ln2, ln2, 0]; with every component kept the
    embedding cosines are their cosines (group B and the lone track 6 make the rank 6 = v − 1)."""
    data = make_data([[0, 1, 2], [0, 1], [3, 4, 5], [3, 4, 5], [6]], 7)
    model = EmbedRecommender().fit(data)
    a, b = np.log(3), np.log(2)
    rows = np.array([[0, a, b], [a, 0, b], [b, b, 0]])
    expected = (rows @ rows.T) / np.outer(
        np.linalg.norm(rows, axis=1), np.linalg.norm(rows, axis=1)
    )
    e = model.embeddings[model.position[[0, 1, 2]]].astype(np.float64)
    np.testing.assert_allclose(e @ e.T, expected, atol=1e-5)


def test_two_components_merge_each_group():
    """The two largest singular values (2ln3, 2ln2) belong to the all-ones vectors of A and B:
    projected on them every track of a group has the same direction (cosine 1)."""
    model = EmbedRecommender(EmbedConfig(n_components=2)).fit(make_data(ROWS, 8))
    ranking = model.recommend(Queries.from_lists([[0]]), n=2)
    assert sorted(ranking.ids[0].tolist()) == [1, 2]
    np.testing.assert_allclose(ranking.scores, 1.0, atol=1e-5)


def test_a_querys_ranking_does_not_depend_on_its_batch():
    rng = np.random.default_rng(5)
    rows = [rng.choice(300, size=rng.integers(3, 20), replace=False).tolist() for _ in range(400)]
    model = EmbedRecommender(EmbedConfig(vocabulary_size=200, n_components=16)).fit(
        make_data(rows, 300)
    )
    queries = Queries.from_lists(
        [rng.choice(300, size=rng.integers(1, 6), replace=False).tolist() for _ in range(130)]
    )
    batch = model.recommend(queries, n=40)
    for row in range(0, 130, 9):
        single = model.recommend(queries.slice(row, row + 1), n=40)
        np.testing.assert_array_equal(single.ids[0], batch.ids[row])
        np.testing.assert_array_equal(single.scores[0], batch.scores[row])


def test_save_load_round_trip(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    queries = Queries.from_lists([[0], [3, 1], [6]])
    a, b = model.recommend(queries, n=4), loaded.recommend(queries, n=4)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(loaded.embeddings, model.embeddings)
    assert loaded.config == model.config


def test_parameters():
    assert config_from_pairs(EmbedConfig, ["vocabulary_size=50", "n_components=8"]) == EmbedConfig(
        50, 8
    )
    with pytest.raises(SegueError, match="unknown parameter factors"):
        config_from_pairs(EmbedConfig, ["factors=8"])
    with pytest.raises(SegueError):
        EmbedRecommender(EmbedConfig(n_components=0)).fit(make_data(ROWS, 8))
