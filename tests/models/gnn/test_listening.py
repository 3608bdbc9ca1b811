"""The listening GAT models on a planted listening world: held-out edges never seen, explanations
over the user's real neighbours, the genre-aware score, cold start, persistence, the heatmap."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.sessions import listening_from_plays
from segue.evaluation.sessions import split_listening
from segue.models.config import RunOptions, config_from_dict
from segue.models.gnn.coldstart import (
    add_tracks,
    new_user,
    popular_in_genres,
    supplement_sparse_users,
)
from segue.models.gnn.explain import listening_heatmap
from segue.models.gnn.graph import ListeningGraph
from segue.models.gnn.listening import (
    GATConfig,
    GATRecommender,
    GenreGATConfig,
    GenreGATRecommender,
    ListeningGATRecommender,
    sample_subgraph,
    with_self_loops,
)
from segue.models.gnn.sampling import contains
from segue.models.registry import load_model

GENRES = ["rock", "jazz", "country"]
FAST = {"trainer": {"mode": "mini", "epochs": 3}}
CPU = RunOptions("cpu")


def planted_listening(seed: int = 0, n_users: int = 90):
    """3 genres × 4 artists × 5 tracks (track t: genre t // 20, artist t // 5). User u listens to
    genre u % 3 only: 12–16 of its 20 tracks, popular ones more often, in time order."""
    rng = np.random.default_rng(seed)
    users, tracks, times = [], [], []
    weights = 1.0 / np.arange(1, 21)
    for u in range(n_users):
        genre = u % 3
        mine = genre * 20 + rng.choice(
            20, size=rng.integers(12, 17), replace=False, p=weights / weights.sum()
        )
        for i, t in enumerate(mine):
            users += [u] * 2
            tracks += [int(t)] * 2
            times += [u * 10**8 + i * 10**6, u * 10**8 + i * 10**6 + 300_000]
    ms = rng.integers(60_000, 200_000, size=len(users))
    artist = np.arange(60) // 5
    artist_genres = sp.csr_matrix(
        (np.ones(12, np.float32), (np.arange(12), np.arange(12) // 4)), shape=(12, 3)
    )
    return listening_from_plays(
        np.array(users),
        np.array(tracks),
        np.array(times),
        ms,
        np.full(60, 200_000),
        n_users=n_users,
        n_tracks=60,
        user_type=np.array(
            [("casual", "regular", "power")[u % 3] for u in range(n_users)], dtype=object
        ),
        track_artist=artist,
        track_genres=sp.csr_matrix(artist_genres.toarray()[artist]),
        artist_genres=artist_genres,
        genre_names=GENRES,
    )


@pytest.fixture(scope="module")
def split():
    return split_listening(planted_listening(), seed=0)


@pytest.fixture(scope="module")
def basic(split):
    return GATRecommender(config_from_dict(GATConfig, FAST)).fit(split.train, split.validation, CPU)


@pytest.fixture(scope="module")
def genre(split):
    return GenreGATRecommender(config_from_dict(GenreGATConfig, FAST)).fit(
        split.train, split.validation, CPU
    )


def genre_of(track):
    return np.asarray(track) // 20


def test_held_out_edges_are_not_in_the_graph_and_supervision_edges_are_hidden(split, basic):
    test = split.test
    owner = np.repeat(test.users, [len(t) for t in test.truth])
    held = np.concatenate(test.truth)
    assert not contains(basic.train_keys, owner, held, basic.graph.n_tracks).any()
    homo = basic.homo
    n = homo.n_nodes
    keys = homo.edge_keys()
    user_nodes, track_nodes = owner + homo.offsets["user"], held + homo.offsets["track"]
    assert (
        not contains(keys, user_nodes, track_nodes, n).any()
        and not contains(keys, track_nodes, user_nodes, n).any()
    )
    # A batch's own (user, track) edges never appear in the subgraph that scores them.
    user, track = (
        0 + homo.offsets["user"],
        int(basic.graph.listens[0].indices[0]) + homo.offsets["track"],
    )
    hidden = np.sort(np.array([track * n + user, user * n + track]))
    sub = sample_subgraph(homo, np.array([user, track]), (-1, -1), np.random.default_rng(0), hidden)
    src, dst = sub.nodes[sub.edge_index[0]], sub.nodes[sub.edge_index[1]]
    assert not np.any((src == track) & (dst == user)) and not np.any((src == user) & (dst == track))
    full = sample_subgraph(homo, np.array([user, track]), (-1, -1), np.random.default_rng(0))
    assert np.any(
        (full.nodes[full.edge_index[0]] == track) & (full.nodes[full.edge_index[1]] == user)
    )


def test_gat_models_learn_the_planted_genres(split, basic, genre):
    users = split.test.users
    for model in (basic, genre):
        top = model.recommend_users(users, 5)
        assert (top >= 0).all()
        assert not np.isin(top[0], split.train.matrix[users[0]].indices).any()  # training excluded
        assert np.mean(genre_of(top) == (users % 3)[:, None]) > 0.8, model.name


def test_genre_aware_score_is_alpha_collaborative_plus_genre(genre, split):
    user = int(split.test.users[4])
    parts = genre.scores(user, np.arange(60))
    assert np.allclose(parts["collaborative"] + parts["genre"], parts["total"])
    assert parts["genre"].max() <= 0.2 + 1e-9 and abs(parts["collaborative"]).max() <= 0.8 + 1e-9
    total = np.where(
        np.isin(np.arange(60), genre.graph.listens[user].indices), -np.inf, parts["total"]
    )
    expected = np.lexsort((np.arange(60), -total))[:5]
    np.testing.assert_array_equal(genre.recommend_users([user], 5)[0], expected)
    assert (
        genre.config.alpha == 0.8
        and genre.config.hidden == (16, 32)
        and genre.config.heads == (4, 2)
    )


def test_explanations_name_the_users_real_neighbours_with_the_layers_attention(genre, basic, split):
    from segue.models.gnn.explain import user_attention

    for model in (basic, genre):
        user = int(split.test.users[1])
        history = set(model.graph.listens[user].indices.tolist())
        tracks = model.recommend_users([user], 4)[0]
        _, alpha, _ = user_attention(model, user)
        np.testing.assert_allclose(alpha.sum(0), 1.0, rtol=1e-5)
        for e in model.explain(user, tracks):
            assert sum(item["share"] for item in e.evidence) == pytest.approx(1.0)
            named = [
                item
                for item in e.evidence
                if item["kind"] == "neighbor" and item["node_type"] == "track"
            ]
            assert named and all(item["track_id"] in history for item in named)
            assert e.text.startswith(f'Recommending "track {e.track_id}" because:')
            assert "Similar listening patterns" in e.text
        genres = [
            item
            for e in genre.explain(user, tracks)
            for item in e.evidence
            if item["kind"] == "genre"
        ]
        if model is genre:
            assert genres and {g["label"] for g in genres} == {GENRES[user % 3]}


def test_cold_start_new_user_and_new_track(genre, split):
    genre = copy.deepcopy(genre)  # adding tracks changes the model; keep the fixture as trained
    # A new user who likes jazz: the most played jazz tracks, in order.
    expected = popular_in_genres(genre.graph.track_genres, genre.track_listeners, np.array([1]), 5)
    assert new_user(genre, ["Jazz"], 5).tolist() == expected.tolist()
    assert set(genre_of(expected).tolist()) == {1}
    with pytest.raises(Exception, match="unknown genre 'polka'"):
        new_user(genre, ["polka"], 5)
    # A new country track (artist 8) starts at its artist's embedding plus small noise …
    before = genre.track_vectors.shape[0]
    new = add_tracks(genre, [8], noise=0.01, seed=0)
    assert new.tolist() == [before]
    artist_start = genre.net.embedding.weight.detach().numpy()[genre.homo.offsets["artist"] + 8]
    assert np.linalg.norm(genre.track_start_vectors[0] - artist_start) < 0.05 * np.linalg.norm(
        artist_start
    )
    # … and country listeners rank it above jazz listeners do.
    country = [u for u in split.test.users.tolist() if u % 3 == 2][:10]
    jazz = [u for u in split.test.users.tolist() if u % 3 == 1][:10]
    rank = {
        u: int(np.flatnonzero(genre.recommend_users([u], 61)[0] == new[0])[0])
        for u in country + jazz
    }
    assert np.mean([rank[u] for u in country]) < np.mean([rank[u] for u in jazz])


def test_sparse_users_are_supplemented_by_similar_users(split):
    data = planted_listening(n_users=60)
    model = GATRecommender(config_from_dict(GATConfig, FAST)).fit(data, run=CPU)
    before = model.user_side.copy()
    changed = supplement_sparse_users(model, min_tracks=13, neighbours=5, weight=0.5)
    degree = np.diff(model.graph.listens.indptr)
    assert set(changed.tolist()) == set(np.flatnonzero(degree < 13).tolist()) and len(changed)
    untouched = np.setdiff1d(np.arange(60), changed)
    np.testing.assert_array_equal(model.user_side[untouched], before[untouched])
    user = int(changed[0])
    assert not np.allclose(model.user_side[user], before[user])
    # the neighbours mixed in are users of the same genre (they share tracks)
    listens = (model.graph.listens.toarray() > 0).astype(np.float64)
    similar = (listens @ listens[user]) / np.sqrt(listens.sum(1) * listens[user].sum())
    similar[user] = -1
    best = np.lexsort((np.arange(60), -np.round(similar, 12)))[:5]
    assert set(best % 3) == {user % 3}
    np.testing.assert_allclose(
        model.user_side[user], 0.5 * before[user] + 0.5 * before[best].mean(0)
    )


def test_save_load_round_trip_and_heatmap(genre, split, tmp_path):
    genre.save(tmp_path / "model")
    loaded = ListeningGATRecommender.load(tmp_path / "model")
    users = split.test.users[:20]
    np.testing.assert_array_equal(
        loaded.recommend_users(users, 10), genre.recommend_users(users, 10)[:, :10]
    )
    assert loaded.config == genre.config and type(loaded) is GenreGATRecommender
    assert type(load_model(tmp_path / "model")) is GenreGATRecommender
    assert loaded.training_log["epochs_run"] == len(genre.history.epochs)
    png = listening_heatmap(
        loaded, int(users[0]), loaded.recommend_users(users[:1], 5)[0], tmp_path / "heat.png"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_genre_edges_stay_out_unless_asked(split):
    graph = ListeningGraph.from_listening(split.train)
    assert not any(rel == "prefers" for _, rel, _ in with_self_loops(graph.homogeneous()).relations)
    opted = GenreGATRecommender(
        config_from_dict(GenreGATConfig, {"trainer.epochs": 1, "user_genres": "listening"})
    )
    opted.fit(split.train, run=CPU)
    assert ("user", "prefers", "genre") in opted.homo.relations


def test_a_saved_listening_model_is_refused_where_it_does_not_belong(genre, tmp_path):
    """A gat directory is not a playlist model; a directory from before the trainer settings
    were nested is refused with the advice to retrain, naming the file."""
    import orjson

    from segue.errors import InputFileError
    from segue.models.base import Recommender

    genre.save(tmp_path / "model")
    with pytest.raises(InputFileError, match="trained on listening data, not on playlists"):
        Recommender.load(tmp_path / "model")
    params_path = tmp_path / "model" / "params.json"
    params = orjson.loads(params_path.read_bytes())
    params["config"] = {**params["config"], "mode": "quick", "learning_rate": 0.01}
    params["config"].pop("trainer")
    params_path.write_bytes(orjson.dumps(params))
    with pytest.raises(InputFileError, match=r"unknown parameters learning_rate, mode.*retrain it"):
        ListeningGATRecommender.load(tmp_path / "model")
