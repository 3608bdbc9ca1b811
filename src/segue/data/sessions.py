"""Listening data: plays of tracks by users in time — tables, sessions, edges, and ``ListeningData``.

A listening dataset directory (written by ``segue ingest sessions``, :mod:`segue.data.listening_ingest`)
holds the tables named in :mod:`segue.data.schema`:

``events.parquet``
    One row per play, ordered by user, then time (ties keep the source's order): ``user_id``,
    ``track_id``, ``timestamp`` (int64 ms since the epoch, UTC, the *start* of the play),
    ``ms_played`` (null when the source does not say), ``completion`` (ms_played / duration in
    [0, 1], null when either is unknown) and ``session_id`` (int64, dense, in the same order).
    A session ends where the user's next play starts more than 30 minutes after the previous
    play *ended* (start + ms_played; start alone when ms_played is unknown).
``listens.parquet``
    One row per (user, track) pair, ordered by user then track: ``play_count``,
    ``avg_completion`` (mean of the known completions, null when none is known), ``edge_weight``
    and ``first_event`` (row of the pair's first play in ``events.parquet``; -1 when the source
    had counts but no timestamps).
``users``, ``tracks``, ``artists``, ``genres``, ``track_genres``, ``artist_genres``
    Catalogs with dense ids and the source's keys; ``user_genre_preferences`` only when the
    source has them (the generator's latent tastes: an opt-in feature, never loaded by default,
    because handing a model the generator's answer makes its figures meaningless).

Edge weight (the source design's formula, with its two gaps filled)::

    edge_weight = 0.7 · avg_completion + 0.3 · normalised play count
    normalised play count = log(1 + play_count) / log(1 + the user's largest play_count)

The play count is normalised *per user* and on a log scale: raw counts are heavy-tailed (a power
user's favourite has hundreds of plays) and a global maximum would flatten every casual user's
counts to ~0. When no completion of a pair is known (a source without durations), the weight
falls back to the normalised play count alone, so it stays in (0, 1] and never becomes NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue import __version__
from segue.arrays import ranges
from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import InputFileError, SegueError
from segue.io import write_json

SESSION_GAP_MS = 30 * 60 * 1000
"""A pause longer than this (between the end of a play and the start of the next) ends a session."""

COMPLETION_SHARE = 0.7
"""Share of completion in the edge weight; the rest (0.3) is the normalised play count."""

UNKNOWN = -1
"""``ms_played`` / ``duration_ms`` value in memory meaning "the source does not say"."""


# --------------------------------------------------------------------------------------------
# Vectorised building blocks (shared by the ETL, the split and the tests)
# --------------------------------------------------------------------------------------------


def completion_of(ms_played: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
    """float32 [m]: ``ms_played / duration_ms`` clipped to [0, 1]; NaN where either is unknown
    (negative) or the duration is 0.

    >>> completion_of(np.array([30_000, 250_000, 10, -1]), np.array([200_000, 200_000, -1, 9])).tolist()
    [0.15000000596046448, 1.0, nan, nan]
    """
    ms = np.asarray(ms_played, dtype=np.float64)
    duration = np.asarray(duration_ms, dtype=np.float64)
    known = (ms >= 0) & (duration > 0)
    out = np.full(ms.shape, np.nan, dtype=np.float32)
    np.divide(ms, duration, out=out, where=known, casting="unsafe")
    np.clip(out, 0.0, 1.0, out=out)
    return out


def session_starts(
    user: np.ndarray, timestamp: np.ndarray, ms_played: np.ndarray, gap_ms: int = SESSION_GAP_MS
) -> np.ndarray:
    """bool [m]: True where a play starts a new session. Events must be sorted by (user, time).

    A new user starts a session; so does a play that starts more than ``gap_ms`` after the
    previous play ended (its start + ms_played, or its start when ms_played is unknown).

    >>> session_starts(np.array([0, 0, 0, 1]), np.array([0, 200_000, 2_500_000, 2_600_000]),
    ...                np.array([180_000, 100_000, -1, 5]), gap_ms=1_800_000).tolist()
    [True, False, True, True]
    """
    m = len(user)
    starts = np.ones(m, dtype=bool)
    if m > 1:
        ended = timestamp[:-1] + np.maximum(ms_played[:-1], 0)
        starts[1:] = (user[1:] != user[:-1]) | (timestamp[1:] - ended > gap_ms)
    return starts


@dataclass
class Listens:
    """(user, track) pairs aggregated from plays, sorted by user then track (all arrays [e])."""

    user: np.ndarray  # int32
    track: np.ndarray  # int32
    play_count: np.ndarray  # int32
    avg_completion: np.ndarray  # float32, NaN where no completion is known
    first_event: np.ndarray  # int64, index of the pair's first play (-1: counts only)

    @property
    def edge_weight(self) -> np.ndarray:
        return edge_weights(self.user, self.play_count, self.avg_completion)


def aggregate_listens(
    user: np.ndarray, track: np.ndarray, completion: np.ndarray, n_tracks: int, first_index: int = 0
) -> Listens:
    """Aggregate plays (sorted by user, then time) into (user, track) pairs.

    ``first_index`` is added to the play positions (the events' row offset in a streamed file).

    >>> listens = aggregate_listens(np.array([0, 0, 0, 1]), np.array([2, 1, 2, 1]),
    ...                             np.array([1.0, 0.5, 0.0, np.nan], dtype=np.float32), n_tracks=3)
    >>> listens.track.tolist(), listens.play_count.tolist(), listens.avg_completion.tolist()
    ([1, 2, 1], [1, 2, 1], [0.5, 0.5, nan])
    >>> listens.first_event.tolist()
    [1, 0, 3]
    """
    if len(user) == 0:
        empty = np.zeros(0, dtype=np.int32)
        return Listens(
            empty, empty.copy(), empty.copy(), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )
    key = user.astype(np.int64) * np.int64(n_tracks) + track.astype(np.int64)
    pairs, first, inverse, counts = np.unique(
        key, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel()
    known = ~np.isnan(completion)
    total = np.bincount(inverse, weights=np.where(known, completion, 0.0), minlength=len(pairs))
    n_known = np.bincount(inverse, weights=known, minlength=len(pairs))
    avg = np.full(len(pairs), np.nan, dtype=np.float32)
    np.divide(total, n_known, out=avg, where=n_known > 0, casting="unsafe")
    return Listens(
        (pairs // n_tracks).astype(np.int32),
        (pairs % n_tracks).astype(np.int32),
        counts.astype(np.int32),
        avg,
        first.astype(np.int64) + first_index,
    )


def edge_weights(
    user: np.ndarray, play_count: np.ndarray, avg_completion: np.ndarray
) -> np.ndarray:
    """float32 [e] in (0, 1]: ``0.7 · completion + 0.3 · log(1+count) / log(1+user's max count)``;
    the normalised count alone where completion is unknown (NaN). Pairs sorted by user.

    >>> edge_weights(np.array([0, 0, 1]), np.array([1, 3, 2]), np.array([1.0, 0.5, np.nan])).round(4).tolist()
    [0.8500000238418579, 0.6499999761581421, 1.0]
    """
    e = len(user)
    if e == 0:
        return np.zeros(0, dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    user_max = np.maximum.reduceat(play_count.astype(np.int64), starts)
    lengths = np.diff(np.r_[starts, e])
    normalised = np.log1p(play_count) / np.log1p(np.repeat(user_max, lengths))
    weight = np.where(
        np.isnan(avg_completion),
        normalised,
        COMPLETION_SHARE * np.nan_to_num(avg_completion) + (1 - COMPLETION_SHARE) * normalised,
    )
    return weight.astype(np.float32)


# --------------------------------------------------------------------------------------------
# In-memory views
# --------------------------------------------------------------------------------------------


@dataclass
class EventLog:
    """Plays ordered by (user, time); all arrays [m].

    ``user`` int32, ``track`` int32, ``timestamp`` int64 ms, ``session`` int64 (dense, in order, so
    a session is a contiguous run), ``ms_played`` int64 (-1 unknown), ``completion`` float32 (NaN
    unknown).
    """

    user: np.ndarray
    track: np.ndarray
    timestamp: np.ndarray
    session: np.ndarray
    ms_played: np.ndarray
    completion: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def n_sessions(self) -> int:
        return int(self.session[-1]) + 1 if len(self.session) else 0

    def session_indptr(self) -> np.ndarray:
        """int64 [n_sessions + 1]: session ``s`` is rows ``indptr[s]:indptr[s + 1]``."""
        return np.searchsorted(self.session, np.arange(self.n_sessions + 1)).astype(np.int64)

    def take(self, rows: np.ndarray) -> EventLog:
        """The plays at ``rows`` (bool mask or sorted indices), sessions renumbered densely."""
        picked = [
            a[rows]
            for a in (
                self.user,
                self.track,
                self.timestamp,
                self.session,
                self.ms_played,
                self.completion,
            )
        ]
        picked[3] = dense_runs(picked[3])
        return EventLog(*picked)

    @classmethod
    def empty(cls) -> EventLog:
        return cls(
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )


def build_event_log(
    user: np.ndarray,
    track: np.ndarray,
    timestamp: np.ndarray,
    ms_played: np.ndarray,
    duration_ms: np.ndarray,
    *,
    gap_ms: int = SESSION_GAP_MS,
    first_session: int = 0,
) -> EventLog:
    """Plays in any order → an :class:`EventLog` sorted by (user, time, input order), with
    completion and sessions. ``ms_played`` / ``duration_ms`` int64 [m], -1 where unknown."""
    user = np.asarray(user, dtype=np.int32)
    timestamp = np.asarray(timestamp, dtype=np.int64)
    order = np.lexsort((np.arange(len(user)), timestamp, user))
    user, timestamp = user[order], timestamp[order]
    ms = np.asarray(ms_played, dtype=np.int64)[order]
    starts = session_starts(user, timestamp, ms, gap_ms)
    session = np.cumsum(starts, dtype=np.int64) - 1 + first_session
    return EventLog(
        user,
        np.asarray(track, dtype=np.int32)[order],
        timestamp,
        session,
        ms,
        completion_of(ms, np.asarray(duration_ms, dtype=np.int64)[order]),
    )


def listening_from_plays(
    user,
    track,
    timestamp,
    ms_played=None,
    track_duration=None,
    *,
    n_users: int | None = None,
    n_tracks: int | None = None,
    gap_ms: int = SESSION_GAP_MS,
    **catalogs,
) -> ListeningData:
    """In-memory :class:`ListeningData` from plays (tests, small sources): ``user``/``track`` dense
    ids, ``timestamp`` ms, ``ms_played`` [m] and ``track_duration`` [n_tracks] int with -1 (or
    ``None``) for unknown; ``catalogs`` as :meth:`ListeningData.from_listens` takes them."""
    user = np.asarray(user, dtype=np.int32)
    track = np.asarray(track, dtype=np.int32)
    n_users = int(user.max()) + 1 if n_users is None else n_users
    n_tracks = int(track.max()) + 1 if n_tracks is None else n_tracks
    ms = (
        np.full(len(user), UNKNOWN, np.int64)
        if ms_played is None
        else np.asarray(ms_played, np.int64)
    )
    duration = (
        np.full(n_tracks, UNKNOWN, np.int64)
        if track_duration is None
        else np.asarray(track_duration, np.int64)
    )
    events = build_event_log(user, track, timestamp, ms, duration[track], gap_ms=gap_ms)
    listens = aggregate_listens(events.user, events.track, events.completion, n_tracks)
    return ListeningData.from_listens(
        listens,
        n_users=n_users,
        n_tracks=n_tracks,
        events=events,
        track_duration=duration,
        **catalogs,
    )


def dense_runs(values: np.ndarray) -> np.ndarray:
    """int64: 0, 1, 2, … numbering the runs of equal consecutive values.

    >>> dense_runs(np.array([4, 4, 9, 9, 9, 2])).tolist()
    [0, 0, 1, 1, 1, 2]
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.cumsum(np.r_[False, values[1:] != values[:-1]]).astype(np.int64)


@dataclass
class SessionData(PlaylistData):
    """A :class:`PlaylistData` whose rows are listening sessions, with each session's plays in
    order: ``sequence_ids`` int32 [m] (repeats kept), row ``s`` is
    ``sequence_ids[sequence_indptr[s]:sequence_indptr[s + 1]]``. Sequence models
    (``segue.models.sequence``) train on the order; every other model sees the binary matrix."""

    sequence_indptr: np.ndarray | None = None
    sequence_ids: np.ndarray | None = None


@dataclass
class ListeningData:
    """Users × tracks listening edges with catalogs and the play log.

    Attributes (``e`` edges, the CSR's stored entries, in (user, track) order):
        matrix: csr [n_users, n_tracks] float32 ``edge_weight`` (> 0), sorted indices.
        play_count: csr, same sparsity, float32.
        completion: csr, same sparsity, float32 in [0, 1]; **NaN** where no duration is known
            (real exports without durations; never in generated data). Use ``matrix`` when a
            weight is needed: it always has a value.
        first_event: int64 [e], aligned with ``matrix.data``: row in ``events`` of the pair's
            first play (-1 when the source had counts but no times).
        user_type: object [n_users], ``"casual"`` / ``"regular"`` / ``"power"``, ``""`` unknown.
        track_artist: int32 [n_tracks].
        track_genres: csr [n_tracks, n_genres] float32 0/1 (no columns when genres are unknown).
        artist_genres: csr [n_artists, n_genres] float32 0/1.
        genre_names: n_genres names.
        events: the plays (possibly empty: counts-only sources, or ``load(events=False)``).
        track_duration: int64 [n_tracks], -1 unknown.
        user_genre_preferences: csr [n_users, n_genres] float32 affinities, only when asked
            for (``load(..., user_genre_preferences=True)``); ``None`` otherwise.
        path: the directory it was loaded from, ``None`` when built in memory.
    """

    matrix: sp.csr_matrix
    play_count: sp.csr_matrix
    completion: sp.csr_matrix
    user_type: np.ndarray
    track_artist: np.ndarray
    track_genres: sp.csr_matrix
    artist_genres: sp.csr_matrix
    genre_names: list[str]
    events: EventLog
    first_event: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    track_duration: np.ndarray | None = None
    user_genre_preferences: sp.csr_matrix | None = None
    path: Path | None = None
    manifest: dict = field(default_factory=dict)

    # --- shape -------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_tracks(self) -> int:
        return self.matrix.shape[1]

    @property
    def n_artists(self) -> int:
        return self.artist_genres.shape[0]

    @property
    def n_genres(self) -> int:
        return len(self.genre_names)

    @property
    def n_edges(self) -> int:
        return self.matrix.nnz

    @cached_property
    def track_listeners(self) -> np.ndarray:
        """int64 [n_tracks]: users who played each track (the popularity the baselines use)."""
        return np.bincount(self.matrix.indices, minlength=self.n_tracks).astype(np.int64)

    def edges(self) -> Listens:
        """The edges as arrays in (user, track) order."""
        user = np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.matrix.indptr))
        first = (
            self.first_event
            if len(self.first_event) == self.n_edges
            else np.full(self.n_edges, -1, np.int64)
        )
        return Listens(
            user,
            self.matrix.indices.astype(np.int32),
            self.play_count.data.astype(np.int32),
            self.completion.data.astype(np.float32),
            first,
        )

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_listens(
        cls,
        listens: Listens,
        *,
        n_users: int,
        n_tracks: int,
        events: EventLog | None = None,
        user_type=None,
        track_artist=None,
        track_genres=None,
        artist_genres=None,
        genre_names=None,
        track_duration=None,
        user_genre_preferences=None,
        path: Path | None = None,
    ) -> ListeningData:
        """Build from aggregated edges (sorted by user, track) and optional catalogs.

        Missing catalogs default to: no user types, one artist per track, no genres.
        """
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(listens.user, minlength=n_users), out=indptr[1:])
        if len(listens.user) > 1:
            key = listens.user.astype(np.int64) * n_tracks + listens.track
            if np.any(np.diff(key) <= 0):
                raise SegueError("listening edges must be sorted by (user, track) without repeats")

        def csr(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix(
                (values.astype(np.float32), listens.track.astype(np.int32), indptr),
                shape=(n_users, n_tracks),
            )

        track_artist = (
            np.arange(n_tracks, dtype=np.int32)
            if track_artist is None
            else np.asarray(track_artist, dtype=np.int32)
        )
        n_artists = int(track_artist.max()) + 1 if len(track_artist) else 0
        genre_names = list(genre_names or [])
        track_genres = (
            sp.csr_matrix((n_tracks, len(genre_names)), dtype=np.float32)
            if track_genres is None
            else sp.csr_matrix(track_genres, dtype=np.float32)
        )
        if artist_genres is None:
            artist_genres = sp.csr_matrix((n_artists, len(genre_names)), dtype=np.float32)
        user_type = (
            np.full(n_users, "", dtype=object)
            if user_type is None
            else np.asarray(user_type, dtype=object)
        )
        return cls(
            csr(listens.edge_weight),
            csr(listens.play_count),
            csr(listens.avg_completion),
            user_type,
            track_artist,
            track_genres,
            sp.csr_matrix(artist_genres, dtype=np.float32),
            genre_names,
            events if events is not None else EventLog.empty(),
            listens.first_event.astype(np.int64),
            np.full(n_tracks, UNKNOWN, np.int64)
            if track_duration is None
            else np.asarray(track_duration, np.int64),
            user_genre_preferences,
            path,
        )

    def with_events(self, events: EventLog) -> ListeningData:
        """A copy whose edges are re-aggregated from ``events`` (same users, tracks and catalogs).

        The split uses it to build the training part from the plays before each user's cut.
        """
        listens = aggregate_listens(events.user, events.track, events.completion, self.n_tracks)
        return ListeningData.from_listens(
            listens,
            n_users=self.n_users,
            n_tracks=self.n_tracks,
            events=events,
            user_type=self.user_type,
            track_artist=self.track_artist,
            track_genres=self.track_genres,
            artist_genres=self.artist_genres,
            genre_names=self.genre_names,
            track_duration=self.track_duration,
            user_genre_preferences=self.user_genre_preferences,
        )

    # --- views for the models --------------------------------------------------------------
    def to_playlist_data(self) -> PlaylistData:
        """Users as "playlists" (binary membership: 1.0 for every track the user played), so every
        playlist Recommender (popular, itemknn, als, …) trains on listening data. Row ``u`` is user
        ``u``; ``pids`` are the user ids; no titles; no albums (each track its own)."""
        binary = sp.csr_matrix(
            (
                np.ones(self.n_edges, dtype=np.float32),
                self.matrix.indices.copy(),
                self.matrix.indptr.copy(),
            ),
            shape=self.matrix.shape,
        )
        return PlaylistData(
            binary,
            np.arange(self.n_users, dtype=np.int32),
            [""] * self.n_users,
            self.track_artist.copy(),
            np.arange(self.n_tracks, dtype=np.int32),
            None,
        )

    def to_session_data(self, min_length: int = 2) -> SessionData:
        """Sessions of at least ``min_length`` plays as rows, in play order (for next-track models).

        Row order is the sessions' order (by user, then time); ``pids`` hold the session ids.
        """
        if len(self.events) == 0:
            raise SegueError(
                "this listening data has no plays with times (counts only): it has no sessions"
            )
        indptr = self.events.session_indptr()
        lengths = np.diff(indptr)
        keep = np.flatnonzero(lengths >= min_length)
        rows = ranges(indptr[keep], lengths[keep])
        seq_ids = self.events.track[rows].astype(np.int32)
        seq_indptr = np.r_[0, np.cumsum(lengths[keep])].astype(np.int64)
        binary = sp.csr_matrix(
            (np.ones(len(seq_ids), np.float32), seq_ids, seq_indptr),
            shape=(len(keep), self.n_tracks),
        )
        binary.sum_duplicates()
        binary.data[:] = 1.0
        return SessionData(
            binary,
            keep.astype(np.int32),
            [""] * len(keep),
            self.track_artist.copy(),
            np.arange(self.n_tracks, dtype=np.int32),
            None,
            seq_indptr,
            seq_ids,
        )

    # --- persistence -----------------------------------------------------------------------
    def write(
        self,
        path: Path,
        *,
        source: str,
        catalog_from: Path | None = None,
        extra: dict | None = None,
    ) -> None:
        """Write the tables into the (temporary) directory ``path``.

        Keys and names come from ``catalog_from`` (a listening directory with the same ids) when
        given, else from ``self.path``; built-in-memory data gets keys ``"0"``, ``"1"``, ….
        """
        path.mkdir(parents=True, exist_ok=True)
        source_dir = catalog_from or self.path
        edges = self.edges()
        pq.write_table(listens_table(edges), path / schema.LISTENS_FILE, compression="zstd")
        pq.write_table(
            events_table(self.events),
            path / schema.EVENTS_FILE,
            compression="zstd",
            row_group_size=4_000_000,
        )
        n_users, n_tracks = self.n_users, self.n_tracks
        if source_dir is not None:
            for name in (
                schema.USERS_FILE,
                schema.TRACKS_FILE,
                schema.ARTISTS_FILE,
                schema.GENRES_FILE,
                schema.TRACK_GENRES_FILE,
                schema.ARTIST_GENRES_FILE,
                schema.USER_GENRE_PREFERENCES_FILE,
            ):
                if (source_dir / name).exists():
                    pq.write_table(
                        pq.read_table(source_dir / name), path / name, compression="zstd"
                    )
        else:
            keys = pa.array([str(i) for i in range(n_users)])
            types = pa.array([t or None for t in self.user_type.tolist()], pa.string())
            pq.write_table(
                pa.table(
                    [pa.array(np.arange(n_users, dtype=np.int32)), keys, types],
                    schema=schema.USERS_SCHEMA,
                ),
                path / schema.USERS_FILE,
            )
            duration = (
                self.track_duration if self.track_duration is not None else np.full(n_tracks, -1)
            )
            pq.write_table(
                pa.table(
                    [
                        pa.array(np.arange(n_tracks, dtype=np.int32)),
                        pa.array([str(i) for i in range(n_tracks)]),
                        pa.nulls(n_tracks, pa.string()),
                        pa.array(self.track_artist, pa.int32()),
                        pa.nulls(n_tracks, pa.string()),
                        pa.array(duration, pa.int64(), mask=duration < 0),
                    ],
                    schema=schema.LISTENING_TRACKS_SCHEMA,
                ),
                path / schema.TRACKS_FILE,
            )
            pq.write_table(
                pa.table(
                    [
                        pa.array(np.arange(self.n_artists, dtype=np.int32)),
                        pa.array([str(i) for i in range(self.n_artists)]),
                        pa.nulls(self.n_artists, pa.string()),
                    ],
                    schema=schema.ARTISTS_SCHEMA,
                ),
                path / schema.ARTISTS_FILE,
            )
            pq.write_table(
                pa.table(
                    [
                        pa.array(np.arange(self.n_genres, dtype=np.int32)),
                        pa.array(self.genre_names, pa.string()),
                    ],
                    schema=schema.GENRES_SCHEMA,
                ),
                path / schema.GENRES_FILE,
            )
            for name, matrix, table_schema in (
                (schema.TRACK_GENRES_FILE, self.track_genres, schema.TRACK_GENRES_SCHEMA),
                (schema.ARTIST_GENRES_FILE, self.artist_genres, schema.ARTIST_GENRES_SCHEMA),
            ):
                coo = matrix.tocoo()
                pq.write_table(
                    pa.table(
                        [pa.array(coo.row.astype(np.int32)), pa.array(coo.col.astype(np.int32))],
                        schema=table_schema,
                    ),
                    path / name,
                )
        write_manifest(
            path,
            source=source,
            counts=self.counts(),
            has_durations=bool((~np.isnan(self.completion.data)).any()),
            extra=extra,
        )

    def counts(self) -> dict:
        return {
            "users": self.n_users,
            "tracks": self.n_tracks,
            "artists": self.n_artists,
            "genres": self.n_genres,
            "edges": self.n_edges,
            "events": len(self.events),
            "sessions": self.events.n_sessions,
        }

    @classmethod
    def load(
        cls, path: Path, *, events: bool = True, user_genre_preferences: bool = False
    ) -> ListeningData:
        """Load a listening directory. ``events=False`` skips the play log (edges only);
        ``user_genre_preferences=True`` loads the opt-in preference table (refused if absent).

        Raises :class:`InputFileError` naming a missing or inconsistent table.
        """
        path = Path(path)
        manifest = read_manifest(path)
        for name in (
            schema.LISTENS_FILE,
            schema.EVENTS_FILE,
            schema.USERS_FILE,
            schema.TRACKS_FILE,
            schema.ARTISTS_FILE,
            schema.GENRES_FILE,
            schema.TRACK_GENRES_FILE,
            schema.ARTIST_GENRES_FILE,
        ):
            if not (path / name).exists():
                raise InputFileError(
                    path / name, "missing; is this a directory written by `segue ingest sessions`?"
                )
        users = _read(path, schema.USERS_FILE, schema.USERS_SCHEMA)
        tracks = _read(path, schema.TRACKS_FILE, schema.LISTENING_TRACKS_SCHEMA)
        artists = _read(path, schema.ARTISTS_FILE, schema.ARTISTS_SCHEMA)
        genres = _read(path, schema.GENRES_FILE, schema.GENRES_SCHEMA)
        n_users, n_tracks, n_artists, n_genres = (
            users.num_rows,
            tracks.num_rows,
            artists.num_rows,
            genres.num_rows,
        )
        for table, name, id_column in (
            (users, schema.USERS_FILE, schema.USER_ID),
            (tracks, schema.TRACKS_FILE, schema.TRACK_ID),
            (artists, schema.ARTISTS_FILE, schema.ARTIST_ID),
            (genres, schema.GENRES_FILE, schema.GENRE_ID),
        ):
            if not np.array_equal(table.column(id_column).to_numpy(), np.arange(table.num_rows)):
                raise InputFileError(path / name, f"{id_column} is not 0..n-1 in order")
        listens = _read(path, schema.LISTENS_FILE, schema.LISTENS_SCHEMA)
        edges = Listens(
            listens.column(schema.USER_ID).to_numpy(),
            listens.column(schema.TRACK_ID).to_numpy(),
            listens.column(schema.PLAY_COUNT).to_numpy(),
            _floats(listens.column(schema.AVG_COMPLETION)),
            listens.column(schema.FIRST_EVENT).to_numpy(),
        )
        _check_ids(path / schema.LISTENS_FILE, schema.USER_ID, edges.user, n_users)
        _check_ids(path / schema.LISTENS_FILE, schema.TRACK_ID, edges.track, n_tracks)
        if len(edges.user) > 1 and np.any(
            np.diff(edges.user.astype(np.int64) * n_tracks + edges.track) <= 0
        ):
            raise InputFileError(
                path / schema.LISTENS_FILE,
                "rows are not sorted by (user_id, track_id) without repeats",
            )
        log = read_events(path) if events else EventLog.empty()
        if events and len(log):
            _check_ids(path / schema.EVENTS_FILE, schema.USER_ID, log.user, n_users)
            _check_ids(path / schema.EVENTS_FILE, schema.TRACK_ID, log.track, n_tracks)
        track_artist = tracks.column(schema.ARTIST_ID).to_numpy()
        _check_ids(path / schema.TRACKS_FILE, schema.ARTIST_ID, track_artist, n_artists)
        track_genres = _pairs_matrix(
            path, schema.TRACK_GENRES_FILE, schema.TRACK_GENRES_SCHEMA, n_tracks, n_genres
        )
        artist_genres = _pairs_matrix(
            path, schema.ARTIST_GENRES_FILE, schema.ARTIST_GENRES_SCHEMA, n_artists, n_genres
        )
        preferences = None
        if user_genre_preferences:
            if not (path / schema.USER_GENRE_PREFERENCES_FILE).exists():
                raise InputFileError(
                    path / schema.USER_GENRE_PREFERENCES_FILE,
                    "missing: this source has no user genre preferences",
                )
            prefs = _read(
                path, schema.USER_GENRE_PREFERENCES_FILE, schema.USER_GENRE_PREFERENCES_SCHEMA
            )
            preferences = sp.csr_matrix(
                (
                    prefs.column(schema.AFFINITY).to_numpy(),
                    (
                        prefs.column(schema.USER_ID).to_numpy(),
                        prefs.column(schema.GENRE_ID).to_numpy(),
                    ),
                ),
                shape=(n_users, n_genres),
                dtype=np.float32,
            )
        duration = tracks.column(schema.DURATION_MS).fill_null(UNKNOWN).to_numpy()
        data = cls.from_listens(
            edges,
            n_users=n_users,
            n_tracks=n_tracks,
            events=log,
            user_type=np.array(
                users.column(schema.USER_TYPE).fill_null("").to_pylist(), dtype=object
            ),
            track_artist=track_artist,
            track_genres=track_genres,
            artist_genres=artist_genres,
            genre_names=genres.column(schema.GENRE_NAME).to_pylist(),
            track_duration=duration,
            user_genre_preferences=preferences,
            path=path,
        )
        stored = listens.column(schema.EDGE_WEIGHT).to_numpy()
        if not np.allclose(stored, data.matrix.data, atol=1e-6):
            raise InputFileError(
                path / schema.LISTENS_FILE,
                "edge_weight does not match play_count and avg_completion",
            )
        data.manifest = manifest
        return data

    # --- catalogs (read on first use) ----------------------------------------------------------
    @cached_property
    def user_keys(self) -> np.ndarray:
        """object [n_users]: the source's user identifiers."""
        return self._column(schema.USERS_FILE, schema.USER_KEY, self.n_users)

    @cached_property
    def track_keys(self) -> np.ndarray:
        """object [n_tracks]: the source's track identifiers."""
        return self._column(schema.TRACKS_FILE, schema.TRACK_KEY, self.n_tracks)

    @cached_property
    def track_labels(self) -> np.ndarray:
        """object [n_tracks]: "track — artist" (the key when the source has no names)."""
        if self.path is None:
            return np.array([f"track {i}" for i in range(self.n_tracks)], dtype=object)
        table = pq.read_table(
            self.path / schema.TRACKS_FILE,
            columns=[schema.TRACK_KEY, schema.TRACK_NAME, schema.ARTIST_NAME],
        )
        keys, names, artists = (table.column(c).to_pylist() for c in table.column_names)
        return np.array(
            [
                f"{n} — {a}" if n and a else (n or k)
                for k, n, a in zip(keys, names, artists, strict=True)
            ],
            dtype=object,
        )

    def _column(self, file: str, column: str, n: int) -> np.ndarray:
        if self.path is None:
            return np.array([str(i) for i in range(n)], dtype=object)
        return (
            pq.read_table(self.path / file, columns=[column])
            .column(column)
            .to_numpy(zero_copy_only=False)
        )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def listens_table(listens: Listens) -> pa.Table:
    """``listens.parquet``'s rows (LISTENS_SCHEMA)."""
    avg = listens.avg_completion
    return pa.table(
        [
            pa.array(listens.user, pa.int32()),
            pa.array(listens.track, pa.int32()),
            pa.array(listens.play_count, pa.int32()),
            pa.array(avg, pa.float32(), mask=np.isnan(avg)),
            pa.array(listens.edge_weight, pa.float32()),
            pa.array(listens.first_event, pa.int64()),
        ],
        schema=schema.LISTENS_SCHEMA,
    )


def events_table(events: EventLog) -> pa.Table:
    """``events.parquet``'s rows (EVENTS_SCHEMA)."""
    return pa.table(
        [
            pa.array(events.user, pa.int32()),
            pa.array(events.track, pa.int32()),
            pa.array(events.timestamp, pa.int64()),
            pa.array(events.ms_played, pa.int64(), mask=events.ms_played < 0),
            pa.array(events.completion, pa.float32(), mask=np.isnan(events.completion)),
            pa.array(events.session, pa.int64()),
        ],
        schema=schema.EVENTS_SCHEMA,
    )


def read_events(path: Path) -> EventLog:
    """The play log of a listening directory, checked to be ordered by (user, time)."""
    table = _read(path, schema.EVENTS_FILE, schema.EVENTS_SCHEMA)
    log = EventLog(
        table.column(schema.USER_ID).to_numpy(),
        table.column(schema.TRACK_ID).to_numpy(),
        table.column(schema.TIMESTAMP).to_numpy(),
        table.column(schema.SESSION_ID).to_numpy(),
        table.column(schema.MS_PLAYED).fill_null(UNKNOWN).to_numpy(),
        _floats(table.column(schema.COMPLETION)),
    )
    if len(log) > 1:
        same_user = log.user[1:] == log.user[:-1]
        if np.any(log.user[1:] < log.user[:-1]) or np.any(
            same_user & (log.timestamp[1:] < log.timestamp[:-1])
        ):
            raise InputFileError(
                path / schema.EVENTS_FILE, "rows are not ordered by (user_id, timestamp)"
            )
        step = np.diff(log.session)
        if (
            log.session[0] != 0
            or np.any((step != 0) & (step != 1))
            or np.any(step[~same_user] != 1)
        ):
            raise InputFileError(
                path / schema.EVENTS_FILE, "session_id is not dense and in order within users"
            )
    return log


def write_manifest(
    path: Path, *, source: str, counts: dict, has_durations: bool, extra: dict | None = None
) -> None:
    write_json(
        path / schema.MANIFEST_FILE,
        {
            "schema_version": schema.LISTENING_SCHEMA_VERSION,
            "kind": "listening",
            "created_by": f"segue {__version__}",
            "source": source,
            "counts": counts,
            "has_durations": has_durations,
            "session_gap_ms": SESSION_GAP_MS,
            **(extra or {}),
        },
    )


def read_manifest(path: Path) -> dict:
    file = Path(path) / schema.MANIFEST_FILE
    if not file.exists():
        raise InputFileError(
            file, "missing; is this a directory written by `segue ingest sessions`?"
        )
    try:
        manifest = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputFileError(file, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "listening":
        raise InputFileError(
            file,
            "not a listening dataset (written by `segue ingest sessions`); "
            "playlist datasets load with PlaylistData",
        )
    if manifest.get("schema_version") != schema.LISTENING_SCHEMA_VERSION:
        raise InputFileError(
            file,
            f"schema version {manifest.get('schema_version')} is not "
            f"{schema.LISTENING_SCHEMA_VERSION}; re-run `segue ingest sessions`",
        )
    return manifest


def _read(path: Path, name: str, table_schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path / name)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputFileError(path / name, f"unreadable ({exc})") from None
    if not table.schema.equals(table_schema, check_metadata=False):
        raise InputFileError(
            path / name, "columns differ from segue's schema; re-run `segue ingest sessions`"
        )
    return table


def _floats(column) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False).astype(np.float32)  # nulls become NaN


def _check_ids(file: Path, column: str, ids: np.ndarray, n: int) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        raise InputFileError(file, f"{column} outside 0..{n - 1}")


def _pairs_matrix(
    path: Path, name: str, table_schema: pa.Schema, n_rows: int, n_cols: int
) -> sp.csr_matrix:
    table = _read(path, name, table_schema)
    rows, cols = (table.column(i).to_numpy() for i in range(2))
    _check_ids(path / name, table.column_names[0], rows, n_rows)
    _check_ids(path / name, table.column_names[1], cols, n_cols)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
