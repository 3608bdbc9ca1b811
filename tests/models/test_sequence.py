"""Next-track models: sknn against a brute-force reference, the numpy GRU against torch, the
order they train on, and both beating popularity on generated sessions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.data.listening_exports import ingest_sessions
from segue.data.sessions import ListeningData, SessionData
from segue.data.synthetic.sessions import generate_sessions
from segue.evaluation.sessions import evaluate_listening, recommend_next, split_listening
from segue.models.base import Queries
from segue.models.registry import get_model_class
from segue.models.sequence import GRUConfig, GRURecommender, SessionKNNConfig, SessionKNNRecommender


def session_data(sequences: list[list[int]], n_tracks: int) -> SessionData:
    indptr = np.r_[0, np.cumsum([len(s) for s in sequences])].astype(np.int64)
    ids = np.array([t for s in sequences for t in s], dtype=np.int32)
    rows = np.repeat(np.arange(len(sequences)), np.diff(indptr))
    matrix = sp.csr_matrix(
        (np.ones(len(ids), np.float32), (rows, ids)), shape=(len(sequences), n_tracks)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return SessionData(
        matrix,
        np.arange(len(sequences), dtype=np.int32),
        [""] * len(sequences),
        np.arange(n_tracks, dtype=np.int32),
        np.arange(n_tracks, dtype=np.int32),
        None,
        indptr,
        ids,
    )


def brute_force_sknn(sequences, query, n_tracks, k):
    """V-SKNN written out: recency weights, similarity / sqrt(|s|), top-k sessions vote."""
    last = query[-50:]
    weights = {}
    for position, t in enumerate(last):
        weights[t] = (position + 1) / len(last)  # a later repeat overwrites: the latest wins
    sims = []
    for s, seq in enumerate(sequences):
        members = set(seq)
        sim = sum(w for t, w in weights.items() if t in members) / np.sqrt(len(members))
        if sim > 0:
            sims.append((-sim, s))
    sims.sort()
    scores = np.zeros(n_tracks)
    for neg, s in sims[:k]:
        for t in set(sequences[s]):
            scores[t] += -neg
    return scores


def test_sknn_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 40, rng.integers(2, 9)).tolist() for _ in range(120)]
    data = session_data(sequences, 40)
    model = SessionKNNRecommender(SessionKNNConfig(n_neighbors=15, sample_size=10_000)).fit(data)
    queries = [rng.integers(0, 40, rng.integers(1, 6)).tolist() for _ in range(20)]
    ranking = model.recommend(Queries.from_lists(queries), n=5)
    for row, query in enumerate(queries):
        expected = brute_force_sknn(sequences, query, 40, 15)
        expected[query] = -1  # seeds are never recommended
        got = ranking.scores[row]
        best = np.sort(expected[expected > 0])[::-1][:5]
        np.testing.assert_allclose(got[: len(best)], best, rtol=1e-5)
        assert all(
            expected[t] == pytest.approx(s, rel=1e-5)
            for t, s in zip(ranking.ids[row], got, strict=True)
            if not np.isnan(s)
        )
        # explanations: the per-seed parts add up to the score
        explanation = model.explain(Queries.from_lists(queries), row, ranking.ids[row, :1])[0]
        assert {e["kind"] for e in explanation.evidence} <= {"seed", "other", "popularity"}
        assert all(e["track_id"] in query for e in explanation.evidence if e["kind"] == "seed")


def test_sknn_samples_the_same_sessions_for_every_track():
    sequences = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3]]
    model = SessionKNNRecommender(SessionKNNConfig(sample_size=2, seed=4)).fit(
        session_data(sequences, 4)
    )
    index = model.item_sessions
    assert np.all(np.diff(index.indptr) <= 2)
    kept = set(index.indices.tolist())
    # a session kept for one of its tracks is kept for its other tracks when they have room
    for s in kept:
        for t in sequences[s]:
            holders = [i for i, seq in enumerate(sequences) if t in seq]
            assert s in index[t].indices or len(holders) > 2


@pytest.mark.parametrize("embedding_dim", [8, 0])  # 0: tied input and output embeddings
def test_gru_numpy_inference_equals_torch(embedding_dim):
    import torch

    from segue.models.nets import GRUNet

    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, 30, rng.integers(2, 12)).tolist() for _ in range(80)]
    model = GRURecommender(
        GRUConfig(min_steps=5, epochs=1, hidden_size=16, embedding_dim=embedding_dim, max_length=6)
    ).fit(session_data(sequences, 30))
    net = GRUNet(30, embedding_dim, 16, 0.0)
    state = {
        "gru.weight_ih_l0": model.w_ih,
        "gru.weight_hh_l0": model.w_hh,
        "gru.bias_ih_l0": model.b_ih,
        "gru.bias_hh_l0": model.b_hh,
        "items.weight": model.output,
        "item_bias.weight": model.output_bias[:, None],
    }
    if embedding_dim:
        state["inputs.weight"] = model.embedding[:-1]
    else:
        np.testing.assert_array_equal(model.embedding[:-1], model.output)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    net.eval()
    queries = [
        rng.integers(0, 30, n).tolist() for n in (1, 3, 6, 9)
    ]  # 9 > max_length: the last 6 count
    hidden = model.hidden_states(Queries.from_lists(queries))
    for row, query in enumerate(queries):
        with torch.no_grad():
            states = net(torch.tensor([query[-6:]]))
        np.testing.assert_allclose(hidden[row], states[0, -1].double().numpy(), atol=1e-5)
    assert np.all(model.hidden_states(Queries.from_lists([[]])) == 0)


def test_sequences_come_in_play_order(tmp_path):
    from segue.data.kaggle import ingest_kaggle
    from segue.models.sequence import training_sequences

    csv = tmp_path / "k.csv"
    csv.write_text(
        '"user_id", "artistname", "trackname", "playlistname"\n'
        '"u","a","z","p"\n"u","a","y","p"\n"u","a","x","p"\n'
    )
    ingest_kaggle(csv, tmp_path / "d")
    data = PlaylistData.load(tmp_path / "d")
    indptr, ids = training_sequences(data)
    assert ids.tolist() == [0, 1, 2] and indptr.tolist() == [0, 3]  # file order, not sorted ids
    shuffled = session_data([[5, 1, 3, 1]], 6)
    assert training_sequences(shuffled)[1].tolist() == [5, 1, 3, 1]


@pytest.fixture(scope="module")
def generated_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    generate_sessions(root / "gen", 600, seed=2, n_tracks=3_000)
    ingest_sessions(root / "gen", root / "data")
    return split_listening(ListeningData.load(root / "data"), seed=0, max_next_track=3_000)


def test_next_track_models_beat_popularity_on_generated_sessions(generated_split):
    split = generated_split
    sessions = split.train.to_session_data()
    rankings = {}
    for name, config in (("popular", None), ("sknn", None), ("gru4rec", GRUConfig(epochs=4))):
        model = get_model_class(name)(config).fit(sessions)
        rankings[name] = recommend_next(model, split.test, 10)
    table = evaluate_listening(split.test, next_track=rankings).next_track_table
    hit = {name: table[name]["all"]["hit_rate"] for name in rankings}
    assert hit["sknn"] > 2.5 * hit["popular"] and hit["gru4rec"] > 2.5 * hit["popular"], hit
    print(hit)


def test_gru_stops_early_keeps_its_best_epoch_and_saves_its_training_log(tmp_path):
    rng = np.random.default_rng(3)
    sequences = [rng.integers(0, 40, rng.integers(3, 10)).tolist() for _ in range(300)]
    data = session_data(sequences, 40)
    model = GRURecommender(
        GRUConfig(epochs=30, patience=1, hidden_size=16, validation_queries=200)
    ).fit(data)
    log = model.training_log
    curve = [r["validation_hit_rate"] for r in log["history"]]
    assert log["epochs_run"] == len(curve) and log["validation_sequences"] == 30
    assert log["best_epoch"] == 1 + int(np.argmax(curve))
    assert log["early_stopped"] == (log["epochs_run"] < 30) and log["stopped"].startswith(
        ("early stop", "ran all")
    )
    model.save(tmp_path / "m")
    again = GRURecommender.load(tmp_path / "m")
    assert again.training_log == log
    queries = Queries.from_lists([[1, 2, 3]])
    np.testing.assert_array_equal(again.recommend(queries, 5).ids, model.recommend(queries, 5).ids)
    # the wall-clock budget ends training after the epoch it runs out in, and says so
    cut = (
        GRURecommender(GRUConfig(epochs=30, hidden_size=16, budget_seconds=1e-6))
        .fit(data)
        .training_log
    )
    assert (
        cut["epochs_run"] == 1
        and cut["stopped"].startswith("time budget")
        and cut["history"][0]["steps"] == 1
    )
