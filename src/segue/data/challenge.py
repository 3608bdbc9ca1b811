"""The RecSys Challenge 2018 challenge-set format: categories, eligibility, reading and writing.

``challenge_set.json`` (the real layout) holds, per playlist, ``pid``, ``name`` (absent in the
no-title categories), ``num_tracks``, ``num_samples``, ``num_holdouts`` and the seed ``tracks``
(full MPD track objects, original ``pos`` kept). ``challenge_truth.json`` is segue's own file:
per pid, the category and the held-out track URIs in playlist order.

Eligibility: the real challenge selected playlists long enough that tracks remain to be held
out; segue requires at least ``min_tracks`` per category (documented in ``CATEGORIES``) so every
category holds out at least as many tracks as it shows, and never fewer than 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from segue.data import schema
from segue.errors import InputFileError


@dataclass(frozen=True)
class Category:
    """One challenge category: how many seed tracks, whether the title is shown, how chosen."""

    number: int
    n_seeds: int
    with_title: bool
    random_seeds: bool
    min_tracks: int

    @property
    def label(self) -> str:
        seeds = (
            "no tracks"
            if self.n_seeds == 0
            else (
                f"{'random' if self.random_seeds else 'first'} {self.n_seeds} track{'s' if self.n_seeds > 1 else ''}"
            )
        )
        return f"{'title + ' if self.with_title else ''}{seeds}" if self.n_seeds else "title only"


CATEGORIES: tuple[Category, ...] = (
    Category(1, 0, True, False, 10),
    Category(2, 1, True, False, 10),
    Category(3, 5, True, False, 10),
    Category(4, 5, False, False, 10),
    Category(5, 10, True, False, 20),
    Category(6, 10, False, False, 20),
    Category(7, 25, True, False, 50),
    Category(8, 25, True, True, 50),
    Category(9, 100, True, False, 150),
    Category(10, 100, True, True, 150),
)
CATEGORY_BY_NUMBER = {c.number: c for c in CATEGORIES}


def assign_categories(
    lengths: np.ndarray,
    per_category: int,
    rng: np.random.Generator,
    has_title: np.ndarray | None = None,
) -> np.ndarray:
    """Pick ``per_category`` playlists for each category among eligible ones, without reuse.

    ``lengths`` (int, [n]) are candidate playlists' track counts; ``has_title`` (bool, [n],
    default all true) marks playlists with a non-empty title, required by the title categories.
    Returns ``category`` (int8, [n]),
    0 for playlists not chosen. The most demanding categories choose first so that long
    playlists are not used up by categories that could take short ones. Raises ValueError when a
    category cannot be filled.
    """
    category = np.zeros(len(lengths), dtype=np.int8)
    titled = (
        np.ones(len(lengths), dtype=bool)
        if has_title is None
        else np.asarray(has_title, dtype=bool)
    )
    for cat in sorted(CATEGORIES, key=lambda c: (-c.min_tracks, -c.with_title)):
        ok = (category == 0) & (lengths >= cat.min_tracks) & (titled | (not cat.with_title))
        eligible = np.flatnonzero(ok)
        if len(eligible) < per_category:
            raise ValueError(
                f"category {cat.number} ({cat.label}) needs {per_category} playlists with at least "
                f"{cat.min_tracks} tracks{' and a title' if cat.with_title else ''}; only {len(eligible)} are left"
            )
        category[rng.choice(eligible, per_category, replace=False)] = cat.number
    return category


def seed_positions(length: int, cat: Category, rng: np.random.Generator) -> np.ndarray:
    """Positions (sorted, int64) of the seed tracks of a playlist of ``length`` in ``cat``."""
    if cat.random_seeds:
        return np.sort(rng.choice(length, cat.n_seeds, replace=False))
    return np.arange(cat.n_seeds)


def write_challenge(path: Path, playlists: list[dict], *, description: str) -> None:
    """Write ``challenge_set.json`` in the real layout (entries already in output order)."""
    from segue.io import atomic_file

    doc = {
        "date": "2018-01-16 08:47:28.198015",
        "version": "v1",
        "name": "challenge_set",
        "description": description,
        "playlists": playlists,
    }
    with atomic_file(path) as handle:
        handle.write(orjson.dumps(doc))


def write_truth(path: Path, entries: list[dict]) -> None:
    """Write ``challenge_truth.json``: ``{"playlists": [{pid, category, holdout_tracks, holdout_artists}]}``.

    ``holdout_artists`` gives each held-out track's artist key (URI, or ``name:<artist name>`` in
    reduced copies), so artist-level credit works even for tracks training never saw.
    """
    from segue.io import atomic_file

    with atomic_file(path) as handle:
        handle.write(orjson.dumps({"version": 1, "playlists": entries}))


def _load_json(path: Path) -> object:
    """A user's JSON file, or an :class:`InputFileError` naming it."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except orjson.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None


def read_challenge(path: Path) -> list[dict]:
    """Read and check a challenge set; returns its playlist entries.

    Raises :class:`InputFileError` naming the entry and field when the layout is wrong.
    """
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("playlists"), list):
        raise InputFileError(path, "expected an object with a 'playlists' list")
    seen: set[int] = set()
    for i, entry in enumerate(doc["playlists"]):
        where = f"playlist {i}"
        if not isinstance(entry, dict):
            raise InputFileError(path, "not an object", where)
        pid = entry.get(schema.PID)
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise InputFileError(path, f"field 'pid' must be an integer, got {pid!r}", where)
        where = f"playlist {i} (pid {pid})"
        if pid in seen:
            raise InputFileError(path, "pid appears twice", where)
        seen.add(pid)
        tracks = entry.get("tracks")
        if not isinstance(tracks, list):
            raise InputFileError(path, "field 'tracks' must be a list", where)
        for j, track in enumerate(tracks):
            if not isinstance(track, dict) or not isinstance(track.get(schema.TRACK_URI), str):
                raise InputFileError(
                    path, "field 'track_uri' missing or not a string", f"{where}, track {j}"
                )
        for field in ("num_samples", "num_holdouts"):
            if field in entry and not isinstance(entry[field], int):
                raise InputFileError(path, f"field {field!r} must be an integer", where)
        if "num_samples" in entry and entry["num_samples"] != len(tracks):
            raise InputFileError(
                path,
                f"num_samples is {entry['num_samples']} but it lists {len(tracks)} tracks",
                where,
            )
        if "name" in entry and not isinstance(entry["name"], str):
            raise InputFileError(path, "field 'name' must be a string", where)
    return doc["playlists"]


def category_of(entry: dict) -> int:
    """The challenge category (1–10) of a challenge-set entry, from its seeds and title.

    Random-seed categories (8, 10) are told from first-N ones (7, 9) by their seed positions.
    """
    tracks = entry.get("tracks", [])
    n = len(tracks)
    has_title = bool(entry.get("name"))
    positions = [t.get(schema.POS, k) for k, t in enumerate(tracks)]
    first_n = positions == list(range(n))
    for cat in CATEGORIES:
        if cat.n_seeds == n and cat.with_title == has_title and cat.random_seeds == (not first_n):
            return cat.number
    # A random draw can happen to be the first n; those entries belong to the random category
    # only when no first-n category matches, which the loop above already handled.
    for cat in CATEGORIES:
        if cat.n_seeds == n and cat.with_title == has_title:
            return cat.number
    return 0


def read_truth(path: Path) -> dict[int, dict]:
    """``challenge_truth.json`` as pid → entry. Raises :class:`InputFileError` on a bad layout."""
    path = Path(path)
    doc = _load_json(path)
    out: dict[int, dict] = {}
    for i, entry in enumerate(doc.get("playlists", []) if isinstance(doc, dict) else []):
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            raise InputFileError(path, "field 'pid' missing or not an integer", f"entry {i}")
        if not isinstance(entry.get("holdout_tracks"), list):
            raise InputFileError(
                path,
                "field 'holdout_tracks' missing or not a list",
                f"entry {i} (pid {entry['pid']})",
            )
        out[entry["pid"]] = entry
    if not out:
        raise InputFileError(path, "expected an object with a non-empty 'playlists' list")
    return out
