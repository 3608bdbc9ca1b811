"""Table and column names, Arrow schemas and file names: the one place they are defined.

segue keeps a dataset as three Parquet tables plus a manifest (see ``shared/DESIGN.md``):

``playlists.parquet``
    One row per playlist, ordered by source slice then position in the slice.
``tracks.parquet``
    One row per unique track. ``track_id`` is a dense ``int32`` assigned at ingest in order of
    first appearance (slice order, then playlist, then position), so ids are stable for a given
    set of files whatever the number of workers. ``artist_id`` and ``album_id`` are dense ``int32``
    keys of the artist and album (by URI when the file has URIs, else by name), so artist-level
    metrics never need string joins.
``playlist_tracks.parquet``
    One row per playlist entry (pid, pos, track_id), ordered by playlist then position: the
    66M-row table at full scale, three integer columns and nothing else.

URIs appear only at the edges (files, CLI, API); everything inside works on dense ids.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

# File names inside an ingested dataset directory.
PLAYLISTS_FILE = "playlists.parquet"
TRACKS_FILE = "tracks.parquet"
PLAYLIST_TRACKS_FILE = "playlist_tracks.parquet"
MANIFEST_FILE = "manifest.json"
TABLE_FILES = (PLAYLISTS_FILE, TRACKS_FILE, PLAYLIST_TRACKS_FILE)

# File names of the challenge format (the real one) and of our held-out truth (ours).
CHALLENGE_FILE = "challenge_set.json"
CHALLENGE_TRUTH_FILE = "challenge_truth.json"

# --- column names -------------------------------------------------------------------------
PID = "pid"
NAME = "name"
DESCRIPTION = "description"
COLLABORATIVE = "collaborative"
MODIFIED_AT = "modified_at"
NUM_TRACKS = "num_tracks"
NUM_ALBUMS = "num_albums"
NUM_FOLLOWERS = "num_followers"
NUM_EDITS = "num_edits"
DURATION_MS = "duration_ms"
NUM_ARTISTS = "num_artists"

POS = "pos"
TRACK_ID = "track_id"
TRACK_URI = "track_uri"
TRACK_NAME = "track_name"
ARTIST_ID = "artist_id"
ARTIST_URI = "artist_uri"
ARTIST_NAME = "artist_name"
ALBUM_ID = "album_id"
ALBUM_URI = "album_uri"
ALBUM_NAME = "album_name"

# --- the MPD JSON format --------------------------------------------------------------------
# Fields of a playlist object in an MPD slice, in the order of the real files.
MPD_PLAYLIST_FIELDS = (
    NAME,
    COLLABORATIVE,
    PID,
    MODIFIED_AT,
    NUM_TRACKS,
    NUM_ALBUMS,
    NUM_FOLLOWERS,
    NUM_EDITS,
    DURATION_MS,
    NUM_ARTISTS,
    DESCRIPTION,
)
# Fields of a track object inside a playlist, in the order of the real files.
MPD_TRACK_FIELDS = (
    POS,
    ARTIST_NAME,
    TRACK_URI,
    ARTIST_URI,
    TRACK_NAME,
    ALBUM_URI,
    DURATION_MS,
    ALBUM_NAME,
)
# What a reduced copy must still have for segue to use it.
MPD_REQUIRED_PLAYLIST_FIELDS = (PID, "tracks")
MPD_REQUIRED_TRACK_FIELDS = (TRACK_URI,)
# `description` is optional in the real files too (18,760 of 1M playlists have one).
MPD_OPTIONAL_IN_REAL_FILES = (DESCRIPTION,)

# --- Arrow schemas of the tables --------------------------------------------------------------
PLAYLISTS_SCHEMA = pa.schema(
    [
        pa.field(PID, pa.int32(), nullable=False),
        pa.field(NAME, pa.string()),
        pa.field(DESCRIPTION, pa.string()),
        pa.field(COLLABORATIVE, pa.bool_()),
        pa.field(MODIFIED_AT, pa.int64()),
        pa.field(NUM_TRACKS, pa.int32(), nullable=False),
        pa.field(NUM_ALBUMS, pa.int32()),
        pa.field(NUM_FOLLOWERS, pa.int32()),
        pa.field(NUM_EDITS, pa.int32()),
        pa.field(DURATION_MS, pa.int64()),
        pa.field(NUM_ARTISTS, pa.int32()),
    ]
)

TRACKS_SCHEMA = pa.schema(
    [
        pa.field(TRACK_ID, pa.int32(), nullable=False),
        pa.field(TRACK_URI, pa.string(), nullable=False),
        pa.field(TRACK_NAME, pa.string()),
        pa.field(ARTIST_ID, pa.int32(), nullable=False),
        pa.field(ARTIST_URI, pa.string()),
        pa.field(ARTIST_NAME, pa.string()),
        pa.field(ALBUM_ID, pa.int32(), nullable=False),
        pa.field(ALBUM_URI, pa.string()),
        pa.field(ALBUM_NAME, pa.string()),
        pa.field(DURATION_MS, pa.int64()),
    ]
)

PLAYLIST_TRACKS_SCHEMA = pa.schema(
    [
        pa.field(PID, pa.int32(), nullable=False),
        pa.field(POS, pa.int32(), nullable=False),
        pa.field(TRACK_ID, pa.int32(), nullable=False),
    ]
)

# Track metadata columns as read from the JSON (before ids are assigned).
TRACK_METADATA_COLUMNS = (
    TRACK_URI,
    TRACK_NAME,
    ARTIST_URI,
    ARTIST_NAME,
    ALBUM_URI,
    ALBUM_NAME,
    DURATION_MS,
)

# --- listening data: `segue ingest sessions` -----------------------------------------------
# A listening dataset directory holds these tables plus manifest.json (with "kind": "listening").
# Its `tracks.parquet` has LISTENING_TRACKS_SCHEMA (not TRACKS_SCHEMA): listening logs have keys
# and names, not MPD URIs. Ids are dense int32 (users, tracks, artists, genres) and int64
# (sessions), assigned at ingest; keys (the source's own identifiers) appear only in
# users/tracks/artists. See segue.data.sessions for the meaning of every column.
LISTENING_SCHEMA_VERSION = 1
LISTENS_FILE = "listens.parquet"
EVENTS_FILE = "events.parquet"
USERS_FILE = "users.parquet"
ARTISTS_FILE = "artists.parquet"
GENRES_FILE = "genres.parquet"
TRACK_GENRES_FILE = "track_genres.parquet"
ARTIST_GENRES_FILE = "artist_genres.parquet"
USER_GENRE_PREFERENCES_FILE = "user_genre_preferences.parquet"  # opt-in feature only

USER_ID = "user_id"
USER_KEY = "user_key"
USER_TYPE = "user_type"  # casual / regular / power (generated data), null when unknown
TRACK_KEY = "track_key"
ARTIST_KEY = "artist_key"
GENRE_ID = "genre_id"
GENRE_NAME = "genre_name"
AFFINITY = "affinity"
TIMESTAMP = "timestamp"  # int64 ms since the Unix epoch (UTC), start of the play
MS_PLAYED = "ms_played"
COMPLETION = "completion"
SESSION_ID = "session_id"
PLAY_COUNT = "play_count"
AVG_COMPLETION = "avg_completion"
EDGE_WEIGHT = "edge_weight"
FIRST_EVENT = "first_event"  # row in events.parquet of the pair's first play (-1: no events)

USER_TYPES = ("casual", "regular", "power")

LISTENS_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.int32(), nullable=False),
        pa.field(TRACK_ID, pa.int32(), nullable=False),
        pa.field(PLAY_COUNT, pa.int32(), nullable=False),
        pa.field(AVG_COMPLETION, pa.float32()),  # null when no play has a known duration
        pa.field(EDGE_WEIGHT, pa.float32(), nullable=False),
        pa.field(FIRST_EVENT, pa.int64(), nullable=False),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.int32(), nullable=False),
        pa.field(TRACK_ID, pa.int32(), nullable=False),
        pa.field(TIMESTAMP, pa.int64(), nullable=False),
        pa.field(MS_PLAYED, pa.int64()),  # null when the source does not say (Last.fm)
        pa.field(COMPLETION, pa.float32()),  # null when ms_played or the duration is unknown
        pa.field(SESSION_ID, pa.int64(), nullable=False),
    ]
)
USERS_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.int32(), nullable=False),
        pa.field(USER_KEY, pa.string(), nullable=False),
        pa.field(USER_TYPE, pa.string()),
    ]
)
LISTENING_TRACKS_SCHEMA = pa.schema(
    [
        pa.field(TRACK_ID, pa.int32(), nullable=False),
        pa.field(TRACK_KEY, pa.string(), nullable=False),
        pa.field(TRACK_NAME, pa.string()),
        pa.field(ARTIST_ID, pa.int32(), nullable=False),
        pa.field(ARTIST_NAME, pa.string()),
        pa.field(DURATION_MS, pa.int64()),  # null when unknown
    ]
)
ARTISTS_SCHEMA = pa.schema(
    [
        pa.field(ARTIST_ID, pa.int32(), nullable=False),
        pa.field(ARTIST_KEY, pa.string(), nullable=False),
        pa.field(ARTIST_NAME, pa.string()),
    ]
)
GENRES_SCHEMA = pa.schema(
    [
        pa.field(GENRE_ID, pa.int32(), nullable=False),
        pa.field(GENRE_NAME, pa.string(), nullable=False),
    ]
)
TRACK_GENRES_SCHEMA = pa.schema(
    [
        pa.field(TRACK_ID, pa.int32(), nullable=False),
        pa.field(GENRE_ID, pa.int32(), nullable=False),
    ]
)
ARTIST_GENRES_SCHEMA = pa.schema(
    [
        pa.field(ARTIST_ID, pa.int32(), nullable=False),
        pa.field(GENRE_ID, pa.int32(), nullable=False),
    ]
)
USER_GENRE_PREFERENCES_SCHEMA = pa.schema(
    [
        pa.field(USER_ID, pa.int32(), nullable=False),
        pa.field(GENRE_ID, pa.int32(), nullable=False),
        pa.field(AFFINITY, pa.float32(), nullable=False),
    ]
)

# --- extras of a playlist dataset ingested from the Kaggle playlist CSV (`segue ingest kaggle`)
PLAYLIST_OWNERS_FILE = "playlist_owners.parquet"  # pid, user_key: who made each playlist
TRACK_FEATURES_FILE = "track_features.parquet"  # track_id + audio features (only with --features)
PLAYLIST_OWNERS_SCHEMA = pa.schema(
    [
        pa.field(PID, pa.int32(), nullable=False),
        pa.field(USER_KEY, pa.string(), nullable=False),
    ]
)


def manifest_digest(data_dir) -> str:
    """SHA-256 (hex) of a dataset directory's manifest: what a trained model records as the data
    it was trained on, and what a split records for each of its training parts."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256((Path(data_dir) / MANIFEST_FILE).read_bytes()).hexdigest()
