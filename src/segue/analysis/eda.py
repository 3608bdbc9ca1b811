"""Exploratory statistics of an ingested dataset: ``eda.json``, ``eda.md`` and ``eda.png``.

:func:`run_eda` reads the three Parquet tables of a dataset directory (only the columns it
needs) and computes the statistics the playlist-extension scripts reference's exploration lists
(lengths, popularity and its power law, artists, albums, titles) with numpy, pyarrow and polars, no
Python loop over rows:

* playlist lengths (``playlists.num_tracks``): summary, mode, most common lengths;
* track popularity: for each track the number of *distinct playlists* containing it (a track
  repeated inside one playlist counts once there; the number of such repeats is reported as
  ``duplicate_entries``), a power-law fit of the rank-frequency curve, the share of playlists
  that contain a top-1% track, the long tail, the top tracks;
* artist and album concentration, counted in *entries* (rows of ``playlist_tracks``, repeats
  included): shares of the top artists, Gini coefficient, top artists and albums;
* titles, raw and normalized the way the MPD's own ``stats.py`` does (:func:`normalize_name_mpd`);
* followers, edits, collaborative and description shares, ``modified_at`` range.

The 66M-row ``playlist_tracks`` table is streamed twice in batches (its rows are ordered by
playlist, so each batch is cut at a playlist boundary and de-duplicated on its own): memory is
bounded by the per-track and per-artist arrays plus one batch.

Optional playlist columns that are null in every row (reduced copies of the MPD) give ``null``
statistics in ``eda.json`` and a note in ``eda.md``; a partly null column is summarised over its
non-null rows (``n_missing`` says how many were left out).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from segue.data import schema
from segue.errors import InputFileError, SegueError
from segue.io import atomic_file, write_json, write_text

JSON_FILE = "eda.json"
MARKDOWN_FILE = "eda.md"
FIGURE_FILE = "eda.png"

#: Characters the MPD's ``normalize_name`` replaces with a space.
MPD_PUNCTUATION = ".,/#!$%^*;:{}=_`~()@"
_PUNCT_RE = re.compile("[" + re.escape(MPD_PUNCTUATION) + "]")
_SPACE_RE = re.compile(r"\s+")
# Python's ``\s`` (str.isspace) is Unicode White_Space plus the separators U+001C..U+001F; the
# Rust regex behind polars needs them spelled out to collapse exactly the same runs.
_POLARS_SPACE_RE = r"[\s\x1C-\x1F]+"

BATCH_ROWS = 1 << 20  # rows of playlist_tracks per streamed batch (~50 MB of work arrays)
POWER_LAW_MAX_RANK = 10_000
LONG_TAIL_THRESHOLD = 10
TOP_N = 10
TOP_TITLES = 20
HISTOGRAM_MAX = 20  # followers/edits histograms: counts for the values 1..20
_DAY_S = 86_400


# --- titles -----------------------------------------------------------------------------------


def normalize_name_mpd(title: str) -> str:
    """Normalize a playlist title the way the MPD's ``stats.py`` does.

    Lowercase, replace each of ``.,/#!$%^*;:{}=_`~()@`` with a space, collapse runs of
    whitespace to one space, strip.

    >>> normalize_name_mpd("Chill!!")
    'chill'
    >>> normalize_name_mpd("  Work   Out ")
    'work out'
    >>> normalize_name_mpd("R&B")
    'r&b'
    >>> normalize_name_mpd("rock/pop (2017)")
    'rock pop 2017'
    """
    name = _PUNCT_RE.sub(" ", title.lower())
    return _SPACE_RE.sub(" ", name).strip()


def normalize_names_mpd(names: pl.Series | pa.Array | pa.ChunkedArray) -> pl.Series:
    """Vectorized :func:`normalize_name_mpd` over a whole column; nulls stay null.

    >>> normalize_names_mpd(pl.Series(["Chill!!", "  Work   Out ", None, "R&B"])).to_list()
    ['chill', 'work out', None, 'r&b']
    """
    series = names if isinstance(names, pl.Series) else pl.Series(pl.from_arrow(names))
    return (
        series.cast(pl.String)
        .str.to_lowercase()
        .str.replace_many(list(MPD_PUNCTUATION), [" "] * len(MPD_PUNCTUATION))
        .str.replace_all(_POLARS_SPACE_RE, " ")
        .str.strip_chars(" ")
    )


# --- numeric helpers --------------------------------------------------------------------------


def _f(x: float) -> float:
    return float(x)


def summarize(values: np.ndarray) -> dict | None:
    """n, mean, population std (ddof 0), min, quantiles (linear interpolation), max.

    >>> summarize(np.array([3, 5, 5, 7]))["std"] == math.sqrt(2)
    True
    """
    if values.size == 0:
        return None
    x = values.astype(np.float64, copy=False)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    return {
        "n": int(values.size),
        "mean": _f(x.mean()),
        "std": _f(x.std()),
        "min": int(values.min()) if values.dtype.kind in "iu" else _f(values.min()),
        "p10": _f(p10),
        "p25": _f(p25),
        "median": _f(p50),
        "p75": _f(p75),
        "p90": _f(p90),
        "max": int(values.max()) if values.dtype.kind in "iu" else _f(values.max()),
    }


def gini(counts: np.ndarray) -> float | None:
    """Gini coefficient of non-negative counts (0: all equal, toward 1: one holds everything).

    >>> round(gini(np.array([3, 6, 11])), 6)
    0.266667
    >>> gini(np.array([5, 5, 5]))
    0.0
    """
    if counts.size == 0 or counts.sum() == 0:
        return None
    x = np.sort(counts.astype(np.float64))
    n = x.size
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return _f(np.dot(weights, x) / (n * x.sum()))


def fit_rank_frequency(counts_desc: np.ndarray, max_rank: int = POWER_LAW_MAX_RANK) -> dict | None:
    """Least-squares line through ``(log10 rank, log10 count)`` over the head of the curve.

    The fitted ranks are ``1..k`` where ``k`` is the number of items with a count of at least 2,
    capped at ``max_rank`` (singletons form a flat floor that is not part of the power law); when
    fewer than 3 items have a count of 2 or more, all ranks up to ``max_rank`` are used.
    ``exponent`` is ``-slope`` (count ~ rank^-exponent); ``r2`` is the coefficient of
    determination of the fit in log space (``None`` when every fitted count is the same).

    >>> fit = fit_rank_frequency(np.array([12, 6, 4, 3]))
    >>> round(fit["exponent"], 9), round(fit["r2"], 9), fit["fit_ranks"]
    (1.0, 1.0, [1, 4])
    """
    k = min(int(np.count_nonzero(counts_desc >= 2)), max_rank)
    if k < 3:
        k = min(int(counts_desc.size), max_rank)
    if k < 2:
        return None
    x = np.log10(np.arange(1, k + 1, dtype=np.float64))
    y = np.log10(counts_desc[:k].astype(np.float64))
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (intercept + slope * x)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "exponent": _f(-slope),
        "slope": _f(slope),
        "intercept_log10": _f(intercept),
        "r2": None if ss_tot == 0 else 1.0 - ss_res / ss_tot,
        "fit_ranks": [1, k],
        "rule": f"ranks 1..k, k = items with count >= 2, at most {max_rank}",
    }


def _top_values(counts_by_value: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(value, count) of the ``n`` most common values of a bincount; ties: smaller value first."""
    nonzero = np.flatnonzero(counts_by_value)
    order = np.lexsort((nonzero, -counts_by_value[nonzero]))[:n]
    return [(int(nonzero[i]), int(counts_by_value[nonzero[i]])) for i in order]


def _share(part: float, whole: float) -> float | None:
    return None if whole == 0 else float(part) / float(whole)


# --- reading ----------------------------------------------------------------------------------


def _table_paths(data_dir: Path) -> dict[str, Path]:
    if not data_dir.is_dir():
        raise InputFileError(data_dir, "dataset directory not found")
    paths = {name: data_dir / name for name in schema.TABLE_FILES}
    for path in paths.values():
        if not path.is_file():
            raise InputFileError(path, f"table {path.name} is missing from the dataset directory")
    return paths


def _column_names(path: Path) -> set[str]:
    try:
        return set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(path, f"cannot read as Parquet: {exc}") from exc


def _read(path: Path, wanted: list[str], required: tuple[str, ...]) -> pa.Table:
    """Read the ``wanted`` columns that exist; a missing ``required`` one is an input error."""
    present = _column_names(path)
    for col in required:
        if col not in present:
            raise InputFileError(path, f"required column '{col}' is missing")
    try:
        return pq.read_table(path, columns=[c for c in wanted if c in present])
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(path, f"cannot read as Parquet: {exc}") from exc


def _ints(table: pa.Table, col: str, path: Path) -> np.ndarray:
    """A non-nullable integer column as numpy."""
    column = table.column(col)
    if column.null_count:
        raise InputFileError(path, f"column '{col}' has {column.null_count} null values")
    return column.to_numpy()


def _optional_ints(table: pa.Table, col: str) -> tuple[np.ndarray | None, int]:
    """Non-null values of an optional column and the number of nulls; ``None`` if all null."""
    if col not in table.column_names:
        return None, table.num_rows
    column = table.column(col)
    if column.null_count == len(column):
        return None, len(column)
    return column.drop_null().to_numpy().astype(np.int64), column.null_count


# --- playlist_tracks: two streamed passes --------------------------------------------------------


def _batches(path: Path):
    # pre_buffer=False: pre-buffering would hold the whole compressed file (~270 MB at full scale).
    with pq.ParquetFile(path, pre_buffer=False) as pf:
        yield from _batches_of(pf, path)


def _batches_of(pf: pq.ParquetFile, path: Path):
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[schema.PID, schema.TRACK_ID]):
        pid_col, track_col = batch.column(0), batch.column(1)
        if pid_col.null_count or track_col.null_count:
            raise InputFileError(path, "columns 'pid' and 'track_id' must not have nulls")
        yield pid_col.to_numpy(), track_col.to_numpy()


def _count_tracks(path: Path, n_track_ids: int, known: np.ndarray | None) -> dict:
    """Entries and distinct playlists per track id, in one pass over ``playlist_tracks``.

    Rows are ordered by pid (the ingest's order), so the rows of the batch's last playlist are
    carried into the next batch and every processed chunk holds whole playlists; inside a chunk
    the (pid, track) pairs are de-duplicated by sorting one int64 key.
    """
    for col in (schema.PID, schema.TRACK_ID):
        if col not in _column_names(path):
            raise InputFileError(path, f"required column '{col}' is missing")
    entries = np.zeros(n_track_ids, dtype=np.int64)
    repeats = np.zeros(n_track_ids, dtype=np.int64)
    carry_pid = np.empty(0, dtype=np.int32)
    carry_track = np.empty(0, dtype=np.int32)
    n_rows = 0

    def process(pid: np.ndarray, track: np.ndarray) -> None:
        if pid.size == 0:
            return
        entries[:] += np.bincount(track, minlength=n_track_ids)
        key = ((pid.astype(np.int64) - int(pid[0])) << 32) | track.astype(np.int64)
        key.sort()
        dup = key[1:] == key[:-1]
        if dup.any():
            repeats[:] += np.bincount(key[1:][dup] & 0xFFFFFFFF, minlength=n_track_ids)

    for pid, track in _batches(path):
        if pid.size == 0:
            continue
        n_rows += pid.size
        tmin, tmax = int(track.min()), int(track.max())
        if tmin < 0 or tmax >= n_track_ids:
            bad = tmin if tmin < 0 else tmax
            raise InputFileError(path, f"track_id {bad} is not in {schema.TRACKS_FILE}")
        if known is not None and not known[track].all():
            bad = int(track[~known[track]][0])
            raise InputFileError(path, f"track_id {bad} is not in {schema.TRACKS_FILE}")
        if carry_pid.size:
            pid = np.concatenate([carry_pid, pid])
            track = np.concatenate([carry_track, track])
        if np.any(pid[1:] < pid[:-1]):
            raise InputFileError(path, "rows are not ordered by pid (re-run the ingest)")
        cut = int(np.searchsorted(pid, pid[-1], side="left"))
        process(pid[:cut], track[:cut])
        carry_pid, carry_track = pid[cut:], track[cut:]
    process(carry_pid, carry_track)
    return {
        "entries": entries,
        "playlists": entries - repeats,
        "n_rows": n_rows,
        "duplicate_entries": int(repeats.sum()),
    }


def _playlists_with_any(path: Path, track_mask: np.ndarray) -> int:
    """Number of distinct pids having at least one row whose track is in ``track_mask``."""
    n = 0
    last = None
    for pid, track in _batches(path):
        sel = pid[track_mask[track]]
        if sel.size == 0:
            continue
        n += 1 + int(np.count_nonzero(sel[1:] != sel[:-1]))
        if last is not None and sel[0] == last:
            n -= 1
        last = sel[-1]
    return n


# --- statistics ---------------------------------------------------------------------------------


def _names_for_rows(path: Path, present: set[str], cols: list[str], rows: np.ndarray) -> dict:
    """``{column: [value per row]}`` for a few tracks-table rows, streaming the file in batches.

    Only the rows asked for are kept, so memory stays at one batch of strings however large the
    table; a column the file lacks gives ``None`` values.
    """
    out: dict[str, list] = {col: [None] * rows.size for col in cols}
    wanted = [col for col in cols if col in present]
    if not wanted or rows.size == 0:
        return out
    start = 0
    with pq.ParquetFile(path, pre_buffer=False) as pf:
        for batch in pf.iter_batches(batch_size=1 << 16, columns=wanted):
            hit = np.flatnonzero((rows >= start) & (rows < start + batch.num_rows))
            if hit.size:
                local = pa.array(rows[hit] - start)
                for col in wanted:
                    values = batch.column(col).take(local).to_pylist()
                    for i, value in zip(hit, values, strict=True):
                        out[col][i] = value
            start += batch.num_rows
    return out


def _first_rows(ids_col: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of the first tracks-table row with each of ``ids`` (a handful of ids)."""
    return np.array([int(np.flatnonzero(ids_col == i)[0]) for i in ids], dtype=np.int64)


def _histogram_1_to_20(values: np.ndarray | None, n_missing: int) -> dict | None:
    if values is None:
        return None
    in_range = values[(values >= 1) & (values <= HISTOGRAM_MAX)]
    counts = np.bincount(in_range, minlength=HISTOGRAM_MAX + 1)[1:]
    return {
        "summary": summarize(values),
        "n_missing": int(n_missing),
        "histogram": {
            str(v): int(c) for v, c in zip(range(1, HISTOGRAM_MAX + 1), counts, strict=True)
        },
        "below_1": int(np.count_nonzero(values < 1)),
        "above_20": int(np.count_nonzero(values > HISTOGRAM_MAX)),
    }


def _iso_date(seconds: int) -> str | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def _modified_at_stats(values: np.ndarray | None, n_missing: int) -> dict | None:
    if values is None:
        return None
    days = np.floor_divide(values, _DAY_S)
    dmin, dmax = int(days.min()), int(days.max())
    if dmax - dmin <= 10_000_000:
        per_day = np.bincount(days - dmin)
        best = int(per_day.argmax())
        busiest_day, busiest_n = dmin + best, int(per_day[best])
    else:  # absurd spread (garbage timestamps): sort instead of a huge bincount
        uniq, cnt = np.unique(days, return_counts=True)
        best = int(cnt.argmax())
        busiest_day, busiest_n = int(uniq[best]), int(cnt[best])
    years_out = None
    try:
        years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        ymin = int(years.min())
        if int(years.max()) - ymin <= 10_000:
            by_year = np.bincount(years - ymin)
            years_out = {str(ymin + i): int(c) for i, c in enumerate(by_year) if c}
    except (OverflowError, ValueError):
        years_out = None
    return {
        "n": int(values.size),
        "n_missing": int(n_missing),
        "first": _iso_date(int(values.min())),
        "last": _iso_date(int(values.max())),
        "busiest_day": {"date": _iso_date(busiest_day * _DAY_S), "playlists": busiest_n},
        "by_year": years_out,
    }


def _title_stats(table: pa.Table) -> dict | None:
    if schema.NAME not in table.column_names:
        return None
    names = pl.Series(pl.from_arrow(table.column(schema.NAME))).drop_nulls()
    if names.len() == 0:
        return None
    normalized = normalize_names_mpd(names).alias("title")
    counts = (
        normalized.value_counts(name="count")
        .sort(["count", "title"], descending=[True, False])
        .head(TOP_TITLES)
    )
    return {
        "n_titled": names.len(),
        "n_missing": table.num_rows - names.len(),
        "unique_titles": names.n_unique(),
        "unique_normalized_titles": normalized.n_unique(),
        "top_normalized": [
            {"title": t, "playlists": int(c), "share_of_titled": c / names.len()}
            for t, c in zip(counts["title"].to_list(), counts["count"].to_list(), strict=True)
        ],
    }


def _playlist_attributes(playlists: pa.Table) -> dict:
    """Titles, followers, edits, collaborative, description and modified_at statistics."""
    n_playlists = playlists.num_rows
    followers, followers_missing = _optional_ints(playlists, schema.NUM_FOLLOWERS)
    edits, edits_missing = _optional_ints(playlists, schema.NUM_EDITS)
    modified, modified_missing = _optional_ints(playlists, schema.MODIFIED_AT)
    collaborative = None
    if schema.COLLABORATIVE in playlists.column_names:
        col = playlists.column(schema.COLLABORATIVE)
        n_known = len(col) - col.null_count
        if n_known:
            n_true = int(pc.sum(col.cast(pa.int64())).as_py() or 0)
            collaborative = {"n": n_true, "n_missing": col.null_count, "share": n_true / n_known}
    description = None
    if schema.DESCRIPTION in playlists.column_names:
        col = playlists.column(schema.DESCRIPTION)
        n_desc = int(pc.sum(pc.greater(pc.utf8_length(col), 0).cast(pa.int64())).as_py() or 0)
        description = {"n": n_desc, "share": n_desc / n_playlists}
    return {
        "titles": _title_stats(playlists),
        "followers": _histogram_1_to_20(followers, followers_missing),
        "edits": _histogram_1_to_20(edits, edits_missing),
        "collaborative": collaborative,
        "description": description,
        "modified_at": _modified_at_stats(modified, modified_missing),
    }


def run_eda(data_dir: Path, out_dir: Path) -> dict:
    """Compute the dataset's statistics and write ``eda.json``, ``eda.md`` and ``eda.png``.

    Returns the statistics (the content of ``eda.json``: plain Python types). Raises
    :class:`~segue.errors.InputFileError` naming the directory or table that is missing or
    unreadable, :class:`~segue.errors.SegueError` when the dataset has no playlists.

    The playlists table is read first (and freed before the 66M-row pass), then the tracks
    table's ids, then ``playlist_tracks`` is counted in one pass per track; artists and albums
    are counted through the tracks, and only the few top rows' names are read back.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    paths = _table_paths(data_dir)
    pl_path = paths[schema.PLAYLISTS_FILE]
    pt_path = paths[schema.PLAYLIST_TRACKS_FILE]
    lengths, attributes = _playlist_lengths(pl_path, data_dir)
    n_playlists = len(lengths)
    length_counts = np.bincount(lengths)
    tracks = _TrackTable.read(paths[schema.TRACKS_FILE])
    counted = _count_tracks(pt_path, tracks.n_ids, tracks.known)
    entries_per_track, playlists_per_track = counted["entries"], counted["playlists"]
    n_entries = counted["n_rows"]
    used = np.flatnonzero(entries_per_track)
    # Rank tracks by playlists (desc), ties by track id (asc).
    order = used[np.argsort(-playlists_per_track[used], kind="stable")]
    popularity_desc = playlists_per_track[order]
    artist_entries, artist_order = _entries_by(tracks.artist_of, entries_per_track)
    album_entries, album_order = _entries_by(tracks.album_of, entries_per_track)
    artist_desc = artist_entries[artist_order]
    album_counts = album_entries[np.sort(album_order)]  # by album id, as summarised and drawn
    top = _top_lists(
        tracks, order, artist_order, album_order, playlists_per_track, entries_per_track,
        artist_entries, album_entries, n_playlists, n_entries,
    )  # fmt: skip
    n_tail = int(np.count_nonzero(popularity_desc < LONG_TAIL_THRESHOLD))
    stats = {
        "dataset": str(data_dir),
        "counts": {
            "playlists": n_playlists,
            "entries": n_entries,
            "unique_tracks": int(used.size),
            "unique_artists": int(artist_order.size),
            "unique_albums": int(album_order.size),
            "tracks_in_table": int(tracks.n_rows),
            "duplicate_entries": counted["duplicate_entries"],
            "entries_match_num_tracks": bool(int(lengths.sum()) == n_entries),
        },
        "playlist_length": _length_stats(lengths, length_counts),
        "track_popularity": {
            "counts": "distinct playlists containing the track (repeats inside a playlist "
            "count once); tracks with at least one entry",
            "playlists_per_track": summarize(popularity_desc),
            "power_law": fit_rank_frequency(popularity_desc),
            "top_1pct": _top_share(pt_path, order, popularity_desc, tracks.n_ids, n_playlists),
            "long_tail": {
                "threshold_playlists": LONG_TAIL_THRESHOLD,
                "n_tracks": n_tail,
                "share_of_tracks": _share(n_tail, int(used.size)),
            },
            "top_tracks": top["tracks"],
        },
        "artists": {
            "counts": "entries (playlist_tracks rows, repeats included) per artist with >= 1",
            "entries_per_artist": summarize(artist_desc),
            "share_of_entries_top": {
                str(k): _share(artist_desc[:k].sum(), n_entries) for k in (1, 10, 100)
            },
            "gini": gini(artist_desc),
            "top_artists": top["artists"],
        },
        "albums": {
            "counts": "entries (playlist_tracks rows, repeats included) per album with >= 1",
            "entries_per_album": summarize(album_counts),
            "top_albums": top["albums"],
        },
        **attributes,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot(
        out_dir / FIGURE_FILE,
        length_counts,
        lengths,
        popularity_desc,
        stats["track_popularity"]["power_law"],
        artist_desc,
        album_counts,
        stats,
    )
    write_json(out_dir / JSON_FILE, stats)
    write_text(out_dir / MARKDOWN_FILE, render_markdown(stats))
    return stats


def _playlist_lengths(pl_path: Path, data_dir: Path) -> tuple[np.ndarray, dict]:
    """int64 [playlists] lengths (``num_tracks``) and the other playlist attributes' statistics."""
    playlists = _read(
        pl_path,
        [
            schema.PID,
            schema.NAME,
            schema.DESCRIPTION,
            schema.COLLABORATIVE,
            schema.MODIFIED_AT,
            schema.NUM_TRACKS,
            schema.NUM_FOLLOWERS,
            schema.NUM_EDITS,
        ],
        required=(schema.PID, schema.NUM_TRACKS),
    )
    if playlists.num_rows == 0:
        raise SegueError(f"dataset {data_dir} has no playlists ({pl_path.name} is empty)")
    lengths = _ints(playlists, schema.NUM_TRACKS, pl_path).astype(np.int64)
    if lengths.min() < 0:
        raise InputFileError(pl_path, "column 'num_tracks' has negative values")
    return lengths, _playlist_attributes(playlists)


def _length_stats(lengths: np.ndarray, length_counts: np.ndarray) -> dict:
    stats = summarize(lengths)
    stats["mode"] = int(length_counts.argmax())
    stats["top_values"] = [
        {"length": v, "playlists": c} for v, c in _top_values(length_counts, TOP_N)
    ]
    stats["source"] = "playlists.num_tracks"
    return stats


@dataclass
class _TrackTable:
    """The tracks table's ids: ``artist_of``/``album_of`` (int [n_ids], by track id), the raw
    ``artist_col``/``album_col`` (by row), ``row_of_track`` (int64 [n_ids], -1 for ids without
    a row; ``None`` when row i is track i), ``known`` (bool [n_ids] or ``None`` when all are)."""

    path: Path
    n_rows: int
    n_ids: int
    artist_col: np.ndarray
    album_col: np.ndarray
    artist_of: np.ndarray
    album_of: np.ndarray
    row_of_track: np.ndarray | None
    known: np.ndarray | None

    @classmethod
    def read(cls, path: Path) -> _TrackTable:
        ids = (schema.TRACK_ID, schema.ARTIST_ID, schema.ALBUM_ID)
        tracks = _read(path, list(ids), required=ids)
        track_ids = _ints(tracks, schema.TRACK_ID, path)
        artist_col = _ints(tracks, schema.ARTIST_ID, path)
        album_col = _ints(tracks, schema.ALBUM_ID, path)
        del tracks
        n_rows = track_ids.size
        if n_rows and (track_ids.min() < 0 or artist_col.min() < 0 or album_col.min() < 0):
            raise InputFileError(path, "ids must be non-negative")
        n_ids = int(track_ids.max()) + 1 if n_rows else 0
        known = row_of_track = None  # the common case: row i is track i
        if not (n_rows and np.array_equal(track_ids, np.arange(n_rows, dtype=track_ids.dtype))):
            if n_rows and np.bincount(track_ids).max() > 1:
                raise InputFileError(path, "column 'track_id' has repeated values")
            row_of_track = np.full(n_ids, -1, dtype=np.int64)
            row_of_track[track_ids] = np.arange(n_rows)
            if n_rows < n_ids:
                known = row_of_track >= 0
        rows = None if row_of_track is None else np.maximum(row_of_track, 0)
        return cls(
            path,
            n_rows,
            n_ids,
            artist_col,
            album_col,
            artist_col if rows is None else artist_col[rows],
            album_col if rows is None else album_col[rows],
            row_of_track,
            known,
        )


def _entries_by(owner_of: np.ndarray, entries_per_track: np.ndarray):
    """int64 entries per owner (artist or album) through its tracks, and the owners that have
    any, most entries first (ties by id)."""
    n = int(owner_of.max()) + 1 if owner_of.size else 0
    entries = np.bincount(owner_of, weights=entries_per_track, minlength=n).astype(np.int64)
    present = np.flatnonzero(entries)
    return entries, present[np.argsort(-entries[present], kind="stable")]


def _top_share(pt_path, order, popularity_desc, n_ids: int, n_playlists: int) -> dict | None:
    """The top 1% of tracks: how many, the least popular of them, and the share of playlists
    holding at least one (a second pass over ``playlist_tracks``)."""
    k_top = math.ceil(0.01 * len(order))
    if not k_top:
        return None
    mask = np.zeros(n_ids, dtype=bool)
    mask[order[:k_top]] = True
    share = {
        "n_tracks": k_top,
        "min_playlists": int(popularity_desc[k_top - 1]),
        "playlists_with_one": _playlists_with_any(pt_path, mask),
    }
    share["share_of_playlists"] = share["playlists_with_one"] / n_playlists
    return share


def _top_lists(
    tracks: _TrackTable,
    order,
    artist_order,
    album_order,
    playlists_per_track,
    entries_per_track,
    artist_entries,
    album_entries,
    n_playlists: int,
    n_entries: int,
) -> dict[str, list[dict]]:
    """The top tracks, artists and albums with their names (only those rows of the tracks table
    are read back)."""
    top_tracks = order[:TOP_N]
    top_artists = artist_order[:TOP_N]
    top_albums = album_order[:TOP_N]
    track_rows = top_tracks if tracks.row_of_track is None else tracks.row_of_track[top_tracks]
    rows = np.concatenate(
        [
            track_rows.astype(np.int64),
            _first_rows(tracks.artist_col, top_artists),
            _first_rows(tracks.album_col, top_albums),
        ]
    )
    names = _names_for_rows(
        tracks.path,
        _column_names(tracks.path),
        [
            schema.TRACK_URI,
            schema.TRACK_NAME,
            schema.ARTIST_URI,
            schema.ARTIST_NAME,
            schema.ALBUM_URI,
            schema.ALBUM_NAME,
        ],
        rows,
    )
    nt, na = top_tracks.size, top_artists.size
    return {
        "tracks": [
            {
                "rank": i + 1,
                "track_id": int(t),
                "track_uri": names[schema.TRACK_URI][i],
                "track_name": names[schema.TRACK_NAME][i],
                "artist_name": names[schema.ARTIST_NAME][i],
                "playlists": int(playlists_per_track[t]),
                "entries": int(entries_per_track[t]),
                "share_of_playlists": int(playlists_per_track[t]) / n_playlists,
            }
            for i, t in enumerate(top_tracks)
        ],
        "artists": [
            {
                "rank": i + 1,
                "artist_id": int(a),
                "artist_uri": names[schema.ARTIST_URI][nt + i],
                "artist_name": names[schema.ARTIST_NAME][nt + i],
                "entries": int(artist_entries[a]),
                "share_of_entries": _share(artist_entries[a], n_entries),
            }
            for i, a in enumerate(top_artists)
        ],
        "albums": [
            {
                "rank": i + 1,
                "album_id": int(a),
                "album_uri": names[schema.ALBUM_URI][nt + na + i],
                "album_name": names[schema.ALBUM_NAME][nt + na + i],
                "artist_name": names[schema.ARTIST_NAME][nt + na + i],
                "entries": int(album_entries[a]),
                "share_of_entries": _share(album_entries[a], n_entries),
            }
            for i, a in enumerate(top_albums)
        ],
    }


# --- Markdown -----------------------------------------------------------------------------------


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _summary_table(summary: dict | None) -> str:
    if summary is None:
        return "_No data._"
    keys = ["n", "mean", "std", "min", "p10", "p25", "median", "p75", "p90", "max"]
    return _table(keys, [[summary[k] for k in keys]])


def _unavailable(column: str) -> str:
    return f"_Not available: `{column}` is null in every playlist (or absent)._"


def render_markdown(stats: dict) -> str:
    """The Markdown report of :func:`run_eda`'s statistics."""
    c = stats["counts"]
    out = [f"# Dataset statistics: `{stats['dataset']}`", ""]
    out += [
        "## Counts",
        "",
        _table(
            ["quantity", "value"],
            [
                ["playlists", c["playlists"]],
                ["entries (playlist_tracks rows)", c["entries"]],
                ["unique tracks", c["unique_tracks"]],
                ["unique artists", c["unique_artists"]],
                ["unique albums", c["unique_albums"]],
                ["rows of tracks.parquet", c["tracks_in_table"]],
                ["repeated entries (track already in the playlist)", c["duplicate_entries"]],
                ["sum of num_tracks equals entries", c["entries_match_num_tracks"]],
            ],
        ),
        "",
    ]

    ln = stats["playlist_length"]
    out += [
        "## Playlist length",
        "",
        f"Mode: **{ln['mode']}** tracks.",
        "",
        _summary_table(ln),
        "",
        "Most common lengths:",
        "",
        _table(["length", "playlists"], [[v["length"], v["playlists"]] for v in ln["top_values"]]),
        "",
    ]

    tp = stats["track_popularity"]
    out += [
        "## Track popularity",
        "",
        f"Counted: {tp['counts']}.",
        "",
        _summary_table(tp["playlists_per_track"]),
        "",
    ]
    fit = tp["power_law"]
    if fit:
        out += [
            f"Power-law fit of the rank–frequency curve ({fit['rule']}; ranks "
            f"{fit['fit_ranks'][0]}–{fit['fit_ranks'][1]:,}): playlists ∝ rank^"
            f"-{fit['exponent']:.3f}, R² = {_fmt(fit['r2'], 4)}.",
            "",
        ]
    top1 = tp["top_1pct"]
    if top1:
        out += [
            f"The top 1% of tracks ({top1['n_tracks']:,} tracks, each in at least "
            f"{top1['min_playlists']:,} playlists) appear in {top1['playlists_with_one']:,} "
            f"playlists: **{_pct(top1['share_of_playlists'])}** of all playlists.",
            "",
        ]
    lt = tp["long_tail"]
    out += [
        f"Long tail: {lt['n_tracks']:,} tracks ({_pct(lt['share_of_tracks'])}) are in fewer "
        f"than {lt['threshold_playlists']} playlists.",
        "",
        _table(
            ["#", "track", "artist", "playlists", "share of playlists", "entries"],
            [
                [
                    t["rank"],
                    t["track_name"] or t["track_uri"],
                    t["artist_name"],
                    t["playlists"],
                    _pct(t["share_of_playlists"]),
                    t["entries"],
                ]
                for t in tp["top_tracks"]
            ],
        ),
        "",
    ]

    ar = stats["artists"]
    shares = ar["share_of_entries_top"]
    out += [
        "## Artist concentration",
        "",
        f"Counted: {ar['counts']}.",
        "",
        _table(
            ["top 1 share", "top 10 share", "top 100 share", "Gini"],
            [[_pct(shares["1"]), _pct(shares["10"]), _pct(shares["100"]), _fmt(ar["gini"], 4)]],
        ),
        "",
        _summary_table(ar["entries_per_artist"]),
        "",
        _table(
            ["#", "artist", "entries", "share of entries"],
            [
                [
                    a["rank"],
                    a["artist_name"] or a["artist_uri"],
                    a["entries"],
                    _pct(a["share_of_entries"]),
                ]
                for a in ar["top_artists"]
            ],
        ),
        "",
    ]

    al = stats["albums"]
    out += [
        "## Album frequency",
        "",
        f"Counted: {al['counts']}.",
        "",
        _summary_table(al["entries_per_album"]),
        "",
        _table(
            ["#", "album", "artist", "entries", "share of entries"],
            [
                [
                    a["rank"],
                    a["album_name"] or a["album_uri"],
                    a["artist_name"],
                    a["entries"],
                    _pct(a["share_of_entries"]),
                ]
                for a in al["top_albums"]
            ],
        ),
        "",
    ]

    ti = stats["titles"]
    out += ["## Titles", ""]
    if ti is None:
        out += [_unavailable("name"), ""]
    else:
        out += [
            f"{ti['n_titled']:,} titled playlists ({ti['n_missing']:,} without a title): "
            f"{ti['unique_titles']:,} unique titles, {ti['unique_normalized_titles']:,} unique "
            "after the MPD's normalization (lowercase, punctuation ``.,/#!$%^*;:{}=_`~()@`` "
            "to spaces, whitespace collapsed).",
            "",
            _table(
                ["normalized title", "playlists", "share of titled"],
                [
                    [t["title"], t["playlists"], _pct(t["share_of_titled"])]
                    for t in ti["top_normalized"]
                ],
            ),
            "",
        ]

    for key, column, label in (
        ("followers", "num_followers", "Followers"),
        ("edits", "num_edits", "Edits"),
    ):
        h = stats[key]
        out += [f"## {label}", ""]
        if h is None:
            out += [_unavailable(column), ""]
            continue
        out += [
            _summary_table(h["summary"]),
            "",
            _table(
                ["value", *h["histogram"].keys(), "> 20"],
                [["playlists", *h["histogram"].values(), h["above_20"]]],
            ),
            "",
        ]

    out += ["## Other attributes", ""]
    co, de = stats["collaborative"], stats["description"]
    out += [
        "- collaborative: "
        + (f"{co['n']:,} playlists ({_pct(co['share'])})" if co else "not available"),
        "- with a description: "
        + (f"{de['n']:,} playlists ({_pct(de['share'])})" if de else "not available"),
    ]
    mo = stats["modified_at"]
    if mo is None:
        out += ["- modified_at: not available (null in every playlist)"]
    else:
        out += [
            f"- last modified between {mo['first']} and {mo['last']} (UTC); busiest day "
            f"{mo['busiest_day']['date']} with {mo['busiest_day']['playlists']:,} playlists"
        ]
        if mo["by_year"]:
            out += [
                "",
                _table(["year", *mo["by_year"].keys()], [["playlists", *mo["by_year"].values()]]),
            ]
    out += ["", f"Figure: `{FIGURE_FILE}`.", ""]
    return "\n".join(out)


# --- figure -------------------------------------------------------------------------------------


def _log_spaced(n: int, points: int = 2000) -> np.ndarray:
    """Indices 0..n-1 spread evenly on a log axis (rank-frequency curves stay light to draw)."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.geomspace(1, n, num=points).round().astype(np.int64)) - 1


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _plot(
    path: Path,
    length_counts: np.ndarray,
    lengths: np.ndarray,
    popularity_desc: np.ndarray,
    fit: dict | None,
    artist_desc: np.ndarray,
    album_counts: np.ndarray,
    stats: dict,
) -> None:
    """The four-panel figure, written atomically."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # never switch (and close) a live pyplot session
        matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure registry to leak into

    fig = Figure(figsize=(12, 9), dpi=110, layout="constrained")
    (ax_len, ax_trk), (ax_art, ax_alb) = fig.subplots(2, 2)
    fig.suptitle(
        f"{stats['dataset']}: {stats['counts']['playlists']:,} playlists, "
        f"{stats['counts']['entries']:,} entries",
        fontsize=13,
    )

    ax_len.bar(np.arange(length_counts.size), length_counts, width=1.0, color="#4C72B0")
    ax_len.axvline(lengths.mean(), color="#C44E52", ls="--", label=f"mean {lengths.mean():.1f}")
    ax_len.axvline(
        np.median(lengths), color="#55A868", ls=":", label=f"median {np.median(lengths):g}"
    )
    ax_len.set_title("Playlist length distribution")
    ax_len.set_xlabel("tracks in playlist")
    ax_len.set_ylabel("playlists")
    ax_len.legend()

    if popularity_desc.size:
        idx = _log_spaced(popularity_desc.size)
        ax_trk.loglog(idx + 1, popularity_desc[idx], ".", ms=3, color="#4C72B0", label="tracks")
        if fit:
            k = fit["fit_ranks"][1]
            r = np.geomspace(1, k, 50)
            r2 = "–" if fit["r2"] is None else f"{fit['r2']:.3f}"
            ax_trk.loglog(
                r,
                10 ** (fit["intercept_log10"] + fit["slope"] * np.log10(r)),
                "-",
                color="#C44E52",
                lw=2,
                label=f"power law, ranks 1–{k:,}: α = {fit['exponent']:.2f}, R² = {r2}",
            )
        ax_trk.legend()
    else:
        _no_data(ax_trk)
    ax_trk.set_title("Track popularity (rank–frequency)")
    ax_trk.set_xlabel("track rank")
    ax_trk.set_ylabel("playlists containing the track")

    if artist_desc.size:
        idx = _log_spaced(artist_desc.size)
        ax_art.loglog(idx + 1, artist_desc[idx], ".", ms=3, color="#8172B2")
        shares = stats["artists"]["share_of_entries_top"]
        ax_art.text(
            0.97,
            0.97,
            f"top 10: {_pct(shares['10'])} of entries\nGini {stats['artists']['gini']:.3f}",
            transform=ax_art.transAxes,
            ha="right",
            va="top",
        )
    else:
        _no_data(ax_art)
    ax_art.set_title("Artist frequency (rank–frequency)")
    ax_art.set_xlabel("artist rank")
    ax_art.set_ylabel("entries")

    if album_counts.size:
        edges = np.unique(np.round(np.geomspace(1, album_counts.max() + 1, 40)))
        if edges.size < 2:
            edges = np.array([1.0, 2.0])
        hist, _ = np.histogram(album_counts, bins=edges)
        ax_alb.stairs(hist, edges, fill=True, color="#DD8452")
        ax_alb.set_xscale("log")
        ax_alb.set_yscale("log")
    else:
        _no_data(ax_alb)
    ax_alb.set_title("Album frequency distribution")
    ax_alb.set_xlabel("entries per album (log bins)")
    ax_alb.set_ylabel("albums per bin")

    with atomic_file(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
