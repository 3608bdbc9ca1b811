"""``segue ingest``: MPD slices → Parquet tables and a manifest, streaming and parallel.

Worker processes parse slices (``segue.data.mpd``) and hash each entry's track URI twice
(two independent 64-bit hashes). The parent takes results in slice order and assigns dense
``track_id`` s in order of first appearance, looking hashes up in a numpy hash table
(:class:`HashIndex`, O(slice) per slice whatever the catalog's size); the second
hash proves that no two different URIs share the first (a collision stops the run rather than
merging two tracks). Entries stream into ``playlist_tracks.parquet`` row group by row group, so
memory holds the track catalog and a bounded window of slices, never the 66M-row table. A file
too large to decode whole (a merged copy) is streamed in parts of 1,000 playlists
(``mpd.slice_parts``); its manifest entry adds the parts up.
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
from segue.data.mpd import (
    ParsedSlice,
    Problem,
    SliceFile,
    SlicePart,
    check_slice,
    count_problems,
    find_slices,
    parse_part,
    slice_parts,
)
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
    local_index: np.ndarray | None = None  # int32 [entries]: index into the unique arrays
    unique_h1: np.ndarray | None = None  # uint64 [unique]: in order of first appearance
    unique_h2: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)
    last: bool = True  # the file's last part (always, for a file parsed whole)


def _work(part: SlicePart) -> _SliceResult:
    file = part.file
    try:
        parsed = parse_part(part)
    except InputFileError as exc:  # reported by the parent, with the file's name
        return _SliceResult(file, error=str(exc), last=part.last or part.error is not None)
    problems = check_slice(parsed)
    refused = refusal(problems)
    if refused:
        return _SliceResult(file, error=refused, problems=problems, last=parsed.last)
    uris = pl.Series(parsed.tracks.column(schema.TRACK_URI))
    h1 = uris.hash(seed=0).to_numpy()
    h2 = uris.hash(seed=0x5EC0E5EED).to_numpy()
    uniq, first, inverse = np.unique(h1, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # Send back one metadata row per unique track, not per entry: the parent keeps new ones.
    parsed.tracks = parsed.tracks.select(list(schema.TRACK_METADATA_COLUMNS)).take(
        pa.array(first[order])
    )
    return _SliceResult(
        file,
        parsed=parsed,
        local_index=rank[inverse].astype(np.int32),
        unique_h1=uniq[order],
        unique_h2=h2[first[order]],
        problems=problems,
        last=parsed.last,
    )


def refusal(problems: list[Problem]) -> str | None:
    """Why ingest refuses a slice with ``problems`` (the first that breaks the keys), or None."""
    refusing = [p for p in problems if any(word in p.message for word in _REFUSING)]
    return str(refusing[0]) if refusing else None


class HashIndex:
    """uint64 key → int32 value, open addressing with linear probing, vectorised with numpy.

    Keys are already uniform hashes, so a slot is the key's top bits. Every operation works on a
    batch: each round advances all unresolved keys by one slot, so a batch costs a few numpy
    passes (expected ~1.5 probes per key at load ≤ 0.5), independent of the table's size.
    """

    def __init__(self, bits: int = 20):
        self.bits = bits
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.values = np.full(1 << bits, -1, dtype=np.int32)
        self.count = 0

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return (keys >> np.uint64(64 - self.bits)).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Values for ``keys`` (int32, -1 where absent)."""
        out = np.full(len(keys), -1, dtype=np.int32)
        pending = np.arange(len(keys))
        slot = self._slots(keys)
        mask = (1 << self.bits) - 1
        while len(pending):
            s = slot[pending]
            value = self.values[s]
            hit = (value >= 0) & (self.keys[s] == keys[pending])
            out[pending[hit]] = value[hit]
            pending = pending[(value >= 0) & ~hit]  # occupied by another key: probe on
            slot[pending] = (slot[pending] + 1) & mask
        return out

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Insert distinct keys that are not in the table yet."""
        if 2 * (self.count + len(keys)) > len(self.keys):
            self._grow(self.count + len(keys))
        pending = np.arange(len(keys))
        slot = self._slots(keys)
        mask = (1 << self.bits) - 1
        while len(pending):
            s = slot[pending]
            free = self.values[s] < 0
            # Several keys may want the same free slot: the first of each takes it, the rest retry.
            taken, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            self.keys[taken] = keys[winners]
            self.values[taken] = values[winners]
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            occupied = pending[~free]
            slot[occupied] = (slot[occupied] + 1) & mask
            pending = pending[~placed[pending]]
        self.count += len(keys)

    def _grow(self, needed: int) -> None:
        used = self.values >= 0
        keys, values = self.keys[used], self.values[used]
        while 2 * needed > (1 << self.bits):
            self.bits += 1
        self.keys = np.zeros(1 << self.bits, dtype=np.uint64)
        self.values = np.full(1 << self.bits, -1, dtype=np.int32)
        self.count = 0
        self.put(keys, values)


class _Catalog:
    """Track hashes → dense ids, in order of first appearance."""

    def __init__(self) -> None:
        self.index = HashIndex()
        self.h2_by_id = np.empty(1 << 16, dtype=np.uint64)
        self.size = 0
        self.metadata: list[pa.Table] = []

    def assign(self, result: _SliceResult) -> np.ndarray:
        """Ids for the slice's unique tracks (int32, aligned with ``unique_h1``); adds new ones."""
        h1, h2 = result.unique_h1, result.unique_h2
        ids = self.index.get(h1)
        found = ids >= 0
        if (self.h2_by_id[ids[found]] != h2[found]).any():
            raise SegueError(
                f"{result.file.path}: two different track URIs share a 64-bit hash; "
                "this is astronomically unlikely — please report it"
            )
        new = np.flatnonzero(~found)
        if len(new):
            new_ids = np.arange(self.size, self.size + len(new), dtype=np.int32)
            ids[new] = new_ids
            while self.size + len(new) > len(self.h2_by_id):
                self.h2_by_id = np.concatenate((self.h2_by_id, np.empty_like(self.h2_by_id)))
            self.h2_by_id[self.size : self.size + len(new)] = h2[new]
            self.index.put(h1[new], new_ids)
            self.metadata.append(result.parsed.tracks.take(pa.array(new)))
            self.size += len(new)
        return ids

    def table(self) -> pa.Table:
        """The ``tracks`` table: metadata by id, with dense artist and album ids."""
        return tracks_table(pa.concat_tables(self.metadata) if self.metadata else None)


def tracks_table(meta: pa.Table | None) -> pa.Table:
    """The ``tracks`` table of ``meta`` (``schema.TRACK_METADATA_COLUMNS``, one row per track in
    id order; None: no tracks): ids 0, 1, …, and dense artist and album ids in order of first
    appearance (the Spark engine builds its table here too)."""
    if meta is None or meta.num_rows == 0:
        empty = {f.name: pa.array([], f.type) for f in schema.TRACKS_SCHEMA}
        return pa.table(empty, schema=schema.TRACKS_SCHEMA)
    meta = meta.combine_chunks()
    columns = {schema.TRACK_ID: pa.array(np.arange(meta.num_rows, dtype=np.int32))}
    for name in schema.TRACK_METADATA_COLUMNS:
        columns[name] = meta.column(name)
    # Artist/album keys: the URI when the copy has it, else the name (reduced copies).
    for id_col, uri_col, name_col in (
        (schema.ARTIST_ID, schema.ARTIST_URI, schema.ARTIST_NAME),
        (schema.ALBUM_ID, schema.ALBUM_URI, schema.ALBUM_NAME),
    ):
        key = pc.coalesce(
            meta.column(uri_col),
            pc.binary_join_element_wise("name:", meta.column(name_col), ""),
            pa.scalar("unknown"),
        )
        columns[id_col] = pc.dictionary_encode(key).combine_chunks().indices.cast(pa.int32())
    return pa.table(
        {f.name: columns[f.name] for f in schema.TRACKS_SCHEMA}, schema=schema.TRACKS_SCHEMA
    )


@dataclass
class IngestSummary:
    out: Path
    n_playlists: int
    n_tracks: int
    n_entries: int
    skipped: list[str]
    warnings: list[str]
    missing_fields: dict[str, int]


def ingest_mpd(
    source: Path,
    out: Path,
    *,
    workers: int | None = None,
    skip_bad: bool = False,
    overwrite: bool = True,
) -> IngestSummary:
    """Ingest the MPD slices under ``source`` into ``out`` (written whole or not at all)."""
    source, out = Path(source), Path(out)
    files = find_slices(source)
    workers = workers or default_workers()
    catalog = _Catalog()
    playlists: list[pa.Table] = []
    manifest_files, skipped, warnings = [], [], []
    missing: dict[str, int] = {}
    seen_pids = np.zeros(1 << 20, dtype=bool)  # bitmap by pid, grown on demand: O(slice) per check
    n_entries = 0
    buffered: list[pa.Table] = []
    buffered_rows = 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = pq.ParquetWriter(
            tmp / schema.PLAYLIST_TRACKS_FILE, schema.PLAYLIST_TRACKS_SCHEMA, compression="zstd"
        )
        try:
            with progress("ingesting slices", len(files), "slices") as bar:
                entry: dict | None = None  # the manifest entry of the file in progress
                for result in ordered_map(_work, slice_parts(files), workers):
                    if entry is None:
                        entry = {
                            "name": result.file.name,
                            "size": None,  # None: a streamed file whose end was never read
                            "sha256": None,
                            "playlists": 0,
                            "entries": 0,
                        }
                    if result.last:
                        bar.advance(1)
                    if result.error is None:
                        pids = (
                            result.parsed.playlists.column(schema.PID).to_numpy().astype(np.int64)
                        )
                        if pids.max(initial=0) >= len(seen_pids):
                            seen_pids = np.concatenate(
                                (
                                    seen_pids,
                                    np.zeros(max(len(seen_pids), int(pids.max()) + 1), bool),
                                )
                            )
                        dup = pids[seen_pids[pids]]
                        if len(dup):
                            result.error = (
                                f"{result.file.path}: pid {dup[0]} already appeared earlier "
                                f"({len(dup)} duplicate pid{'s' if len(dup) > 1 else ''})"
                            )
                    if result.error is not None:
                        if not skip_bad:
                            raise SegueError(
                                f"{result.error}\n(ingest refuses this slice; pass --skip-bad to skip it)"
                            )
                        skipped.append(result.error)
                        log.warning("skipped: %s", result.error)
                    else:
                        seen_pids[pids] = True
                        entries = _entries(result, catalog, pids)
                        buffered.append(entries)
                        buffered_rows += entries.num_rows
                        if buffered_rows >= ROW_GROUP_ROWS:
                            writer.write_table(
                                pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS
                            )
                            buffered, buffered_rows = [], 0
                        n_entries += entries.num_rows
                        parsed = result.parsed
                        warnings.extend(str(p) for p in result.problems)
                        for key, count in parsed.missing.items():
                            missing[key] = missing.get(key, 0) + count
                        playlists.append(playlist_rows(parsed))
                        entry["playlists"] += len(parsed.lengths)
                        entry["entries"] += int(entries.num_rows)
                        if parsed.last:
                            entry["size"], entry["sha256"] = parsed.size, parsed.sha256
                            if not parsed.whole:
                                entry["streamed"] = True
                                warnings.extend(
                                    str(p) for p in count_problems(result.file, entry["playlists"])
                                )
                    if result.last:
                        if entry["playlists"]:
                            manifest_files.append(entry)
                        entry = None
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
        write_json(
            tmp / schema.MANIFEST_FILE,
            manifest(
                str(source),
                tracks,
                playlists_table.num_rows,
                n_entries,
                manifest_files,
                missing,
                warnings,
                skipped,
            ),
        )
    return IngestSummary(
        out, playlists_table.num_rows, tracks.num_rows, n_entries, skipped, warnings, missing
    )


def _entries(result: _SliceResult, catalog: _Catalog, pids: np.ndarray) -> pa.Table:
    """The slice's rows of ``playlist_tracks`` (pid, pos, track_id), assigning new track ids."""
    ids = catalog.assign(result)
    pid, pos = entry_keys(pids, result.parsed.lengths)
    return pa.table(
        {
            schema.PID: pa.array(pid),
            schema.POS: pa.array(pos),
            schema.TRACK_ID: pa.array(ids[result.local_index]),
        },
        schema=schema.PLAYLIST_TRACKS_SCHEMA,
    )


def entry_keys(pids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pid, pos)`` of every entry of a slice (int32 [entries] each, in file order): each
    playlist's pid repeated over its tracks, and the position 0, 1, … within it (the list order;
    the files' own ``pos`` is only checked, as reduced copies lack it)."""
    starts = np.concatenate(([0], np.cumsum(lengths)))
    owner = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(starts[-1]) - starts[owner]
    return np.repeat(pids, lengths).astype(np.int32), pos.astype(np.int32)


def playlist_rows(parsed: ParsedSlice) -> pa.Table:
    """The slice's ``playlists`` rows, ``num_tracks`` the tracks it holds (the count given in
    the file is only checked)."""
    return parsed.playlists.set_column(
        parsed.playlists.schema.get_field_index(schema.NUM_TRACKS),
        schema.NUM_TRACKS,
        pa.array(parsed.lengths.astype(np.int32)),
    )


def manifest(
    source: str,
    tracks: pa.Table,
    n_playlists: int,
    n_entries: int,
    files: list[dict],
    missing: dict[str, int],
    warnings: list[str],
    skipped: list[str],
) -> dict:
    """``manifest.json`` of an ingested dataset (both engines write it here): the counts, one
    entry per file read, the fields missing or absent, the first warnings, the skipped slices."""
    n_tracks = tracks.num_rows
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "created_by": f"segue {__version__}",
        "source": source,
        "counts": {
            "playlists": n_playlists,
            "tracks": n_tracks,
            "entries": n_entries,
            "artists": int(pc.max(tracks.column(schema.ARTIST_ID)).as_py()) + 1 if n_tracks else 0,
            "albums": int(pc.max(tracks.column(schema.ALBUM_ID)).as_py()) + 1 if n_tracks else 0,
        },
        "files": files,
        "missing_fields": missing,
        "absent_fields": absent_everywhere(missing, n_playlists, n_entries),
        "warnings": {"count": len(warnings), "first": warnings[:50]},
        "skipped": skipped,
    }


def absent_everywhere(missing: dict[str, int], n_playlists: int, n_entries: int) -> list[str]:
    """Fields missing from every record (the signature of a reduced copy), e.g. ``track.album_uri``.

    ``playlist.description`` is optional in the real files too, so it is not listed.
    """
    out = []
    for key, count in sorted(missing.items()):
        total = n_playlists if key.startswith("playlist.") else n_entries
        if count == total and key != f"playlist.{schema.DESCRIPTION}":
            out.append(key)
    return out
