"""Listening data: sessions, edges and weights by hand; ListeningData round trip and refusals."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.data import schema
from segue.data.sessions import (
    ListeningData,
    aggregate_listens,
    build_event_log,
    edge_weights,
    listening_from_plays,
)
from segue.errors import InputFileError
from segue.io import atomic_dir

MIN = 60_000


def hand_plays():
    """Two users. User 0 (track durations 200 s, 100 s, unknown):
    t=0 min  track 0 200 s played (completion 1.0)
    t=4 min  track 1  50 s (0.5)      -- 0.67 min after the previous play ended: same session
    t=40 min track 0 100 s (0.5)      -- 35.2 min after 4:50: new session
    t=41 min track 2 (no duration)    -- same session
    User 1: t=0 track 1 100 s (1.0); t=31 min track 1 25 s (0.25): 29.3 min after the end → same session.
    """
    user = [1, 0, 0, 0, 0, 1]
    track = [1, 1, 0, 2, 0, 1]
    ts = [0, 4 * MIN, 0, 41 * MIN, 40 * MIN, 31 * MIN]
    ms = [100_000, 50_000, 200_000, 30_000, 100_000, 25_000]
    duration = [200_000, 100_000, -1]
    return user, track, ts, ms, duration


def test_sessions_completion_and_edges_by_hand():
    data = listening_from_plays(*hand_plays())
    ev = data.events
    assert ev.user.tolist() == [0, 0, 0, 0, 1, 1]
    assert ev.track.tolist() == [0, 1, 0, 2, 1, 1]
    assert ev.session.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(ev.completion, [1.0, 0.5, 0.5, np.nan, 1.0, 0.25])
    # Edges (user, track): play_count, avg_completion, weight
    #   (0,0): 2 plays, (1.0 + 0.5)/2 = 0.75; user 0's max count is 2 → normalised 1 → 0.7·0.75 + 0.3 = 0.825
    #   (0,1): 1 play, 0.5 → normalised log2/log3 = 0.6309 → 0.35 + 0.18928 = 0.53928
    #   (0,2): 1 play, unknown completion → weight = normalised count alone = 0.6309
    #   (1,1): 2 plays, 0.625 → 0.4375 + 0.3 = 0.7375
    assert data.matrix.shape == (2, 3)
    assert data.play_count.toarray().tolist() == [[2, 1, 1], [0, 2, 0]]
    np.testing.assert_allclose(data.completion.data, [0.75, 0.5, np.nan, 0.625])
    np.testing.assert_allclose(
        data.matrix.data,
        [0.825, 0.35 + 0.3 * np.log(2) / np.log(3), np.log(2) / np.log(3), 0.7375],
        rtol=1e-6,
    )
    assert data.first_event.tolist() == [0, 1, 3, 4]
    assert data.events.session_indptr().tolist() == [0, 2, 4, 6]


def test_a_source_without_durations_still_gets_weights():
    user, track, ts, _, _ = hand_plays()
    data = listening_from_plays(user, track, ts, None, None)
    assert np.isnan(data.completion.data).all()
    weights = data.matrix.data
    assert np.all((weights > 0) & (weights <= 1)) and not np.isnan(weights).any()
    np.testing.assert_allclose(
        weights, [1.0, np.log(2) / np.log(3), np.log(2) / np.log(3), 1.0], rtol=1e-6
    )
    # Without ms_played, sessions are cut on the gap between starts: 4 → 40 min is 36 min.
    assert data.events.session.tolist() == [0, 0, 1, 1, 2, 3]


def test_aggregation_matches_a_brute_force_count():
    rng = np.random.default_rng(3)
    user = np.sort(rng.integers(0, 30, 2000))
    track = rng.integers(0, 50, 2000)
    completion = np.where(rng.random(2000) < 0.2, np.nan, rng.random(2000)).astype(np.float32)
    listens = aggregate_listens(user, track, completion, 50)
    expected = {}
    for i, (u, t) in enumerate(zip(user.tolist(), track.tolist(), strict=True)):
        e = expected.setdefault((u, t), [0, [], i])
        e[0] += 1
        if not np.isnan(completion[i]):
            e[1].append(float(completion[i]))
    assert list(zip(listens.user.tolist(), listens.track.tolist(), strict=True)) == sorted(expected)
    for j, key in enumerate(sorted(expected)):
        count, known, first = expected[key]
        assert listens.play_count[j] == count and listens.first_event[j] == first
        if known:
            assert listens.avg_completion[j] == pytest.approx(np.mean(known), rel=1e-5)
        else:
            assert np.isnan(listens.avg_completion[j])
    weights = edge_weights(listens.user, listens.play_count, listens.avg_completion)
    assert np.all((weights > 0) & (weights <= 1.0 + 1e-6))


def test_event_log_keeps_input_order_for_equal_times():
    log = build_event_log(
        np.array([0, 0, 0]),
        np.array([5, 6, 7]),
        np.array([10, 10, 5]),
        np.full(3, -1),
        np.full(3, -1),
    )
    assert log.track.tolist() == [7, 5, 6]


def test_round_trip_and_views(tmp_path):
    user, track, ts, ms, duration = hand_plays()
    data = listening_from_plays(
        user, track, ts, ms, duration, user_type=np.array(["power", ""], dtype=object)
    )
    with atomic_dir(tmp_path / "d") as tmp:
        data.write(tmp, source="test")
    loaded = ListeningData.load(tmp_path / "d")
    assert (loaded.matrix != data.matrix).nnz == 0
    np.testing.assert_array_equal(loaded.completion.data, data.completion.data)
    assert loaded.user_type.tolist() == ["power", ""]
    np.testing.assert_array_equal(loaded.events.session, data.events.session)
    np.testing.assert_array_equal(loaded.events.ms_played, data.events.ms_played)
    assert loaded.track_duration.tolist() == duration
    assert loaded.user_keys.tolist() == ["0", "1"] and loaded.manifest["kind"] == "listening"
    playlists = loaded.to_playlist_data()
    assert playlists.matrix.shape == (2, 3) and set(playlists.matrix.data.tolist()) == {1.0}
    assert playlists.track_popularity.tolist() == [1, 2, 1]
    sessions = loaded.to_session_data(min_length=2)
    assert sessions.n_playlists == 3
    assert sessions.sequence_ids.tolist() == [0, 1, 0, 2, 1, 1]
    assert sessions.matrix[2].indices.tolist() == [1]  # a repeat counts once in the matrix
    assert ListeningData.load(tmp_path / "d", events=False).events.user.size == 0


def test_load_refuses_what_it_cannot_trust(tmp_path):
    data = listening_from_plays(*hand_plays())
    with atomic_dir(tmp_path / "d") as tmp:
        data.write(tmp, source="test")
    with pytest.raises(InputFileError, match=r"manifest\.json: missing"):
        ListeningData.load(tmp_path)
    events = pq.read_table(tmp_path / "d" / schema.EVENTS_FILE)
    pq.write_table(events.take([1, 0, 2, 3, 4, 5]), tmp_path / "d" / schema.EVENTS_FILE)
    with pytest.raises(InputFileError, match=r"events.parquet: rows are not ordered"):
        ListeningData.load(tmp_path / "d")
    pq.write_table(events, tmp_path / "d" / schema.EVENTS_FILE)
    listens = pq.read_table(tmp_path / "d" / schema.LISTENS_FILE)
    pq.write_table(listens.drop_columns([schema.EDGE_WEIGHT]), tmp_path / "d" / schema.LISTENS_FILE)
    with pytest.raises(InputFileError, match=r"listens.parquet: columns differ"):
        ListeningData.load(tmp_path / "d")
    with pytest.raises(InputFileError, match=r"user_genre_preferences\.parquet: missing"):
        pq.write_table(listens, tmp_path / "d" / schema.LISTENS_FILE)
        ListeningData.load(tmp_path / "d", user_genre_preferences=True)
