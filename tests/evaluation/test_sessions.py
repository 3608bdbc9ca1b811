"""The listening split leaks nothing (property test) and the harness's figures by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.data.sessions import listening_from_plays
from segue.errors import SegueError
from segue.evaluation.sessions import (
    evaluate_listening,
    load_listening_split,
    split_listening,
    without_excluded,
    write_listening_split,
)

MIN = 60_000


@st.composite
def plays(draw):
    n = draw(st.integers(1, 120))
    n_users = draw(st.integers(1, 6))
    n_tracks = draw(st.integers(1, 25))
    user = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    track = draw(st.lists(st.integers(0, n_tracks - 1), min_size=n, max_size=n))
    # Coarse times so ties and 30-minute gaps both happen.
    ts = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    ms = draw(st.lists(st.integers(-1, 5 * MIN), min_size=n, max_size=n))
    return (
        np.array(user),
        np.array(track),
        np.array(ts, dtype=np.int64) * 10 * MIN,
        np.array(ms),
        n_users,
        n_tracks,
    )


@settings(max_examples=150, deadline=None)
@given(plays(), st.integers(0, 3), st.sampled_from([0.0, 0.15, 0.3]))
def test_the_split_leaks_nothing(p, seed, validation_share):
    user, track, ts, ms, n_users, n_tracks = p
    data = listening_from_plays(
        user, track, ts, ms, np.full(n_tracks, 4 * MIN), n_users=n_users, n_tracks=n_tracks
    )
    split = split_listening(
        data,
        validation_share=validation_share,
        test_share=0.2,
        min_user_tracks=3,
        seed=seed,
        max_prefix=3,
    )
    train, ev = split.train, data.events
    first_play = {}
    for i in range(len(ev)):
        first_play.setdefault((int(ev.user[i]), int(ev.track[i])), i)
    held = {}
    for task in (split.validation, split.test):
        assert task.exclude.shape == (len(task.users), n_tracks)
        for row, u in enumerate(task.users.tolist()):
            truth = set(task.truth[row].tolist())
            assert truth, "a task user has held-out tracks"
            assert not truth & set(train.matrix[u].indices.tolist())  # never a training edge
            assert not truth & set(held.get(u, set()))  # parts are disjoint
            # every training play of u happened before u's first play of any held-out track
            cut = min(first_play[(u, t)] for t in truth)
            train_rows = np.flatnonzero(ev.user == u)
            n_train_plays = int(np.sum(train.events.user == u))
            assert n_train_plays <= cut - train_rows[0]
            assert set(task.exclude[row].indices.tolist()) >= set(train.matrix[u].indices.tolist())
            assert task.seeds.seeds(row).tolist() == sorted(
                train.matrix[u].indices.tolist(), key=lambda t, u=u: first_play[(u, t)]
            )
            held.setdefault(u, set()).update(truth)
        nt = task.next_track
        for q in range(len(nt)):
            prefix = nt.queries.seeds(q).tolist()
            assert 1 <= len(prefix) <= 3 and nt.target[q] not in prefix
            assert (
                nt.target[q] in held.get(int(nt.user[q]), set())
                or nt.target[q] in train.matrix[int(nt.user[q])].indices
            )
    # training + held-out parts = every edge; training counts never exceed the original ones
    for u in range(n_users):
        assert set(train.matrix[u].indices.tolist()) | held.get(u, set()) == set(
            data.matrix[u].indices.tolist()
        )
    assert np.all(train.play_count.toarray() <= data.play_count.toarray())
    assert len(train.events) <= len(ev)


def test_split_shares_cut_and_next_track_by_hand(tmp_path):
    # One user, 20 distinct tracks played once each, one a minute apart (one session), then a replay
    # of track 0. 70/15/15 of 20 → 14 train (tracks 0-13), 3 validation (14-16), 3 test (17-19).
    track = [*range(20), 0]
    data = listening_from_plays(
        [0] * 21, track, [i * MIN for i in range(21)], [50_000] * 21, [60_000] * 20
    )
    split = split_listening(data, seed=0)
    assert split.train.matrix[0].indices.tolist() == list(range(14))
    assert (
        split.train.play_count[0].data.tolist() == [1.0] * 14
    )  # the later replay of 0 is after the cut
    assert split.validation.truth[0].tolist() == [14, 15, 16] and split.test.truth[0].tolist() == [
        17,
        18,
        19,
    ]
    assert sorted(split.test.exclude[0].indices.tolist()) == list(range(17))
    nt = split.test.next_track
    assert nt.target.tolist() == [17, 18, 19]  # the replay of 0 is a repeat: not asked
    assert nt.queries.seeds(0).tolist() == list(range(17))[-17:]  # the session so far (≤ 50 plays)
    write_listening_split(split, tmp_path / "s")
    again = load_listening_split(tmp_path / "s")
    assert again.test.truth[0].tolist() == [
        17,
        18,
        19,
    ] and again.test.next_track.target.tolist() == [17, 18, 19]
    assert (again.train.matrix != split.train.matrix).nnz == 0


def test_users_with_few_tracks_stay_in_training():
    data = listening_from_plays(
        [0, 0, 0, 1, 1, 1, 1, 1], [0, 1, 2, 0, 1, 2, 3, 4], np.arange(8) * MIN, [1] * 8, [10] * 5
    )
    split = split_listening(data, min_user_tracks=5, seed=0)
    assert split.test.users.tolist() == [1]
    assert split.train.matrix[0].indices.tolist() == [0, 1, 2]
    with pytest.raises(SegueError, match="shares"):
        split_listening(data, test_share=0.0)


def test_counts_only_data_is_split_by_a_seeded_shuffle():
    from segue.data.sessions import ListeningData, Listens

    listens = Listens(
        np.zeros(10, np.int32),
        np.arange(10, dtype=np.int32),
        np.arange(1, 11, dtype=np.int32),
        np.full(10, np.nan, np.float32),
        np.full(10, -1, np.int64),
    )
    data = ListeningData.from_listens(listens, n_users=1, n_tracks=10)
    a, b = split_listening(data, seed=1), split_listening(data, seed=1)
    assert a.test.truth[0].tolist() == b.test.truth[0].tolist() and len(a.test.truth[0]) == 2
    assert len(a.test.next_track) == 0 and a.train.n_edges == 6  # 10 tracks: 6 + 2 + 2


def hand_task():
    """Three users: truth {1, 2}, {5}, {9}; user 0 trained on track 0."""
    data = listening_from_plays(
        [0] * 4 + [1] * 2 + [2] * 2,
        [0, 1, 2, 3, 4, 5, 8, 9],
        np.arange(8) * MIN,
        [1] * 8,
        [10] * 10,
        n_tracks=10,
        user_type=np.array(["casual", "power", "power"], dtype=object),
        track_genres=sp.csr_matrix(np.eye(10, 3, dtype=np.float32)),
        genre_names=["a", "b", "c"],
    )
    split = split_listening(data, validation_share=0.0, test_share=0.5, min_user_tracks=2, seed=0)
    return split.test


def test_harness_metrics_by_hand():
    task = hand_task()
    assert [t.tolist() for t in task.truth] == [[2, 3], [5], [9]]
    ranking = np.array(
        [
            [0, 3, 7, 2, 1],  # 0 and 1 are user 0's training tracks: removed → [3, 7, 2]
            [6, 7, 8, 5, 4],  # 4 is trained: → [6, 7, 8, 5]
            [1, 2, 3, 4, 5],
        ]
    )  # no hit
    result = evaluate_listening(task, {"m": ranking}, k=3)
    table = result.table["m"]
    # user 0: top-3 [3, 7, 2], both relevant found → recall 1, DCG 1 + 1/2, IDCG 1 + 1/log2(3)
    ndcg0 = 1.5 / (1 + 1 / np.log2(3))
    assert table["casual"]["recall"] == pytest.approx(1.0)
    assert table["casual"]["ndcg"] == pytest.approx(ndcg0)
    assert table["power"]["recall"] == pytest.approx(0.0)  # user 1's 5 is 4th after filtering
    assert table["all"]["recall"] == pytest.approx(1 / 3)
    assert table["all"]["hit_rate"] == pytest.approx(1 / 3)
    assert result.counts == {"all": 3, "casual": 1, "power": 2}
    # genres: track t has genre t (t < 3). User 0's list [3, 7, 2] → {2}; user 2's [1, 2, 3] → {1, 2}
    assert table["all"]["genre_diversity"] == pytest.approx((1 + 0 + 2) / 3)
    assert table["all"]["genre_coverage"] == pytest.approx(2 / 3)
    # coverage: distinct listed tracks {3,7,2,6,8,1} of 10
    assert table["all"]["coverage"] == pytest.approx(0.6)
    assert "m" in result.to_markdown()


def test_next_track_hit_rate_and_mrr_by_hand():
    task = hand_task()
    nt = task.next_track
    # Each user's plays are one session: held-out plays 2, 3 (user 0), 5 (user 1), 9 (user 2).
    assert nt.target.tolist() == [2, 3, 5, 9]
    assert [nt.queries.seeds(q).tolist() for q in range(4)] == [[0, 1], [0, 1, 2], [4], [8]]
    a = np.array([[7, 2, 1], [3, 0, 0], [1, 2, 3], [9, 5, 1]])  # ranks 2, 1, miss, 1
    b = np.array(
        [[2, 7, 1], [1, 0, 3], [5, 2, 3], [1, 2, 3]]
    )  # ranks 1, miss (3 is third), 1, miss
    result = evaluate_listening(task, next_track={"a": a, "b": b}, k=2)
    assert result.next_track_table["a"]["all"] == pytest.approx(
        {"hit_rate": 0.75, "mrr": (0.5 + 1 + 1) / 4}
    )
    assert result.next_track_table["b"]["casual"] == pytest.approx({"hit_rate": 0.5, "mrr": 0.5})
    assert result.next_track_table["b"]["power"] == pytest.approx({"hit_rate": 0.5, "mrr": 0.5})
    assert result.next_track_counts == {"all": 4, "casual": 2, "power": 2}
    with pytest.raises(SegueError, match="must be"):
        evaluate_listening(task, {"m": np.zeros((2, 3), np.int64)})


def test_excluded_and_repeated_ids_are_dropped():
    out = without_excluded(np.array([[2, 2, 1, 0, -1]]), sp.csr_matrix(np.array([[0, 1, 0]])), 4)
    assert out.tolist() == [[2, 0, -1, -1]]


def test_cli_split_and_evaluate_sessions(tmp_path, capsys):
    import json

    from segue.cli import main

    assert (
        main(
            [
                "generate",
                "sessions",
                "--users",
                "60",
                "--tracks",
                "500",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    assert main(["ingest", "sessions", str(tmp_path / "g"), "--out", str(tmp_path / "d")]) == 0
    assert main(["sessions", "split", str(tmp_path / "d"), "--out", str(tmp_path / "s")]) == 0
    assert "users with held-out tracks" in capsys.readouterr().out
    assert (
        main(
            [
                "sessions",
                "evaluate",
                str(tmp_path / "s"),
                "--out",
                str(tmp_path / "e"),
                "--user-model",
                "popular",
                "--next-model",
                "popular",
                "--next-model",
                "sknn",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert (
        set(result["next_track"]["table"]) == {"popular", "sknn"}
        and "popular" in result["users"]["table"]
    )
    assert (
        result["next_track"]["table"]["sknn"]["all"]["hit_rate"]
        > result["next_track"]["table"]["popular"]["all"]["hit_rate"]
    )
    assert main(["sessions", "evaluate", str(tmp_path / "d"), "--out", str(tmp_path / "e2")]) == 2
    assert "split.json: missing" in capsys.readouterr().err


def test_figures_that_do_not_apply_show_a_dash_not_zero():
    """Without genres the genre columns are NaN (null in JSON) and printed "–"; the rest are numbers."""
    data = listening_from_plays(
        [0] * 4 + [1] * 2 + [2] * 2,
        [0, 1, 2, 3, 4, 5, 8, 9],
        np.arange(8) * MIN,
        [1] * 8,
        [10] * 10,
        n_tracks=10,
    )
    task = split_listening(
        data, validation_share=0.0, test_share=0.5, min_user_tracks=2, seed=0
    ).test
    result = evaluate_listening(task, {"m": np.array([[3, 2, 7], [5, 6, 7], [9, 1, 2]])}, k=3)
    values = result.table["m"]["all"]
    assert np.isnan(values["genre_diversity"]) and np.isnan(values["genre_coverage"])
    assert values["recall"] == pytest.approx(1.0) and values["coverage"] == pytest.approx(0.7)
    row = next(line for line in result.to_markdown().splitlines() if line.startswith("| m | all |"))
    assert row == "| m | all | 1.0000 | 1.0000 | 1.0000 | 0.7000 | – | – |"
    assert "–: does not apply to this data (the data has no genres)." in result.to_markdown()
    import orjson

    assert (
        orjson.loads(orjson.dumps(result.to_dict()))["users"]["table"]["m"]["all"][
            "genre_diversity"
        ]
        is None
    )
    # with genres the same columns are numbers
    assert (
        "| – |"
        not in evaluate_listening(hand_task(), {"m": np.zeros((3, 3), np.int64)}, k=3).to_markdown()
    )


def test_one_listener_gets_a_sentence_not_a_table_of_zeros():
    """With one listener every held-out track is new to the training part: no model can find it."""
    data = listening_from_plays(
        [0] * 10, [0, 1, 2, 3, 0, 4, 5, 6, 7, 8], np.arange(10) * MIN, n_tracks=10
    )
    task = split_listening(
        data, validation_share=0.0, test_share=0.4, min_user_tracks=2, seed=0
    ).test
    result = evaluate_listening(
        task, {"popular": np.array([[0, 1, 2, 3, 4, 9]])}, k=3
    )  # what any model can list
    assert result.counts["all"] == 1 and result.table["popular"]["all"]["recall"] == 0
    text = result.to_markdown()
    assert "one listener" in text and "| popular |" not in text
