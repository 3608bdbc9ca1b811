"""``segue split``: a challenge-style held-out set taken out of an ingested dataset.

Layout of a split directory::

    split.json                      parameters and counts
    train/                          a dataset directory (PlaylistData.load works) without any
                                    held-out playlist; its track catalog lists only tracks that
                                    occur in training playlists (ids re-densified)
    test/challenge_set.json         the real challenge layout, 10 categories
    test/challenge_truth.json       held-out track URIs (+ their artists) per pid
    validation/train/               train minus the validation playlists — for tuning
    validation/challenge_set.json   ...carved from train, so the test set is never tuned on
    validation/challenge_truth.json

Why the catalog is cut: a track that only occurs in held-out playlists would otherwise sit in
the catalog with zero plays, and "recommend tracks nobody played" would score — a leak.
Held-out tracks unknown to training still count in |G|; they simply cannot be recommended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from segue.data import schema
from segue.data.challenge import (
    CATEGORY_BY_NUMBER,
    assign_categories,
    seed_positions,
    write_challenge,
    write_truth,
)
from segue.data.tables import Tables
from segue.errors import SegueError
from segue.io import atomic_dir, write_json

TRAIN_DIR = "train"
TEST_DIR = "test"
VALIDATION_DIR = "validation"
SPLIT_FILE = "split.json"
PARTS = (TEST_DIR, VALIDATION_DIR)


@dataclass
class HeldOut:
    train: Tables
    entries: list[dict]  # challenge_set.json entries
    truth: list[dict]  # challenge_truth.json entries


def artist_keys(tracks: pa.Table) -> pa.Array:
    """Artist key per track: the URI, or ``name:<artist name>`` in copies without URIs."""
    return pc.coalesce(
        tracks.column(schema.ARTIST_URI),
        pc.binary_join_element_wise("name:", tracks.column(schema.ARTIST_NAME), ""),
        pa.scalar("unknown"),
    ).combine_chunks()


def hold_out(tables: Tables, per_category: int, rng: np.random.Generator) -> HeldOut:
    """Take ``per_category`` playlists per category out of ``tables``.

    Raises :class:`SegueError` when a category cannot be filled.
    """
    playlists, tracks, entries = tables.playlists, tables.tracks, tables.entries
    lengths = playlists.column(schema.NUM_TRACKS).to_numpy().astype(np.int64)
    names = playlists.column(schema.NAME).fill_null("").to_pylist()
    has_title = np.array([bool(n.strip()) for n in names], dtype=bool)  # one per playlist
    try:
        category = assign_categories(lengths, per_category, rng, has_title)
    except ValueError as exc:
        raise SegueError(f"cannot build the split: {exc}; lower --per-category") from None
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    track_id = entries.column(schema.TRACK_ID).to_numpy()
    pids = playlists.column(schema.PID).to_numpy()
    uris = tracks.column(schema.TRACK_URI)
    artist_key = artist_keys(tracks)
    metadata = tracks.select(
        [
            schema.ARTIST_NAME,
            schema.TRACK_URI,
            schema.ARTIST_URI,
            schema.TRACK_NAME,
            schema.ALBUM_URI,
            schema.DURATION_MS,
            schema.ALBUM_NAME,
        ]
    )
    chosen = np.flatnonzero(category)
    chosen = chosen[np.lexsort((pids[chosen], category[chosen]))]  # by category, then pid
    # Positions first (numpy, per held-out playlist), then one Arrow gather for all of them: a
    # take per playlist on the chunked 2M-track table cost 40 ms each (40 min at 1M playlists).
    cats, seed_pos, hold_pos = [], [], []
    for row in chosen:  # ≤ 10 × per_category playlists, not a loop over entries
        cat = CATEGORY_BY_NUMBER[int(category[row])]
        seeds = seed_positions(int(lengths[row]), cat, rng)
        cats.append(cat)
        seed_pos.append(seeds)
        hold_pos.append(np.setdiff1d(np.arange(lengths[row]), seeds))
    seed_count = np.array([len(s) for s in seed_pos], dtype=np.int64)
    hold_count = np.array([len(h) for h in hold_pos], dtype=np.int64)
    seed_ids = track_id[
        np.concatenate(
            [offsets[r] + s for r, s in zip(chosen, seed_pos, strict=True)]
            or [np.zeros(0, np.int64)]
        )
    ]
    hold_ids = track_id[
        np.concatenate(
            [offsets[r] + h for r, h in zip(chosen, hold_pos, strict=True)]
            or [np.zeros(0, np.int64)]
        )
    ]
    seed_rows = metadata.take(pa.array(seed_ids)).to_pylist()
    hold_uris = uris.take(pa.array(hold_ids)).to_pylist()
    hold_artists = artist_key.take(pa.array(hold_ids)).to_pylist()
    seed_start = np.concatenate(([0], np.cumsum(seed_count)))
    hold_start = np.concatenate(([0], np.cumsum(hold_count)))
    challenge, truth = [], []
    for i, row in enumerate(chosen):
        cat, seeds = cats[i], seed_pos[i]
        entry = {"name": names[row]} if cat.with_title else {}
        entry.update(
            {
                "num_holdouts": int(hold_count[i]),
                "pid": int(pids[row]),
                "num_tracks": int(lengths[row]),
                "tracks": [
                    {schema.POS: int(p), **t}
                    for p, t in zip(
                        seeds.tolist(), seed_rows[seed_start[i] : seed_start[i + 1]], strict=True
                    )
                ],
                "num_samples": len(seeds),
            }
        )
        challenge.append(entry)
        truth.append(
            {
                "pid": int(pids[row]),
                "category": cat.number,
                "holdout_tracks": hold_uris[hold_start[i] : hold_start[i + 1]],
                "holdout_artists": hold_artists[hold_start[i] : hold_start[i + 1]],
            }
        )

    train = tables.keep(category == 0)
    return HeldOut(train, challenge, truth)


def split_dataset(
    data: Path,
    out: Path,
    *,
    per_category: int = 1000,
    validation_per_category: int | None = None,
    seed: int = 0,
) -> dict:
    """Write a split of the ingested dataset ``data`` into ``out`` (whole or not at all)."""
    data, out = Path(data), Path(out)
    if per_category < 1:
        raise SegueError(f"--per-category must be at least 1, got {per_category}")
    validation_per_category = (
        per_category if validation_per_category is None else validation_per_category
    )
    if validation_per_category < 1:
        raise SegueError(
            f"--validation-per-category must be at least 1, got {validation_per_category}"
        )
    tables = Tables.read(data)
    rng = np.random.default_rng([seed, 7001])
    test = hold_out(tables, per_category, rng)
    validation = hold_out(test.train, validation_per_category, np.random.default_rng([seed, 7002]))
    source = f"split of {data} (seed {seed})"
    with atomic_dir(out) as tmp:
        test.train.write(tmp / TRAIN_DIR, source=source + ": training part")
        validation.train.write(
            tmp / VALIDATION_DIR / TRAIN_DIR, source=source + ": validation training part"
        )
        for part, held in ((TEST_DIR, test), (VALIDATION_DIR, validation)):
            write_challenge(
                tmp / part / schema.CHALLENGE_FILE,
                held.entries,
                description=f"segue split ({part}) of {data.name}, seed {seed}",
            )
            write_truth(tmp / part / schema.CHALLENGE_TRUTH_FILE, held.truth)
        info = {
            "source": str(data),
            "source_manifest_sha256": schema.manifest_digest(data),
            "seed": seed,
            "per_category": per_category,
            "validation_per_category": validation_per_category,
            "counts": {
                "train_playlists": test.train.playlists.num_rows,
                "test_playlists": len(test.entries),
                "validation_train_playlists": validation.train.playlists.num_rows,
                "validation_playlists": len(validation.entries),
            },
            "train_manifest_sha256": {
                TEST_DIR: schema.manifest_digest(tmp / TRAIN_DIR),
                VALIDATION_DIR: schema.manifest_digest(tmp / VALIDATION_DIR / TRAIN_DIR),
            },
        }
        write_json(tmp / SPLIT_FILE, info)
    return info


def part_paths(split: Path, part: str) -> tuple[Path, Path, Path]:
    """(training dataset dir, challenge_set.json, challenge_truth.json) of a split's part."""
    if part not in PARTS:
        raise SegueError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    split = Path(split)
    if not (split / SPLIT_FILE).exists():
        raise SegueError(
            f"{split}: not a split directory (no {SPLIT_FILE}); make one with `segue split`"
        )
    train = split / TRAIN_DIR if part == TEST_DIR else split / VALIDATION_DIR / TRAIN_DIR
    return train, split / part / schema.CHALLENGE_FILE, split / part / schema.CHALLENGE_TRUTH_FILE


# Query groups: whether a title is shown and how many distinct seed tracks (the challenge's
# counts 0, 1, 5, 10, 25, 100). Any query falls in the group of its title flag and its nearest
# seed-count class (2–7 seeds count as 5, 8–17 as 10, 18–62 as 25, 63+ as 100), so per-group
# settings apply to any continuation request, not only to challenge entries.
SEED_CLASSES = (0, 1, 5, 10, 25, 100)
_CLASS_EDGES = np.array([1, 2, 8, 18, 63])  # seed counts where the next class starts
N_GROUPS = 2 * len(SEED_CLASSES)
MIN_HELD_OUT = 5  # a carved query keeps at least this many tracks to be found


def seed_groups(distinct_seeds: np.ndarray, titled: np.ndarray) -> np.ndarray:
    """int64 [q]: ``2 · seed-count class + titled`` from distinct seed counts and title flags.

    >>> seed_groups(np.array([0, 1, 3, 30, 70]), np.array([True, False, True, False, True])).tolist()
    [1, 2, 5, 8, 11]
    """
    seed_class = np.searchsorted(_CLASS_EDGES, np.asarray(distinct_seeds), side="right")
    return 2 * seed_class + np.asarray(titled, dtype=np.int64)


def group_label(group: int) -> str:
    """'title, 5 seeds', 'no title, 0 seeds', …

    >>> group_label(5), group_label(0)
    ('title, 5 seeds', 'no title, 0 seeds')
    """
    seeds = SEED_CLASSES[group // 2]
    return f"{'title' if group % 2 else 'no title'}, {seeds} seed{'s' if seeds != 1 else ''}"


@dataclass
class HeldOutQueries:
    """A validation set carved from an in-memory dataset (see :func:`hold_out_queries`).

    ``train``: the dataset without the held-out playlists (same track ids and catalog);
    ``queries``: their seeds and titles; ``truth``: q int64 arrays of held-out track ids;
    ``groups``: int64 [q], each query's group (see :func:`seed_groups`).
    """

    train: object  # PlaylistData
    queries: object  # Queries
    truth: list[np.ndarray]
    groups: np.ndarray

    def counts(self) -> np.ndarray:
        """int64 [N_GROUPS]: carved queries per group."""
        return np.bincount(self.groups, minlength=N_GROUPS).astype(np.int64)


def hold_out_queries(
    data, per_group: int, rng: np.random.Generator, max_share: float = 0.2
) -> HeldOutQueries:
    """Validation queries of every query group, carved from ``data`` (a ``PlaylistData``) in memory.

    It serves tuning inside ``fit`` on whatever data a model gets, so it adapts to the lengths
    that exist instead of excluding groups: every group but the empty one (no title, no seed:
    nothing to tune, popularity answers it) takes ``per_group`` playlists, or an equal share of
    the ``max_share`` budget, or as many as are eligible, whichever is least. A playlist is
    eligible for a group when it has ``n_seeds + MIN_HELD_OUT`` tracks (and a title, for the titled
    groups); the most demanding groups choose first so short playlists are left to the others.
    (Taking a whole challenge category's quota for the longest categories first would spend the
    budget on 25 and 100 seeds when playlists are long, as real curated ones are, and leave the
    title-only queries untuned.) ``PlaylistData`` keeps a playlist's tracks as a set (its CSR rows
    are sorted by id), so seeds are drawn at random positions.
    """
    from segue.data.dataset import PlaylistData
    from segue.models.base import Queries

    if per_group < 1:
        raise SegueError(f"validation queries per group must be at least 1, got {per_group}")
    matrix = data.matrix
    lengths = np.diff(matrix.indptr)
    has_title = np.array([bool(n.strip()) for n in data.names], dtype=bool)
    budget = int(max_share * data.n_playlists)
    tunable = list(range(1, N_GROUPS))
    quota = min(per_group, max(1, budget // len(tunable)))
    group = np.full(data.n_playlists, -1, dtype=np.int64)
    for g in sorted(tunable, key=lambda g: (-SEED_CLASSES[g // 2], -(g % 2))):
        n_seeds, titled = SEED_CLASSES[g // 2], bool(g % 2)
        eligible = np.flatnonzero(
            (group < 0) & (lengths >= n_seeds + MIN_HELD_OUT) & (has_title | (not titled))
        )
        take = min(quota, len(eligible), budget - int((group >= 0).sum()))
        if take > 0:
            group[rng.choice(eligible, take, replace=False)] = g
    chosen = np.flatnonzero(group >= 0)
    chosen = chosen[np.argsort(group[chosen], kind="stable")]
    seeds, truth, titles = [], [], []
    for row in chosen:  # ≤ N_GROUPS × per_group held-out playlists, not a loop over entries
        g = int(group[row])
        tracks = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
        shown = np.zeros(len(tracks), dtype=bool)
        shown[rng.choice(len(tracks), SEED_CLASSES[g // 2], replace=False)] = True
        seeds.append(rng.permutation(tracks[shown]).tolist())
        truth.append(tracks[~shown].astype(np.int64))
        titles.append(data.names[row] if g % 2 else "")
    keep = group < 0
    train = PlaylistData(
        matrix[keep],
        data.pids[keep],
        [n for n, k in zip(data.names, keep, strict=True) if k],
        data.track_artist,
        data.track_album,
        None,
    )
    queries = Queries.from_lists(seeds, titles, data.pids[chosen].tolist())
    return HeldOutQueries(train, queries, truth, group[chosen])
