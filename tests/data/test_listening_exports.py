"""Readers of real listening exports, on small files written here: hand-checked edges and sessions,
malformed rows, missing fields and missing durations."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from segue.data.listening_exports import detect_format, ingest_sessions
from segue.data.listening_ingest import user_parts
from segue.data.sessions import ListeningData
from segue.errors import InputFileError, SegueError

MIN = 60_000


def write_json(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))
    return path


def account(end, artist, track, ms):
    return {"endTime": end, "artistName": artist, "trackName": track, "msPlayed": ms}


def test_spotify_account_export(tmp_path):
    src = tmp_path / "alice"
    write_json(
        src / "StreamingHistory0.json",
        [
            account("2020-05-01 12:04", 'A "The" Band', "One", 240_000),  # 12:00 – 12:04
            account("2020-05-01 12:07", "B", "Two", 180_000),  # 12:04 – 12:07
            account(
                "2020-05-01 13:00", 'A "The" Band', "One", 60_000
            ),  # 12:59: 52 min later → new session
        ],
    )
    write_json(src / "StreamingHistory1.json", [account("2020-05-01 13:03", "C", "Three", 120_000)])
    summary = ingest_sessions(src, tmp_path / "data")
    assert summary.format == "spotify" and not summary.has_durations
    data = ListeningData.load(tmp_path / "data")
    assert data.user_keys.tolist() == ["alice"]
    ev = data.events
    start = 1588334400000  # 2020-05-01T12:00:00Z
    assert ev.timestamp.tolist() == [start, start + 4 * MIN, start + 59 * MIN, start + 61 * MIN]
    assert ev.session.tolist() == [0, 0, 1, 1]
    assert ev.ms_played.tolist() == [240_000, 180_000, 60_000, 120_000]
    assert np.isnan(ev.completion).all() and np.isnan(data.completion.data).all()
    # Edges: "One" twice (weight log 3 / log 3 = 1), the others once (log 2 / log 3): play counts only.
    assert data.play_count.toarray().tolist() == [[2, 1, 1]]
    np.testing.assert_allclose(
        data.matrix.data, [1.0, np.log(2) / np.log(3), np.log(2) / np.log(3)], rtol=1e-6
    )
    assert data.track_labels.tolist()[0] == 'One — A "The" Band'
    assert data.n_artists == 3


def test_spotify_user_option_and_extended_history(tmp_path):
    write_json(
        tmp_path / "x" / "StreamingHistory0.json", [account("2020-05-01 12:04", "A", "One", 1000)]
    )
    ingest_sessions(tmp_path / "x", tmp_path / "d1", user="bob")
    assert ListeningData.load(tmp_path / "d1").user_keys.tolist() == ["bob"]
    ext = [
        {
            "ts": "2021-01-01T12:00:00Z",
            "username": "u9",
            "ms_played": 30_000,
            "master_metadata_track_name": "Song",
            "master_metadata_album_artist_name": "Art",
            "spotify_track_uri": "spotify:track:abc",
        },
        {
            "ts": "2021-01-01T12:30:00Z",
            "username": "u9",
            "ms_played": 600_000,
            "episode_name": "A podcast",
            "master_metadata_track_name": None,
            "master_metadata_album_artist_name": None,
            "spotify_track_uri": None,
        },
    ]
    write_json(tmp_path / "ext" / "Streaming_History_Audio_2021.json", ext)
    summary = ingest_sessions(tmp_path / "ext", tmp_path / "d2")
    data = ListeningData.load(tmp_path / "d2")
    assert data.user_keys.tolist() == ["u9"] and data.track_keys.tolist() == ["spotify:track:abc"]
    assert summary.skipped_rows == 1 and "podcast" in summary.warnings[0]
    assert data.events.timestamp.tolist() == [1609502400000 - 30_000]


def test_spotify_errors_name_file_record_and_field(tmp_path):
    bad = write_json(
        tmp_path / "a" / "StreamingHistory0.json",
        [
            account("2020-05-01 12:04", "A", "One", 1),
            account("2020-05-01 12:05", "B", "Two", "many"),
        ],
    )
    with pytest.raises(InputFileError, match=r"StreamingHistory0\.json: .*\$\[1\]\.msPlayed"):
        ingest_sessions(bad.parent, tmp_path / "o")
    record = account("2020-05-01 12:05", "B", "Two", 5)
    del record["msPlayed"]
    write_json(bad, [account("2020-05-01 12:04", "A", "One", 1), record])
    with pytest.raises(InputFileError, match=r"record 1: field msPlayed is missing"):
        ingest_sessions(bad.parent, tmp_path / "o")
    summary = ingest_sessions(bad.parent, tmp_path / "o", skip_bad=True)
    assert summary.skipped_rows == 1 and summary.n_events == 1
    bad.write_text('[{"endTime": "2020-')
    with pytest.raises(InputFileError, match="not valid JSON"):
        ingest_sessions(bad.parent, tmp_path / "o2")
    write_json(bad, [account("yesterday", "A", "One", 1)])
    with pytest.raises(InputFileError, match=r"record 0: field endTime: 'yesterday' is not a time"):
        ingest_sessions(bad.parent, tmp_path / "o3")
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()  # nothing half-written


LASTFM = (
    "user_000001\t2009-05-04T23:08:57Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep Dish\t\tFuck Me Im Famous (Pacha Ibiza)-09-28-2007\n"
    "user_000001\t2009-05-04T13:54:10Z\ta7f7df4a-77d8-4f12-8acd-5c60c93f4de8\t坂本龍一\t\tComposition 0919 (Live_2009_4_15)\n"
    "user_000001\t2009-05-04T13:52:04Z\ta7f7df4a-77d8-4f12-8acd-5c60c93f4de8\t坂本龍一\t\tMc2 (Live_2009_4_15)\n"
    'user_000002\t2009-05-04T13:42:52Z\t\tThe "Quoted" Band\tabc-123\tA song\n'
    'user_000002\t2009-05-04T13:45:00Z\t\tThe "Quoted" Band\tabc-123\tA song (radio edit)\n'
)


def test_lastfm_tsv(tmp_path):
    (tmp_path / "lfm").mkdir()
    (tmp_path / "lfm" / "scrobbles.tsv").write_text(LASTFM, encoding="utf-8")
    assert detect_format(tmp_path / "lfm") == "lastfm"
    summary = ingest_sessions(tmp_path / "lfm", tmp_path / "data")
    data = ListeningData.load(tmp_path / "data")
    assert summary.n_users == 2 and summary.n_events == 5 and not summary.has_durations
    assert data.user_keys.tolist() == ["user_000001", "user_000002"]
    # User 1's plays in time order (the file is newest first): 13:52, 13:54 (same session), 23:08 (new).
    assert data.events.session.tolist() == [0, 0, 1, 2, 2]
    labels = data.track_labels[data.events.track].tolist()
    assert labels[:2] == [
        "Mc2 (Live_2009_4_15) — 坂本龍一",
        "Composition 0919 (Live_2009_4_15) — 坂本龍一",
    ]
    # The track MBID identifies user 2's two plays as one track, whatever the name says.
    assert data.play_count[1].data.tolist() == [2.0]
    assert data.n_artists == 3  # two MBIDs and one artist known by name only


def test_lastfm_malformed_lines(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text(
        "user_id\ttimestamp\tartist_mbid\tartist\ttrack_mbid\ttrack\n"
        + LASTFM
        + "user_000003\t2009-05-04T13:42:52Z\tonly four\n"
        + "user_000003\tnot a time\t\tX\t\tY\n"
    )
    with pytest.raises(InputFileError, match=r"s\.tsv: line 7: expected 6 fields, found 3"):
        ingest_sessions(path, tmp_path / "o")
    path.write_text(path.read_text().replace("user_000003\t2009-05-04T13:42:52Z\tonly four\n", ""))
    with pytest.raises(
        InputFileError, match=r"s\.tsv: line 7: field timestamp: 'not a time' is not a time"
    ):
        ingest_sessions(path, tmp_path / "o")
    path.write_text(
        path.read_text().replace(
            "user_000003\tnot a time\t\tX\t\tY\n", "user_000003\t2009-05-04T13:42:52Z\tonly four\n"
        )
    )
    summary = ingest_sessions(path, tmp_path / "o", skip_bad=True)
    assert summary.skipped_rows == 1 and summary.n_events == 5 and "line 7" in summary.warnings[0]


def test_generic_table_with_times_csv_and_parquet(tmp_path):
    frame = pl.DataFrame(
        {
            "uid": ["a", "a", "b", "a"],
            "song": ["s1", "s2", "s1", "s1"],
            "when": [1_600_000_000, 1_600_000_100, 1_600_000_000, 1_600_010_000],  # seconds
            "played": [100_000, 50_000, None, 200_000],
            "length": [200_000, 100_000, 200_000, 200_000],
        }
    )
    frame.write_csv(tmp_path / "t.csv")
    frame.write_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        ingest_sessions(
            tmp_path / name,
            tmp_path / name.replace(".", "-"),
            user_col="uid",
            item_col="song",
            timestamp_col="when",
            ms_played_col="played",
            duration_col="length",
        )
        data = ListeningData.load(tmp_path / name.replace(".", "-"))
        assert data.events.timestamp.tolist() == [
            1_600_000_000_000,
            1_600_000_100_000,
            1_600_010_000_000,
            1_600_000_000_000,
        ]
        assert data.events.session.tolist() == [0, 0, 1, 2]  # 10,000 s later: a new session
        # (a, s1): completions 0.5 and 1.0 → 0.75; (b, s1): ms_played unknown → completion unknown
        np.testing.assert_allclose(data.completion.data, [0.75, 0.5, np.nan])
        np.testing.assert_allclose(
            data.matrix.data,
            [0.7 * 0.75 + 0.3, 0.7 * 0.5 + 0.3 * np.log(2) / np.log(3), 1.0],
            rtol=1e-6,
        )


def test_generic_counts_table_and_its_errors(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("user,artist,plays\nu1,x,3\nu1,y,1\nu2,x,10\nu1,x,2\n")
    summary = ingest_sessions(
        path, tmp_path / "d", user_col="user", item_col="artist", count_col="plays"
    )
    data = ListeningData.load(tmp_path / "d")
    assert summary.n_events == 0 and data.play_count.toarray().tolist() == [[5, 1], [10, 0]]
    assert data.first_event.tolist() == [-1, -1, -1]
    with pytest.raises(
        InputFileError,
        match=r"counts\.csv: has no column 'item_id' \(columns: user, artist, plays\)",
    ):
        ingest_sessions(path, tmp_path / "e", user_col="user")
    path.write_text("user,artist,plays\nu1,x,3\n,y,1\n")
    with pytest.raises(InputFileError, match=r"counts\.csv: line 3: field user is empty"):
        ingest_sessions(path, tmp_path / "e", user_col="user", item_col="artist", count_col="plays")
    path.write_text("user,artist,plays\nu1,x,three\n")
    with pytest.raises(InputFileError, match=r"line 2: field plays: 'three' is not a number"):
        ingest_sessions(path, tmp_path / "e", user_col="user", item_col="artist", count_col="plays")
    path.write_text("user,artist,plays\nu1,x,0\n")
    with pytest.raises(InputFileError, match=r"line 2: field count: 0 is not a positive count"):
        ingest_sessions(path, tmp_path / "e", user_col="user", item_col="artist", count_col="plays")
    with pytest.raises(SegueError, match="not both"):
        ingest_sessions(
            path,
            tmp_path / "e",
            user_col="user",
            item_col="artist",
            count_col="plays",
            timestamp_col="t",
        )
    with pytest.raises(SegueError, match="only apply to --format table"):
        ingest_sessions(tmp_path, tmp_path / "e", format="lastfm", user_col="user")


def test_generated_format_errors(tmp_path):
    src = tmp_path / "gen"
    src.mkdir()
    (src / "tracks.csv").write_text(
        "track_id,track_name,artist_id,artist_name,duration_ms\n0,A,0,X,200000\n1,B,0,X,100000\n"
    )
    (src / "users.csv").write_text("user_id,user_type\n0,power\n")
    head = "user_id,track_id,artist_id,timestamp,ms_played,track_duration_ms,session_id\n"
    (src / "raw_sessions.csv").write_text(
        head + "0,0,0,2024-01-01T00:00:00.000Z,100000,200000,0\n"
        "0,7,0,2024-01-01T00:04:00.000Z,1000,200000,0\n"
    )
    with pytest.raises(
        InputFileError,
        match=r"raw_sessions\.csv: line 3: field track_id: '7' is not in tracks\.csv",
    ):
        ingest_sessions(src, tmp_path / "o")
    (src / "raw_sessions.csv").write_text(head + "0,0,0,2024-01-01T00:00:00.000Z,lots,200000,0\n")
    with pytest.raises(InputFileError, match=r"line 2: field ms_played: 'lots' is not a number"):
        ingest_sessions(src, tmp_path / "o")
    (src / "raw_sessions.csv").write_text(head + "5,0,0,2024-01-01T00:00:00.000Z,1,200000,0\n")
    with pytest.raises(InputFileError, match=r"line 2: field user_id: '5' is not in users\.csv"):
        ingest_sessions(src, tmp_path / "o")
    (src / "users.csv").write_text("user_id,user_type\n0,superfan\n")
    with pytest.raises(InputFileError, match=r"users\.csv: line 2: field user_type: 'superfan'"):
        ingest_sessions(src, tmp_path / "o")
    (src / "raw_sessions.csv").unlink()
    with pytest.raises(InputFileError, match="cannot tell its format"):
        ingest_sessions(src, tmp_path / "o")


def test_parts_give_the_same_dataset_as_one_pass(tmp_path):
    from segue.data.listening_exports import generated_source
    from segue.data.listening_ingest import ingest_listening
    from segue.data.synthetic.sessions import generate_sessions

    generate_sessions(tmp_path / "g", 200, seed=1, n_tracks=600)
    ingest_listening(generated_source(tmp_path / "g"), tmp_path / "one")
    ingest_listening(generated_source(tmp_path / "g"), tmp_path / "parts", events_per_part=500)
    a, b = ListeningData.load(tmp_path / "one"), ListeningData.load(tmp_path / "parts")
    assert (a.matrix != b.matrix).nnz == 0
    np.testing.assert_array_equal(a.events.session, b.events.session)
    np.testing.assert_array_equal(a.first_event, b.first_event)
    assert user_parts(np.array([400, 400, 400]), 500) == [(0, 2), (2, 3)]


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [
        ("plays.dat", "\t"),
        ("plays.tsv", "\t"),
        ("plays.csv", ";"),
        ("plays.csv", "|"),
        ("plays.csv", ","),
    ],
)
def test_generic_table_delimiter_is_sniffed(tmp_path, name, delimiter):
    rows = [
        ("user", "artist", "plays"),
        ("u1", "x", "3"),
        ("u1", "y", "1"),
        ("u2", "x", "10"),
        ("u1", "x", "2"),
    ]
    (tmp_path / name).write_text("".join(delimiter.join(r) + "\n" for r in rows))
    ingest_sessions(
        tmp_path / name, tmp_path / "d", user_col="user", item_col="artist", count_col="plays"
    )
    assert ListeningData.load(tmp_path / "d").play_count.toarray().tolist() == [[5, 1], [10, 0]]


def test_generic_table_delimiter_override_and_its_error(tmp_path):
    path = tmp_path / "plays.txt"
    path.write_text("user\tartist;label\tplays\nu1\tx;a\t3\nu2\ty;b\t1\n")
    with pytest.raises(
        InputFileError,
        match=r"plays\.txt: has no column 'artist' \(columns: user, artist;label, "
        r"plays\); read as tab-separated; give --delimiter if that is wrong",
    ):
        ingest_sessions(path, tmp_path / "d", user_col="user", item_col="artist", count_col="plays")
    with pytest.raises(
        InputFileError,
        match=r"has no columns 'user', 'plays' \(columns: user\tartist, "
        r"label\tplays\); read as semicolon-separated",
    ):
        ingest_sessions(
            path,
            tmp_path / "d",
            user_col="user",
            item_col="label\tplays",
            count_col="plays",
            delimiter=";",
        )
    ingest_sessions(
        path,
        tmp_path / "d",
        user_col="user",
        item_col="artist;label",
        count_col="plays",
        delimiter="\t",
    )
    data = ListeningData.load(tmp_path / "d")
    assert data.play_count.toarray().tolist() == [[3, 0], [0, 1]]


def test_genres_table_gives_known_items_their_genres(tmp_path):
    """hetrec2011's layout: artists' play counts, tag applications and tag names, all tab-separated."""
    (tmp_path / "user_artists.dat").write_text(
        "userID\tartistID\tweight\n1\t10\t5\n1\t11\t3\n2\t10\t7\n2\t12\t1\n"
    )
    tagged = [(10, 1)] * 3 + [(10, 2)] + [(11, 2)] * 3 + [(12, 3)] + [(99, 1)]  # 99: never played
    (tmp_path / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\n" + "".join(f"{u}\t{a}\t{t}\n" for u, (a, t) in enumerate(tagged))
    )
    (tmp_path / "tags.dat").write_text("tagID\ttagValue\n1\trock\n2\tjazz\n3\tpolka\n")
    summary = ingest_sessions(
        tmp_path / "user_artists.dat",
        tmp_path / "d",
        user_col="userID",
        item_col="artistID",
        count_col="weight",
        genres=tmp_path / "user_taggedartists.dat",
        genre_col="tagID",
        genre_names=tmp_path / "tags.dat",
    )
    data = ListeningData.load(tmp_path / "d")
    # rock and jazz applied 4 times each (ids: ties by name), polka once: dropped
    assert data.genre_names == ["jazz", "rock"] and summary.n_genres == 2
    genres = {
        key: {data.genre_names[g] for g in data.track_genres[i].indices}
        for i, key in enumerate(pl.read_parquet(tmp_path / "d" / "tracks.parquet")["track_key"])
    }
    assert genres == {"10": {"rock", "jazz"}, "11": {"jazz"}, "12": set()}
    assert any(
        "genres of 1 of 3 items ignored, not in the listening table (e.g. '99')" in w
        for w in summary.warnings
    )
    with pytest.raises(
        InputFileError,
        match=r"user_taggedartists\.dat: none of its \d+ items is in the listening table",
    ):
        ingest_sessions(
            tmp_path / "user_artists.dat",
            tmp_path / "e",
            user_col="userID",
            item_col="artistID",
            count_col="weight",
            genres=tmp_path / "user_taggedartists.dat",
            genre_item_col="userID",
            genre_col="tagID",
        )
    with pytest.raises(
        InputFileError,
        match=r"user_taggedartists\.dat: has no column 'tag' \(columns: userID, "
        r"artistID, tagID\); read as tab-separated",
    ):
        ingest_sessions(
            tmp_path / "user_artists.dat",
            tmp_path / "e",
            user_col="userID",
            item_col="artistID",
            count_col="weight",
            genres=tmp_path / "user_taggedartists.dat",
            genre_col="tag",
        )
    with pytest.raises(SegueError, match="need --genres FILE"):
        ingest_sessions(
            tmp_path / "user_artists.dat",
            tmp_path / "e",
            user_col="userID",
            item_col="artistID",
            genre_col="tagID",
        )
