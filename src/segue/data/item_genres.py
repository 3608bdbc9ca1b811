"""Genres of listening items from a second table: tag applications or an item → genre mapping.

Listening logs rarely carry genres; tag tables beside them do. Last.fm's hetrec2011 set, for
example, has ``user_taggedartists.dat`` (``userID, artistID, tagID, …``: one row per time a
user tagged an artist) and ``tags.dat`` (``tagID, tagValue``). :func:`item_genres` turns such a
table into the few genres of each item, so the genre-aware models and the genre figures of the
evaluation work on real listening data:

1. Each row is one application of a genre (or tag) to an item. With ``names`` the genre column
   holds ids, mapped to names through that table (its column named like the genre column, else
   its first; the names are its first other column); rows with an id it lacks are ignored,
   counted.
2. Genres applied fewer than ``min_count`` times in the whole table are dropped: a tag used once
   or twice (a user's private label, a typo) links almost no items and would only add noise.
3. Each item keeps its ``top`` most-applied genres (ties: the genre applied more overall, then
   by name). Three by default: what Last.fm itself shows as an artist's top tags, and enough to
   tell "rock" apart from "indie rock" without diluting a profile with every tag once applied.

A plain mapping (one row per item and genre) goes through the same steps: each pair counts once,
so ``min_count`` then means "genres of fewer than that many items are dropped".

Genre ids are given by overall applications (most applied first), ties by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segue.data.delimited import read_small_table, table_columns
from segue.errors import InputFileError, SegueError

log = logging.getLogger("segue")

TOP_GENRES = 3
MIN_APPLICATIONS = 3


@dataclass
class ItemGenres:
    """``pairs``: item_key (Utf8), genre_id (Int64), one row per kept (item, genre), sorted;
    ``names``: genre names, index = genre id; ``file``: the table they came from; ``ignored``:
    rows left out and why (for the ingest's warnings)."""

    pairs: pl.DataFrame
    names: list[str]
    file: Path
    ignored: list[str]


def item_genres(
    path: Path,
    *,
    item_col: str,
    genre_col: str,
    names: Path | None = None,
    top: int = TOP_GENRES,
    min_count: int = MIN_APPLICATIONS,
    delimiter: str | None = None,
) -> ItemGenres:
    """Read the genres table ``path`` (and the id → name table ``names``) and keep each item's
    ``top`` genres applied at least ``min_count`` times overall (see the module docstring)."""
    if top < 1 or min_count < 1:
        raise SegueError(
            f"--genre-top and --genre-min-count must be at least 1, got {top} and {min_count}"
        )
    path = Path(path)
    frame = read_small_table(path, [item_col, genre_col], delimiter=delimiter, what="genres table")
    frame = frame.rename({item_col: "item_key", genre_col: "genre"})
    ignored = []
    empty = (
        frame["item_key"].is_null()
        | (frame["item_key"] == "")
        | frame["genre"].is_null()
        | (frame["genre"] == "")
    )
    if empty.any():
        ignored.append(f"{path.name}: {int(empty.sum()):,} rows without an item or a genre ignored")
        frame = frame.filter(~empty)
    if names is not None:
        frame, note = _named(frame, Path(names), genre_col, delimiter)
        if note:
            ignored.append(note)
    if frame.height == 0:
        raise InputFileError(
            path, f"holds no (item, genre) rows in columns {item_col!r} and {genre_col!r}"
        )
    totals = frame.group_by("genre").agg(pl.len().alias("total"))
    common = totals.filter(pl.col("total") >= min_count)
    if common.height == 0:
        raise InputFileError(
            path,
            f"no genre is applied {min_count} times or more (the most applied: "
            f"{int(totals['total'].max())}); lower --genre-min-count",
        )
    kept = (
        frame.join(common, on="genre")
        .group_by("item_key", "genre", "total")
        .agg(pl.len().alias("applied"))
        .sort(["item_key", "applied", "total", "genre"], descending=[False, True, True, False])
        .group_by("item_key", maintain_order=True)
        .head(top)
    )
    genres = (
        kept.select("genre", "total").unique().sort(["total", "genre"], descending=[True, False])
    )
    ids = genres.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("genre_id"))
    pairs = (
        kept.join(ids.select("genre", "genre_id"), on="genre")
        .select("item_key", "genre_id")
        .sort("item_key", "genre_id")
    )
    rare = totals.height - common.height
    log.info(
        "genres from %s: %d genres on %d items (each item's top %d; %d rare genres, applied fewer than %d "
        "times, dropped)",
        path.name,
        ids.height,
        pairs["item_key"].n_unique(),
        top,
        rare,
        min_count,
    )
    for note in ignored:
        log.warning(note)
    return ItemGenres(pairs, ids["genre"].to_list(), path, ignored)


def _named(
    frame: pl.DataFrame, path: Path, genre_col: str, delimiter: str | None
) -> tuple[pl.DataFrame, str | None]:
    """``frame`` with its genre ids replaced by the names of the table ``path``."""
    if not path.is_file():
        raise InputFileError(path, "no such file (the genre names table)")
    columns = table_columns(path, delimiter)
    if len(columns) < 2:
        raise InputFileError(
            path, f"needs two columns, a genre id and its name (columns: {', '.join(columns)})"
        )
    key = genre_col if genre_col in columns else columns[0]
    name = next(c for c in columns if c != key)
    table = read_small_table(path, [key, name], delimiter=delimiter, what="genre names table")
    table = table.rename({key: "genre", name: "genre_name"}).unique(
        "genre", keep="first", maintain_order=True
    )
    joined = frame.join(table, on="genre", how="left")
    unknown = joined["genre_name"].is_null() | (joined["genre_name"] == "")
    note = None
    if unknown.any():
        note = (
            f"{path.name}: {int(unknown.sum()):,} genre rows with an id it lacks ignored "
            f"(e.g. {joined['genre'].filter(unknown)[0]!r})"
        )
        if unknown.all():
            raise InputFileError(
                path,
                f"names none of the genre ids (e.g. {joined['genre'][0]!r}) in column "
                f"{key!r}; is it the names table of this genres table?",
            )
    named = joined.filter(~unknown).select("item_key", pl.col("genre_name").alias("genre"))
    return named, note
