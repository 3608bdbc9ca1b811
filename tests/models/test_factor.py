"""``svd``, ``als``, ``bpr``: fold-in against training, reconstruction, explanations by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models import topn
from segue.models.base import Queries, Recommender
from segue.models.config import config_from_pairs
from segue.models.factor import (
    ALSConfig,
    ALSRecommender,
    BPRConfig,
    BPRRecommender,
    SVDConfig,
    SVDRecommender,
    item_gram,
)
from segue.models.topn import NormHead, seed_matrix, top_k_factors
from tests.models.test_contract import planted_data


def rows_of(data: PlaylistData) -> list[list[int]]:
    m = data.matrix
    return [m.indices[m.indptr[i] : m.indptr[i + 1]].tolist() for i in range(m.shape[0])]


def tiny_data(rows: list[list[int]], n_tracks: int) -> PlaylistData:
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


@pytest.fixture(scope="module")
def data() -> PlaylistData:
    return planted_data()


# --- ALS fold-in -------------------------------------------------------------------------------
def test_als_fold_in_is_implicits_exact_user_step(data):
    """The fold-in of any playlist equals implicit's own Cholesky user solve on the same items."""
    model = ALSRecommender(ALSConfig(factors=8, alpha=10.0, regularization=0.1, iterations=10)).fit(
        data
    )
    rows = [*rows_of(data)[:40], [0, 1, 2], [60, 61, 62, 63, 64, 90]]
    folded, has = model.fold_in(Queries.from_lists(rows))
    with threadpool_limits(1, "blas"):
        reference = AlternatingLeastSquares(
            factors=8, alpha=10.0, regularization=0.1, random_state=0
        )
    reference.item_factors = model.item_factors
    user_items = Queries.from_lists(rows)
    expected = reference.recalculate_user(
        np.arange(len(rows)),
        sp.csr_matrix(
            (np.ones(len(user_items.seed_ids), np.float32), user_items.seed_ids, user_items.indptr),
            shape=(len(rows), data.n_tracks),
        ),
    )
    assert has.all()
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-5)


def test_als_fold_in_equals_retraining(data):
    """Folding in a training playlist gives the factors that training itself converged to.

    Training solves each playlist's factors from the item factors (by conjugate gradient);
    at convergence the exact fold-in must agree. The same check on a fold-in that forgets the
    confidence term (plain ridge regression on α·p) misses by far, so the test can fail.
    """
    config = ALSConfig(factors=8, alpha=10.0, regularization=0.1, iterations=200)
    model = ALSRecommender(config).fit(data)
    folded, _ = model.fold_in(Queries.from_lists(rows_of(data)))
    trained = model.playlist_factors
    error = np.linalg.norm(folded - trained, axis=1) / np.linalg.norm(trained, axis=1)
    assert error.max() < 0.01, error.max()

    y = model.item_factors.astype(np.float64)
    naive = (config.alpha * data.matrix @ y) @ np.linalg.inv(
        y.T @ y + config.regularization * np.eye(8)
    )
    naive_error = np.linalg.norm(naive - trained, axis=1) / np.linalg.norm(trained, axis=1)
    assert naive_error.min() > 0.5

    # Rankings, not only factors: the top 20 of each fold-in is the trained top 20.
    for row in range(0, 300, 37):
        top_folded = np.argsort(-(y @ folded[row]))[:20]
        top_trained = np.argsort(-(y @ trained[row]))[:20]
        assert len(set(top_folded) & set(top_trained)) >= 19


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (ALSRecommender, ALSConfig(factors=16, iterations=5, num_threads=2)),
        (BPRRecommender, BPRConfig(factors=16, iterations=10)),  # num_threads=1: reproducible
        (SVDRecommender, SVDConfig(factors=16)),
    ],
)
def test_training_is_bit_for_bit_reproducible(cls, config, data):
    first, second = cls(config).fit(data), cls(config).fit(data)
    np.testing.assert_array_equal(first.item_factors, second.item_factors)
    np.testing.assert_array_equal(first.gram, second.gram)


def test_fold_in_never_changes_the_model(data):
    model = ALSRecommender(ALSConfig(factors=8)).fit(data)
    before = model.item_factors.copy()
    model.recommend(Queries.from_lists([[0, 1, 2], [30]]), n=10)
    np.testing.assert_array_equal(model.item_factors, before)
    assert model.playlist_factors.shape == (300, 8)


# --- SVD ------------------------------------------------------------------------------------------
def weighted(data: PlaylistData, weighting: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """The weighted matrix written out from the definitions in SVDRecommender's docstring."""
    dense = data.matrix.toarray().astype(np.float64)
    n, df, lengths = dense.shape[0], dense.sum(axis=0), dense.sum(axis=1)
    idf = np.ones_like(df) if weighting == "none" else np.log(1 + (n - df + 0.5) / (df + 0.5))
    row = np.ones_like(lengths)
    if weighting == "bm25":
        row = (k1 + 1) / (1 + k1 * (1 - b + b * lengths / lengths.mean()))
    return dense * row[:, None] * idf[None, :]


@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
def test_svd_fold_in_of_a_training_row_is_its_truncated_reconstruction(data, weighting):
    k = 3  # the three genres; the 4th singular value is less than half the 3rd, a stable subspace
    model = SVDRecommender(
        SVDConfig(factors=k, weighting=weighting, n_iter=10, oversamples=60)
    ).fit(data)
    matrix = weighted(data, weighting)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    reconstruction = (u[:, :k] * s[:k]) @ vt[:k]
    np.testing.assert_allclose(model.singular_values, s[:k], rtol=1e-4)
    folded, _ = model.fold_in(Queries.from_lists(rows_of(data)))
    scores = folded.astype(np.float64) @ model.item_factors.T.astype(np.float64)
    np.testing.assert_allclose(scores, reconstruction, atol=1e-5 * np.abs(reconstruction).max())
    # What recommend reports is that reconstruction, best first, seeds left out.
    ranking = model.recommend(Queries.from_lists(rows_of(data)[:5]), n=20)
    for row in range(5):
        np.testing.assert_allclose(ranking.scores[row], scores[row, ranking.ids[row]], atol=1e-5)
        assert not set(ranking.ids[row].tolist()) & set(rows_of(data)[row])
        assert np.all(np.diff(ranking.scores[row]) <= 1e-6)


def test_svd_rank_is_capped_on_tiny_matrices(data):
    assert SVDRecommender().fit(data).item_factors.shape == (100, 50)


# --- shared scoring -----------------------------------------------------------------------------
def test_top_k_orders_ties_by_id_filters_and_pads():
    items = np.array([[1, 0], [2, 0], [1, 0], [0, 1], [2, 0]], dtype=np.float32)
    users = np.array([[1, 0], [0, 1]], dtype=np.float32)
    exclude = sp.csr_matrix(([1, 1], [1, 3], [0, 1, 2]), shape=(2, 5))
    ids, scores = top_k_factors(items, users, 5, exclude)
    assert ids.tolist() == [[4, 0, 2, 3, -1], [0, 1, 2, 4, -1]]
    assert scores.tolist() == [[2, 1, 1, 0, 0], [0, 0, 0, 0, 0]]


def brute_force(items, users, k, exclude):
    """Every score in float64 (summed as top_k_factors sums), rounded to the float32 it reports;
    equal float32 scores go to the lower id."""
    scores = np.stack([(items.astype(np.float64) * u).sum(axis=1) for u in users]).astype(
        np.float32
    )
    scores[exclude.toarray() > 0] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(items)), scores.shape), -scores), axis=1)[
        :, :k
    ]
    return order, np.take_along_axis(scores, order, axis=1)


def random_exclusions(rng, q, n, most):
    rows = [rng.choice(n, size=rng.integers(0, most + 1), replace=False) for _ in range(q)]
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    return sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows), indptr), shape=(q, n)
    )


@pytest.mark.parametrize("case", ["random", "hot-sample", "ties"])
def test_top_k_equals_brute_force(case):
    """The sampled threshold, its fallback and the bounded scan give the exact ranking."""
    rng = np.random.default_rng(11)
    n, f, q, k = 60_000, 16, 300, 150
    items = rng.standard_normal((n, f)).astype(np.float32)
    users = rng.standard_normal((q, f))
    if case == "hot-sample":  # the sampled items are the best: the threshold is too high
        items[::64] = 10 + np.abs(items[::64])
        users = np.abs(users)
    if case == "ties":  # most items score exactly 0; only the lowest ids may fill
        items[1000:] = 0
        k = 1200
    exclude = random_exclusions(rng, q, n, 40)
    ids, scores = top_k_factors(items, users, k, exclude, num_threads=2)
    expected_ids, expected_scores = brute_force(items, users, k, exclude)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["long-tail", "long-tail-ties", "flat"])
def test_top_k_scanning_the_norm_head_equals_brute_force(case, monkeypatch):
    """The scan of the longest vectors (stopping where no row can be reached) gives the exact
    ranking. "long-tail": every third user points away from almost every item (its threshold is
    too low for the head alone), so blocks mix head scans and full scans. "long-tail-ties": 2,000
    items tie for the top of every row, with norms unrelated to their ids (the users' last
    coordinate is 0) and spread over several chunks, so only the lowest ids may be returned."""
    rng = np.random.default_rng(12)
    n, f, q, k = 60_000, 16, 300, 150
    items = rng.standard_normal((n, f)).astype(np.float32)
    users = rng.standard_normal((q, f))
    if (
        case != "flat"
    ):  # a few long vectors, a long tail of short ones (what real factors look like)
        items *= (rng.pareto(0.5, n) + 0.01).astype(np.float32)[:, None]
    if case == "long-tail":
        items[:, 0] = np.abs(items[:, 0])
        users[::3, 0] = -20
    if case == "long-tail-ties":
        # Multiples of 1/8: the tied scores (sums of u · 1e4) are then exact in any summation
        # order. Otherwise they differ in the last bit between numpy's SIMD reductions (whose
        # lane count depends on the CPU) and the kernel's sequential sum: not ties at all.
        users = np.round(np.abs(users) * 8) / 8
        users[:, -1] = 0
        tied = rng.choice(n, 2000, replace=False)
        items[tied, :-1] = 1e4
        items[tied, -1] = rng.uniform(0, 1e4, 2000)
        monkeypatch.setattr(topn, "_CHUNK", 512)
    exclude = random_exclusions(rng, q, n, 40)
    head = NormHead.build(items)
    assert len(head.ids) == n // 4 and (np.diff(head.norms) <= 0).all()
    scans = []  # True: a head scan, False: a full one
    scan = topn._scan
    monkeypatch.setattr(
        topn,
        "_scan",
        lambda *a, **kw: scans.append(kw.get("labels") is not None) or scan(*a, **kw),
    )
    ids, scores = top_k_factors(items, users, k, exclude, num_threads=2, head=head)
    expected_ids, expected_scores = brute_force(items, users, k, exclude)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6, atol=1e-6)
    assert (True in scans) == (case != "flat")
    assert False in scans or case == "long-tail-ties"


def test_the_models_rank_the_same_with_and_without_the_norm_head():
    rng = np.random.default_rng(5)
    popularity = 1.0 / np.arange(1, 3001) ** 0.9
    rows = [
        np.unique(
            rng.choice(3000, size=rng.integers(5, 60), p=popularity / popularity.sum())
        ).tolist()
        for _ in range(2000)
    ]
    data = tiny_data(rows, 3000)
    queries = Queries.from_lists(
        [rng.choice(3000, size=rng.integers(1, 30)).tolist() for _ in range(200)]
    )
    for model in (
        SVDRecommender(SVDConfig(factors=32)).fit(data),
        ALSRecommender(QUICK_ALS).fit(data),
    ):
        u, _ = model.fold_in(queries)
        expected = top_k_factors(model.item_factors, u, 100, seed_matrix(queries, data.n_tracks))
        got = model._candidates(queries, 100)
        np.testing.assert_array_equal(got[0][got[0] >= 0], expected[0][got[0] >= 0])
        np.testing.assert_array_equal(got[1], np.where(got[0] >= 0, expected[1], 0))


def test_top_k_leaves_zero_queries_empty():
    items = np.eye(3, dtype=np.float32)
    ids, scores = top_k_factors(items, np.array([[0.0, 0, 0], [0, 1, 0]]), 2)
    assert ids.tolist() == [[-1, -1], [1, 0]] and scores.tolist() == [[0, 0], [1, 0]]


QUICK_ALS = ALSConfig(factors=16, iterations=3)


@pytest.mark.parametrize(
    ("cls", "config", "q"),
    [
        (ALSRecommender, QUICK_ALS, 1),
        (ALSRecommender, QUICK_ALS, 101),
        (ALSRecommender, QUICK_ALS, 150),
        (SVDRecommender, SVDConfig(factors=16), 150),
        (BPRRecommender, BPRConfig(factors=16, iterations=20), 150),
    ],
    ids=["als-1", "als-101", "als-150", "svd-150", "bpr-150"],
)
def test_a_querys_ranking_does_not_depend_on_its_batch(cls, config, q):
    """Scores and ids of a query are the same alone and in batches crossing implicit's 100-row
    blocks (OpenBLAS alone would round rows differently by their place in a block)."""
    rng = np.random.default_rng(3)
    rows = [rng.choice(400, size=rng.integers(5, 30), replace=False).tolist() for _ in range(500)]
    model = cls(config).fit(tiny_data(rows, 400))
    queries = Queries.from_lists(
        [rng.choice(400, size=rng.integers(1, 8), replace=False).tolist() for _ in range(q)]
    )
    batch = model.recommend(queries, n=50)
    for row in range(0, q, 7):
        single = model.recommend(queries.slice(row, row + 1), n=50)
        np.testing.assert_array_equal(single.ids[0], batch.ids[row])
        np.testing.assert_array_equal(single.scores[0], batch.scores[row])


def test_queries_without_known_seeds_get_popularity():
    data = tiny_data([[0, 1], [1, 2], [0, 2], [3, 0]], 6)  # tracks 4, 5 never played
    model = SVDRecommender(SVDConfig(factors=1)).fit(data)
    ranking = model.recommend(Queries.from_lists([[5], []]), n=3)
    assert ranking.ids.tolist() == [[0, 1, 2], [0, 1, 2]] and np.isnan(ranking.scores).all()


# --- explanations by hand -----------------------------------------------------------------------
Y = np.array([[1, 0], [0, 1], [2, 1]], dtype=np.float32)


def hand_model(cls, config):
    model = cls(config).fit(tiny_data([[0, 1, 2], [0, 2], [1, 2], [0, 1]], 3))
    model._set_factors(Y, item_gram(Y, 1.0))
    return model


def test_als_explanation_by_hand():
    """α = 2, λ = 1, seeds {0, 1}: A = YᵀY + I + (α−1)(y0y0ᵀ + y1y1ᵀ) = [[7, 2], [2, 4]];
    the terms of track 2's score are 2·y2ᵀA⁻¹y0 = 1/2 and 2·y2ᵀA⁻¹y1 = 1/4 (sum 3/4)."""
    model = hand_model(ALSRecommender, ALSConfig(alpha=2.0, regularization=1.0))
    queries = Queries.from_lists([[1, 0]])
    u, _ = model.fold_in(queries)
    np.testing.assert_allclose(u[0], [4 / 24, 10 / 24], rtol=1e-6)
    np.testing.assert_allclose(Y[2] @ u[0], 0.75, rtol=1e-6)
    [e] = model.explain(queries, 0, [2])
    assert [item["track_id"] for item in e.evidence] == [0, 1]
    assert [item["share"] for item in e.evidence] == pytest.approx([2 / 3, 1 / 3])


def test_bpr_explanation_by_hand_ignores_negative_terms():
    """Ridge fold-in, λ = 1: G = YᵀY + I = [[6, 2], [2, 3]]. For seeds {1, 2} and track 0 the
    terms are y0ᵀG⁻¹y1 = -2/14 (against) and y0ᵀG⁻¹y2 = 4/14: seed 2 takes the whole share."""
    model = hand_model(BPRRecommender, BPRConfig(fold_in_regularization=1.0))
    queries = Queries.from_lists([[1, 2], []])
    u, has = model.fold_in(queries)
    assert has.tolist() == [True, False]
    np.testing.assert_allclose(Y[0] @ u[0], 2 / 14, rtol=1e-6)
    [e] = model.explain(queries, 0, [0])
    assert e.evidence == [{"kind": "seed", "track_id": 2, "label": "track 2", "share": 1.0}]
    assert "track 2" in e.text
    [empty] = model.explain(queries, 1, [0])
    assert empty.evidence[0]["kind"] == "popularity"


# --- persistence and parameters -----------------------------------------------------------------
CASES = [
    (SVDRecommender, SVDConfig(factors=8, weighting="bm25")),
    (ALSRecommender, ALSConfig(factors=8, alpha=5.0, iterations=5)),
    (BPRRecommender, BPRConfig(factors=8, iterations=20)),
]


@pytest.mark.parametrize(("cls", "config"), CASES, ids=lambda c: getattr(c, "name", ""))
def test_save_load_round_trip_is_identical(cls, config, data, tmp_path):
    model = cls(config).fit(data)
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is cls and loaded.config == config
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    queries = Queries.from_lists([[0, 1, 2], [30, 31, 95], [60], []])
    a, b = model.recommend(queries, n=30), loaded.recommend(queries, n=30)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert model.explain(queries, 1, a.ids[1, :5]) == loaded.explain(queries, 1, a.ids[1, :5])


@pytest.mark.parametrize("cls", [SVDRecommender, ALSRecommender, BPRRecommender])
def test_unknown_parameters_are_refused(cls, data, tmp_path):
    with pytest.raises(SegueError, match="unknown parameter n_components"):
        config_from_pairs(cls.Config, ["n_components=3"])
    short = {"iterations": 2} if cls is not SVDRecommender else {}
    cls(cls.Config(factors=4, **short)).fit(data).save(tmp_path / "m")
    params = json.loads((tmp_path / "m" / "params.json").read_text())
    params["config"]["learning_rat"] = 0.1
    (tmp_path / "m" / "params.json").write_text(json.dumps(params))
    with pytest.raises(SegueError, match="unknown parameter learning_rat"):
        Recommender.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("config", "values", "message"),
    [
        (SVDConfig, {"weighting": "log"}, "svd: weighting must be one of"),
        (SVDConfig, {"factors": 0}, "svd: factors must be positive"),
        (SVDConfig, {"bm25_b": 2.0}, "svd: bm25_b must be within 0..1"),
        (ALSConfig, {"alpha": 0.0}, "als: alpha must be positive"),
        (ALSConfig, {"num_threads": -1}, "als: regularization and num_threads must be ≥ 0"),
        (BPRConfig, {"learning_rate": -1.0}, "bpr: learning_rate must be positive"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_made(config, values, message):
    with pytest.raises(SegueError, match=message):
        config(**values)


def test_parameters_parse_from_the_command_line():
    assert config_from_pairs(ALSConfig, ["factors=16", "alpha=40", "num-threads=1"]) == ALSConfig(
        factors=16, alpha=40.0, num_threads=1
    )
