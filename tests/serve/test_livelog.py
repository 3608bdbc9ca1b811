"""The log of live additions: durable appends, replay, torn tails, other writers, bad lines."""

from __future__ import annotations

import logging

from segue.serve.live import LOG_FILE, LiveLog


def collecting(directory):
    learned: list[list[dict]] = []
    return LiveLog(directory, learned.append), learned


def test_append_then_replay_in_a_new_process_state(tmp_path):
    log, learned = collecting(tmp_path)
    first = log.append("road trip", ["spotify:track:a", "spotify:track:b"])
    second = log.append("", ["spotify:track:c"])
    assert (first["seq"], second["seq"]) == (1, 2) and log.count == 2
    assert [r["tracks"] for batch in learned for r in batch] == [
        ["spotify:track:a", "spotify:track:b"],
        ["spotify:track:c"],
    ]
    again, relearned = collecting(tmp_path)
    assert again.replay() == 2
    assert len(relearned) == 1 and [r["title"] for r in relearned[0]] == [
        "road trip",
        "",
    ]  # one batch
    assert again.sync() == 0  # nothing new: nothing learned twice


def test_writers_see_each_other_in_log_order(tmp_path):
    a, learned_a = collecting(tmp_path)
    b, learned_b = collecting(tmp_path)
    a.append("one", ["x"])
    assert b.sync() == 1 and learned_b[-1][0]["title"] == "one"
    assert b.append("two", ["y"])["seq"] == 2
    assert a.sync() == 1 and [r["title"] for batch in learned_a for r in batch] == ["one", "two"]


def test_a_line_being_written_is_not_read_until_complete(tmp_path):
    writer, _ = collecting(tmp_path)
    writer.append("done", ["x"])
    reader, learned = collecting(tmp_path)
    reader.replay()
    with open(tmp_path / LOG_FILE, "ab") as handle:
        handle.write(b'{"seq": 2, "title": "half", "tra')
    assert reader.sync() == 0
    with open(tmp_path / LOG_FILE, "ab") as handle:
        handle.write(b'cks": ["y"]}\n')
    assert reader.sync() == 1 and learned[-1][0]["title"] == "half"


def test_replay_cuts_a_torn_tail_and_names_bad_lines(tmp_path, caplog):
    path = tmp_path / LOG_FILE
    path.write_bytes(b'{"seq": 1, "title": "ok", "tracks": ["x"]}\n\n{"seq": 2, "title": "to')
    log, _learned = collecting(tmp_path)
    with caplog.at_level(logging.WARNING, logger="segue.serve.live"):
        assert log.replay() == 1
    assert "dropping an incomplete last record" in caplog.text
    assert path.read_bytes() == b'{"seq": 1, "title": "ok", "tracks": ["x"]}\n\n'
    assert log.append("next", ["z"])["seq"] == 3  # line numbers count the blank line
    path.write_bytes(path.read_bytes() + b'{"tracks": ["a", 5]}\n')
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="segue.serve.live"):
        assert collecting(tmp_path)[0].replay() == 2  # the bad line skipped at start too
    assert "playlists.jsonl: line 4: field 'tracks' must be a list of track URIs (skipped)" in (
        caplog.text
    )
    path.write_bytes(b"not json\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="segue.serve.live"):
        assert collecting(tmp_path)[0].replay() == 0
    assert "line 1: not valid JSON" in caplog.text


def test_a_bad_line_while_serving_is_skipped_and_logged(tmp_path, caplog):
    log, _learned = collecting(tmp_path)
    log.append("a", ["x"])
    with open(tmp_path / LOG_FILE, "ab") as handle:
        handle.write(b'[1, 2]\n{"title": "b", "tracks": ["y"]}\n')
    reader, got = collecting(tmp_path)
    with caplog.at_level(logging.ERROR, logger="segue.serve.live"):
        assert reader.sync() == 2
    assert [r["title"] for r in got[0]] == [
        "a",
        "b",
    ] and "line 2: expected a JSON object" in caplog.text
