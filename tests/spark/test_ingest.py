"""Ingest on Spark writes the local engine's tables and manifest: the same rows in the same order,
the same dense ids, the same warnings, and the same refusals of bad slices."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data import schema
from segue.data.ingest import ingest_mpd
from segue.errors import SegueError
from tests.data.helpers import playlist, write_slice
from tests.spark.conftest import MASTER

TABLES = (schema.PLAYLISTS_FILE, schema.TRACKS_FILE, schema.PLAYLIST_TRACKS_FILE)


def assert_same_dataset(local, spark):
    for name in TABLES:
        a, b = pq.read_table(local / name), pq.read_table(spark / name)
        assert a.schema.equals(b.schema), name
        assert a.num_rows > 0 and a.equals(b), name
    manifest = json.loads((local / schema.MANIFEST_FILE).read_text())
    assert json.loads((spark / schema.MANIFEST_FILE).read_text()) == manifest
    return manifest


def test_spark_ingest_equals_the_local_engine_on_generated_slices(spark, small_mpd, tmp_path):
    from segue.spark.ingest import ingest_mpd_spark

    ingest_mpd(small_mpd, tmp_path / "local", workers=2)
    summary = ingest_mpd_spark(small_mpd, tmp_path / "spark", master=MASTER)
    manifest = assert_same_dataset(tmp_path / "local", tmp_path / "spark")
    assert manifest["counts"]["playlists"] == summary.n_playlists == 4_000
    assert len(manifest["files"]) == 4 and summary.skipped == []


def messy_copy(directory):
    """Slices a real user may hold: a reduced schema (artists known by name only, one not at
    all), a miscounted playlist (a warning), a pid repeated from an earlier slice, a truncated
    file, a pid repeated only from that refused slice (accepted: its pids never counted), and a
    pid twice in one file."""
    reduced = [
        playlist(0, [1, 2, 3, 4, 5], reduced=True),
        playlist(1, [3, 4, 5, 6, 7, 8], reduced=True),
    ]
    del reduced[1]["tracks"][-1]["artist_name"]  # track 8, first seen here
    write_slice(directory, 0, 1, reduced)
    miscounted = playlist(2, [9, 1, 2, 10, 11], name="Work Out")
    miscounted["num_tracks"] = 7
    write_slice(directory, 2, 3, [miscounted, playlist(3, [5, 6, 7, 12, 13, 1])])
    write_slice(directory, 4, 5, [playlist(5, [20, 21, 22, 23, 24]), playlist(1, [1, 2, 3, 4, 5])])
    truncated = write_slice(directory, 6, 7, [playlist(6, [1, 2, 3, 4, 5])])
    truncated.write_bytes(truncated.read_bytes()[:-40])
    write_slice(
        directory, 8, 9, [playlist(8, [30, 31, 32, 33, 1]), playlist(5, [24, 25, 26, 27, 28])]
    )
    write_slice(directory, 10, 11, [playlist(10, [1, 2, 3, 4, 5]), playlist(10, [1, 2, 3, 4, 6])])
    return directory


def test_spark_ingest_skips_and_reports_bad_slices_as_the_local_engine(spark, tmp_path):
    from segue.spark.ingest import ingest_mpd_spark

    source = messy_copy(tmp_path / "my mpd")  # a space: the path reaches Hadoop unescaped
    ingest_mpd(source, tmp_path / "local", skip_bad=True)
    summary = ingest_mpd_spark(source, tmp_path / "spark", skip_bad=True, master=MASTER)
    manifest = assert_same_dataset(tmp_path / "local", tmp_path / "spark")
    assert [f["name"] for f in manifest["files"]] == [
        "mpd.slice.0-1.json",
        "mpd.slice.2-3.json",
        "mpd.slice.8-9.json",
    ]
    assert len(summary.skipped) == 3 and "pid 1 already appeared earlier" in summary.skipped[0]
    assert "ends early" in summary.skipped[1] and "appears 2 times" in summary.skipped[2]
    assert any("'num_tracks' is 7" in w for w in summary.warnings)
    tracks = pq.read_table(tmp_path / "spark" / schema.TRACKS_FILE).to_pydict()
    # The artist known by name only, and the one not known at all, keep their own ids.
    assert len(set(tracks[schema.ARTIST_ID])) == 3 + 3 + 1  # by URI, by name, unknown
    assert manifest["missing_fields"]["track.artist_name"] == 1


def test_a_bad_slice_stops_spark_ingest_naming_it(spark, tmp_path, capsys):
    from segue.spark.ingest import ingest_mpd_spark

    source = messy_copy(tmp_path / "mpd")
    with pytest.raises(SegueError) as local:
        ingest_mpd(source, tmp_path / "local")
    with pytest.raises(SegueError) as on_spark:
        ingest_mpd_spark(source, tmp_path / "spark", master=MASTER)
    assert str(on_spark.value) == str(local.value)
    assert "mpd.slice.4-5.json: pid 1 already appeared earlier" in str(on_spark.value)
    for name in ("mpd.slice.4-5.json", "mpd.slice.8-9.json", "mpd.slice.10-11.json"):
        (source / name).unlink()
    code = main(["ingest", str(source), "--out", str(tmp_path / "cli"), "--engine", "spark",
                 "--master", MASTER, "-q"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "mpd.slice.6-7.json" in err and "ends early" in err and "Traceback" not in err
    assert not (tmp_path / "cli").exists()


def test_slices_are_read_through_hadoop_by_uri(spark, small_mpd, small_data, tmp_path):
    """A URI (here ``file://``; ``hdfs://`` and ``s3a://`` alike) is listed and read through
    Hadoop's file systems, as Spark sees them: the same tables."""
    from segue.spark.ingest import ingest_mpd_spark

    ingest_mpd_spark(small_mpd.as_uri(), tmp_path / "spark", master=MASTER)
    for name in TABLES:
        assert pq.read_table(small_data / name).equals(pq.read_table(tmp_path / "spark" / name))
    missing = (tmp_path / "nowhere").as_uri()
    with pytest.raises(SegueError, match="nowhere: no MPD slice files"):
        ingest_mpd_spark(missing, tmp_path / "never", master=MASTER)
    code = main(["ingest", "nosuch://host/mpd", "--out", str(tmp_path / "x"), "-q"])
    assert code == 2  # a URI without --engine spark: refused, not read as a folder name


def test_a_copy_whose_every_slice_is_refused_is_named_as_locally(spark, tmp_path):
    from segue.spark.ingest import ingest_mpd_spark

    source = tmp_path / "mpd"
    truncated = write_slice(source, 0, 0, [playlist(0, [1, 2, 3, 4, 5])])
    truncated.write_bytes(truncated.read_bytes()[:-40])
    for skip_bad in (False, True):
        with pytest.raises(SegueError) as local:
            ingest_mpd(source, tmp_path / "local", skip_bad=skip_bad)
        with pytest.raises(SegueError) as on_spark:
            ingest_mpd_spark(source, tmp_path / "spark", skip_bad=skip_bad, master=MASTER)
        assert str(on_spark.value) == str(local.value)
    assert "every slice was skipped" in str(on_spark.value)
    assert not (tmp_path / "spark").exists()
