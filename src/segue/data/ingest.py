"""``segue ingest``: MPD slices → Parquet tables and a manifest, streaming and parallel.

Worker processes parse slices (``segue.data.mpd``) and hash each entry's track URI twice
(two independent 64-bit hashes). The parent takes results in slice order and assigns dense
``track_id`` s in order of first appearance, looking hashes up in a sorted array; the second
hash proves that no two different URIs share the first (a collision stops the run rather than
merging two tracks). Entries stream into ``playlist_tracks.parquet`` row group by row group, so
memory holds the track catalog and a bounded window of slices, never the 66M-row table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from segue import __version__
from segue.data import schema
from segue.data.mpd import ParsedSlice, Problem, SliceFile, check_slice, find_slices, parse_slice
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir, write_json
from segue.parallel import default_workers, ordered_map
from segue.progress import progress

log = logging.getLogger("segue")
ROW_GROUP_ROWS = 4_000_000
# Checks whose failure makes a slice unusable: duplicate pids break keys. The rest (counts,
# lengths, pids outside the name's range in re-split copies) are recorded as warnings.
_REFUSING = ("appears",)


@dataclass
class _SliceResult:
    file: SliceFile
    error: str | None = None
    parsed: ParsedSlice | None = None
    local_index: np.ndarray | None = None   # int32 [entries]: index into the unique arrays
    unique_h1: np.ndarray | None = None     # uint64 [unique]: in order of first appearance
    unique_h2: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)


def _work(file: SliceFile) -> _SliceResult:
    try:
        parsed = parse_slice(file)
    except InputFileError as exc:  # reported by the parent, with the file's name
        return _SliceResult(file, error=str(exc))
    problems = check_slice(parsed)
    refusing = [p for p in problems if any(word in p.message for word in _REFUSING)]
    if refusing:
        return _SliceResult(file, error=str(refusing[0]), problems=problems)
    uris = pl.Series(parsed.tracks.column(schema.TRACK_URI))
    h1 = uris.hash(seed=0).to_numpy()
    h2 = uris.hash(seed=0x5EC0E5EED).to_numpy()
    uniq, first, inverse = np.unique(h1, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")          # first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # Send back one metadata row per unique track, not per entry: the parent keeps new ones.
    parsed.tracks = parsed.tracks.select(list(schema.TRACK_METADATA_COLUMNS)).take(pa.array(first[order]))
    return _SliceResult(
        file, parsed=parsed, local_index=rank[inverse].astype(np.int32),
        unique_h1=uniq[order], unique_h2=h2[first[order]], problems=problems,
    )


class _Catalog:
    """Track hashes → dense ids, in order of first appearance."""

    def __init__(self) -> None:
        self.sorted_h1 = np.empty(0, dtype=np.uint64)
        self.sorted_ids = np.empty(0, dtype=np.int32)
        self.h2_by_id = np.empty(1 << 16, dtype=np.uint64)
        self.size = 0
        self.metadata: list[pa.Table] = []

    def assign(self, result: _SliceResult) -> np.ndarray:
        """Ids for the slice's unique tracks (int32, aligned with ``unique_h1``); adds new ones."""
        h1, h2 = result.unique_h1, result.unique_h2
        at = np.searchsorted(self.sorted_h1, h1)
        at_c = np.minimum(at, max(len(self.sorted_h1) - 1, 0))
        found = (at < len(self.sorted_h1)) & (self.sorted_h1[at_c] == h1) if self.size else np.zeros(len(h1), bool)
        ids = np.empty(len(h1), dtype=np.int32)
        ids[found] = self.sorted_ids[at_c[found]]
        clash = self.h2_by_id[ids[found]] != h2[found]
        if clash.any():
            raise SegueError(
                f"{result.file.path}: two different track URIs share a 64-bit hash; "
                "this is astronomically unlikely — please report it")
        new = np.flatnonzero(~found)
        new_ids = np.arange(self.size, self.size + len(new), dtype=np.int32)
        ids[new] = new_ids
        if len(new):
            while self.size + len(new) > len(self.h2_by_id):
                self.h2_by_id = np.concatenate((self.h2_by_id, np.empty_like(self.h2_by_id)))
            self.h2_by_id[self.size:self.size + len(new)] = h2[new]
            order = np.argsort(h1[new])
            where = np.searchsorted(self.sorted_h1, h1[new][order])
            self.sorted_h1 = np.insert(self.sorted_h1, where, h1[new][order])
            self.sorted_ids = np.insert(self.sorted_ids, where, new_ids[order])
            self.metadata.append(result.parsed.tracks.take(pa.array(new)))
            self.size += len(new)
        return ids

    def table(self) -> pa.Table:
        """The ``tracks`` table: metadata by id, with dense artist and album ids."""
        if not self.metadata:
            empty = {f.name: pa.array([], f.type) for f in schema.TRACKS_SCHEMA}
            return pa.table(empty, schema=schema.TRACKS_SCHEMA)
        meta = pa.concat_tables(self.metadata).combine_chunks()
        columns = {schema.TRACK_ID: pa.array(np.arange(meta.num_rows, dtype=np.int32))}
        for name in schema.TRACK_METADATA_COLUMNS:
            columns[name] = meta.column(name)
        # Artist/album keys: the URI when the copy has it, else the name (reduced copies).
        for id_col, uri_col, name_col in ((schema.ARTIST_ID, schema.ARTIST_URI, schema.ARTIST_NAME),
                                          (schema.ALBUM_ID, schema.ALBUM_URI, schema.ALBUM_NAME)):
            key = pc.coalesce(meta.column(uri_col), pc.binary_join_element_wise("name:", meta.column(name_col), ""),
                              pa.scalar("unknown"))
            columns[id_col] = pc.dictionary_encode(key).combine_chunks().indices.cast(pa.int32())
        return pa.table({f.name: columns[f.name] for f in schema.TRACKS_SCHEMA}, schema=schema.TRACKS_SCHEMA)


@dataclass
class IngestSummary:
    out: Path
    n_playlists: int
    n_tracks: int
    n_entries: int
    skipped: list[str]
    warnings: list[str]
    missing_fields: dict[str, int]


def ingest_mpd(source: Path, out: Path, *, workers: int | None = None, skip_bad: bool = False,
               overwrite: bool = True) -> IngestSummary:
    """Ingest the MPD slices under ``source`` into ``out`` (written whole or not at all)."""
    source, out = Path(source), Path(out)
    files = find_slices(source)
    workers = workers or default_workers()
    catalog = _Catalog()
    playlists: list[pa.Table] = []
    manifest_files, skipped, warnings = [], [], []
    missing: dict[str, int] = {}
    seen_pids = np.zeros(0, dtype=np.int64)
    n_entries = 0
    buffered: list[pa.Table] = []
    buffered_rows = 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = pq.ParquetWriter(tmp / schema.PLAYLIST_TRACKS_FILE, schema.PLAYLIST_TRACKS_SCHEMA,
                                  compression="zstd")
        try:
            with progress("ingesting slices", len(files), "slices") as bar:
                for result in ordered_map(_work, files, workers):
                    bar.advance(1)
                    if result.error is None:
                        pids = result.parsed.playlists.column(schema.PID).to_numpy().astype(np.int64)
                        dup = np.intersect1d(seen_pids, pids)
                        if len(dup):
                            result.error = (f"{result.file.path}: pid {dup[0]} already appeared in an earlier "
                                            f"slice ({len(dup)} duplicate pid{'s' if len(dup) > 1 else ''})")
                    if result.error is not None:
                        if not skip_bad:
                            raise SegueError(f"{result.error}\n(ingest refuses this slice; pass --skip-bad to skip it)")
                        skipped.append(result.error)
                        log.warning("skipped: %s", result.error)
                        continue
                    seen_pids = np.union1d(seen_pids, pids)
                    parsed = result.parsed
                    warnings.extend(str(p) for p in result.problems)
                    for key, count in parsed.missing.items():
                        missing[key] = missing.get(key, 0) + count
                    ids = catalog.assign(result)
                    lengths = parsed.lengths
                    starts = np.concatenate(([0], np.cumsum(lengths)))
                    owner = np.repeat(np.arange(len(lengths)), lengths)
                    entries = pa.table({
                        schema.PID: pa.array(np.repeat(pids, lengths).astype(np.int32)),
                        schema.POS: pa.array((np.arange(starts[-1]) - starts[owner]).astype(np.int32)),
                        schema.TRACK_ID: pa.array(ids[result.local_index]),
                    }, schema=schema.PLAYLIST_TRACKS_SCHEMA)
                    buffered.append(entries)
                    buffered_rows += entries.num_rows
                    if buffered_rows >= ROW_GROUP_ROWS:
                        writer.write_table(pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS)
                        buffered, buffered_rows = [], 0
                    n_entries += entries.num_rows
                    table = parsed.playlists.set_column(
                        parsed.playlists.schema.get_field_index(schema.NUM_TRACKS), schema.NUM_TRACKS,
                        pa.array(lengths.astype(np.int32)))
                    playlists.append(table)
                    manifest_files.append({"name": result.file.name, "size": parsed.size,
                                           "sha256": parsed.sha256, "playlists": len(lengths),
                                           "entries": int(entries.num_rows)})
            if buffered:
                writer.write_table(pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS)
        finally:
            writer.close()
        if not playlists:
            raise SegueError(f"{source}: every slice was skipped; nothing to ingest")
        playlists_table = pa.concat_tables(playlists).cast(schema.PLAYLISTS_SCHEMA)
        pq.write_table(playlists_table, tmp / schema.PLAYLISTS_FILE, compression="zstd")
        tracks = catalog.table()
        pq.write_table(tracks, tmp / schema.TRACKS_FILE, compression="zstd")
        absent_everywhere = _absent_everywhere(missing, playlists_table.num_rows, n_entries)
        write_json(tmp / schema.MANIFEST_FILE, {
            "schema_version": schema.SCHEMA_VERSION,
            "created_by": f"segue {__version__}",
            "source": str(source),
            "counts": {
                "playlists": playlists_table.num_rows,
                "tracks": tracks.num_rows,
                "entries": n_entries,
                "artists": int(pc.max(tracks.column(schema.ARTIST_ID)).as_py() or 0) + 1 if tracks.num_rows else 0,
                "albums": int(pc.max(tracks.column(schema.ALBUM_ID)).as_py() or 0) + 1 if tracks.num_rows else 0,
            },
            "files": manifest_files,
            "missing_fields": missing,
            "absent_fields": absent_everywhere,
            "warnings": {"count": len(warnings), "first": warnings[:50]},
            "skipped": skipped,
        })
    return IngestSummary(out, playlists_table.num_rows, tracks.num_rows, n_entries, skipped, warnings, missing)


def _absent_everywhere(missing: dict[str, int], n_playlists: int, n_entries: int) -> list[str]:
    """Fields missing from every record (the signature of a reduced copy), e.g. ``track.album_uri``.

    ``playlist.description`` is optional in the real files too, so it is not listed.
    """
    out = []
    for key, count in sorted(missing.items()):
        total = n_playlists if key.startswith("playlist.") else n_entries
        if count == total and key != f"playlist.{schema.DESCRIPTION}":
            out.append(key)
    return out
