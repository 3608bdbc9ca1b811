"""The session generator against the statistics it is built to have, and its ingest."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from segue.data.listening_exports import ingest_sessions
from segue.data.sessions import SESSION_GAP_MS, ListeningData
from segue.data.synthetic.sessions import USER_TYPES, generate_sessions
from segue.errors import SegueError

N_USERS = 1_500


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "sessions"
    summary = generate_sessions(out, N_USERS, seed=3, n_tracks=4_000)
    return out, summary


@pytest.fixture(scope="module")
def plays(generated):
    out, _ = generated
    raw = pl.read_csv(out / "raw_sessions.csv", try_parse_dates=True)
    users = pl.read_csv(out / "users.csv")
    return raw.join(users, on="user_id", how="left").with_columns(
        pl.col("timestamp").dt.epoch("ms").alias("t")
    )


def test_files_columns_and_user_types(generated, plays):
    out, summary = generated
    assert {p.name for p in out.iterdir()} == {
        ".segue-output",
        "raw_sessions.csv",
        "tracks.csv",
        "genres.csv",
        "artist_genres.csv",
        "song_genres.csv",
        "user_genre_preferences.csv",
        "users.csv",
    }
    assert plays.columns[:7] == [
        "user_id",
        "track_id",
        "artist_id",
        "timestamp",
        "ms_played",
        "track_duration_ms",
        "session_id",
    ]
    users = pl.read_csv(out / "users.csv")
    shares = users["user_type"].value_counts(normalize=True)
    for t, spec in USER_TYPES.items():
        share = shares.filter(pl.col("user_type") == t)["proportion"][0]
        assert abs(share - spec.share) < 0.05, (t, share)
    # Heavier users: more sessions, longer sessions.
    per_user = plays.group_by("user_id", "user_type").agg(
        pl.col("session_id").n_unique().alias("sessions"), pl.len().alias("plays")
    )
    mean = {t: per_user.filter(pl.col("user_type") == t)["sessions"].mean() for t in USER_TYPES}
    assert mean["casual"] < mean["regular"] < mean["power"]
    length = (
        plays.group_by("session_id", "user_type")
        .len()
        .group_by("user_type")
        .agg(pl.col("len").mean())
    )
    by_type = dict(zip(length["user_type"], length["len"], strict=True))
    assert by_type["casual"] < by_type["regular"] < by_type["power"]
    assert summary.n_events == plays.height and summary.n_users == N_USERS


def test_genres_have_zipf_popularity_and_artists_one_to_three(generated, plays):
    out, _ = generated
    genres = pl.read_csv(out / "genres.csv")
    assert genres.height == 35
    pop = genres["popularity"].to_numpy()
    np.testing.assert_allclose(pop / pop[0], 1 / np.arange(1, 36), rtol=1e-3)  # Zipf, exponent 1
    per_artist = pl.read_csv(out / "artist_genres.csv").group_by("artist_id").len()["len"]
    assert per_artist.min() == 1 and per_artist.max() == 3
    # Song genres come from their artist's genres.
    songs = pl.read_csv(out / "song_genres.csv").join(
        pl.read_csv(out / "tracks.csv").select("track_id", "artist_id"), on="track_id"
    )
    inherited = songs.join(
        pl.read_csv(out / "artist_genres.csv"), on=["artist_id", "genre_id"], how="semi"
    )
    assert inherited.height == songs.height
    # Plays follow genre popularity: the most popular genre is played most, and the head beats the tail.
    played = (
        plays.select("track_id")
        .join(pl.read_csv(out / "song_genres.csv").unique("track_id", keep="first"), on="track_id")[
            "genre_id"
        ]
        .value_counts()
        .sort("genre_id")
    )
    counts = np.zeros(35)
    counts[played["genre_id"].to_numpy()] = played["count"].to_numpy()
    assert counts.argmax() == 0 and counts[:5].sum() > 3 * counts[-10:].sum()


def test_ms_played_against_duration_and_skips(generated, plays):
    out, _ = generated
    assert (plays["ms_played"] <= plays["track_duration_ms"]).all() and (
        plays["ms_played"] >= 0
    ).all()
    skip = (plays["ms_played"] <= 30_000) & (plays["ms_played"] < plays["track_duration_ms"])
    rate = skip.mean()
    assert 0.05 < rate < 0.4
    completion = plays["ms_played"] / plays["track_duration_ms"]
    assert (completion == 1.0).mean() > 0.3  # many plays run to the end
    # Skips are likelier outside the user's genres (the generator's latent tastes).
    liked = pl.read_csv(out / "user_genre_preferences.csv").select("user_id", "genre_id")
    genre = pl.read_csv(out / "song_genres.csv").unique("track_id", keep="first")
    tagged = (
        plays.with_columns(skip.alias("skip"))
        .join(genre, on="track_id")
        .join(
            liked.with_columns(pl.lit(True).alias("liked")), on=["user_id", "genre_id"], how="left"
        )
    )
    liked_rate = tagged.filter(pl.col("liked").is_not_null())["skip"].mean()
    other_rate = tagged.filter(pl.col("liked").is_null())["skip"].mean()
    assert other_rate > 1.5 * liked_rate


def test_sessions_are_separated_by_more_than_30_minutes_and_ingest_recovers_them(
    generated, plays, tmp_path
):
    out, _ = generated
    p = plays.sort("user_id", "t")
    same_user = (p["user_id"] == p["user_id"].shift(1)).fill_null(False)
    gap = p["t"] - (p["t"].shift(1) + p["ms_played"].shift(1))
    new_session = (p["session_id"] != p["session_id"].shift(1)).fill_null(True)
    within = gap.filter(same_user & ~new_session)
    between = gap.filter(same_user & new_session)
    assert within.min() >= 0 and within.max() <= 3_000
    assert between.min() > SESSION_GAP_MS
    summary = ingest_sessions(out, tmp_path / "data")
    data = ListeningData.load(tmp_path / "data")
    assert summary.n_sessions == p["session_id"].n_unique() == data.events.n_sessions
    # Same users, tracks (generated ids kept) and plays, in the same order: sessions match one to one.
    np.testing.assert_array_equal(data.events.track, p["track_id"].to_numpy())
    np.testing.assert_array_equal(data.events.session, p["session_id"].to_numpy())
    assert data.user_type.tolist() == pl.read_csv(out / "users.csv")["user_type"].to_list()
    assert (
        data.n_genres == 35 and data.track_genres.nnz == pl.read_csv(out / "song_genres.csv").height
    )
    assert data.user_genre_preferences is None  # opt-in only
    assert (
        ListeningData.load(
            tmp_path / "data", user_genre_preferences=True
        ).user_genre_preferences.nnz
        > 0
    )


def test_the_next_track_is_predictable(plays):
    """Consecutive plays keep their genre, and often continue the previous track (artist order)."""
    p = plays.sort("user_id", "t")
    same_session = (p["session_id"] == p["session_id"].shift(1)).fill_null(False)
    same_artist = (p["artist_id"] == p["artist_id"].shift(1)).filter(same_session).mean()
    next_in_order = (p["track_id"] == p["track_id"].shift(1) + 1).filter(same_session).mean()
    assert same_artist > 0.15 and next_in_order > 0.1


def test_same_seed_same_files_and_refusals(tmp_path):
    def digest(path):
        return hashlib.sha256((path / "raw_sessions.csv").read_bytes()).hexdigest()

    a = generate_sessions(tmp_path / "a", 120, seed=5, n_tracks=500)
    generate_sessions(tmp_path / "b", 120, seed=5, n_tracks=500)
    generate_sessions(tmp_path / "c", 120, seed=6, n_tracks=500)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert a.n_tracks == 500 and a.n_artists == 50
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(SegueError, match="holds files segue did not write"):
        generate_sessions(tmp_path / "mine", 10)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    with pytest.raises(SegueError, match="artists"):
        generate_sessions(tmp_path / "d", 10, n_tracks=20, n_artists=10)
