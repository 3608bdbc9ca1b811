"""Known-answer tests of segue.analysis.eda on a dataset small enough to count by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segue.analysis.eda import (
    fit_rank_frequency,
    gini,
    normalize_name_mpd,
    normalize_names_mpd,
    run_eda,
)
from segue.data import schema
from segue.errors import InputFileError, SegueError

# Seven tracks; (name, artist_id, artist name, album_id, album name).
TRACKS = [
    ("Song A", 0, "Artist X", 0, "Album P"),
    ("Song B", 0, "Artist X", 0, "Album P"),
    ("Song C", 0, "Artist X", 1, "Album Q"),
    ("Song D", 1, "Artist Y", 2, "Album R"),
    ("Song E", 1, "Artist Y", 2, "Album R"),
    ("Song F", 2, "Artist Z", 3, "Album S"),
    ("Song G", 2, "Artist Z", 3, "Album S"),
]
# Four playlists of lengths 3, 5, 5, 7. Track 0 is twice in playlist 1, track 2 twice in 3.
#   entries / distinct playlists per track: t0 5/4, t1 2/2, t2 4/3, t3 3/3, t4 3/3, t5 2/2, t6 1/1
#   entries per artist: X = 5+2+4 = 11, Y = 3+3 = 6, Z = 2+1 = 3 (20 in all)
#   entries per album: P = 7, Q = 4, R = 6, S = 3
PLAYLIST_TRACKS = [
    [0, 1, 2],
    [0, 0, 3, 4, 1],
    [0, 2, 3, 5, 4],
    [0, 2, 3, 4, 5, 2, 6],
]
TITLES = ["Chill", "chill!!", "Work Out", "workout"]
FOLLOWERS = [1, 1, 3, 25]
EDITS = [2, 2, 2, 5]


def _ts(y: int, m: int, d: int, h: int = 12) -> int:
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp())


MODIFIED = [_ts(2017, 1, 2, 9), _ts(2017, 1, 2, 20), _ts(2016, 5, 5), _ts(2017, 10, 31)]


def _write(
    data_dir: Path,
    *,
    followers=FOLLOWERS,
    edits=EDITS,
    modified=MODIFIED,
    titles=TITLES,
    playlist_tracks=PLAYLIST_TRACKS,
) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    n = len(playlist_tracks)
    playlists = pa.Table.from_pydict(
        {
            schema.PID: list(range(n)),
            schema.NAME: titles,
            schema.DESCRIPTION: [None, "", "nice", None][:n],
            schema.COLLABORATIVE: [False, True, False, False][:n],
            schema.MODIFIED_AT: modified,
            schema.NUM_TRACKS: [len(p) for p in playlist_tracks],
            schema.NUM_ALBUMS: [None] * n,
            schema.NUM_FOLLOWERS: followers,
            schema.NUM_EDITS: edits,
            schema.DURATION_MS: [None] * n,
            schema.NUM_ARTISTS: [None] * n,
        },
        schema=schema.PLAYLISTS_SCHEMA,
    )
    tracks = pa.Table.from_pydict(
        {
            schema.TRACK_ID: list(range(len(TRACKS))),
            schema.TRACK_URI: [f"spotify:track:{i}" for i in range(len(TRACKS))],
            schema.TRACK_NAME: [t[0] for t in TRACKS],
            schema.ARTIST_ID: [t[1] for t in TRACKS],
            schema.ARTIST_URI: [f"spotify:artist:{t[1]}" for t in TRACKS],
            schema.ARTIST_NAME: [t[2] for t in TRACKS],
            schema.ALBUM_ID: [t[3] for t in TRACKS],
            schema.ALBUM_URI: [f"spotify:album:{t[3]}" for t in TRACKS],
            schema.ALBUM_NAME: [t[4] for t in TRACKS],
            schema.DURATION_MS: [200_000] * len(TRACKS),
        },
        schema=schema.TRACKS_SCHEMA,
    )
    rows = [(pid, pos, t) for pid, p in enumerate(playlist_tracks) for pos, t in enumerate(p)]
    entries = pa.Table.from_pydict(
        {
            schema.PID: [r[0] for r in rows],
            schema.POS: [r[1] for r in rows],
            schema.TRACK_ID: [r[2] for r in rows],
        },
        schema=schema.PLAYLIST_TRACKS_SCHEMA,
    )
    pq.write_table(playlists, data_dir / schema.PLAYLISTS_FILE)
    pq.write_table(tracks, data_dir / schema.TRACKS_FILE)
    pq.write_table(entries, data_dir / schema.PLAYLIST_TRACKS_FILE)
    return data_dir


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    base = tmp_path_factory.mktemp("eda")
    out = base / "out"
    stats = run_eda(_write(base / "data"), out)
    return stats, out


# --- normalization ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Chill!!", "chill"),
        ("  Work   Out ", "work out"),
        ("R&B", "r&b"),
        ("workout", "workout"),
        ("rock/pop (2017)", "rock pop 2017"),
        ("#throwback_thursday", "throwback thursday"),
        ("a.b,c/d#e!f$g%h^i*j;k:l{m}n=o_p`q~r(s)t@u", "a b c d e f g h i j k l m n o p q r s t u"),
        ("tab\tand\nnewline", "tab and newline"),
        ("!!!", ""),
        ("Çafé ΣΑΣ", "çafé σας"),
    ],
)
def test_normalize_name_mpd(raw, expected):
    assert normalize_name_mpd(raw) == expected


def test_vectorized_normalization_matches_scalar():
    samples = [
        "Chill!!",
        "  Work   Out ",
        "R&B",
        "x\u00a0y",
        "a\u3000b",
        "a\x1cb",
        " \x1f ",
        "İstanbul",
        "ΣΑΣ ΟΔΟΣ",
        "(((  )))",
        "new\u2028line",
        "",
        "MiXeD cAsE 2000s",
    ]
    assert normalize_names_mpd(pl.Series(samples)).to_list() == [
        normalize_name_mpd(s) for s in samples
    ]
    assert normalize_names_mpd(pa.array(["Chill", None])).to_list() == ["chill", None]


def test_helpers_known_answers():
    fit = fit_rank_frequency(pl.Series([12, 6, 4, 3]).to_numpy())
    assert fit["exponent"] == pytest.approx(1.0)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["fit_ranks"] == [1, 4]
    assert gini(pl.Series([3, 6, 11]).to_numpy()) == pytest.approx(16 / 60)


# --- statistics ---------------------------------------------------------------------------------


def test_counts(result):
    stats, _ = result
    assert stats["counts"] == {
        "playlists": 4,
        "entries": 20,
        "unique_tracks": 7,
        "unique_artists": 3,
        "unique_albums": 4,
        "tracks_in_table": 7,
        "duplicate_entries": 2,
        "entries_match_num_tracks": True,
    }


def test_playlist_length(result):
    ln = result[0]["playlist_length"]
    assert (ln["mean"], ln["median"], ln["mode"], ln["min"], ln["max"]) == (5.0, 5.0, 5, 3, 7)
    assert ln["std"] == pytest.approx(math.sqrt(2))
    assert ln["top_values"] == [
        {"length": 5, "playlists": 2},
        {"length": 3, "playlists": 1},
        {"length": 7, "playlists": 1},
    ]


def test_track_popularity(result):
    tp = result[0]["track_popularity"]
    top = tp["top_tracks"][0]
    # Track 0 has 5 entries but is in 4 playlists: the repeat in playlist 1 counts once.
    assert (top["track_id"], top["track_name"], top["artist_name"]) == (0, "Song A", "Artist X")
    assert (top["playlists"], top["entries"], top["share_of_playlists"]) == (4, 5, 1.0)
    assert [t["playlists"] for t in tp["top_tracks"]] == [4, 3, 3, 3, 2, 2, 1]
    assert [t["track_id"] for t in tp["top_tracks"]] == [0, 2, 3, 4, 1, 5, 6]
    # Top 1% of 7 tracks is one track (track 0), in every playlist.
    assert tp["top_1pct"] == {
        "n_tracks": 1,
        "min_playlists": 4,
        "playlists_with_one": 4,
        "share_of_playlists": 1.0,
    }
    assert tp["long_tail"]["n_tracks"] == 7
    assert tp["long_tail"]["share_of_tracks"] == 1.0
    assert tp["power_law"]["fit_ranks"] == [1, 6]  # six tracks are in >= 2 playlists
    assert tp["power_law"]["exponent"] > 0


def test_artists_and_albums(result):
    stats = result[0]
    ar = stats["artists"]
    assert ar["share_of_entries_top"] == {"1": 11 / 20, "10": 1.0, "100": 1.0}
    assert ar["gini"] == pytest.approx(16 / 60)
    assert [(a["artist_name"], a["entries"]) for a in ar["top_artists"]] == [
        ("Artist X", 11),
        ("Artist Y", 6),
        ("Artist Z", 3),
    ]
    al = stats["albums"]
    assert [(a["album_name"], a["artist_name"], a["entries"]) for a in al["top_albums"]] == [
        ("Album P", "Artist X", 7),
        ("Album R", "Artist Y", 6),
        ("Album Q", "Artist X", 4),
        ("Album S", "Artist Z", 3),
    ]
    assert al["entries_per_album"]["median"] == 5.0


def test_titles(result):
    ti = result[0]["titles"]
    assert ti["unique_titles"] == 4
    assert ti["unique_normalized_titles"] == 3
    assert ti["top_normalized"][0] == {"title": "chill", "playlists": 2, "share_of_titled": 0.5}
    assert [t["title"] for t in ti["top_normalized"]] == ["chill", "work out", "workout"]


def test_playlist_attributes(result):
    stats = result[0]
    fo = stats["followers"]
    assert fo["histogram"]["1"] == 2 and fo["histogram"]["3"] == 1
    assert sum(fo["histogram"].values()) == 3 and fo["above_20"] == 1
    assert list(fo["histogram"]) == [str(v) for v in range(1, 21)]
    assert stats["edits"]["histogram"]["2"] == 3 and stats["edits"]["histogram"]["5"] == 1
    assert stats["collaborative"]["share"] == 0.25
    assert stats["description"] == {"n": 1, "share": 0.25}
    mo = stats["modified_at"]
    assert (mo["first"], mo["last"]) == ("2016-05-05", "2017-10-31")
    assert mo["busiest_day"] == {"date": "2017-01-02", "playlists": 2}
    assert mo["by_year"] == {"2016": 1, "2017": 3}


def test_outputs_written(result):
    stats, out = result
    assert orjson.loads((out / "eda.json").read_bytes()) == stats
    md = (out / "eda.md").read_text()
    assert "# Dataset statistics" in md and "| Song A | Artist X | 4 |" in md
    png = (out / "eda.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


# --- errors and reduced copies --------------------------------------------------------------------


@pytest.mark.parametrize("missing", schema.TABLE_FILES)
def test_missing_table(tmp_path, missing):
    data = _write(tmp_path / "data")
    (data / missing).unlink()
    with pytest.raises(InputFileError, match=missing.replace(".", r"\.")):
        run_eda(data, tmp_path / "out")
    assert not (tmp_path / "out" / "eda.json").exists()


def test_missing_directory(tmp_path):
    with pytest.raises(InputFileError, match="nowhere"):
        run_eda(tmp_path / "nowhere", tmp_path / "out")


def test_empty_dataset(tmp_path):
    data = _write(
        tmp_path / "data", followers=[], edits=[], modified=[], titles=[], playlist_tracks=[]
    )
    with pytest.raises(SegueError, match="has no playlists"):
        run_eda(data, tmp_path / "out")


def test_unordered_playlist_tracks(tmp_path):
    data = _write(tmp_path / "data")
    table = pq.read_table(data / schema.PLAYLIST_TRACKS_FILE)
    pq.write_table(
        table.take(pa.array(list(range(19, -1, -1)))), data / schema.PLAYLIST_TRACKS_FILE
    )
    with pytest.raises(InputFileError, match="not ordered by pid"):
        run_eda(data, tmp_path / "out")


def test_null_optional_columns(tmp_path):
    none = [None] * 4
    data = _write(tmp_path / "data", followers=none, edits=none, modified=none, titles=none)
    stats = run_eda(data, tmp_path / "out")
    assert stats["followers"] is None and stats["edits"] is None
    assert stats["modified_at"] is None and stats["titles"] is None
    assert stats["track_popularity"]["top_tracks"][0]["playlists"] == 4
    json_stats = orjson.loads((tmp_path / "out" / "eda.json").read_bytes())
    assert json_stats["followers"] is None
    md = (tmp_path / "out" / "eda.md").read_text()
    assert "Not available: `num_followers`" in md
