"""The latent music world behind generated playlists.

The catalog is laid out contiguously — genre-ordered artists, each artist's albums, each album's
tracks — so "a track of this album" or "a track of this artist" is a range of track indices, and
every draw is one ``searchsorted`` on a cumulative weight array (:class:`BlockSampler`). Nothing
here loops over tracks in Python; building the world at full size (~6M tracks) takes seconds.

Calibration (see ``MPDConfig`` defaults and ``benchmarks/bench_generate.py``): the sizes and
exponents below were set so that 1M generated playlists match the published MPD statistics in
``shared/reference/recsys2018.md`` within ±15%.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MOODS = ("energetic", "chill", "party", "sad", "romantic", "classic", "christmas")
N_MOODS = len(MOODS)
ANY_MOOD = N_MOODS  # the sampler block of a genre that ignores mood
CHRISTMAS = MOODS.index("christmas")

# Genres in order of popularity (the generator gives them Zipf weights in this order), each with
# the title phrases people use for such playlists (most common first) and a mood tilt.
GENRES: tuple[tuple[str, tuple[str, ...], dict[str, float]], ...] = (
    (
        "pop",
        (
            "pop",
            "pop hits",
            "top hits",
            "today's hits",
            "pop music",
            "pop songs",
            "hits",
            "top 40",
            "radio",
            "new music",
            "pop playlist",
            "current hits",
            "popular",
            "top songs",
            "mainstream",
            "pop 2017",
        ),
        {"party": 2.0},
    ),
    (
        "rap",
        (
            "rap",
            "hip hop",
            "rap music",
            "rap caviar",
            "hiphop",
            "rap hits",
            "bars",
            "hip-hop",
            "rap/hip hop",
            "rap playlist",
            "rap songs",
            "hood",
            "trap",
        ),
        {"energetic": 1.5, "party": 1.5},
    ),
    (
        "country",
        ("country", "country music", "country songs", "new country", "country hits", "southern"),
        {"romantic": 1.3},
    ),
    ("rock", ("rock", "rock music", "rock n roll", "rock songs", "hard rock"), {"energetic": 2.0}),
    ("r&b", ("r&b", "rnb", "r and b", "slow jams", "rnb vibes"), {"romantic": 2.0, "chill": 1.5}),
    (
        "edm",
        ("edm", "electronic", "dubstep", "bass", "festival", "edm bangers"),
        {"energetic": 2.0, "party": 2.0},
    ),
    ("indie", ("indie", "indie music", "indie rock", "indie folk", "indie vibes"), {"chill": 2.0}),
    ("alternative", ("alternative", "alt", "alt rock", "alternative rock"), {"sad": 1.3}),
    ("latin", ("latin", "reggaeton", "spanish", "latino", "musica"), {"party": 2.0}),
    (
        "christian",
        ("worship", "christian", "jesus", "church", "praise", "gospel"),
        {"chill": 1.5, "sad": 0.5},
    ),
    ("house", ("house", "deep house", "tropical house", "house music"), {"party": 2.0}),
    (
        "classic rock",
        ("classic rock", "classics", "70s", "80s", "oldies but goodies"),
        {"classic": 4.0},
    ),
    ("soul", ("soul", "motown", "oldies", "soul music"), {"classic": 3.0, "romantic": 1.5}),
    ("jazz", ("jazz", "smooth jazz", "jazz vibes", "coffee"), {"chill": 3.0}),
    ("metal", ("metal", "heavy metal", "metalcore", "screamo"), {"energetic": 3.0}),
    ("punk", ("punk", "pop punk", "punk rock", "skate"), {"energetic": 2.0}),
    ("folk", ("folk", "acoustic", "folk music", "coffee shop"), {"chill": 2.5}),
    ("reggae", ("reggae", "island vibes", "reggae music"), {"chill": 2.0}),
    ("emo", ("emo", "emo kid", "my emo phase"), {"sad": 3.0}),
    ("kpop", ("kpop", "k-pop", "bts", "korean"), {"party": 1.5}),
    ("classical", ("classical", "piano", "instrumental", "study music"), {"chill": 3.0}),
    ("blues", ("blues", "delta blues", "blues rock"), {"sad": 1.5, "classic": 1.5}),
    ("funk", ("funk", "funky", "groove"), {"party": 2.0, "classic": 1.5}),
    ("disco", ("disco", "70s disco", "boogie"), {"party": 3.0, "classic": 2.0}),
    ("trap", ("trap", "trap music", "turn up"), {"energetic": 2.0, "party": 2.0}),
    ("techno", ("techno", "minimal", "rave"), {"energetic": 2.0}),
    ("grunge", ("grunge", "90s grunge", "seattle"), {"classic": 2.0}),
    ("bluegrass", ("bluegrass", "banjo", "americana"), {"classic": 1.5}),
    ("ambient", ("ambient", "sleep", "focus", "meditation"), {"chill": 4.0}),
    ("lofi", ("lofi", "lo-fi", "lofi beats", "study beats"), {"chill": 4.0}),
)
GENRE_NAMES = tuple(g[0] for g in GENRES)
N_GENRES = len(GENRES)


@dataclass(frozen=True)
class Context:
    """A playlist's mood or occasion: its share of playlists, moods, titles and emoji."""

    name: str
    share: float
    moods: dict[str, float]
    titles: tuple[str, ...]
    emoji: tuple[str, ...] = ()
    hit_boost: float = 1.0


CONTEXTS: tuple[Context, ...] = (
    Context(
        "workout",
        0.045,
        {"energetic": 0.75, "party": 0.25},
        (
            "workout",
            "gym",
            "running",
            "workout music",
            "lifting",
            "cardio",
            "beast mode",
            "pump up",
            "run",
            "work out",
        ),
        ("💪", "🏋️", "🔥"),
        1.3,
    ),
    Context(
        "chill",
        0.07,
        {"chill": 0.8, "romantic": 0.1, "sad": 0.1},
        (
            "chill",
            "chill vibes",
            "relax",
            "study",
            "mellow",
            "calm",
            "chillin",
            "sleep",
            "lazy sunday",
            "chill out",
        ),
        ("😌", "🌙", "✨"),
        0.8,
    ),
    Context(
        "party",
        0.045,
        {"party": 0.8, "energetic": 0.2},
        ("party", "party playlist", "turn up", "lit", "pregame", "dance", "party mix", "turnt"),
        ("🎉", "🔥", "💃"),
        1.6,
    ),
    Context(
        "christmas",
        0.013,
        {"christmas": 1.0},
        (
            "christmas",
            "christmas music",
            "xmas",
            "christmas songs",
            "holiday",
            "christmas playlist",
        ),
        ("🎄", "🎅", "❄️"),
        0.3,
    ),
    Context(
        "throwback",
        0.05,
        {"classic": 0.8, "party": 0.2},
        (
            "throwback",
            "oldies",
            "throwbacks",
            "old school",
            "tbt",
            "90s",
            "2000s",
            "classics",
            "childhood",
        ),
        ("📼", "✌️"),
        0.6,
    ),
    Context(
        "summer",
        0.035,
        {"party": 0.5, "energetic": 0.3, "chill": 0.2},
        (
            "summer",
            "summer 2017",
            "summer vibes",
            "beach",
            "summer 2016",
            "pool party",
            "summertime",
        ),
        ("☀️", "🌴", "🌊"),
        1.5,
    ),
    Context(
        "sad",
        0.025,
        {"sad": 0.85, "romantic": 0.15},
        ("sad", "sad songs", "feels", "in my feelings", "heartbreak", "crying"),
        ("💔", "😢"),
        0.7,
    ),
    Context(
        "love",
        0.02,
        {"romantic": 0.9, "chill": 0.1},
        ("love", "love songs", "wedding", "babe", "romance", "date night"),
        ("❤️", "💕"),
        1.0,
    ),
    Context(
        "road trip",
        0.025,
        {"energetic": 0.4, "party": 0.3, "chill": 0.3},
        ("road trip", "roadtrip", "drive", "car jams", "driving", "road trip 2017"),
        ("🚗", "🛣️"),
        1.2,
    ),
)

# Titles that say little about the music (real MPD is full of them).
GENERIC_TITLES = (
    "music",
    "jams",
    "my playlist",
    "songs",
    "favorites",
    "new playlist",
    "good songs",
    "mix",
    "random",
    "vibes",
    "playlist",
    "stuff",
    "my songs",
    "bangers",
    "good vibes",
    "everything",
    "new",
    "faves",
    "liked",
    "car",
    "shower",
    "rando",
    "misc",
    "tunes",
    "hits",
)
_TAIL_A = (
    "golden sunny lazy happy cosmic late night early morning rainy sleepy electric midnight velvet "
    "wild lonely sweet neon silver crazy lit mellow dreamy groovy spicy salty moody fresh dope "
    "sunday monday friday saturday weekend spring fall autumn winter college senior campfire "
    "bedroom kitchen office work school bus train airport beach lake mountain city country "
    "good bad sad mad rad chill hype cozy sleepy rainy stormy foggy windy hazy misty dusty"
).split()
_TAIL_B = (
    "days nights vibes feels tunes beats jams waves moods hours drives mornings dreams songs thoughts "
    "things times sounds memories adventures sessions anthems bops tracks"
).split()
_TAIL_NAMES = (
    "sarah emily jess alex matt mike chris katie kayla josh ashley taylor jordan brandon megan lauren "
    "tyler rachel kyle nicole hannah ryan jake zach amanda brittany sam nick dan ben abby"
).split()


def tail_title(index: np.ndarray) -> list[str]:
    """The long tail of personal titles ("sarah's jams", "late night drives", "moody tunes")."""
    a = np.asarray(_TAIL_A, dtype=object)
    b = np.asarray(_TAIL_B, dtype=object)
    n = np.asarray(_TAIL_NAMES, dtype=object)
    kind = index % 3
    i = index // 3
    two = a[i % len(a)] + " " + b[(i // len(a)) % len(b)]
    named = n[i % len(n)] + "'s " + b[(i // len(n)) % len(b)]
    year = b[i % len(b)] + " " + (2010 + (i // len(b)) % 8).astype(str).astype(object)
    return list(np.where(kind == 0, two, np.where(kind == 1, named, year)))


N_TAIL_TITLES = 3 * len(_TAIL_A) * len(_TAIL_B)


def zipf_weights(n: int, exponent: float, offset: float = 0.0) -> np.ndarray:
    """Weights ∝ (rank + offset)^-exponent for ranks 1..n, normalised to sum 1 (float64)."""
    w = (np.arange(1, n + 1, dtype=np.float64) + offset) ** -exponent
    return w / w.sum()


class BlockSampler:
    """Weighted sampling inside contiguous blocks of a shared item array.

    ``items`` (int32, shape [m]) holds block after block; ``offsets`` (int64, [n_blocks + 1])
    delimits them. Each block's weights are normalised to mass 1 and accumulated over the whole
    array, so one ``searchsorted`` serves every block: a draw for block b with uniform u lands at
    ``b + u`` on the global cumulative axis. Empty blocks must be redirected by the caller.
    """

    def __init__(self, items: np.ndarray, weights: np.ndarray, offsets: np.ndarray):
        self.items = np.ascontiguousarray(items, dtype=np.int32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        sizes = np.diff(self.offsets)
        block_of = np.repeat(np.arange(len(sizes)), sizes)
        mass = np.bincount(block_of, weights=weights, minlength=len(sizes))
        safe = np.where(mass > 0, mass, 1.0)
        # Cumulative within each block, shifted by the block's index: block b spans (b, b+1].
        within = np.cumsum(weights / safe[block_of])
        start_cum = np.concatenate(([0.0], within))[self.offsets[:-1]]
        self.cum = within - start_cum[block_of] + block_of
        self.sizes = sizes

    def sample(self, blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of ``blocks`` (int array); returns int32 item ids."""
        target = blocks + rng.random(len(blocks))
        pos = np.searchsorted(self.cum, target, side="left")
        pos = np.clip(pos, self.offsets[blocks], self.offsets[blocks + 1] - 1)
        return self.items[pos]


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and shapes of the latent catalog (defaults calibrated to the MPD at 1M playlists)."""

    n_artists: int = 310_000
    genre_exponent: float = 0.85  # Zipf over GENRES order
    artists_per_genre_power: float = 0.6  # share of artists ∝ genre popularity ** this
    artist_exponent: float = 0.98  # Zipf of artists inside their genre ...
    artist_offset: float = 0.15  # ... ∝ (rank + artist_offset) ** -artist_exponent
    second_genre_prob: float = 0.3
    third_genre_prob: float = 0.08
    secondary_genre_weight: float = 0.35
    album_geometric_p: float = 0.45  # albums per artist = 1 + Geometric
    album_exponent: float = 0.5
    track_exponent: float = 0.75
    album_mood_keep: float = 0.7  # a track shares its album's mood with this probability
    christmas_album_share: float = 0.006
    n_hits: int = 3000
    hit_offset: float = 40.0  # hits layer weights ∝ (rank + offset) ** -hit_exponent
    hit_exponent: float = 1.5
    hit_plateau: int = 40  # the top hits' weights: that of this rank ...
    hit_plateau_slope: float = 0.15  # ... times (hit_plateau / rank) ** this
    hit_genre_affinity: float = 0.7  # share of a playlist's hits drawn from its genre's hits
    mean_duration_s: float = 225.0
    scene_size: int = 15  # tracks in one scene of a (genre, mood) block's head
    scenes: int = 24  # scenes over all genres, dealt in proportion to genre_pop
    head_flatness: float = 0.75  # head weights are the block's weights ** this (0: uniform)


class World:
    """The catalog and its samplers; see the module docstring for the layout."""

    def __init__(self, config: WorldConfig, seed: int):
        self.config = config
        self.seed = seed
        rng = np.random.default_rng([seed, 1])
        c = config
        self.genre_pop = zipf_weights(N_GENRES, c.genre_exponent)

        # --- artists, ordered by primary genre ---
        share = self.genre_pop**c.artists_per_genre_power
        share /= share.sum()
        per_genre = np.maximum(np.round(share * c.n_artists).astype(np.int64), 50)
        self.n_artists = int(per_genre.sum())
        self.artist_genre = np.repeat(np.arange(N_GENRES), per_genre).astype(np.int16)
        # Zipf weight within the genre, ranks shuffled so popularity is not tied to the index.
        weight = np.empty(self.n_artists)
        start = 0
        for n in per_genre:  # 30 genres, not a row loop
            weight[start : start + n] = rng.permutation(
                zipf_weights(int(n), c.artist_exponent, c.artist_offset)
            )
            start += n
        self.artist_weight = weight
        u = rng.random(self.n_artists)
        self.artist_genre2 = np.where(
            u < c.second_genre_prob, rng.choice(N_GENRES, self.n_artists, p=self.genre_pop), -1
        ).astype(np.int16)
        self.artist_genre3 = np.where(
            u < c.third_genre_prob, rng.choice(N_GENRES, self.n_artists, p=self.genre_pop), -1
        ).astype(np.int16)
        self.artist_genre2[self.artist_genre2 == self.artist_genre] = -1
        self.artist_genre3[
            (self.artist_genre3 == self.artist_genre) | (self.artist_genre3 == self.artist_genre2)
        ] = -1

        # --- albums: 1 + Geometric per artist; popular artists a little more prolific ---
        n_albums = 1 + rng.geometric(c.album_geometric_p, self.n_artists) - 1
        # Stars are prolific: the top artist of a genre has ~60 albums, spreading its plays over
        # many tracks (MPD: Drake has 1.3% of entries, yet no track is in more than 4.7% of lists).
        n_albums += np.minimum(np.round(weight * 900), 60).astype(np.int64)
        self.artist_album_start = np.concatenate(([0], np.cumsum(n_albums))).astype(np.int64)
        self.n_albums = int(self.artist_album_start[-1])
        self.album_artist = np.repeat(np.arange(self.n_artists), n_albums).astype(np.int32)
        # album weight within its artist: Zipf by album rank inside the artist
        rank_in_artist = np.arange(self.n_albums) - self.artist_album_start[self.album_artist]
        album_w = (rank_in_artist + 1.0) ** -c.album_exponent
        album_w /= np.bincount(self.album_artist, weights=album_w)[self.album_artist]
        kind = rng.random(self.n_albums)
        album_size = np.where(
            kind < 0.45,
            rng.integers(1, 3, self.n_albums),
            np.where(
                kind < 0.65, rng.integers(2, 5, self.n_albums), rng.integers(5, 11, self.n_albums)
            ),
        )
        self.album_mood = rng.choice(CHRISTMAS, self.n_albums).astype(np.int8)
        xmas = rng.random(self.n_albums) < c.christmas_album_share
        self.album_mood[xmas] = CHRISTMAS
        self.album_track_start = np.concatenate(([0], np.cumsum(album_size))).astype(np.int64)
        self.n_tracks = int(self.album_track_start[-1])

        # --- tracks ---
        self.track_album = np.repeat(np.arange(self.n_albums), album_size).astype(np.int32)
        self.track_artist = self.album_artist[self.track_album]
        self.artist_track_start = self.album_track_start[self.artist_album_start]
        track_rank = np.arange(self.n_tracks) - self.album_track_start[self.track_album]
        # A permuted rank inside the album: the hit single is not always track 1.
        shift = rng.integers(0, 1 << 30, self.n_albums)[self.track_album]
        perm_rank = (track_rank + shift) % album_size[self.track_album]
        track_w = (perm_rank + 1.0) ** -c.track_exponent
        track_w /= np.bincount(self.track_album, weights=track_w)[self.track_album]
        self.track_in_artist_weight = album_w[self.track_album] * track_w
        keep = rng.random(self.n_tracks) < c.album_mood_keep
        self.track_mood = np.where(
            keep | (self.album_mood[self.track_album] == CHRISTMAS),
            self.album_mood[self.track_album],
            rng.choice(CHRISTMAS, self.n_tracks),
        ).astype(np.int8)
        self.track_duration_ms = np.clip(
            rng.lognormal(np.log(c.mean_duration_s * 1000), 0.25, self.n_tracks), 30_000, 1_200_000
        ).astype(np.int64)

        self._build_samplers(rng)

    def _build_samplers(self, rng: np.random.Generator) -> None:
        c = self.config
        # Genre → artists (anchor artists are drawn with flattened weights: people also love niche acts).
        memberships = [
            (self.artist_genre, 1.0),
            (self.artist_genre2, c.secondary_genre_weight),
            (self.artist_genre3, c.secondary_genre_weight),
        ]
        a_idx, a_gen, a_w = [], [], []
        for genres, factor in memberships:
            ok = genres >= 0
            a_idx.append(np.flatnonzero(ok))
            a_gen.append(genres[ok].astype(np.int64))
            a_w.append(self.artist_weight[ok] * factor)
        a_idx, a_gen, a_w = (np.concatenate(x) for x in (a_idx, a_gen, a_w))
        order = np.argsort(a_gen, kind="stable")
        offsets = np.searchsorted(a_gen[order], np.arange(N_GENRES + 1))
        self.genre_artists = BlockSampler(a_idx[order], a_w[order] ** 0.85, offsets)

        # Artist → tracks: artists' tracks are contiguous, so blocks are the artist ranges.
        self.artist_tracks = BlockSampler(
            np.arange(self.n_tracks), self.track_in_artist_weight, self.artist_track_start
        )
        # (genre, mood) → tracks, plus an any-mood block per genre.
        t_artist_w = self.artist_weight[self.track_artist] * self.track_in_artist_weight
        blocks, items, weights = [], [], []
        for genres, factor in memberships:
            g = genres[self.track_artist].astype(np.int64)
            ok = g >= 0
            t = np.flatnonzero(ok)
            for mood_block in (self.track_mood[ok].astype(np.int64), np.full(len(t), ANY_MOOD)):
                blocks.append(g[ok] * (N_MOODS + 1) + mood_block)
                items.append(t)
                weights.append(t_artist_w[ok] * factor)
        blocks, items, weights = (np.concatenate(x) for x in (blocks, items, weights))
        order = np.argsort(blocks, kind="stable")
        n_blocks = N_GENRES * (N_MOODS + 1)
        offsets = np.searchsorted(blocks[order], np.arange(n_blocks + 1))
        self.genre_mood_tracks = BlockSampler(items[order], weights[order], offsets)
        # Each block's head, in scenes: a curated playlist draws part of its genre slots from one
        # scene of a block, a few of the block's heaviest tracks (the popular tracks *of its
        # taste*, not the global hits: on real followed playlists popularity alone scores a
        # quarter of item-kNN, and their pair rules join mid-popular tracks in tight clusters).
        # A genre has scenes in proportion to its popularity, so each scene is shared by about as
        # many playlists: the heaviest ``scenes·scene_size`` tracks of the block are dealt
        # round-robin by weight into its scenes.
        b_sorted, i_sorted, w_sorted = blocks[order], items[order], weights[order]
        by_weight = np.lexsort((-w_sorted, b_sorted))
        rank = np.arange(len(by_weight)) - offsets[b_sorted[by_weight]]
        genre_scenes = np.maximum(np.round(c.scenes * self.genre_pop), 1).astype(np.int64)
        self.max_scenes = int(genre_scenes.max())
        block_size = np.diff(offsets)
        self.head_scene_count = np.clip(
            np.minimum(np.repeat(genre_scenes, N_MOODS + 1), block_size), 1, None
        )
        count = self.head_scene_count[b_sorted[by_weight]]
        in_head = rank < count * c.scene_size
        head = by_weight[in_head]
        head_block = b_sorted[head] * self.max_scenes + rank[in_head] % count[in_head]
        head_order = np.argsort(head_block, kind="stable")
        head_offsets = np.searchsorted(
            head_block[head_order], np.arange(n_blocks * self.max_scenes + 1)
        )
        self.genre_mood_head = BlockSampler(
            i_sorted[head][head_order], w_sorted[head][head_order] ** c.head_flatness, head_offsets
        )
        # Hits: the most-played tracks across genres, the first ``hit_plateau`` of them equally
        # weighted: the genre draws alone make the head too steep (MPD: the top track is in 4.7%
        # of playlists and the 20th still in 3.0%; without the plateau, 4.9% and 2.2%).
        global_w = np.bincount(
            items[blocks % (N_MOODS + 1) == ANY_MOOD],
            weights=(weights * self.genre_pop[blocks // (N_MOODS + 1)])[
                blocks % (N_MOODS + 1) == ANY_MOOD
            ],
            minlength=self.n_tracks,
        )
        global_w[self.track_mood == CHRISTMAS] = 0
        hits = np.argsort(-global_w, kind="stable")[: c.n_hits]
        hit_w = zipf_weights(len(hits), c.hit_exponent, c.hit_offset)
        top = np.arange(1, min(c.hit_plateau, len(hits)) + 1)
        hit_w[: len(top)] = hit_w[len(top) - 1] * (len(top) / top) ** c.hit_plateau_slope
        self.hits = BlockSampler(hits, hit_w, np.array([0, len(hits)]))
        # The same hits by genre: a playlist draws part of its hits from its own genre's (people
        # who play country add the country hits), so the charts co-occur by genre.
        hit_genre = self.artist_genre[self.track_artist[hits]].astype(np.int64)
        by_genre = np.argsort(hit_genre, kind="stable")
        self.genre_hits = BlockSampler(
            hits[by_genre],
            hit_w[by_genre],
            np.searchsorted(hit_genre[by_genre], np.arange(N_GENRES + 1)),
        )
        self.genre_has_hits = np.diff(self.genre_hits.offsets) > 0
        self.christmas_tracks_by_genre_empty = (
            self.genre_mood_tracks.sizes.reshape(N_GENRES, N_MOODS + 1) == 0
        )

    def mood_block(self, genre: np.ndarray, mood: np.ndarray) -> np.ndarray:
        """Sampler block for (genre, mood), falling back to the genre's any-mood block when empty."""
        empty = self.christmas_tracks_by_genre_empty[genre, mood]
        mood = np.where(empty, ANY_MOOD, mood)
        return genre.astype(np.int64) * (N_MOODS + 1) + mood

    def head_block(self, block: np.ndarray, scene: np.ndarray) -> np.ndarray:
        """Head-sampler block of scene ``scene`` (any int ≥ 0) of ``block`` (from ``mood_block``)."""
        return block * self.max_scenes + scene % self.head_scene_count[block]


@functools.lru_cache(maxsize=2)
def get_world(config: WorldConfig, seed: int) -> World:
    """The world for (config, seed), built once per process (it is a pure function of both)."""
    return World(config, seed)
