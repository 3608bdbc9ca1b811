"""Sampling playlists from the latent world, a batch (one slice) at a time, fully vectorised.

A playlist has a theme: one or two genres and, for most, a context (workout, chill, christmas…).
Its tracks come from four layers, mixed per slot:

* genre draws — a (genre, mood) block, the mood drawn from the context's mixture;
* anchor artists — one to three artists the playlist's owner loves, drawn repeatedly;
* hits — the most-played tracks, a flat-headed pool, mostly those of the playlist's own genre;
* album runs — a stretch of consecutive tracks from one album, as people add whole albums;
* for followed ("curated") playlists, scenes — a few heavy tracks of each (genre, mood) block that
  playlists of one scene share, mostly chosen by their title: the tight mid-popular clusters that
  give real followed playlists their association rules without making popularity strong.

Titles come from the theme's vocabulary with realistic noise. The result is columnar
(:class:`PlaylistBatch`), rendered to JSON elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.synthetic.world import (
    CONTEXTS,
    GENERIC_TITLES,
    GENRES,
    MOODS,
    N_GENRES,
    N_MOODS,
    N_TAIL_TITLES,
    World,
    tail_title,
    zipf_weights,
)

END_TS = 1509494400  # 2017-11-01 00:00:00 UTC: the MPD's snapshot date
START_TS = 1262304000  # 2010-01-01 00:00:00 UTC


@dataclass(frozen=True)
class PlaylistConfig:
    """Shapes of the playlist layer (defaults calibrated to the MPD at 1M playlists)."""

    # Length: a two-lognormal mixture truncated to [5, 250], fitted to the MPD histogram
    # (mode 20 with 1.5% of playlists, median 49, mean 66.3): quick lists and long collections.
    short_share: float = 0.35
    short_log_mean: float = 3.2
    short_log_sd: float = 0.6
    long_log_mean: float = 4.4
    long_log_sd: float = 0.8
    min_tracks: int = 5
    max_tracks: int = 250
    second_genre_prob: float = 0.35
    second_genre_slot_share: float = 0.35
    context_prob_scale: float = 1.0  # scales every context's share
    hit_share_mean: float = 0.07  # mean share of slots from the hits layer
    anchor_share_max: float = 0.35  # share of slots from anchor artists ~ U(0, max)
    album_run_prob: float = 0.25
    collaborative_prob: float = 0.023
    description_prob: float = 0.019
    title_exponent: float = 0.5  # Zipf inside each vocabulary
    tail_title_prob: float = 0.05  # personal long-tail titles
    artist_title_prob: float = 0.012  # titled after the owner's favourite artist
    tail_exponent: float = 1.05
    # Followers as the sign of a curated playlist: the real playlists with ≥ 10 followers are
    # longer, built more from the popular tracks *of their taste* and more individually titled
    # than the average one (benchmarks/CALIBRATION.md). Curation c = log10(max(followers, 3) / 3):
    # 0 for the 95% of playlists with ≤ 3 followers, 0.5 at 10, 1 at 30. A playlist draws a share
    # min(curation_head·c, 0.8) of its genre slots from one scene of its (genre, mood) block's
    # head (WorldConfig.scenes, scene_size; the same scene in every block, and for a title from a
    # shared vocabulary, with chance title_scene, the title's scene: a title names content), has
    # a personal title 1 + curation_titles·c times as often (picked from the whole personal
    # vocabulary with chance min(c, 1)), short lengths exp(curation_length·c) times less often and
    # long ones exp(0.1·curation_length·c) times longer, and exp(-curation_hits·c) times the
    # average share of global hits. The MPD's averages, set by 1-follower playlists, barely move.
    curation_head: float = 0.375
    curation_titles: float = 10.0
    curation_length: float = 3.5
    curation_hits: float = 1.5  # a curated playlist's share of global hits × exp(-this·c)
    title_scene: float = 0.7  # chance a vocabulary title picks the playlist's head scene
    min_followers: int = 1  # > 1: only playlists with at least this many (a population)
    # Artist runs: each playlist moves a share ~ Beta(mean ``artist_grouping``) of its tracks
    # right after the first track of the same artist (people add an artist's songs together).
    artist_grouping: float = 0.7


@dataclass
class PlaylistBatch:
    """Columnar playlists. Track indices are world track indices.

    ``offsets`` (int64, [n+1]) delimits each playlist's slice of ``tracks`` (int32, [m]).
    ``genre``/``genre2``/``context`` (int16, [n]; -1 when absent) are the latent theme; ``scene``
    (int16, [n]) the head scene inside the primary genre of a followed playlist, -1 for the others.
    """

    pid: np.ndarray
    name: list[str]
    description: list[str | None]
    collaborative: np.ndarray
    modified_at: np.ndarray
    num_followers: np.ndarray
    num_edits: np.ndarray
    offsets: np.ndarray
    tracks: np.ndarray
    genre: np.ndarray
    genre2: np.ndarray
    context: np.ndarray
    scene: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.pid)


def _sample_lengths(
    cfg: PlaylistConfig, n: int, rng: np.random.Generator, curation: np.ndarray | None = None
) -> np.ndarray:
    curation = np.zeros(n) if curation is None else curation
    short_share = cfg.short_share * np.exp(-cfg.curation_length * curation)
    long_mean = cfg.long_log_mean + 0.1 * cfg.curation_length * curation
    lengths = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):  # rejection into [min, max], per playlist; accepts ~95% per round
        short = rng.random(len(todo)) < short_share[todo]
        log_len = np.where(
            short,
            rng.normal(cfg.short_log_mean, cfg.short_log_sd, len(todo)),
            rng.normal(long_mean[todo], cfg.long_log_sd),
        )
        draw = np.round(np.exp(log_len)).astype(np.int64)
        ok = (draw >= cfg.min_tracks) & (draw <= cfg.max_tracks)
        lengths[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return lengths


# Followers: P(1)=.754, P(2)=.150 and k^-3 beyond (MPD stats: 754,219 / 149,600 / 46,939 ...).
_FOLLOWER_K = np.arange(1, 100_001)
_FOLLOWER_P = np.concatenate(
    ([0.754, 0.150], 0.096 * (_FOLLOWER_K[2:] ** -3.0) / np.sum(_FOLLOWER_K[2:] ** -3.0))
)
_FOLLOWER_CDF = np.cumsum(_FOLLOWER_P / _FOLLOWER_P.sum())


def _sample_followers(n: int, rng: np.random.Generator, at_least: int = 1) -> np.ndarray:
    """Followers from the MPD's histogram, conditioned on ``≥ at_least`` (drawn above the CDF
    of ``at_least − 1``, so the shape beyond it is the MPD's)."""
    low = _FOLLOWER_CDF[at_least - 2] if at_least > 1 else 0.0
    u = low + (1.0 - low) * rng.random(n)
    return _FOLLOWER_K[np.minimum(np.searchsorted(_FOLLOWER_CDF, u), len(_FOLLOWER_K) - 1)].astype(
        np.int64
    )


def curation(followers: np.ndarray) -> np.ndarray:
    """float64: ``log10(max(followers, 3) / 3)`` (see :class:`PlaylistConfig`).

    >>> curation(np.array([1, 3, 30])).round(3).tolist()
    [0.0, 0.0, 1.0]
    """
    return np.log10(np.maximum(followers, 3) / 3.0)


def _sample_edits(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # 1 + a lognormal fitted to the MPD histogram (mode 2, P(2)=9.2%, P(20)=1.4%); longer
    # playlists were edited more, at the same overall shape.
    mu = 2.15 + 0.3 * (np.log(lengths) - 3.9)
    edits = 1 + np.round(np.exp(rng.normal(mu, 1.4))).astype(np.int64)
    return np.clip(edits, 1, 5000)


def _sample_modified(n: int, rng: np.random.Generator) -> np.ndarray:
    # A quarter were touched in the weeks before the snapshot; the rest spread back to 2010,
    # growing with Spotify's user base.
    recent = rng.random(n) < 0.25
    age = np.where(recent, rng.exponential(12 * 86400, n), rng.exponential(500 * 86400, n))
    ts = END_TS - 1 - age.astype(np.int64)
    old = ts < START_TS
    ts[old] = START_TS + rng.integers(0, END_TS - START_TS, old.sum())
    return ts


class TitleModel:
    """Titles from the theme: context phrases, genre phrases, generic titles and a personal tail."""

    def __init__(self, cfg: PlaylistConfig):
        self.cfg = cfg
        self.context_titles = [np.asarray(c.titles, dtype=object) for c in CONTEXTS]
        self.context_w = [zipf_weights(len(c.titles), cfg.title_exponent) for c in CONTEXTS]
        self.genre_titles = [np.asarray(g[1], dtype=object) for g in GENRES]
        self.genre_w = [zipf_weights(len(g[1]), cfg.title_exponent) for g in GENRES]
        self.generic = np.asarray(GENERIC_TITLES, dtype=object)
        self.generic_w = zipf_weights(len(GENERIC_TITLES), 0.3)
        self.tail_cdf = np.cumsum(zipf_weights(N_TAIL_TITLES, cfg.tail_exponent, offset=30.0))

    def sample(
        self,
        genre: np.ndarray,
        context: np.ndarray,
        artist_names: np.ndarray,
        rng: np.random.Generator,
        curated: np.ndarray | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """One title per playlist and its vocabulary key (int64 [n]: the same for every playlist
        given that title from the context, genre or generic vocabulary; -1 for personal and artist
        titles), which binds a title to content (see ``sample_playlists``' scenes).
        ``artist_names`` (object, [n]) is each owner's favourite artist; ``curated`` (float [n],
        default 0) each playlist's curation (see :class:`PlaylistConfig`).

        A curated playlist has a personal title 1 + curation_titles·c times as often, and picks
        it from the whole personal vocabulary with chance min(c, 1) rather than by its Zipf
        weights: followed playlists' titles are more varied than the average one's (0.59
        distinct normalised titles per playlist on the real dev set), while the MPD's count of
        distinct titles, bounded by the vocabulary, barely moves.
        """
        curated = np.zeros(len(genre)) if curated is None else curated
        tail_prob = np.minimum(
            self.cfg.tail_title_prob * (1 + self.cfg.curation_titles * curated), 0.9
        )
        n = len(genre)
        u = rng.random(n)
        has_ctx = context >= 0
        # source: 0 context vocabulary, 1 genre vocabulary, 2 generic, 3 personal tail
        source = np.where(
            has_ctx, np.where(u < 0.72, 0, np.where(u < 0.90, 1, 2)), np.where(u < 0.88, 1, 2)
        )
        v = rng.random(n)
        source[v < tail_prob] = 3
        source[v > 1.0 - self.cfg.artist_title_prob] = 4
        titles = np.empty(n, dtype=object)
        key = np.full(n, -1, dtype=np.int64)
        for c in range(len(CONTEXTS)):
            m = (source == 0) & (context == c)
            idx = rng.choice(len(self.context_titles[c]), m.sum(), p=self.context_w[c])
            titles[m], key[m] = self.context_titles[c][idx], (1 << 20) + (c << 10) + idx
        for g in range(N_GENRES):
            m = (source == 1) & (genre == g)
            idx = rng.choice(len(self.genre_titles[g]), m.sum(), p=self.genre_w[g])
            titles[m], key[m] = self.genre_titles[g][idx], (2 << 20) + (g << 10) + idx
        m = source == 2
        idx = rng.choice(len(self.generic), m.sum(), p=self.generic_w)
        titles[m], key[m] = self.generic[idx], (3 << 20) + idx
        m = source == 3
        index = np.searchsorted(self.tail_cdf, rng.random(m.sum()))
        own = rng.random(m.sum()) < np.minimum(curated[m], 1.0)
        index[own] = rng.integers(0, N_TAIL_TITLES, own.sum())
        titles[m] = tail_title(index)
        m = source == 4
        titles[m] = np.char.lower(artist_names[m].astype(str)).astype(object)
        return _add_noise(titles, context, rng), key


def _add_noise(titles: np.ndarray, context: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Case, emoji, stretched letters and punctuation: what real people type."""
    n = len(titles)
    u = rng.random(n)
    out = []
    case = rng.random(n)
    extra = rng.random(n)
    pick = rng.integers(0, 1 << 30, n)
    for i in range(n):  # one string per playlist (not per track): 1,000 per slice
        t = titles[i]
        if case[i] < 0.22:
            t = t.title()
        elif case[i] < 0.30:
            t = t.upper()
        elif case[i] < 0.34:
            t = t.capitalize()
        if u[i] < 0.08 and context[i] >= 0 and CONTEXTS[context[i]].emoji:
            emoji = CONTEXTS[context[i]].emoji
            t = f"{t} {emoji[pick[i] % len(emoji)]}"
        elif extra[i] < 0.03:
            t = t + t[-1] * (1 + pick[i] % 3)
        elif extra[i] < 0.06:
            t = t + ("!!", "!", " :)", "...", " ✨")[pick[i] % 5]
        elif extra[i] < 0.08:
            t = f"{t} {2014 + pick[i] % 4}"
        out.append(t)
    return out


_DESCRIPTIONS = (
    "songs for {x}",
    "my favorite {x} songs",
    "the best of {x}",
    "{x} vibes only",
    "for when you need some {x}",
    "all the {x} you need",
    "a little bit of {x}",
)


def _sample_descriptions(
    genre: np.ndarray, context: np.ndarray, cfg: PlaylistConfig, rng: np.random.Generator
) -> list[str | None]:
    has = rng.random(len(genre)) < cfg.description_prob
    template = rng.integers(0, len(_DESCRIPTIONS), len(genre))
    out: list[str | None] = [None] * len(genre)
    for i in np.flatnonzero(has):
        topic = CONTEXTS[context[i]].name if context[i] >= 0 else GENRES[genre[i]][0]
        out[i] = _DESCRIPTIONS[template[i]].format(x=topic)
    return out


def _group_artists(
    tracks: np.ndarray,
    lengths: np.ndarray,
    offsets: np.ndarray,
    track_artist: np.ndarray,
    share: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``tracks`` (int32, playlist after playlist) with, in playlist ``p``, each track but an
    artist's first moved right after that first one with probability ``share[p]`` (kept in
    their order): artist runs, as real playlists have them.

    >>> artist = np.array([0, 1, 0, 2, 0])
    >>> _group_artists(np.arange(5, dtype=np.int32), np.array([5]), np.array([0, 5]), artist,
    ...                np.array([1.0]), np.random.default_rng(0)).tolist()
    [0, 2, 4, 1, 3]
    """
    owner = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(tracks)) - offsets[owner]
    key = owner.astype(np.int64) * (int(track_artist.max()) + 1) + track_artist[tracks]
    by_artist = np.lexsort((pos, key))
    start = np.ones(len(key), dtype=bool)
    start[1:] = key[by_artist][1:] != key[by_artist][:-1]
    first = np.empty(len(key), dtype=np.int64)
    first[by_artist] = pos[by_artist][
        np.maximum.accumulate(np.where(start, np.arange(len(key)), 0))
    ]
    moved = (pos != first) & (rng.random(len(tracks)) < share[owner])
    place = np.where(moved, first + 0.5 + 0.5 * pos / (lengths[owner] + 1.0), pos)
    return tracks[np.lexsort((place, owner))]


def sample_playlists(
    world: World,
    cfg: PlaylistConfig,
    pids: np.ndarray,
    rng: np.random.Generator,
    titles: TitleModel | None = None,
) -> PlaylistBatch:
    """Sample ``len(pids)`` playlists. Deterministic given ``rng``'s state."""
    n = len(pids)
    titles = titles or TitleModel(cfg)
    genre = rng.choice(N_GENRES, n, p=world.genre_pop).astype(np.int64)
    genre2 = np.where(
        rng.random(n) < cfg.second_genre_prob, rng.choice(N_GENRES, n, p=world.genre_pop), -1
    )
    genre2[genre2 == genre] = -1
    ctx_p = np.array([c.share for c in CONTEXTS]) * cfg.context_prob_scale
    ctx_p = np.append(ctx_p, max(0.0, 1.0 - ctx_p.sum()))
    context = rng.choice(len(CONTEXTS) + 1, n, p=ctx_p / ctx_p.sum())
    context[context == len(CONTEXTS)] = -1

    # Mood mixture per playlist: the context's, else the genre's tilt over everyday moods.
    mood_mix = np.ones((n, N_MOODS))
    mood_mix[:, MOODS.index("christmas")] = 0.0
    for g, (_, _, tilt) in enumerate(GENRES):
        for mood, factor in tilt.items():
            mood_mix[genre == g, MOODS.index(mood)] *= factor
    for c, ctx in enumerate(CONTEXTS):
        row = np.zeros(N_MOODS)
        for mood, share in ctx.moods.items():
            row[MOODS.index(mood)] = share
        mood_mix[context == c] = row
    mood_cdf = np.cumsum(mood_mix / mood_mix.sum(1, keepdims=True), axis=1)

    followers = _sample_followers(n, rng, cfg.min_followers)
    curated = curation(followers)
    lengths = _sample_lengths(cfg, n, rng, curated)
    slots = np.ceil(lengths * 1.3).astype(np.int64) + 6  # oversample: duplicates are dropped
    slot_offsets = np.concatenate(([0], np.cumsum(slots)))
    owner = np.repeat(np.arange(n), slots)
    m = len(owner)
    position = np.arange(m) - slot_offsets[owner]

    boost = np.array([c.hit_boost for c in CONTEXTS] + [1.0])[context]
    # Curated playlists are longer but hold the charts' hits no more often than others (real
    # playlists with ≥ 10 followers: the top track in 4.9% of them, 4.7% of all playlists).
    boost = boost * np.exp(-cfg.curation_hits * curated)
    hit_share = np.clip(rng.beta(2.0, 2.0 / cfg.hit_share_mean - 2.0, n) * boost, 0, 0.8)
    n_anchor = rng.integers(0, 4, n)
    anchor_share = np.where(n_anchor > 0, rng.random(n) * cfg.anchor_share_max, 0.0)
    anchors = world.genre_artists.sample(np.repeat(genre, 3), rng).reshape(n, 3)
    from segue.data.synthetic.names import artist_names

    favourite = np.asarray(artist_names(world.seed, anchors[:, 0].astype(np.int64)), dtype=object)
    names, title_key = titles.sample(genre, context, favourite, rng, curated)
    # A curated playlist's scene: mostly fixed by its title when the title comes from a shared
    # vocabulary (everyone's "throwback jams" draw on the same throwbacks), else its own.
    scene = rng.integers(0, 1 << 30, n)
    bound = (title_key >= 0) & (rng.random(n) < cfg.title_scene)
    scene[bound] = (title_key[bound] * 0x9E3779B1) % (1 << 30)

    u = rng.random(m)
    from_hits = u < hit_share[owner]
    from_anchor = ~from_hits & (u < (hit_share + anchor_share)[owner])
    from_genre = ~(from_hits | from_anchor)
    tracks = np.empty(m, dtype=np.int32)
    tracks[from_hits] = world.hits.sample(np.zeros(from_hits.sum(), dtype=np.int64), rng)
    h_genre = genre[owner[from_hits]]
    own = world.genre_has_hits[h_genre] & (
        rng.random(len(h_genre)) < world.config.hit_genre_affinity
    )
    tracks[np.flatnonzero(from_hits)[own]] = world.genre_hits.sample(
        h_genre[own].astype(np.int64), rng
    )
    a_owner = owner[from_anchor]
    which = rng.integers(0, 1 << 30, len(a_owner)) % n_anchor[a_owner]
    tracks[from_anchor] = world.artist_tracks.sample(anchors[a_owner, which].astype(np.int64), rng)
    g_owner = owner[from_genre]
    g = genre[g_owner]
    use2 = (genre2[g_owner] >= 0) & (rng.random(len(g_owner)) < cfg.second_genre_slot_share)
    g = np.where(use2, genre2[g_owner], g)
    mood = (rng.random(len(g_owner))[:, None] > mood_cdf[g_owner]).sum(1)
    mood = np.minimum(mood, N_MOODS - 1)
    tracks[from_genre] = world.genre_mood_tracks.sample(world.mood_block(g, mood), rng)
    if cfg.curation_head > 0:  # curated playlists: part of their genre slots from the block's head
        in_head = rng.random(len(g_owner)) < np.minimum(cfg.curation_head * curated, 0.8)[g_owner]
        genre_slots = np.flatnonzero(from_genre)
        block = world.head_block(
            world.mood_block(g[in_head], mood[in_head]), scene[g_owner[in_head]]
        )
        tracks[genre_slots[in_head]] = world.genre_mood_head.sample(block, rng)

    # Album runs: overwrite a window with consecutive tracks of the album of the window's first track.
    run = (rng.random(n) < cfg.album_run_prob) & (lengths >= 8)
    run_len = np.minimum(rng.integers(3, 9, n), lengths // 2)
    run_start = (rng.random(n) * (lengths - run_len + 1)).astype(np.int64)
    in_run = run[owner] & (position >= run_start[owner]) & (position < (run_start + run_len)[owner])
    first_slot = slot_offsets[:-1] + run_start
    album = world.track_album[tracks[first_slot]]
    a_start = world.album_track_start[album]
    a_size = world.album_track_start[album + 1] - a_start
    r_owner = owner[in_run]
    k = position[in_run] - run_start[r_owner]
    first_offset = tracks[first_slot] - a_start
    tracks[in_run] = (a_start[r_owner] + (first_offset[r_owner] + k) % a_size[r_owner]).astype(
        np.int32
    )

    # Drop repeats inside a playlist (keep the first), then cut each playlist to its length.
    key = owner.astype(np.int64) * world.n_tracks + tracks
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(m, dtype=bool)
    keep[first] = True
    rank = np.cumsum(keep) - 1
    kept_before = np.concatenate(([0], np.cumsum(keep)))[slot_offsets[:-1]]
    rank = rank - kept_before[owner]
    keep &= rank < lengths[owner]
    final_tracks = tracks[keep]
    final_lengths = np.bincount(owner[keep], minlength=n)
    offsets = np.concatenate(([0], np.cumsum(final_lengths))).astype(np.int64)
    if cfg.artist_grouping > 0:
        share = rng.beta(2.0, 2.0 * (1 - cfg.artist_grouping) / cfg.artist_grouping, n)
        final_tracks = _group_artists(
            final_tracks, final_lengths, offsets, world.track_artist, share, rng
        )

    return PlaylistBatch(
        pid=np.asarray(pids, dtype=np.int64),
        name=names,
        description=_sample_descriptions(genre, context, cfg, rng),
        collaborative=rng.random(n) < cfg.collaborative_prob,
        modified_at=_sample_modified(n, rng),
        num_followers=followers,
        num_edits=_sample_edits(final_lengths, rng),
        offsets=offsets,
        tracks=final_tracks,
        genre=genre.astype(np.int16),
        genre2=genre2.astype(np.int16),
        context=context.astype(np.int16),
        scene=np.where(
            curated > 0,
            scene % world.head_scene_count[world.mood_block(genre, np.full(n, N_MOODS))],
            -1,
        ).astype(np.int16),
    )
