"""Ingest: exact round trip, partial schemas, bad slices, atomic outputs."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from segue.data import schema
from segue.data.ingest import ingest_mpd
from segue.errors import SegueError
from tests.data.helpers import playlist, two_slices, uri, write_slice


def _tables(data):
    return (
        pq.read_table(data / schema.PLAYLISTS_FILE),
        pq.read_table(data / schema.TRACKS_FILE),
        pq.read_table(data / schema.PLAYLIST_TRACKS_FILE),
    )


def test_round_trip_matches_the_json_exactly(small_mpd, small_data):
    playlists, tracks, entries = _tables(small_data)
    assert playlists.schema.equals(schema.PLAYLISTS_SCHEMA)
    assert tracks.schema.equals(schema.TRACKS_SCHEMA)
    assert entries.schema.equals(schema.PLAYLIST_TRACKS_SCHEMA)
    uris = tracks.column(schema.TRACK_URI).to_pylist()
    assert len(set(uris)) == len(uris)
    by_pid = {}
    pid_col = entries.column(schema.PID).to_numpy()
    tid_col = entries.column(schema.TRACK_ID).to_numpy()
    pos_col = entries.column(schema.POS).to_numpy()
    bounds = np.flatnonzero(np.diff(pid_col)) + 1
    for chunk_p, chunk_t, chunk_pos in zip(
        np.split(pid_col, bounds), np.split(tid_col, bounds), np.split(pos_col, bounds), strict=True
    ):
        assert np.array_equal(chunk_pos, np.arange(len(chunk_pos)))
        by_pid[int(chunk_p[0])] = [uris[t] for t in chunk_t]
    rows = {r["pid"]: r for r in playlists.to_pylist()}
    first_seen = []
    for path in sorted(
        small_mpd.glob("mpd.slice.*.json"), key=lambda p: int(p.name.split(".")[2].split("-")[0])
    ):
        for p in json.loads(path.read_text())["playlists"]:
            assert by_pid[p["pid"]] == [t["track_uri"] for t in p["tracks"]]
            row = rows[p["pid"]]
            assert row["name"] == p["name"] and row["num_tracks"] == p["num_tracks"]
            assert row["collaborative"] == (p["collaborative"] == "true")
            assert (
                row["num_followers"] == p["num_followers"]
                and row["modified_at"] == p["modified_at"]
            )
            assert row["description"] == p.get("description")
            first_seen += [t["track_uri"] for t in p["tracks"]]
    # ids are dense and in order of first appearance
    assert uris == list(dict.fromkeys(first_seen))
    manifest = orjson.loads((small_data / schema.MANIFEST_FILE).read_bytes())
    assert manifest["counts"]["playlists"] == playlists.num_rows == 4000
    assert manifest["counts"]["entries"] == entries.num_rows
    for f in manifest["files"]:
        assert f["sha256"] == hashlib.sha256((small_mpd / f["name"]).read_bytes()).hexdigest()
    assert manifest["absent_fields"] == []


def test_artist_and_album_ids_follow_uris(small_data):
    tracks = pq.read_table(small_data / schema.TRACKS_FILE).to_pylist()
    artist_of_uri = {}
    for t in tracks[:5000]:
        assert artist_of_uri.setdefault(t["artist_uri"], t["artist_id"]) == t["artist_id"]
    assert len(set(artist_of_uri.values())) == len(artist_of_uri)


def test_same_output_with_one_or_two_workers(tmp_path):
    src = two_slices(tmp_path / "src")
    ingest_mpd(src, tmp_path / "a", workers=1)
    ingest_mpd(src, tmp_path / "b", workers=2)
    for name in schema.TABLE_FILES:
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
    manifest = (tmp_path / "a" / schema.MANIFEST_FILE).read_bytes()
    assert manifest == (tmp_path / "b" / schema.MANIFEST_FILE).read_bytes()
    tracks = pq.read_table(tmp_path / "a" / schema.TRACKS_FILE)
    assert tracks.column(schema.TRACK_URI).to_pylist() == [
        uri("track", i) for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    ]
    assert tracks.column(schema.ARTIST_ID).to_pylist()[:4] == [
        0,
        1,
        2,
        0,
    ]  # track i has artist i % 3


def test_pretty_printed_and_boolean_collaborative(tmp_path):
    src = two_slices(tmp_path / "src", indent=4)
    doc = json.loads((src / "mpd.slice.0-1.json").read_text())
    doc["playlists"][1]["collaborative"] = True
    (src / "mpd.slice.0-1.json").write_text(json.dumps(doc, indent=4))
    ingest_mpd(src, tmp_path / "out", workers=1)
    playlists = pq.read_table(tmp_path / "out" / schema.PLAYLISTS_FILE)
    assert playlists.column(schema.COLLABORATIVE).to_pylist() == [False, True, False, False]


def test_partial_schema_is_accepted_and_reported(tmp_path):
    src = tmp_path / "src"
    write_slice(
        src,
        0,
        1,
        [playlist(0, [1, 2, 3, 4, 5], reduced=True), playlist(1, [5, 4, 6, 7, 8], reduced=True)],
    )
    summary = ingest_mpd(src, tmp_path / "out", workers=1)
    manifest = orjson.loads((tmp_path / "out" / schema.MANIFEST_FILE).read_bytes())
    assert (
        "track.album_uri" in manifest["absent_fields"] and "track.pos" in manifest["absent_fields"]
    )
    assert "playlist.num_followers" in manifest["absent_fields"]
    assert summary.missing_fields["track.artist_uri"] == 10
    playlists, tracks, entries = _tables(tmp_path / "out")
    assert entries.column(schema.POS).to_pylist() == [0, 1, 2, 3, 4] * 2  # order is position
    assert playlists.column(schema.NUM_TRACKS).to_pylist() == [5, 5]
    # artists keyed by name when there is no URI: tracks 1..8 by Artist 1, 2, 0, 1, … → ids 0, 1, 2, …
    assert tracks.column(schema.ARTIST_ID).to_pylist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_truncated_slice_is_named_with_position_and_nothing_is_written(tmp_path):
    src = two_slices(tmp_path / "src")
    bad = src / "mpd.slice.2-3.json"
    bad.write_bytes(bad.read_bytes()[:-300])
    with pytest.raises(SegueError) as info:
        ingest_mpd(src, tmp_path / "out", workers=1)
    message = str(info.value)
    assert (
        "mpd.slice.2-3.json" in message and "ends early" in message and "line 1, column" in message
    )
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp dir left


def test_skip_bad_skips_and_lists(tmp_path):
    src = two_slices(tmp_path / "src")
    bad = src / "mpd.slice.2-3.json"
    bad.write_text(bad.read_text().replace('"playlists": [', '"playlists": [}{ garbage', 1))
    summary = ingest_mpd(src, tmp_path / "out", workers=1, skip_bad=True)
    assert summary.n_playlists == 2 and len(summary.skipped) == 1
    assert "mpd.slice.2-3.json" in summary.skipped[0] and "invalid JSON" in summary.skipped[0]
    manifest = orjson.loads((tmp_path / "out" / schema.MANIFEST_FILE).read_bytes())
    assert manifest["skipped"] == summary.skipped


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["playlists"][1].update(pid="7"),
            "playlist 1 (pid 7): field 'pid' should be an integer",
        ),
        (
            lambda d: d["playlists"][0]["tracks"][2].pop("track_uri"),
            "playlist 0 (pid 0), track 2: required field 'track_uri' is missing",
        ),
        (
            lambda d: d["playlists"][0].pop("tracks"),
            "playlist 0 (pid 0): required field 'tracks' is missing",
        ),
        (
            lambda d: d["playlists"][0]["tracks"][1].update(duration_ms="long"),
            "playlist 0 (pid 0), track 1: field 'duration_ms' should be an integer",
        ),
        (lambda d: d.pop("playlists"), "expected a JSON object with a 'playlists' list"),
        (lambda d: d["playlists"][1].update(pid=0), "pid 0 appears 2 times"),
    ],
)
def test_bad_records_are_named(tmp_path, mutate, expected):
    src = two_slices(tmp_path / "src")
    doc = json.loads((src / "mpd.slice.0-1.json").read_text())
    mutate(doc)
    (src / "mpd.slice.0-1.json").write_text(json.dumps(doc))
    with pytest.raises(SegueError) as info:
        ingest_mpd(src, tmp_path / "out", workers=1)
    assert "mpd.slice.0-1.json" in str(info.value)
    assert expected in str(info.value)


def test_duplicate_pids_across_files_are_refused(tmp_path):
    src = two_slices(tmp_path / "src")
    write_slice(src, 4, 5, [playlist(2, [1, 2, 3, 4, 5]), playlist(5, [1, 2, 3, 4, 6])])
    with pytest.raises(SegueError, match="pid 2 already appeared"):
        ingest_mpd(src, tmp_path / "out", workers=1)


def test_failed_run_leaves_previous_output_untouched(tmp_path, monkeypatch):
    src = two_slices(tmp_path / "src")
    ingest_mpd(src, tmp_path / "out", workers=1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    import segue.data.ingest as ingest_module

    def boom(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest_module._Catalog, "table", boom)
    with pytest.raises(RuntimeError):
        ingest_mpd(src, tmp_path / "out", workers=1)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


def test_warnings_for_inconsistent_counts(tmp_path):
    src = two_slices(tmp_path / "src")
    doc = json.loads((src / "mpd.slice.0-1.json").read_text())
    doc["playlists"][0]["num_tracks"] = 9
    (src / "mpd.slice.0-1.json").write_text(json.dumps(doc))
    summary = ingest_mpd(src, tmp_path / "out", workers=1)
    assert any("field 'num_tracks' is 9 but it has 5 tracks" in w for w in summary.warnings)
    assert (
        pq.read_table(tmp_path / "out" / schema.PLAYLISTS_FILE)
        .column(schema.NUM_TRACKS)
        .to_pylist()[0]
        == 5
    )


def test_ingest_keeps_a_miscounted_playlist_says_why_and_verify_rejects_it(tmp_path, capsys):
    """The two commands apply different rules on purpose; the ingest's output says which."""
    from segue.cli import main

    src = two_slices(tmp_path / "src")
    doc = json.loads((src / "mpd.slice.0-1.json").read_text())
    doc["playlists"][0]["num_tracks"] = 9
    (src / "mpd.slice.0-1.json").write_text(json.dumps(doc))
    assert main(["ingest", str(src), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "field 'num_tracks' is 9 but it has 5 tracks" in out
    assert "ingest keeps these playlists (their tracks are the truth" in out
    assert "`segue verify` holds the files to the MPD's own rules" in out
    assert main(["verify", str(src)]) != 0
    verified = capsys.readouterr()
    assert "num_tracks" in verified.out + verified.err
