"""``segue generate mpd``: MPD-format slices (and a challenge set) from the latent world.

Three stages, the first and last in parallel worker processes:

1. sample each slice's playlists (numpy, one RNG stream per slice, so the output is the same
   whatever the number of workers);
2. render the JSON of every track used, once (names and URIs are functions of the track index);
3. write each slice as ``mpd.slice.<start>-<end>.json`` by joining pre-rendered fragments.

Outputs are written into a temporary directory renamed into place at the end.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from segue.data import schema
from segue.data.challenge import (
    CATEGORY_BY_NUMBER,
    assign_categories,
    seed_positions,
    write_challenge,
    write_truth,
)
from segue.data.synthetic import names
from segue.data.synthetic.playlists import (
    PlaylistBatch,
    PlaylistConfig,
    TitleModel,
    sample_playlists,
)
from segue.data.synthetic.world import CONTEXTS, GENRE_NAMES, World, WorldConfig, get_world
from segue.errors import SegueError
from segue.io import atomic_dir, check_output_dir
from segue.progress import progress

SLICE_SIZE = 1000
LATENT_THEMES_FILE = "latent_themes.parquet"
GENERATED_ON = "2017-12-03 08:41:42.057563"  # fixed: the same seed gives byte-identical files


@dataclass(frozen=True)
class MPDConfig:
    """Everything that shapes generated MPD data besides its size and seed."""

    world: WorldConfig = field(default_factory=WorldConfig)
    playlists: PlaylistConfig = field(default_factory=PlaylistConfig)


@dataclass
class GenerateSummary:
    out: Path
    n_playlists: int
    n_slices: int
    n_entries: int
    n_unique_tracks: int
    n_challenge: int


def slice_file_name(start: int, end: int) -> str:
    """``mpd.slice.<start>-<end>.json``; ``end`` is inclusive, as in the real files."""
    return f"mpd.slice.{start}-{end}.json"


# Worker state, set in the parent before the pool forks (so the world is shared, not pickled).
_STATE: dict = {}


def _sample_slice(index: int) -> PlaylistBatch:
    n, seed = _STATE["n"], _STATE["seed"]
    start = index * SLICE_SIZE
    pids = np.arange(start, min(n, start + SLICE_SIZE))
    return sample_playlists(
        _STATE["world"],
        _STATE["cfg"].playlists,
        pids,
        np.random.default_rng([seed, 2, index]),
        _STATE["titles"],
    )


def _render_slice(index: int) -> int:
    batch: PlaylistBatch = _STATE["batches"][index]
    start = int(batch.pid[0])
    end = int(batch.pid[-1])
    data = render_slice(batch, _STATE["world"], _STATE["fragments"], _STATE["used"], start, end)
    path = _STATE["tmp"] / slice_file_name(start, end)
    with open(path, "wb") as handle:
        handle.write(data)
    return len(batch)


_POS_PREFIX = [b'{"pos":%d,' % i for i in range(260)]


def render_track_fragments(
    world: World, used: np.ndarray, seed: int
) -> tuple[list[bytes], list[str]]:
    """JSON of each used track without its ``pos``: ``"artist_name":…,"album_name":"…"}``.

    Returns the fragments (aligned with ``used``, a sorted int array of world track indices)
    and the track URIs.
    """
    artist = world.track_artist[used]
    album = world.track_album[used]
    track_uri = names.spotify_uris("track", seed, used)
    artist_uri = names.spotify_uris("artist", seed, artist)
    album_uri = names.spotify_uris("album", seed, album)
    track_name = names.track_names(seed, used)
    artist_name = names.artist_names(seed, artist)
    album_name = names.album_names(seed, album)
    duration = world.track_duration_ms[used].tolist()
    dumps = orjson.dumps
    fragments = [
        dumps(
            {
                "artist_name": a,
                "track_uri": tu,
                "artist_uri": au,
                "track_name": tn,
                "album_uri": alu,
                "duration_ms": d,
                "album_name": aln,
            }
        )[1:]
        for a, tu, au, tn, alu, d, aln in zip(
            artist_name,
            track_uri,
            artist_uri,
            track_name,
            album_uri,
            duration,
            album_name,
            strict=True,
        )
    ]
    return fragments, track_uri


def playlist_counts(
    batch: PlaylistBatch, world: World
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(num_albums, num_artists, duration_ms) per playlist, int64 arrays of length n."""
    n = len(batch)
    owner = np.repeat(np.arange(n), batch.lengths)
    counts = []
    for attr, size in ((world.track_album, world.n_albums), (world.track_artist, world.n_artists)):
        keys = np.unique(owner.astype(np.int64) * size + attr[batch.tracks])
        counts.append(np.bincount(keys // size, minlength=n))
    duration = np.bincount(owner, weights=world.track_duration_ms[batch.tracks], minlength=n)
    return counts[0], counts[1], duration.astype(np.int64)


def render_slice(
    batch: PlaylistBatch,
    world: World,
    fragments: list[bytes],
    used: np.ndarray,
    start: int,
    end: int,
) -> bytes:
    """The bytes of one MPD slice file."""
    num_albums, num_artists, duration = playlist_counts(batch, world)
    frag_index = np.searchsorted(used, batch.tracks).tolist()
    offsets = batch.offsets.tolist()
    parts = []
    dumps = orjson.dumps
    get = fragments.__getitem__
    for i in range(len(batch)):  # per playlist; the per-track work is joins of ready bytes
        head = {
            "name": batch.name[i],
            "collaborative": "true" if batch.collaborative[i] else "false",
            "pid": int(batch.pid[i]),
            "modified_at": int(batch.modified_at[i]),
            "num_tracks": offsets[i + 1] - offsets[i],
            "num_albums": int(num_albums[i]),
            "num_followers": int(batch.num_followers[i]),
            "num_edits": int(batch.num_edits[i]),
            "duration_ms": int(duration[i]),
            "num_artists": int(num_artists[i]),
        }
        if batch.description[i] is not None:
            head["description"] = batch.description[i]
        idx = frag_index[offsets[i] : offsets[i + 1]]
        body = b",".join(map(operator.add, _POS_PREFIX, map(get, idx)))
        parts.append(dumps(head)[:-1] + b',"tracks":[' + body + b"]}")
    info = dumps(
        {
            "generated_on": GENERATED_ON,
            "slice": f"{start}-{end}",
            "version": "v1",
            "generator": "segue synthetic MPD",
        }
    )
    return b'{"info":' + info + b',"playlists":[\n' + b",\n".join(parts) + b"\n]}\n"


def _pool(workers: int):
    return multiprocessing.get_context("fork").Pool(workers)


def _map(func, items, workers: int, bar) -> list:
    results = []
    if workers <= 1:
        for item in items:
            results.append(func(item))
            bar.advance(1)
        return results
    with _pool(workers) as pool:
        for result in pool.imap(func, items, chunksize=1):
            results.append(result)
            bar.advance(1)
    return results


def generate_mpd(
    out: Path,
    n_playlists: int,
    *,
    seed: int = 0,
    challenge_per_category: int = 0,
    workers: int | None = None,
    config: MPDConfig | None = None,
    min_followers: int | None = None,
) -> GenerateSummary:
    """Write ``n_playlists`` playlists as MPD slices into ``out`` (and a challenge set).

    ``min_followers`` (default: the config's, 1) > 1 generates only playlists with at least that
    many followers, a population like the real dev set's (followed playlists are curated: see
    ``PlaylistConfig``).

    Raises :class:`SegueError` for a bad size or an output directory that holds other files.
    """
    out = Path(out)
    if n_playlists < 1:
        raise SegueError(f"--playlists must be at least 1, got {n_playlists}")
    if challenge_per_category < 0:
        raise SegueError(
            f"--challenge-per-category must be 0 or more, got {challenge_per_category}"
        )
    check_output_dir(out, replace=True)  # before sampling: refused early, not after
    config = config or MPDConfig()
    if min_followers is not None:
        if min_followers < 1:
            raise SegueError(f"--min-followers must be at least 1, got {min_followers}")
        config = dataclasses.replace(
            config, playlists=dataclasses.replace(config.playlists, min_followers=min_followers)
        )
    workers = max(1, workers or min(os.cpu_count() or 1, 8))
    world = get_world(config.world, seed)
    titles = TitleModel(config.playlists)
    n_slices = -(-n_playlists // SLICE_SIZE)
    _STATE.update(world=world, cfg=config, titles=titles, n=n_playlists, seed=seed)
    try:
        with atomic_dir(out) as tmp:
            with progress("sampling playlists", n_slices, "slices") as bar:
                batches = _map(_sample_slice, range(n_slices), workers, bar)
            challenge = None
            if challenge_per_category:
                challenge = _sample_challenge(
                    world, config, titles, n_playlists, seed, challenge_per_category
                )
            all_tracks = [b.tracks for b in batches] + ([challenge[0].tracks] if challenge else [])
            used = np.unique(np.concatenate(all_tracks))
            fragments, uris = render_track_fragments(world, used, seed)
            _STATE.update(batches=batches, fragments=fragments, used=used, tmp=tmp)
            with progress("writing slices", n_slices, "slices") as bar:
                _map(_render_slice, range(n_slices), workers, bar)
            _write_latent_themes(tmp / LATENT_THEMES_FILE, batches)
            if challenge:
                _write_challenge(tmp, challenge, fragments, uris, used, world, seed)
    finally:
        _STATE.clear()
    return GenerateSummary(
        out,
        n_playlists,
        n_slices,
        int(sum(len(b.tracks) for b in batches)),
        len(used),
        10 * challenge_per_category,
    )


def _sample_challenge(
    world: World,
    config: MPDConfig,
    titles: TitleModel,
    n_playlists: int,
    seed: int,
    per_category: int,
):
    """Extra playlists (not in the slices), their categories, from their own RNG stream."""
    rng = np.random.default_rng([seed, 3])
    first_pid = max(1_000_000, n_playlists)
    batches = []
    while True:
        pids = np.arange(
            first_pid + SLICE_SIZE * len(batches), first_pid + SLICE_SIZE * (len(batches) + 1)
        )
        batches.append(sample_playlists(world, config.playlists, pids, rng, titles))
        pool = _concat(batches)
        try:
            category = assign_categories(
                pool.lengths, per_category, np.random.default_rng([seed, 4])
            )
            return pool, category
        except ValueError:
            if len(batches) > 200 + per_category:  # cannot happen with sane configs
                raise


def _concat(batches: list[PlaylistBatch]) -> PlaylistBatch:
    lengths = np.concatenate([b.lengths for b in batches])
    return PlaylistBatch(
        pid=np.concatenate([b.pid for b in batches]),
        name=[x for b in batches for x in b.name],
        description=[x for b in batches for x in b.description],
        collaborative=np.concatenate([b.collaborative for b in batches]),
        modified_at=np.concatenate([b.modified_at for b in batches]),
        num_followers=np.concatenate([b.num_followers for b in batches]),
        num_edits=np.concatenate([b.num_edits for b in batches]),
        offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        tracks=np.concatenate([b.tracks for b in batches]),
        genre=np.concatenate([b.genre for b in batches]),
        genre2=np.concatenate([b.genre2 for b in batches]),
        context=np.concatenate([b.context for b in batches]),
        scene=np.concatenate([b.scene for b in batches]),
    )


def _write_challenge(
    tmp: Path,
    challenge,
    fragments: list[bytes],
    uris: list[str],
    used: np.ndarray,
    world: World,
    seed: int,
) -> None:
    pool, category = challenge
    rng = np.random.default_rng(12345)
    entries, truth = [], []
    chosen = np.flatnonzero(category)
    for i in chosen[np.lexsort((pool.pid[chosen], category[chosen]))]:  # by category, then pid
        cat = CATEGORY_BY_NUMBER[int(category[i])]
        tracks = pool.tracks[pool.offsets[i] : pool.offsets[i + 1]]
        frag = np.searchsorted(used, tracks)
        seeds = seed_positions(len(tracks), cat, rng)
        holdout = np.setdiff1d(np.arange(len(tracks)), seeds)
        entry = {}
        if cat.with_title:
            entry["name"] = pool.name[i]
        entry.update(
            {
                "num_holdouts": len(holdout),
                "pid": int(pool.pid[i]),
                "num_tracks": len(tracks),
                "tracks": [
                    orjson.loads(_POS_PREFIX[p] + fragments[frag[p]]) for p in seeds.tolist()
                ],
                "num_samples": len(seeds),
            }
        )
        entries.append(entry)
        truth.append(
            {
                "pid": int(pool.pid[i]),
                "category": cat.number,
                "holdout_tracks": [uris[frag[p]] for p in holdout.tolist()],
                "holdout_artists": names.spotify_uris(
                    "artist", seed, world.track_artist[tracks[holdout]]
                ),
            }
        )
    write_challenge(
        tmp / schema.CHALLENGE_FILE,
        entries,
        description="segue synthetic challenge set (held-out tracks in challenge_truth.json)",
    )
    write_truth(tmp / schema.CHALLENGE_TRUTH_FILE, truth)


def _write_latent_themes(path: Path, batches: list[PlaylistBatch]) -> None:
    """The generator's hidden theme per playlist, for checking what models and clusters recover.

    Never an input to a model: ingest ignores this file.
    """
    genre_names = np.asarray((*GENRE_NAMES, None), dtype=object)
    context_names = np.asarray((*(c.name for c in CONTEXTS), None), dtype=object)
    pid = np.concatenate([b.pid for b in batches])
    genre = np.concatenate([b.genre for b in batches])
    genre2 = np.concatenate([b.genre2 for b in batches])
    context = np.concatenate([b.context for b in batches])
    scene = np.concatenate([b.scene for b in batches])
    table = pa.table(
        {
            "pid": pa.array(pid, pa.int32()),
            "genre": pa.array(genre_names[genre]),
            "genre2": pa.array(genre_names[genre2]),  # index -1 maps to None
            "context": pa.array(context_names[context]),
            "scene": pa.array(scene, pa.int16(), mask=scene < 0),  # followed playlists' head scene
        }
    )
    pq.write_table(table, path)
