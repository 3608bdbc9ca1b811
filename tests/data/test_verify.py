"""Verify: complete and consistent directories pass; each kind of fault is named."""

from __future__ import annotations

import json

from segue.data.verify import verify_mpd
from tests.data.helpers import playlist, two_slices, write_slice


def test_generated_directory_passes(small_mpd):
    report = verify_mpd(small_mpd, workers=1)
    assert report.ok, report.format_text()
    assert report.n_playlists == 4000 and report.n_files == 4
    assert report.challenge["ok"] and report.challenge["categories"] == {
        c: 20 for c in range(1, 11)
    }
    text = report.format_text()
    assert "RESULT: OK" in text and "category 10 (title + random 100 tracks): 20" in text


def test_gap_overlap_and_cross_file_duplicates(tmp_path):
    src = two_slices(tmp_path / "src")
    write_slice(src, 6, 7, [playlist(6, [1, 2, 3, 4, 5]), playlist(1, [2, 3, 4, 5, 6])])
    report = verify_mpd(src, workers=1)
    messages = [str(p) for p in report.errors]
    assert any("gap: pids 4-5 are in no file" in m for m in messages), messages
    assert any("pid 1 is outside the slice's range 6-7" in m for m in messages), messages
    assert any("pid 1 also appears in mpd.slice.0-1.json" in m for m in messages), messages
    assert not report.ok


def test_truncated_and_inconsistent_slices(tmp_path):
    src = two_slices(tmp_path / "src")
    doc = json.loads((src / "mpd.slice.0-1.json").read_text())
    doc["playlists"][1]["num_tracks"] = 60
    doc["playlists"][0]["tracks"] = doc["playlists"][0]["tracks"][:4]
    doc["playlists"][0]["num_tracks"] = 4
    doc["playlists"][0]["tracks"][2]["pos"] = 7
    (src / "mpd.slice.0-1.json").write_text(json.dumps(doc, indent=2))
    bad = src / "mpd.slice.2-3.json"
    bad.write_bytes(bad.read_bytes()[:-50])
    report = verify_mpd(src, workers=2)
    messages = [str(p) for p in report.errors]
    assert any(
        m.startswith("mpd.slice.2-3.json: line 1, column") and "ends early" in m for m in messages
    ), messages
    assert (
        "mpd.slice.0-1.json: playlist 1 (pid 1): field 'num_tracks' is 60 but it has 6 tracks"
        in messages
    )
    assert (
        "mpd.slice.0-1.json: playlist 0 (pid 0): has 4 tracks; MPD playlists have 5 to 250"
        in messages
    )
    assert (
        "mpd.slice.0-1.json: playlist 0 (pid 0): field 'pos' does not run 0, 1, 2, … in list order"
        in messages
    )


def test_slice_with_fewer_playlists_than_its_name(tmp_path):
    src = tmp_path / "src"
    write_slice(src, 0, 2, [playlist(0, [1, 2, 3, 4, 5]), playlist(1, [1, 2, 3, 4, 6])])
    report = verify_mpd(src, workers=1)
    assert any("has 2 playlists; its name promises 3" in str(p) for p in report.errors)


def test_malformed_challenge_set(tmp_path):
    src = two_slices(tmp_path / "src")
    (src / "challenge_set.json").write_text(json.dumps({"playlists": [{"pid": "x", "tracks": []}]}))
    report = verify_mpd(src, workers=1)
    assert not report.ok
    assert any(
        "challenge_set.json" in str(p) and "field 'pid' must be an integer" in str(p)
        for p in report.errors
    )
