"""LightGCN and PlaylistGAT: exact propagation, attention read from the layer, explanations over real
neighbours, cold tracks, and that a query's score decomposes over its seeds."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.models.base import Queries
from segue.models.config import config_from_dict
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.lightgcn import (
    LightGCNConfig,
    LightGCNRecommender,
    LightGCNTask,
    exact_embeddings,
    split_playlists,
)
from segue.models.gnn.playlist_gat import PlaylistGATConfig, PlaylistGATRecommender
from tests.models.test_contract import planted_data

FAST = {"trainer": {"mode": "mini", "epochs": 2}, "validation_playlists": 20}


@pytest.fixture(scope="module")
def data() -> PlaylistData:
    return planted_data()


@pytest.fixture(scope="module")
def gat(data) -> PlaylistGATRecommender:
    return PlaylistGATRecommender(config_from_dict(PlaylistGATConfig, FAST)).fit(data)


@pytest.fixture(scope="module")
def lightgcn(data) -> LightGCNRecommender:
    return LightGCNRecommender(config_from_dict(LightGCNConfig, FAST)).fit(data)


def test_full_graph_propagation_removes_the_training_playlists_own_path(data):
    """The training-time ê of a track of playlist p equals a brute-force (E0 + ÂᵀÂE0)/2 over the
    graph without p's walks (degrees as in the training graph), and the inference embeddings
    are the exact (E0 + ÂᵀÂE0)/2."""
    graph = PlaylistGraph.from_playlist_data(data)
    task = LightGCNTask(graph, LightGCNConfig(), None, None)
    task.to("cpu")
    ego = task.module.embedding.weight.detach().numpy().astype(np.float64)
    dense = graph.playlist_tracks.toarray()
    d_track, d_playlist = dense.sum(0), dense.sum(1)
    rng = np.random.default_rng(0)
    playlists = rng.integers(0, graph.n_playlists, 30)
    tracks = np.array([rng.choice(np.flatnonzero(dense[p])) for p in playlists])
    final, messages = task.propagate()
    got = task.without_own_playlist(final, messages, tracks, playlists).detach().numpy()
    for i, (t, p) in enumerate(zip(tracks, playlists, strict=True)):
        expected = sum(
            ego[u] / (np.sqrt(d_track[t]) * d_playlist[q] * np.sqrt(d_track[u]))
            for q in np.flatnonzero(dense[:, t])
            if q != p
            for u in np.flatnonzero(dense[q])
        )
        np.testing.assert_allclose(got[i], (ego[t] + expected) / 2, atol=1e-5)
    normalized = dense / np.sqrt(d_playlist[:, None] * d_track[None, :])
    two_hop = normalized.T @ normalized @ ego
    np.testing.assert_allclose(final.table.detach().numpy(), (ego + two_hop) / 2, atol=1e-5)
    # The same for a few rows only (the sampled softmax's step): E2 from a row slice of Rᵀ.
    rows = np.unique(tracks)
    part, _ = task.propagate(rows)
    np.testing.assert_allclose(part.table.detach().numpy(), ((ego + two_hop) / 2)[rows], atol=1e-5)
    got_part = task.without_own_playlist(part, messages, tracks, playlists).detach().numpy()
    np.testing.assert_allclose(got_part, got, atol=1e-5)
    np.testing.assert_allclose(
        exact_embeddings(ego.astype(np.float32), graph, 3), (ego + two_hop) / 2, atol=1e-5
    )


def test_training_split_keeps_targets_out_of_the_context(data):
    """Each training playlist is split into a context of 1 … min(d − 1, max_context) of its own
    tracks and the rest as targets: disjoint, together the whole playlist."""
    matrix = PlaylistGraph.from_playlist_data(data).playlist_tracks
    playlists = np.arange(50)
    batch = split_playlists(matrix, playlists, max_context=4, rng=np.random.default_rng(1))
    for i, p in enumerate(playlists):
        own = set(matrix.indices[matrix.indptr[p] : matrix.indptr[p + 1]].tolist())
        context = set(batch.context_track[batch.context_owner == i].tolist())
        target = set(batch.target_track[batch.target_owner == i].tolist())
        assert 1 <= len(context) == batch.context_size[i] <= min(len(own) - 1, 4)
        assert context.isdisjoint(target) and context | target == own


def test_lightgcn_recovers_planted_communities():
    """Playlists drawn from 4 disjoint communities of tracks: after training, a query of one
    community's tracks is answered with that community's tracks (a known answer), well above
    what untrained embeddings give."""
    rng = np.random.default_rng(0)
    n_tracks, communities = 200, 4
    rows, cols = [], []
    for p in range(800):
        community = p % communities
        members = np.arange(community, n_tracks, communities)
        tracks = rng.choice(members, size=12, replace=False)
        rows += [p] * len(tracks)
        cols += tracks.tolist()
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(800, n_tracks))
    data = PlaylistData(
        matrix,
        np.arange(800, dtype=np.int32),
        [""] * 800,
        np.arange(n_tracks, dtype=np.int32),
        np.arange(n_tracks, dtype=np.int32),
    )
    queries = Queries.from_lists([[c, c + 4, c + 8] for c in range(communities)])

    def purity(model):
        ids = model.recommend(queries, 20).ids
        return np.mean([(ids[c] % communities == c).mean() for c in range(communities)])

    untrained = LightGCNRecommender(
        config_from_dict(
            LightGCNConfig,
            {
                "trainer.mode": "mini",
                "trainer.epochs": 1,
                "trainer.learning_rate": 1e-9,
                "validation_playlists": 20,
            },
        )
    ).fit(data)
    trained = LightGCNRecommender(
        config_from_dict(
            LightGCNConfig,
            {"trainer.mode": "quick", "trainer.epochs": 15, "validation_playlists": 40},
        )
    ).fit(data)
    assert purity(trained) == 1.0
    assert purity(untrained) < 0.6


def test_lightgcn_query_is_the_normalised_sum_of_its_seeds_and_explains_exactly(lightgcn):
    queries = Queries.from_lists([[3, 7, 3, 12]])
    vectors, has = lightgcn.query_vectors(queries)
    seeds = np.array([3, 7, 12])
    expected = (
        lightgcn.item_vectors[seeds].astype(np.float64)
        / np.sqrt(3 * lightgcn.track_degree[seeds])[:, None]
    ).sum(0)
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-6)
    assert has[0]
    ranking = lightgcn.recommend(queries, n=5)
    for e in lightgcn.explain(queries, 0, ranking.ids[0]):
        assert {item["track_id"] for item in e.evidence if item["kind"] == "seed"} <= {3, 7, 12}
        parts = (
            lightgcn.item_vectors[seeds].astype(np.float64)
            @ lightgcn.item_vectors[e.track_id]
            / np.sqrt(3 * lightgcn.track_degree[seeds])
        )
        positive = np.clip(parts, 0, None)
        for item in e.evidence:
            if item["kind"] == "seed":
                assert item["share"] == pytest.approx(
                    positive[list(seeds).index(item["track_id"])] / positive.sum()
                )


def test_gat_attention_in_numpy_is_the_layers_own(gat):
    """The fast path's per-query softmax reproduces the torch layer's attention weights."""
    queries = Queries.from_lists([[0, 5, 9, 91], [60], [30, 31, 32, 33, 34, 35, 36]])
    seeds, alpha = gat.attention(queries)
    for row in range(len(queries)):
        mine = slice(seeds.indptr[row], seeds.indptr[row + 1])
        from_layer = gat.layer_attention(seeds.indices[mine].astype(np.int64))
        np.testing.assert_allclose(alpha[mine], from_layer, atol=1e-5)
        np.testing.assert_allclose(alpha[mine].sum(0), 1.0)


def test_gat_explanations_name_the_querys_real_neighbours_and_add_up_to_the_score(gat):
    queries = Queries.from_lists([[64, 0, 61, 62]])
    ranking = gat.recommend(queries, n=6)
    vectors, _ = gat.query_vectors(queries)
    seeds = [0, 61, 62, 64]
    layer = gat.layer_attention(np.array(seeds))
    degree = gat.track_degree[seeds].astype(np.float64)
    total = (1 / np.sqrt(4 * degree)).sum()
    for track, e in zip(ranking.ids[0], gat.explain(queries, 0, ranking.ids[0]), strict=True):
        named = [item for item in e.evidence if item["kind"] == "seed"]
        assert named and {item["track_id"] for item in named} <= set(seeds)
        for item in named:  # the attention reported is the module's, for that very seed
            assert item["attention"] == pytest.approx(
                float(layer[seeds.index(item["track_id"])].mean()), abs=1e-6
            )
        assert sum(item["share"] for item in e.evidence) == pytest.approx(1.0)
        # The parts, computed by hand from the module's attention, sum to the score itself.
        target = gat.item_vectors[track].astype(np.float64)
        parts = [
            total * layer[i].mean() * gat.item_vectors[s].astype(np.float64) @ target
            for i, s in enumerate(seeds)
        ]
        score = float(vectors[0] @ target)
        assert sum(parts) == pytest.approx(score, rel=1e-4, abs=1e-6)
        positive = np.clip(parts, 0, None)
        for item in named:
            assert item["share"] == pytest.approx(
                positive[seeds.index(item["track_id"])] / positive.sum(), abs=1e-5
            )
    # The text names seeds of this playlist, in words.
    assert "attention" in gat.explain(queries, 0, ranking.ids[0, :1])[0].text


def test_untrained_attention_is_lightgcn_and_training_moves_it(gat):
    """At its starting point (a = 0, c = −½) the attention gives each seed LightGCN's own weight
    1 / sqrt(|S| d_s): the query vector equals LightGCN's on the same track vectors. Trained, the
    attention departs from it (it is a learned layer, not a fixed weighting)."""
    queries = Queries.from_lists([[0, 5, 9, 91], [60, 61], [30, 31, 32, 33, 34, 35, 36]])
    trained = gat.attention(queries)[1]
    heads, d = gat.config.heads, gat.config.factors
    start = copy.copy(gat)
    start._set_inference(
        {
            **gat._arrays(),
            "attention.att_src": np.zeros((heads, d), np.float32),
            "attention.att_dst": np.zeros((heads, d), np.float32),
            "attention.degree": np.full(heads, -0.5, np.float32),
        }
    )
    vectors, degree = gat.item_vectors.astype(np.float64), gat.track_degree
    lightgcn = np.array(
        [
            sum(vectors[s] / np.sqrt(len(q) * degree[s]) for s in q)
            for q in ([0, 5, 9, 91], [60, 61], [30, 31, 32, 33, 34, 35, 36])
        ]
    )
    np.testing.assert_allclose(start.query_vectors(queries)[0], lightgcn, rtol=1e-9)
    assert not np.allclose(trained, start.attention(queries)[1], atol=1e-4)


def test_gat_track_sources_say_what_a_track_vector_is_made_of(gat):
    assert gat.track_sources(42) == [("self", 42, 0.5), ("playlists", -1, 0.5)]


def test_cold_track_is_represented_by_its_artist_and_album(data):
    """A catalog track no training playlist holds gets no trained embedding of its own: it is the
    mean of its album's and its artist's known tracks, so two such tracks of the same artist and
    album are represented identically, and a query about that artist ranks them high."""
    matrix = sp.csr_matrix(data.matrix.toarray()[:, :100])
    wide = sp.hstack([matrix, sp.csr_matrix((300, 2), dtype=np.float32)]).tocsr()
    cold = PlaylistData(
        wide,
        data.pids,
        data.names,
        np.r_[data.track_artist, 0, 0].astype(np.int32),
        np.r_[data.track_album, 0, 0].astype(np.int32),
    )
    model = PlaylistGATRecommender(config_from_dict(PlaylistGATConfig, FAST)).fit(cold)
    np.testing.assert_array_equal(model.item_vectors[100], model.item_vectors[101])
    album = np.flatnonzero(cold.track_album[:100] == 0)
    artist = np.flatnonzero(cold.track_artist[:100] == 0)
    expected = (
        model.item_vectors[album].astype(np.float64).mean(0) + model.item_vectors[artist].mean(0)
    ) / 2
    np.testing.assert_allclose(model.item_vectors[100], expected, rtol=1e-5, atol=1e-6)
    assert model.track_sources(100) == [("album", 0, 0.5), ("artist", 0, 0.5)]
    # …and a query about the artist's genre (tracks 0-4 are artist 0) ranks them above the other genres' tracks.
    scores = model.item_vectors @ model.query_vectors(Queries.from_lists([[0, 1, 2, 3]]))[0][0]
    assert scores[100] > np.median(scores[30:90])


def test_audio_features_are_read_by_the_attention_when_present(tmp_path, data):
    from segue.models.gnn.playlist_gat import PlaylistGATTask

    path = tmp_path / "data"
    path.mkdir()
    pq.write_table(
        pa.table(
            {"track_id": pa.array(np.arange(100), pa.int32()), "energy": np.linspace(0, 1, 100)}
        ),
        path / schema.TRACK_FEATURES_FILE,
    )
    with_audio = PlaylistData(
        data.matrix, data.pids, data.names, data.track_artist, data.track_album, path
    )
    graph = PlaylistGraph.from_playlist_data(with_audio)
    task = PlaylistGATTask(graph, PlaylistGATConfig(), None, None)
    assert task.module.attention.audio is not None and task.module.attention.audio.shape[1] == 2
    model = PlaylistGATRecommender(config_from_dict(PlaylistGATConfig, FAST)).fit(with_audio)
    assert model.audio_weight is not None and model.audio_weight.shape == (model.config.heads, 2)
    ignored = PlaylistGraph.from_playlist_data(with_audio, audio=False)
    assert ignored.audio is None


def test_playlist_attention_heatmap(gat, tmp_path):
    from segue.models.gnn.explain import playlist_heatmap

    queries = Queries.from_lists([[30, 31, 33]])
    tracks = gat.recommend(queries, n=4).ids[0]
    png = playlist_heatmap(gat, queries, 0, tracks, tmp_path / "query.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_validation_edges_stay_out_of_message_passing(data):
    """The edges carved for early stopping are in no operator the training propagates over."""
    seen = {}

    class Spy(LightGCNRecommender):
        def _task(self, graph, held):
            task = super()._task(graph, held)
            seen.update(graph=graph, held=held, task=task)
            return task

    Spy(config_from_dict(LightGCNConfig, FAST)).fit(data)
    graph, held, task = seen["graph"], seen["held"], seen["task"]
    assert len(held) > 0
    to_playlists = task.propagation.to_playlists.to_dense().numpy()
    for i, (row, truth) in enumerate(zip(held.queries.pids.tolist(), held.truth, strict=True)):
        assert not graph.playlist_tracks[row, truth].toarray().any()
        assert not to_playlists[row, truth].any()
        assert to_playlists[row, held.queries.seeds(i)].all()  # the rest of the playlist is there


def test_attention_trains_on_lightgcns_vectors_without_reshaping_them(data):
    """PlaylistGAT's loss gives the track embeddings exactly LightGCN's gradient (its attention
    term is computed on detached vectors) and gives the attention a gradient of its own."""
    import torch

    from segue.models.gnn.playlist_gat import PlaylistGATTask

    graph = PlaylistGraph.from_playlist_data(data)
    lightgcn = LightGCNTask(graph, LightGCNConfig(), None, None)
    gat = PlaylistGATTask(graph, PlaylistGATConfig(dropout=0.0), None, None)
    with torch.no_grad():
        gat.module.embedding.weight.copy_(lightgcn.module.embedding.weight)
        for parameter in (gat.module.attention.att_src, gat.module.attention.att_dst):
            parameter.normal_(std=1.0)
    for task in (lightgcn, gat):
        task.to("cpu")
        batch = split_playlists(graph.playlist_tracks, np.arange(60), 100, np.random.default_rng(3))
        task.loss(batch).backward()
    np.testing.assert_allclose(
        gat.module.embedding.weight.grad.numpy(),
        lightgcn.module.embedding.weight.grad.numpy(),
        rtol=1e-5,
        atol=1e-8,
    )
    assert gat.module.attention.att_src.grad.abs().sum() > 0
    assert gat.module.attention.degree.grad.abs().sum() > 0
