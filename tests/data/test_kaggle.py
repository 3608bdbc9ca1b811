"""`segue ingest kaggle`: the Kaggle playlist CSV with its quirks → the MPD playlist tables."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.data.kaggle import ingest_kaggle
from segue.errors import InputFileError
from segue.models.base import Queries
from segue.models.registry import get_model_class

# The real file's header (spaces after the commas), backslash-escaped quotes, a line with five
# fields, a row without a track name, an empty playlist name, a repeated track, and a playlist
# whose rows are not contiguous.
KAGGLE = """"user_id", "artistname", "trackname", "playlistname"
"9cc0cfd4d7d7885102480dd99e7a90d6","Elvis Costello","(The Angels Wanna Wear My) Red Shoes","HARD ROCK 2010"
"9cc0cfd4d7d7885102480dd99e7a90d6","Elvis Costello","Alison","HARD ROCK 2010"
"9cc0cfd4d7d7885102480dd99e7a90d6","Tiffany Page","7 Years Too Late","IOW 2012"
"07f0fc3be95dcd878966b1f9572ff670","Jack \\"JJ\\" Johnson","Upside Down","Songs, \\"Curious George\\""
"9cc0cfd4d7d7885102480dd99e7a90d6","Elvis Costello","Alison","HARD ROCK 2010"
"07f0fc3be95dcd878966b1f9572ff670","bad","row","with","five"
"07f0fc3be95dcd878966b1f9572ff670","","No Artist",""
"07f0fc3be95dcd878966b1f9572ff670","Nobody","","Songs, \\"Curious George\\""
"9cc0cfd4d7d7885102480dd99e7a90d6","Tiffany Page","Lost","HARD ROCK 2010"
"""

FEATURES = """id,name,album,artists,danceability,energy,duration_ms
x1,alison ,My Aim,"['Elvis  Costello', 'The Attractions']",0.5,0.6,180000
x2,Upside Down,Curious,"['Jack ""JJ"" Johnson']",0.7,0.2,208000
x3,Unrelated,Other,"['Someone']",0.1,0.1,1000
"""


@pytest.fixture
def kaggle_csv(tmp_path):
    path = tmp_path / "spotify_dataset.csv"
    path.write_text(KAGGLE, encoding="utf-8")
    return path


def test_quirky_file_becomes_playlist_tables(kaggle_csv, tmp_path):
    summary = ingest_kaggle(kaggle_csv, tmp_path / "data")
    assert (summary.n_playlists, summary.n_tracks, summary.n_artists, summary.n_users) == (
        4,
        6,
        4,
        2,
    )
    assert summary.skipped_rows == 2
    assert summary.warnings == [
        "spotify_dataset.csv: line 7: skipped, 5 fields instead of 4",
        "spotify_dataset.csv: line 9: skipped, no user_id or trackname",
    ]
    data = PlaylistData.load(tmp_path / "data")
    assert data.names == ["HARD ROCK 2010", "IOW 2012", 'Songs, "Curious George"', ""]
    entries = pq.read_table(tmp_path / "data" / schema.PLAYLIST_TRACKS_FILE).to_pydict()
    # HARD ROCK 2010: Red Shoes, Alison, Alison (repeat kept), Lost — file order, though not contiguous
    assert entries[schema.PID][:4] == [0, 0, 0, 0] and entries[schema.POS][:4] == [0, 1, 2, 3]
    tracks = pq.read_table(tmp_path / "data" / schema.TRACKS_FILE).to_pydict()
    assert [tracks[schema.TRACK_NAME][t] for t in entries[schema.TRACK_ID][:4]] == [
        "(The Angels Wanna Wear My) Red Shoes",
        "Alison",
        "Alison",
        "Lost",
    ]
    assert tracks[schema.ARTIST_NAME][3] == 'Jack "JJ" Johnson'
    assert tracks[schema.TRACK_URI][:2] == ["kaggle:track:0", "kaggle:track:1"]
    assert data.matrix[0].nnz == 3 and data.track_artist.tolist() == [0, 0, 1, 2, 3, 1]
    owners = pq.read_table(tmp_path / "data" / schema.PLAYLIST_OWNERS_FILE).to_pydict()
    assert (
        owners[schema.USER_KEY]
        == ["9cc0cfd4d7d7885102480dd99e7a90d6"] * 2 + ["07f0fc3be95dcd878966b1f9572ff670"] * 2
    )
    playlists = pq.read_table(tmp_path / "data" / schema.PLAYLISTS_FILE).to_pydict()
    assert playlists[schema.NUM_TRACKS] == [4, 1, 1, 1] and playlists[schema.NUM_ARTISTS] == [
        2,
        1,
        1,
        1,
    ]
    # Every model trains on it like on MPD data.
    model = get_model_class("itemknn")().fit(data)
    assert model.recommend(Queries.from_lists([[1]]), n=3).ids.shape == (1, 3)


def test_audio_features_join_by_normalised_names(kaggle_csv, tmp_path):
    (tmp_path / "features.csv").write_text(FEATURES)
    summary = ingest_kaggle(kaggle_csv, tmp_path / "data", features=tmp_path / "features.csv")
    assert summary.features_matched == 2
    features = pq.read_table(tmp_path / "data" / schema.TRACK_FEATURES_FILE).to_pydict()
    assert features["track_id"] == [1, 3]  # Alison (by its first listed artist), Upside Down
    np.testing.assert_allclose(features["danceability"], [0.5, 0.7])
    tracks = pq.read_table(tmp_path / "data" / schema.TRACKS_FILE).to_pydict()
    assert tracks[schema.DURATION_MS][:4] == [None, 180000, None, 208000]


def test_strict_mode_and_bad_files_are_refused(kaggle_csv, tmp_path):
    with pytest.raises(
        InputFileError, match=r"spotify_dataset\.csv: line 7: expected 4 fields, found 5"
    ):
        ingest_kaggle(kaggle_csv, tmp_path / "o", strict=True)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(
        InputFileError, match=r"other\.csv: line 1: header 'a,b,c' is not the Kaggle"
    ):
        ingest_kaggle(other, tmp_path / "o")
    (tmp_path / "f.csv").write_text("name,artists,tempo\nAlison,Elvis Costello,fast\n")
    with pytest.raises(
        InputFileError, match=r"f\.csv: line 2: field tempo: 'fast' is not a number"
    ):
        ingest_kaggle(kaggle_csv, tmp_path / "o", features=tmp_path / "f.csv")
    assert not (tmp_path / "o").exists()


def test_cli_kaggle_sessions_and_mpd_fallback(kaggle_csv, tmp_path, capsys):
    assert main(["ingest", "kaggle", str(kaggle_csv), "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert (
        "ingested 4 playlists of 2 users, 6 tracks, 7 entries" in out
        and "skipped 2 malformed rows" in out
    )
    assert (
        main(
            [
                "generate",
                "sessions",
                "--users",
                "40",
                "--tracks",
                "500",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    assert main(["ingest", "sessions", str(tmp_path / "g"), "--out", str(tmp_path / "s")]) == 0
    assert "sessions" in capsys.readouterr().out
    assert (
        main(["ingest", "sessions", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    )
    assert "no such file or directory" in capsys.readouterr().err
    # `segue ingest DIR` still means MPD ingest.
    assert main(["ingest", str(tmp_path / "g"), "--out", str(tmp_path / "m")]) == 2
    assert "no MPD slice files" in capsys.readouterr().err
