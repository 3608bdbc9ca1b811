"""``segue ingest sessions``: plays from any listening source → a listening dataset directory.

A reader (:mod:`segue.data.listening_exports`) turns a source — generated CSVs, a Spotify account
export, Last.fm scrobbles, a generic interactions table — into a stream of :class:`PlayBatch` es
with the same columns (:data:`PLAY_COLUMNS`). This module does the rest in two passes, so memory
holds the catalogs and one bounded part of the plays, never the whole log:

1. **Pass 1** (streaming): each batch gets dense ids — users and tracks in the order of the source's
   own catalog when it has one (generated data), else in order of first appearance — and is
   written, sorted by (user, time, input order), to a temporary Parquet chunk. Plays per user are
   counted.
2. **Pass 2** (by parts): users are cut into consecutive ranges of at most ``events_per_part`` plays;
   each range is read back from every chunk (Parquet row-group statistics skip the rest), sorted,
   cut into sessions (30-minute gaps), aggregated into edges and appended to ``events.parquet``
   and ``listens.parquet``. Then the catalogs are written.

Everything is written inside a temporary directory renamed into place at the end
(:func:`segue.io.atomic_dir`): an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from segue.data import schema
from segue.data.sessions import (
    SESSION_GAP_MS,
    UNKNOWN,
    EventLog,
    Listens,
    aggregate_listens,
    completion_of,
    events_table,
    listens_table,
    session_starts,
    write_manifest,
)
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir
from segue.progress import progress

log = logging.getLogger("segue")

# The columns every reader produces (missing information is null):
#   user_key, track_key: Utf8, never null;  track_name, artist_key, artist_name: Utf8;
#   timestamp: Int64 ms since the epoch (start of the play; null only in counts-only sources);
#   ms_played, duration_ms: Int64;  count: Int64 (plays a row stands for; counts-only sources);
#   line: Int64, where the row is in its file (for error messages).
PLAY_COLUMNS = {
    "user_key": pl.Utf8,
    "track_key": pl.Utf8,
    "track_name": pl.Utf8,
    "artist_key": pl.Utf8,
    "artist_name": pl.Utf8,
    "timestamp": pl.Int64,
    "ms_played": pl.Int64,
    "duration_ms": pl.Int64,
    "count": pl.Int64,
    "line": pl.Int64,
}
EVENTS_PER_PART = 4_000_000


@dataclass
class PlayBatch:
    """Plays read from ``file`` (columns :data:`PLAY_COLUMNS`) and how many bytes of it that was."""

    file: Path
    frame: pl.DataFrame
    bytes_read: int = 0


@dataclass
class ListeningSource:
    """What a reader hands the ETL. ``batches()`` streams the plays; the catalogs are optional.

    ``users``: user_key, user_type (ids follow this order; plays of other users are refused).
    ``tracks``: track_key, track_name, artist_key, artist_name, duration_ms (ids follow this order;
    plays of other tracks are refused). ``genre_names``; ``track_genres`` (track_key, genre_id);
    ``artist_genres`` (artist_key, genre_id); ``user_genre_preferences`` (user_key, genre_id,
    affinity). ``counts_only``: rows are (user, track, count) without times.
    """

    description: str
    format: str
    batches: Callable[[], Iterator[PlayBatch]]
    total_bytes: int
    users: pl.DataFrame | None = None
    tracks: pl.DataFrame | None = None
    genre_names: list[str] | None = None
    track_genres: pl.DataFrame | None = None
    artist_genres: pl.DataFrame | None = None
    user_genre_preferences: pl.DataFrame | None = None
    counts_only: bool = False
    warnings: list[str] = field(default_factory=list)
    skipped_rows: int = 0
    catalog_file: Path | None = None  # where `tracks` came from (for error messages)
    genre_file: Path | None = None  # where `track_genres` came from, when a user gave it


@dataclass
class ListeningIngestSummary:
    out: Path
    format: str
    n_users: int
    n_tracks: int
    n_artists: int
    n_genres: int
    n_events: int
    n_sessions: int
    n_edges: int
    has_durations: bool
    skipped_rows: int
    warnings: list[str]

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


class KeyIndex:
    """String key → dense int32 id; new keys get the next ids in order of first appearance."""

    def __init__(self, keys: pl.Series | None = None, name: str = "key"):
        self.frame = pl.DataFrame(
            {"key": pl.Series([], dtype=pl.Utf8), "id": pl.Series([], dtype=pl.Int32)}
        )
        self.name = name
        if keys is not None:
            dup = keys.is_duplicated()
            if dup.any():
                raise SegueError(f"the {name} catalog lists {keys.filter(dup)[0]!r} twice")
            self.frame = pl.DataFrame(
                {
                    "key": keys.cast(pl.Utf8),
                    "id": pl.arange(0, len(keys), dtype=pl.Int32, eager=True),
                }
            )

    def __len__(self) -> int:
        return self.frame.height

    def lookup(self, keys: pl.Series) -> pl.Series:
        """Int32 ids (null for unknown keys), in the order of ``keys``."""
        joined = pl.DataFrame({"key": keys}).join(
            self.frame, on="key", how="left", maintain_order="left"
        )
        return joined["id"]

    def add(self, keys: pl.Series) -> tuple[pl.Series, pl.Series]:
        """Ids of ``keys``, adding unknown ones; also returns the index (into ``keys``) of each new
        key's first row, in id order."""
        ids = self.lookup(keys)
        missing = ids.is_null()
        if not missing.any():
            return ids, pl.Series([], dtype=pl.UInt32)
        rows = pl.DataFrame(
            {"key": keys, "row": pl.arange(0, len(keys), dtype=pl.UInt32, eager=True)}
        ).filter(missing)
        new = rows.unique("key", keep="first", maintain_order=True)
        start = len(self)
        self.frame = pl.concat(
            [
                self.frame,
                pl.DataFrame(
                    {
                        "key": new["key"],
                        "id": pl.arange(start, start + new.height, dtype=pl.Int32, eager=True),
                    }
                ),
            ]
        )
        return self.lookup(keys), new["row"]


class _Catalog:
    """Users, tracks and artists seen so far, with the tracks' metadata."""

    def __init__(self, source: ListeningSource):
        self.source = source
        self.fixed_users = source.users is not None
        self.fixed_tracks = source.tracks is not None
        self.users = KeyIndex(source.users["user_key"] if self.fixed_users else None, "user")
        self.user_type = list(source.users["user_type"]) if self.fixed_users else []
        self.artists = KeyIndex(name="artist")
        self.artist_names: list[str | None] = []
        if self.fixed_tracks:
            t = source.tracks
            self.tracks = KeyIndex(t["track_key"], "track")
            artist_keys = t["artist_key"].fill_null(pl.lit("track:") + t["track_key"])
            artist_ids, first_rows = self.artists.add(artist_keys)
            self.track_artist = [artist_ids.to_numpy().astype(np.int32)]
            self.artist_names = t["artist_name"].gather(first_rows).to_list()
            self.track_meta = [t.select("track_key", "track_name", "artist_name", "duration_ms")]
        else:
            self.tracks = KeyIndex(name="track")
            self.track_artist = []
            self.track_meta = []

    def user_ids(self, batch: PlayBatch) -> np.ndarray:
        frame = batch.frame
        if self.fixed_users:
            ids = self.users.lookup(frame["user_key"])
            _refuse_unknown(ids, frame, batch.file, "user", self.source)
            return ids.to_numpy().astype(np.int32)
        ids, _ = self.users.add(frame["user_key"])
        self.user_type += [None] * (len(self.users) - len(self.user_type))
        return ids.to_numpy().astype(np.int32)

    def track_ids(self, batch: PlayBatch) -> np.ndarray:
        frame = batch.frame
        if self.fixed_tracks:
            ids = self.tracks.lookup(frame["track_key"])
            _refuse_unknown(ids, frame, batch.file, "track", self.source)
            return ids.to_numpy().astype(np.int32)
        ids, first_rows = self.tracks.add(frame["track_key"])
        if len(first_rows):
            new = frame[first_rows]
            # A track without an artist gets an artist of its own, not one shared "unknown" artist
            # that would tie every such track together in a graph.
            artist_keys = new["artist_key"].fill_null(pl.lit("track:") + new["track_key"])
            before = len(self.artists)
            artist_ids, artist_first = self.artists.add(artist_keys)
            self.artist_names += new["artist_name"].gather(artist_first).to_list()
            assert len(self.artist_names) == len(self.artists) >= before
            self.track_artist.append(artist_ids.to_numpy().astype(np.int32))
            self.track_meta.append(
                new.select("track_key", "track_name", "artist_name", "duration_ms")
            )
        return ids.to_numpy().astype(np.int32)

    def durations(self) -> np.ndarray:
        if not self.track_meta:
            return np.zeros(0, dtype=np.int64)
        return (
            pl.concat([m["duration_ms"] for m in self.track_meta])
            .fill_null(UNKNOWN)
            .to_numpy()
            .astype(np.int64)
        )


def _refuse_unknown(
    ids: pl.Series, frame: pl.DataFrame, file: Path, what: str, source: ListeningSource
) -> None:
    missing = ids.is_null()
    if missing.any():
        i = int(missing.arg_max())
        catalog = {
            "user": "users.csv",
            "track": (source.catalog_file.name if source.catalog_file else "the track catalog"),
        }[what]
        raise InputFileError(
            file,
            f"field {what}_id: {frame[f'{what}_key'][i]!r} is not in {catalog}",
            where=f"line {frame['line'][i]}",
        )


def ingest_listening(
    source: ListeningSource,
    out: Path,
    *,
    gap_ms: int = SESSION_GAP_MS,
    events_per_part: int = EVENTS_PER_PART,
) -> ListeningIngestSummary:
    """Run both passes (see the module docstring) and write the dataset to ``out``."""
    out = Path(out)
    catalog = _Catalog(source)
    with atomic_dir(out) as tmp:
        work = tmp / ".chunks"
        work.mkdir()
        chunks, per_user, n_rows = _pass_one(source, catalog, work)
        _check_genre_items(source, catalog)
        n_users = len(catalog.users)
        per_user = np.pad(per_user, (0, max(0, n_users - len(per_user))))
        durations = catalog.durations()
        n_tracks = len(catalog.tracks)
        if n_rows == 0:
            raise SegueError(f"{source.description}: no plays to ingest")
        events_written, sessions_written, edges_written = _pass_two(
            chunks,
            per_user,
            n_tracks,
            durations,
            tmp,
            gap_ms=gap_ms,
            events_per_part=events_per_part,
            counts_only=source.counts_only,
        )
        shutil.rmtree(work)
        has_durations = bool(np.any(durations > 0))
        n_genres = _write_catalogs(tmp, source, catalog, n_tracks)
        write_manifest(
            tmp,
            source=source.description,
            has_durations=has_durations,
            counts={
                "users": n_users,
                "tracks": n_tracks,
                "artists": len(catalog.artists),
                "genres": n_genres,
                "edges": edges_written,
                "events": events_written,
                "sessions": sessions_written,
            },
            extra={
                "format": source.format,
                "counts_only": source.counts_only,
                "skipped_rows": source.skipped_rows,
                "warnings": source.warnings[:100],
            },
        )
    return ListeningIngestSummary(
        out,
        source.format,
        n_users,
        n_tracks,
        len(catalog.artists),
        n_genres,
        events_written,
        sessions_written,
        edges_written,
        has_durations,
        source.skipped_rows,
        source.warnings,
    )


def _pass_one(
    source: ListeningSource, catalog: _Catalog, work: Path
) -> tuple[list[Path], np.ndarray, int]:
    chunks: list[Path] = []
    per_user = np.zeros(0, dtype=np.int64)
    n_rows = 0
    with progress(f"read {source.format}", source.total_bytes, "bytes") as bar:
        for batch in source.batches():
            frame = batch.frame
            if frame.height:
                _check_columns(frame)
                user = catalog.user_ids(batch)
                track = catalog.track_ids(batch)
                count = frame["count"].fill_null(1).to_numpy().astype(np.int64)
                if np.any(count < 1):
                    i = int(np.argmax(count < 1))
                    raise InputFileError(
                        batch.file,
                        f"field count: {count[i]} is not a positive count",
                        where=f"line {frame['line'][i]}",
                    )
                chunk = pl.DataFrame(
                    {
                        "user_id": user,
                        "track_id": track,
                        "timestamp": frame["timestamp"].fill_null(0),
                        "ms_played": frame["ms_played"].fill_null(UNKNOWN),
                        "duration_ms": frame["duration_ms"].fill_null(UNKNOWN),
                        "count": count,
                        "row": np.arange(n_rows, n_rows + frame.height, dtype=np.int64),
                    }
                ).sort("user_id", "timestamp", "row")
                path = work / f"chunk-{len(chunks):06d}.parquet"
                chunk.write_parquet(path, row_group_size=65_536, statistics=True, compression="lz4")
                chunks.append(path)
                counts = np.bincount(user, minlength=len(catalog.users))
                per_user = np.pad(per_user, (0, len(counts) - len(per_user))) + counts
                n_rows += frame.height
            bar.advance(batch.bytes_read)
    return chunks, per_user, n_rows


def _check_genre_items(source: ListeningSource, catalog: _Catalog) -> None:
    """Refuse a genres table none of whose items were played (the wrong item column, most
    likely); count and note the items it has that were never played (they are left out)."""
    if source.genre_file is None or source.track_genres is None:
        return
    items = source.track_genres["track_key"].unique(maintain_order=True)
    played = catalog.tracks.lookup(items).is_not_null()
    if not played.any():
        raise InputFileError(
            source.genre_file,
            f"none of its {len(items):,} items is in the listening table "
            f"(e.g. {items[0]!r}); do --genre-item-col and --item-col hold the same ids?",
        )
    if not played.all():
        note = (
            f"{source.genre_file.name}: genres of {int((~played).sum()):,} of {len(items):,} items ignored, "
            f"not in the listening table (e.g. {items.filter(~played)[0]!r})"
        )
        log.warning(note)
        source.warnings.append(note)


def _check_columns(frame: pl.DataFrame) -> None:
    missing = set(PLAY_COLUMNS) - set(frame.columns)
    if missing:  # a reader bug, not a user error
        raise AssertionError(f"play batch lacks {sorted(missing)}")


def user_parts(per_user: np.ndarray, events_per_part: int) -> list[tuple[int, int]]:
    """Consecutive user ranges [lo, hi): a user belongs to part ``k`` when the rows before it
    number in [k·E, (k+1)·E), so a part holds at most E rows plus its last user's.

    >>> user_parts(np.array([3, 3, 5, 1, 1]), 6)
    [(0, 2), (2, 4), (4, 5)]
    """
    before = np.cumsum(per_user) - per_user
    part = before // max(events_per_part, 1)
    bounds = (
        np.flatnonzero(np.r_[True, part[1:] != part[:-1]]) if len(part) else np.zeros(0, np.int64)
    )
    ends = np.r_[bounds[1:], len(per_user)]
    return [(int(lo), int(hi)) for lo, hi in zip(bounds, ends, strict=True)]


def _pass_two(
    chunks: list[Path],
    per_user: np.ndarray,
    n_tracks: int,
    durations: np.ndarray,
    tmp: Path,
    *,
    gap_ms: int,
    events_per_part: int,
    counts_only: bool,
) -> tuple[int, int, int]:
    events_writer = pq.ParquetWriter(
        tmp / schema.EVENTS_FILE, schema.EVENTS_SCHEMA, compression="zstd"
    )
    listens_writer = pq.ParquetWriter(
        tmp / schema.LISTENS_FILE, schema.LISTENS_SCHEMA, compression="zstd"
    )
    n_events = n_sessions = n_edges = 0
    parts = user_parts(per_user, events_per_part)
    try:
        with progress("sessions and edges", int(per_user.sum()), "rows") as bar:
            for lo, hi in parts:
                frame = (
                    pl.scan_parquet(chunks)
                    .filter((pl.col("user_id") >= lo) & (pl.col("user_id") < hi))
                    .sort("user_id", "timestamp", "row")
                    .collect()
                )
                user = frame["user_id"].to_numpy().astype(np.int32)
                track = frame["track_id"].to_numpy().astype(np.int32)
                if counts_only:
                    listens = _count_listens(user, track, frame["count"].to_numpy(), n_tracks)
                else:
                    timestamp = frame["timestamp"].to_numpy().astype(np.int64)
                    ms = frame["ms_played"].to_numpy().astype(np.int64)
                    duration = frame["duration_ms"].to_numpy().astype(np.int64)
                    duration = np.where(duration >= 0, duration, durations[track])
                    completion = completion_of(ms, duration)
                    starts = session_starts(user, timestamp, ms, gap_ms)
                    session = np.cumsum(starts, dtype=np.int64) - 1 + n_sessions
                    events = EventLog(user, track, timestamp, session, ms, completion)
                    events_writer.write_table(events_table(events), row_group_size=1_000_000)
                    listens = aggregate_listens(
                        user, track, completion, n_tracks, first_index=n_events
                    )
                    n_events += len(user)
                    n_sessions += int(starts.sum())
                listens_writer.write_table(listens_table(listens))
                n_edges += len(listens.user)
                bar.advance(len(user))
    finally:
        events_writer.close()
        listens_writer.close()
    return n_events, n_sessions, n_edges


def _count_listens(
    user: np.ndarray, track: np.ndarray, count: np.ndarray, n_tracks: int
) -> Listens:
    key = user.astype(np.int64) * n_tracks + track
    pairs, inverse = np.unique(key, return_inverse=True)
    plays = np.bincount(inverse.ravel(), weights=count, minlength=len(pairs)).astype(np.int64)
    if plays.max(initial=0) > np.iinfo(np.int32).max:
        raise SegueError("a play count exceeds 2^31")
    return Listens(
        (pairs // n_tracks).astype(np.int32),
        (pairs % n_tracks).astype(np.int32),
        plays.astype(np.int32),
        np.full(len(pairs), np.nan, np.float32),
        np.full(len(pairs), -1, np.int64),
    )


def _write_catalogs(tmp: Path, source: ListeningSource, catalog: _Catalog, n_tracks: int) -> int:
    n_users = len(catalog.users)
    users = catalog.users.frame
    types = catalog.user_type + [None] * (n_users - len(catalog.user_type))
    pq.write_table(
        pa.table(
            [
                pa.array(users["id"].to_numpy(), pa.int32()),
                users["key"].to_arrow().cast(pa.string()),
                pa.array(types, pa.string()),
            ],
            schema=schema.USERS_SCHEMA,
        ),
        tmp / schema.USERS_FILE,
    )
    meta = (
        pl.concat(catalog.track_meta)
        if catalog.track_meta
        else pl.DataFrame(
            {
                c: pl.Series([], dtype=PLAY_COLUMNS[c])
                for c in ("track_key", "track_name", "artist_name", "duration_ms")
            }
        )
    )
    track_artist = (
        np.concatenate(catalog.track_artist) if catalog.track_artist else np.zeros(0, np.int32)
    )
    pq.write_table(
        pa.table(
            [
                pa.array(np.arange(n_tracks, dtype=np.int32)),
                meta["track_key"].to_arrow().cast(pa.string()),
                meta["track_name"].to_arrow().cast(pa.string()),
                pa.array(track_artist, pa.int32()),
                meta["artist_name"].to_arrow().cast(pa.string()),
                meta["duration_ms"].to_arrow().cast(pa.int64()),
            ],
            schema=schema.LISTENING_TRACKS_SCHEMA,
        ),
        tmp / schema.TRACKS_FILE,
    )
    artists = catalog.artists.frame
    pq.write_table(
        pa.table(
            [
                pa.array(artists["id"].to_numpy(), pa.int32()),
                artists["key"].to_arrow().cast(pa.string()),
                pa.array(catalog.artist_names, pa.string()),
            ],
            schema=schema.ARTISTS_SCHEMA,
        ),
        tmp / schema.ARTISTS_FILE,
    )
    names = source.genre_names or []
    pq.write_table(
        pa.table(
            [pa.array(np.arange(len(names), dtype=np.int32)), pa.array(names, pa.string())],
            schema=schema.GENRES_SCHEMA,
        ),
        tmp / schema.GENRES_FILE,
    )

    def pairs(
        frame: pl.DataFrame | None, key: str, index: KeyIndex, table_schema: pa.Schema, file: str
    ) -> None:
        if frame is None or frame.height == 0:
            rows = np.zeros(0, np.int32)
            genres = np.zeros(0, np.int32)
        else:
            ids = index.lookup(frame[key].cast(pl.Utf8))
            known = ids.is_not_null()  # genres of tracks/artists never played are dropped
            rows = ids.filter(known).to_numpy().astype(np.int32)
            genres = frame["genre_id"].filter(known).to_numpy().astype(np.int32)
            if len(genres) and (genres.min() < 0 or genres.max() >= len(names)):
                raise SegueError(f"{file}: genre_id outside the {len(names)} genres")
        order = np.lexsort((genres, rows))
        pq.write_table(
            pa.table([pa.array(rows[order]), pa.array(genres[order])], schema=table_schema),
            tmp / file,
        )

    pairs(
        source.track_genres,
        "track_key",
        catalog.tracks,
        schema.TRACK_GENRES_SCHEMA,
        schema.TRACK_GENRES_FILE,
    )
    pairs(
        source.artist_genres,
        "artist_key",
        catalog.artists,
        schema.ARTIST_GENRES_SCHEMA,
        schema.ARTIST_GENRES_FILE,
    )
    prefs = source.user_genre_preferences
    if prefs is not None:
        ids = catalog.users.lookup(prefs["user_key"].cast(pl.Utf8))
        known = ids.is_not_null()
        table = pa.table(
            [
                pa.array(ids.filter(known).to_numpy().astype(np.int32)),
                pa.array(prefs["genre_id"].filter(known).to_numpy().astype(np.int32)),
                pa.array(prefs["affinity"].filter(known).to_numpy().astype(np.float32)),
            ],
            schema=schema.USER_GENRE_PREFERENCES_SCHEMA,
        )
        pq.write_table(table, tmp / schema.USER_GENRE_PREFERENCES_FILE)
    return len(names)
