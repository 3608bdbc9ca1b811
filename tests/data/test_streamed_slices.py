"""Files too large to decode whole are streamed in parts: same tables, bounded memory, exact errors.

The threshold is lowered so that small files stream; what is compared is the output of the
whole-file path on the same data, which the round-trip tests pin to the JSON.
"""

from __future__ import annotations

import hashlib
import json

import orjson
import pyarrow.parquet as pq
import pytest

from segue.data import mpd, schema
from segue.data.ingest import ingest_mpd
from segue.data.verify import verify_mpd
from segue.errors import SegueError
from tests.data.helpers import playlist, write_slice


@pytest.fixture
def stream_everything(monkeypatch):
    """Every file streams, in parts of 300 playlists (1,000-playlist slices → 4 parts)."""
    monkeypatch.setattr(mpd, "STREAM_ABOVE_BYTES", 0)
    monkeypatch.setattr(mpd, "PART_PLAYLISTS", 300)


def _ten_playlists(directory, mutate=None):
    """One slice of pids 0-9 (parts of 300 → one part; tests that need parts lower it)."""
    playlists = [playlist(pid, [pid + k for k in range(5)]) for pid in range(10)]
    if mutate:
        mutate(playlists)
    return write_slice(directory, 0, 9, playlists)


def test_streamed_ingest_writes_the_same_tables_as_whole_files(
    small_mpd, small_data, tmp_path, stream_everything
):
    ingest_mpd(small_mpd, tmp_path / "out", workers=2)
    for name in schema.TABLE_FILES:
        assert pq.read_table(tmp_path / "out" / name).equals(pq.read_table(small_data / name))
    streamed = orjson.loads((tmp_path / "out" / schema.MANIFEST_FILE).read_bytes())
    whole = orjson.loads((small_data / schema.MANIFEST_FILE).read_bytes())
    assert streamed["counts"] == whole["counts"] and streamed["warnings"] == whole["warnings"]
    for s, w in zip(streamed["files"], whole["files"], strict=True):
        assert s.pop("streamed") is True
        assert s == w  # size and sha256 of the whole file, counts added up over its parts
        assert s["sha256"] == hashlib.sha256((small_mpd / s["name"]).read_bytes()).hexdigest()


def test_errors_in_a_streamed_file_name_the_record_in_the_file(
    tmp_path, stream_everything, monkeypatch
):
    monkeypatch.setattr(mpd, "PART_PLAYLISTS", 3)
    src = tmp_path / "src"
    _ten_playlists(src, lambda p: p[7]["tracks"][2].pop("track_uri"))
    with pytest.raises(SegueError) as info:
        ingest_mpd(src, tmp_path / "out", workers=1)
    assert "mpd.slice.0-9.json: playlist 7 (pid 7), track 2: required field 'track_uri'" in str(
        info.value
    )
    assert not (tmp_path / "out").exists()


def test_a_truncated_streamed_file_is_refused_or_skipped_from_where_it_breaks(
    tmp_path, stream_everything, monkeypatch
):
    monkeypatch.setattr(mpd, "PART_PLAYLISTS", 3)
    src = tmp_path / "src"
    path = _ten_playlists(src)
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.index(b'"pid": 8')])  # cut inside playlist 8
    with pytest.raises(SegueError, match=r"mpd\.slice\.0-9\.json: .*the file ends early"):
        ingest_mpd(src, tmp_path / "out", workers=2)
    assert not (tmp_path / "out").exists()
    summary = ingest_mpd(src, tmp_path / "out", workers=2, skip_bad=True)
    # parts 0-2 and 3-5 were whole; 6-7 (the last complete playlists) sit in the broken part
    assert summary.n_playlists == 6 and len(summary.skipped) == 1
    assert "ends early" in summary.skipped[0]
    manifest = orjson.loads((tmp_path / "out" / schema.MANIFEST_FILE).read_bytes())
    assert manifest["files"] == [
        {
            "name": "mpd.slice.0-9.json",
            "size": None,
            "sha256": None,
            "playlists": 6,
            "entries": 30,
        }
    ]


def test_a_pid_repeated_across_parts_is_refused_and_reported(
    tmp_path, stream_everything, monkeypatch
):
    monkeypatch.setattr(mpd, "PART_PLAYLISTS", 3)
    src = tmp_path / "src"
    _ten_playlists(src, lambda p: p[8].update(pid=1))
    with pytest.raises(SegueError, match="pid 1 already appeared"):
        ingest_mpd(src, tmp_path / "out", workers=1)
    report = verify_mpd(src, workers=1)
    messages = [str(p) for p in report.errors]
    assert "mpd.slice.0-9.json: pid 1 appears 2 times in this file" in messages


def test_streamed_verify_counts_the_whole_file(tmp_path, stream_everything, monkeypatch):
    monkeypatch.setattr(mpd, "PART_PLAYLISTS", 3)
    src = tmp_path / "src"
    write_slice(src, 0, 10, [playlist(pid, [pid + k for k in range(5)]) for pid in range(10)])
    report = verify_mpd(src, workers=2)
    assert report.n_playlists == 10 and report.n_entries == 50
    assert [str(p) for p in report.errors] == [
        "mpd.slice.0-10.json: has 10 playlists; its name promises 11 (pids 0-10)"
    ]


def test_a_file_without_playlists_is_named(tmp_path, stream_everything):
    src = tmp_path / "src"
    src.mkdir()
    (src / "mpd.slice.0-9.json").write_text(json.dumps({"info": {}, "items": [1, 2]}))
    with pytest.raises(SegueError, match=r"mpd\.slice\.0-9\.json: expected a JSON object"):
        ingest_mpd(src, tmp_path / "out", workers=1)


def test_only_large_files_stream(tmp_path, monkeypatch):
    src = tmp_path / "src"
    small = _ten_playlists(src)
    write_slice(src, 10, 11, [playlist(10, [1, 2, 3, 4, 5]), playlist(11, [1, 2, 3, 4, 6])])
    monkeypatch.setattr(mpd, "STREAM_ABOVE_BYTES", small.stat().st_size - 1)
    parts = list(mpd.slice_parts(mpd.find_slices(src)))
    assert [(p.file.name, p.raw is None) for p in parts] == [
        ("mpd.slice.0-9.json", False),
        ("mpd.slice.10-11.json", True),
    ]
    assert parts[0].size == small.stat().st_size and parts[0].last
