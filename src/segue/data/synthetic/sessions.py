"""Generated listening sessions: the source design's synthetic world, at any size.

``segue generate sessions --users N --out DIR --seed S`` writes the source design's CSV files:

``raw_sessions.csv``
    ``user_id, track_id, artist_id, timestamp, ms_played, track_duration_ms, session_id``: one row
    per play, by user then time; ``timestamp`` is the start of the play (ISO 8601, UTC, ms).
``tracks.csv`` (``track_id, track_name, artist_id, artist_name, duration_ms``), ``genres.csv``
(``genre_id, genre_name, popularity``), ``artist_genres.csv``, ``song_genres.csv``,
``user_genre_preferences.csv`` (``user_id, genre_id, affinity``: the latent tastes, written for
checking only) and ``users.csv`` (``user_id, user_type``).

The world:

* **Genres** (35 by default) with Zipf popularity (exponent 1).
* **Artists** with 1–3 genres (drawn without replacement, popular genres more often) and a
  lognormal popularity; **tracks** laid out artist by artist (an artist's tracks are a contiguous
  range, in "album order"), each with 1–2 of its artist's genres, a lognormal appeal and a
  lognormal duration (median 3.5 min, clipped to 1–10 min).
* **Users** of three types with different behaviour (:data:`USER_TYPES`): casual, regular, power —
  how many sessions, how long, how often they skip, how many genres they like, how much they
  replay a personal "heavy rotation".
* **Sessions** in time: 31 minutes or more apart (plus an exponential pause, shorter for heavier
  users), plays back to back inside a session (0–3 s apart), so a 30-minute gap rule recovers the
  generator's sessions exactly.
* **The next track is predictable**: each play continues from the previous one — the artist's
  next track in album order, one of the previous track's "related" tracks (a fixed radio-like
  list from the same genre), a heavy-rotation favourite, or a track of the *current* genre, which
  stays the same from play to play with high probability (lower after a skip) and otherwise moves
  to another genre the user likes.
* **ms_played against duration**: a skip (likelier for a genre the user does not like, less
  likely for a favourite) plays 2–30 s; a full listen plays the whole track or most of it.

Everything is vectorised: users are generated in blocks of :data:`USERS_PER_BLOCK` (one random
stream per block, so the output does not depend on anything but the seed), and inside a block
one numpy step advances every session by one play (a loop over *positions* — at most
``max_session_length`` — never over plays). Memory is bounded by the block; the CSV grows block by
block inside a temporary directory renamed into place at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from segue.data.synthetic.names import artist_names, track_names
from segue.data.synthetic.world import GENRE_NAMES, BlockSampler, zipf_weights
from segue.errors import SegueError
from segue.io import atomic_dir, check_output_dir
from segue.progress import progress

log = logging.getLogger("segue")

USERS_PER_BLOCK = 5_000
EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the first session starts after it
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
EXTRA_GENRES = (
    "ska",
    "synthwave",
    "afrobeats",
    "dancehall",
    "drum and bass",
    "shoegaze",
    "gospel",
    "world",
    "soundtrack",
    "new age",
)

RAW_SESSIONS_CSV = "raw_sessions.csv"
TRACKS_CSV = "tracks.csv"
GENRES_CSV = "genres.csv"
ARTIST_GENRES_CSV = "artist_genres.csv"
SONG_GENRES_CSV = "song_genres.csv"
USER_GENRE_PREFERENCES_CSV = "user_genre_preferences.csv"
USERS_CSV = "users.csv"
RAW_SESSIONS_COLUMNS = (
    "user_id",
    "track_id",
    "artist_id",
    "timestamp",
    "ms_played",
    "track_duration_ms",
    "session_id",
)


@dataclass(frozen=True)
class UserType:
    """Behaviour of one kind of listener."""

    share: float  # of all users
    sessions_mean: float  # sessions per user: 1 + Poisson(sessions_mean - 1)
    session_length_mean: float  # plays per session: 1 + Geometric (mean session_length_mean)
    pause_days_mean: float  # pause between sessions: 31 min + Exponential(pause_days_mean)
    skip_base: float  # skip probability for a track of a liked genre
    genres: tuple[int, int]  # how many genres the user likes (inclusive range)
    favourites: int  # size of the heavy rotation
    replay: float  # probability that a play is from the heavy rotation


USER_TYPES: dict[str, UserType] = {
    "casual": UserType(0.50, 4.0, 5.0, 12.0, 0.25, (1, 2), 10, 0.15),
    "regular": UserType(0.35, 12.0, 10.0, 5.0, 0.15, (2, 4), 25, 0.20),
    "power": UserType(0.15, 30.0, 18.0, 2.0, 0.10, (3, 6), 50, 0.25),
}


@dataclass(frozen=True)
class SessionWorldConfig:
    """Sizes and behaviour of the generated world (defaults scale with the number of users)."""

    n_users: int
    n_tracks: int | None = None  # default: 5 per user, at least 5,000, at most 500,000
    n_artists: int | None = None  # default: one per 10 tracks
    n_genres: int = 35
    genre_zipf: float = 1.0
    related_per_track: int = 5
    album_next: float = 0.20  # next play is the artist's next track
    related_next: float = 0.25  # next play is one of the previous track's related tracks
    genre_stay: float = 0.85  # the genre stays from one play to the next …
    genre_stay_after_skip: float = 0.55  # … less so after a skip
    explore: float = 0.03  # a play from any genre (by popularity)
    max_session_length: int = 200

    def sizes(self) -> tuple[int, int]:
        tracks = self.n_tracks or int(np.clip(5 * self.n_users, 5_000, 500_000))
        artists = self.n_artists or max(1, tracks // 10)
        return tracks, artists

    def check(self) -> None:
        tracks, artists = self.sizes()
        if self.n_users < 1:
            raise SegueError(f"--users must be at least 1, got {self.n_users}")
        if not 1 <= artists <= tracks:
            raise SegueError(
                f"need 1 ≤ artists ≤ tracks, got {artists} artists for {tracks} tracks"
            )
        if self.n_genres < 3:
            raise SegueError(f"need at least 3 genres, got {self.n_genres}")
        if artists < self.n_genres:
            raise SegueError(
                f"need at least as many artists as genres ({self.n_genres}), got {artists}"
            )


def genre_names(n: int) -> list[str]:
    names = list(GENRE_NAMES) + list(EXTRA_GENRES)
    return names[:n] + [f"genre {i + 1}" for i in range(len(names), n)]


class SessionWorld:
    """The catalog (genres, artists, tracks) and its samplers; built once per seed."""

    def __init__(self, config: SessionWorldConfig, seed: int):
        config.check()
        self.config = config
        self.seed = seed
        rng = np.random.default_rng([seed, 1])
        n_tracks, n_artists = config.sizes()
        n_genres = config.n_genres
        self.n_tracks, self.n_artists, self.n_genres = n_tracks, n_artists, n_genres
        self.genre_names = genre_names(n_genres)
        self.genre_popularity = zipf_weights(n_genres, config.genre_zipf)

        # Artists: 1-3 genres without replacement, by genre popularity (Gumbel top-k).
        n_artist_genres = rng.choice([1, 2, 3], size=n_artists, p=[0.5, 0.3, 0.2])
        keys = np.log(self.genre_popularity)[None, :] + rng.gumbel(size=(n_artists, n_genres))
        ranked = np.argsort(-keys, axis=1)[:, :3].astype(np.int32)
        # Every genre has at least one artist: the first n_genres artists take genre i as primary.
        first = np.arange(min(n_genres, n_artists))
        clash = ranked[first, 1:] == first[:, None]
        ranked[first, 1:] = np.where(clash, ranked[first, :1], ranked[first, 1:])
        ranked[first, 0] = first
        self.artist_genre_list = ranked  # [n_artists, 3]
        self.artist_genre_count = n_artist_genres
        self.artist_popularity = rng.lognormal(0.0, 1.2, n_artists)

        # Tracks: every artist has one, the rest go to artists by popularity^0.7; laid out by artist.
        extra = rng.choice(
            n_artists, size=n_tracks - n_artists, p=_normalised(self.artist_popularity**0.7)
        )
        counts = np.bincount(extra, minlength=n_artists) + 1
        self.artist_start = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        self.artist_track_count = counts.astype(np.int64)
        self.track_artist = np.repeat(np.arange(n_artists, dtype=np.int32), counts)
        appeal = rng.lognormal(0.0, 1.0, n_tracks)
        self.track_weight = appeal * self.artist_popularity[self.track_artist]
        duration = rng.lognormal(np.log(210_000), 0.3, n_tracks)
        self.track_duration = np.clip(duration, 60_000, 600_000).astype(np.int64)
        # Track genres: one of the artist's genres (primary twice as likely), sometimes a second.
        a = self.track_artist
        k = self.artist_genre_count[a]
        pick = np.minimum((rng.random(n_tracks) * (k + 1)).astype(np.int64) - 1, k - 1).clip(0)
        self.track_genre = ranked[a, pick]  # the genre a track is played as
        self.track_genre[self.artist_start[first]] = first  # so no genre is without tracks
        pick[self.artist_start[first]] = 0
        second = ranked[a, (pick + 1) % k]
        has_second = (k > 1) & (rng.random(n_tracks) < 0.3)
        self.song_genre_track = np.r_[np.arange(n_tracks), np.flatnonzero(has_second)].astype(
            np.int32
        )
        self.song_genre_genre = np.r_[self.track_genre, second[has_second]].astype(np.int32)

        # Tracks of each genre (through song_genres), sampled by weight.
        order = np.lexsort((self.song_genre_track, self.song_genre_genre))
        genre_items = self.song_genre_track[order]
        offsets = np.searchsorted(self.song_genre_genre[order], np.arange(n_genres + 1))
        self.genre_sampler = BlockSampler(genre_items, self.track_weight[genre_items], offsets)
        # Related tracks: a fixed radio-like list per track, from its genre, by weight.
        r = config.related_per_track
        self.related = self.genre_sampler.sample(
            np.repeat(self.track_genre, r).astype(np.int64), rng
        ).reshape(n_tracks, r)

    # --- users ---------------------------------------------------------------------------------
    def sample_users(self, block: int, first_user: int, n: int) -> UserBlock:
        """``n`` users (ids ``first_user …``) and their plays; one random stream per block."""
        rng = np.random.default_rng([self.seed, 2, block])
        cfg = self.config
        names = list(USER_TYPES)
        types = [USER_TYPES[t] for t in names]
        type_of = rng.choice(len(names), size=n, p=_normalised(np.array([t.share for t in types])))
        param = {
            f: np.array([getattr(t, f) for t in types])[type_of]
            for f in (
                "sessions_mean",
                "session_length_mean",
                "pause_days_mean",
                "skip_base",
                "favourites",
                "replay",
            )
        }
        lo = np.array([t.genres[0] for t in types])[type_of]
        hi = np.array([t.genres[1] for t in types])[type_of]
        n_liked = np.minimum(rng.integers(lo, hi + 1), self.n_genres)

        # Liked genres (Gumbel top-k by popularity) with Dirichlet affinities, strongest first.
        keys = np.log(self.genre_popularity)[None, :] + rng.gumbel(size=(n, self.n_genres))
        top = np.argsort(-keys, axis=1)[:, : int(n_liked.max())]
        mask = np.arange(top.shape[1])[None, :] < n_liked[:, None]
        pref_user = np.repeat(np.arange(n), n_liked)
        pref_genre = top[mask].astype(np.int32)
        affinity = rng.gamma(1.0, size=len(pref_user))
        affinity /= np.bincount(pref_user, weights=affinity, minlength=n)[pref_user]
        likes = np.zeros((n, self.n_genres), dtype=bool)
        likes[pref_user, pref_genre] = True
        genre_of_user = BlockSampler(pref_genre, affinity, np.r_[0, np.cumsum(n_liked)])

        # Heavy rotation: tracks of the user's genres.
        n_fav = param["favourites"].astype(np.int64)
        fav_user = np.repeat(np.arange(n), n_fav)
        favourites = self.genre_sampler.sample(
            genre_of_user.sample(fav_user, rng).astype(np.int64), rng
        )
        fav_start = np.r_[0, np.cumsum(n_fav)[:-1]]

        # Sessions and their lengths.
        n_sessions = 1 + rng.poisson(param["sessions_mean"] - 1)
        s_user = np.repeat(np.arange(n), n_sessions)
        n_s = len(s_user)
        length = np.minimum(
            rng.geometric(1.0 / param["session_length_mean"][s_user]), cfg.max_session_length
        ).astype(np.int64)
        offset = np.r_[0, np.cumsum(length)[:-1]]
        m = int(length.sum())
        track = np.empty(m, dtype=np.int32)
        ms_played = np.empty(m, dtype=np.int64)

        current_genre = genre_of_user.sample(s_user, rng).astype(np.int32)
        previous = np.full(n_s, -1, dtype=np.int64)
        skipped = np.zeros(n_s, dtype=bool)
        active = np.arange(n_s)
        for position in range(int(length.max())):
            active = active[length[active] > position]
            u = s_user[active]
            b = len(active)
            # The genre moves on (less often mid-flow than after a skip).
            stay = np.where(skipped[active], cfg.genre_stay_after_skip, cfg.genre_stay)
            move = rng.random(b) >= stay
            genre = current_genre[active]
            genre[move] = genre_of_user.sample(u[move], rng)
            explore = rng.random(b) < cfg.explore
            genre[explore] = rng.choice(
                self.n_genres, size=int(explore.sum()), p=self.genre_popularity
            )
            chosen = self.genre_sampler.sample(genre.astype(np.int64), rng).astype(np.int64)
            # … or the play continues from the previous one.
            roll = rng.random(b)
            prev = previous[active]
            has_prev = prev >= 0
            replay = roll < param["replay"][u]
            album = has_prev & ~replay & (roll < param["replay"][u] + cfg.album_next)
            related = (
                has_prev
                & ~replay
                & ~album
                & (roll < param["replay"][u] + cfg.album_next + cfg.related_next)
            )
            pick = fav_start[u] + (rng.random(b) * n_fav[u]).astype(np.int64)
            chosen[replay] = favourites[pick[replay]]
            pa_ = self.track_artist[prev[album]]
            start = self.artist_start[pa_]
            chosen[album] = start + (prev[album] - start + 1) % self.artist_track_count[pa_]
            chosen[related] = self.related[
                prev[related], rng.integers(0, cfg.related_per_track, int(related.sum()))
            ]
            # Skips: likelier outside the user's genres, rarer for favourites.
            g = self.track_genre[chosen]
            liked = likes[u, g]
            p_skip = param["skip_base"][u] * np.where(liked, 1.0, 2.5) * np.where(replay, 0.4, 1.0)
            skip = rng.random(b) < np.minimum(p_skip, 0.9)
            duration = self.track_duration[chosen]
            full = np.where(
                rng.random(b) < 0.6, duration, (duration * rng.beta(8.0, 1.0, b)).astype(np.int64)
            )
            short = rng.integers(2_000, 30_001, b)
            played = np.where(skip, np.minimum(short, duration), full)
            rows = offset[active] + position
            track[rows] = chosen
            ms_played[rows] = played
            previous[active] = chosen
            current_genre[active] = g
            skipped[active] = skip

        # Times: sessions back to back per user with pauses ≥ 31 min; plays 0-3 s apart within one.
        event_session = np.repeat(np.arange(n_s), length)
        gap_after = rng.integers(0, 3_001, m)
        step = ms_played + gap_after
        within = np.cumsum(step) - step  # global running start …
        session_first = offset
        within -= within[session_first][event_session]  # … made relative to the session
        session_span = within[offset + length - 1] + ms_played[offset + length - 1]
        pause = (
            31 * MINUTE_MS + rng.exponential(param["pause_days_mean"][s_user] * DAY_MS)
        ).astype(np.int64)
        origin = EPOCH_MS + rng.integers(0, 7 * DAY_MS, n)
        advance = session_span + pause  # from a session's start to the next's
        cum = np.cumsum(advance) - advance
        user_first_session = np.r_[0, np.cumsum(n_sessions)[:-1]]
        session_start = origin[s_user] + cum - cum[user_first_session][s_user]
        timestamp = session_start[event_session] + within

        return UserBlock(
            user_ids=np.arange(first_user, first_user + n, dtype=np.int64),
            user_type=np.array(names, dtype=object)[type_of],
            pref_user=pref_user + first_user,
            pref_genre=pref_genre,
            affinity=affinity.astype(np.float32),
            event_user=(s_user[event_session] + first_user).astype(np.int64),
            track=track,
            timestamp=timestamp.astype(np.int64),
            ms_played=ms_played,
            event_session=event_session,
            n_sessions=n_s,
        )


@dataclass
class UserBlock:
    user_ids: np.ndarray
    user_type: np.ndarray
    pref_user: np.ndarray
    pref_genre: np.ndarray
    affinity: np.ndarray
    event_user: np.ndarray
    track: np.ndarray
    timestamp: np.ndarray
    ms_played: np.ndarray
    event_session: np.ndarray  # 0-based within the block
    n_sessions: int


@dataclass
class SessionsSummary:
    out: Path
    n_users: int
    n_tracks: int
    n_artists: int
    n_genres: int
    n_events: int
    n_sessions: int
    user_types: dict

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def generate_sessions(
    out: Path,
    n_users: int,
    *,
    seed: int = 0,
    n_tracks: int | None = None,
    n_artists: int | None = None,
    n_genres: int = 35,
) -> SessionsSummary:
    """Write the generated world's CSV files into ``out`` (whole or not at all)."""
    out = Path(out)
    check_output_dir(out, replace=True)
    config = SessionWorldConfig(
        n_users=n_users, n_tracks=n_tracks, n_artists=n_artists, n_genres=n_genres
    )
    world = SessionWorld(config, seed)
    n_events = n_sessions = 0
    type_counts = dict.fromkeys(USER_TYPES, 0)
    with atomic_dir(out) as tmp:
        _write_catalog(tmp, world)
        blocks = range(0, n_users, USERS_PER_BLOCK)
        with (
            open(tmp / RAW_SESSIONS_CSV, "wb") as raw,
            open(tmp / USERS_CSV, "wb") as users,
            open(tmp / USER_GENRE_PREFERENCES_CSV, "wb") as prefs,
            progress("generate sessions", n_users, "users") as bar,
        ):
            for block, first in enumerate(blocks):
                n = min(USERS_PER_BLOCK, n_users - first)
                ub = world.sample_users(block, first, n)
                header = block == 0
                pl.DataFrame(
                    {
                        "user_id": ub.event_user,
                        "track_id": ub.track.astype(np.int64),
                        "artist_id": world.track_artist[ub.track].astype(np.int64),
                        "timestamp": pl.Series(ub.timestamp).cast(pl.Datetime("ms")),
                        "ms_played": ub.ms_played,
                        "track_duration_ms": world.track_duration[ub.track],
                        "session_id": ub.event_session + n_sessions,
                    }
                ).write_csv(raw, include_header=header, datetime_format="%Y-%m-%dT%H:%M:%S%.3fZ")
                pl.DataFrame(
                    {"user_id": ub.user_ids, "user_type": ub.user_type.astype(str)}
                ).write_csv(users, include_header=header)
                pl.DataFrame(
                    {
                        "user_id": ub.pref_user.astype(np.int64),
                        "genre_id": ub.pref_genre.astype(np.int64),
                        "affinity": ub.affinity.round(4),
                    }
                ).write_csv(prefs, include_header=header)
                n_events += len(ub.track)
                n_sessions += ub.n_sessions
                for t, c in zip(
                    *np.unique(ub.user_type.astype(str), return_counts=True), strict=True
                ):
                    type_counts[t] += int(c)
                bar.advance(n)
    log.info(
        "generated %s plays in %s sessions of %s users",
        f"{n_events:,}",
        f"{n_sessions:,}",
        f"{n_users:,}",
    )
    return SessionsSummary(
        out,
        n_users,
        world.n_tracks,
        world.n_artists,
        world.n_genres,
        n_events,
        n_sessions,
        type_counts,
    )


def _write_catalog(tmp: Path, world: SessionWorld) -> None:
    artist = world.track_artist
    a_names = np.array(artist_names(world.seed, np.arange(world.n_artists)), dtype=object)
    pl.DataFrame(
        {
            "track_id": np.arange(world.n_tracks, dtype=np.int64),
            "track_name": track_names(world.seed, np.arange(world.n_tracks)),
            "artist_id": artist.astype(np.int64),
            "artist_name": a_names[artist].tolist(),
            "duration_ms": world.track_duration,
        }
    ).write_csv(tmp / TRACKS_CSV)
    pl.DataFrame(
        {
            "genre_id": np.arange(world.n_genres, dtype=np.int64),
            "genre_name": world.genre_names,
            "popularity": world.genre_popularity.round(6),
        }
    ).write_csv(tmp / GENRES_CSV)
    mask = np.arange(3)[None, :] < world.artist_genre_count[:, None]
    pl.DataFrame(
        {
            "artist_id": np.repeat(
                np.arange(world.n_artists, dtype=np.int64), world.artist_genre_count
            ),
            "genre_id": world.artist_genre_list[mask].astype(np.int64),
        }
    ).write_csv(tmp / ARTIST_GENRES_CSV)
    order = np.lexsort((world.song_genre_genre, world.song_genre_track))
    pl.DataFrame(
        {
            "track_id": world.song_genre_track[order].astype(np.int64),
            "genre_id": world.song_genre_genre[order].astype(np.int64),
        }
    ).write_csv(tmp / SONG_GENRES_CSV)


def _normalised(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum()
