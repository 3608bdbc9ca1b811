"""``segue ingest --engine spark``: MPD slices → the local engine's Parquet tables and manifest.

The same tables (same columns, rows in the same order, the same dense ids) and the same
manifest as :func:`segue.data.ingest.ingest_mpd`, for slices on any file system Spark reads
(a local directory, ``hdfs://``, ``s3a://``, …); ``tests/spark/test_ingest.py`` checks them
equal, and ``benchmarks/bench_spark.py`` at 1M playlists. How:

1. **Parse** (Spark tasks, each a contiguous share of the files): Spark reads each slice whole
   (``binaryFile``) and a Python task parses it with the local engine's own parser and checks
   (:func:`segue.data.mpd.parse_bytes`, :func:`~segue.data.mpd.check_slice`), so a malformed
   slice is named exactly as locally. The task stages, with pyarrow, under
   ``SEGUE_SPARK_EXCHANGE`` (:class:`_StagedFiles`): the slice's entries ``(pid, pos, h)``
   with ``h`` the track URI's 64-bit hash, its playlists, and the tracks it meets (URI,
   metadata, first appearance) — each track once per task, not once per slice
   (:class:`_Emitted`, a map-side combine). Only a one-line report per slice (size, SHA-256,
   problems, missing fields, or the error) goes back through Spark.
2. **Decide** (driver): the reports and the pids found in more than one slice (a Spark
   group-by) replay the local engine's rules in slice order: a slice that fails to parse, or
   repeats a pid of an earlier accepted slice, stops the run or (``skip_bad``) is skipped (and
   the parse is staged again without it, since its task's combine counted its tracks).
3. **Number** (a shuffle by hash): each track's least appearance over all tasks, with its
   metadata there; two URIs under one hash are refused. Ranked by that appearance, the tracks
   get the ids the local engine gives reading slices in order, and the artist and album ids
   come from the same function (:func:`segue.data.ingest.tracks_table`).
4. **Write** (driver): the tables are one Parquet file each, as locally, so they are written
   here, slice by slice in order, each entry's hash looked up among the sorted track hashes:
   one streaming pass, with memory bounded by the track catalog and a row group — as the local
   engine's.

What crosses the network (see ``docs/scaling.md``): the slices once (read by the tasks), the
staged tracks once (the shuffle of step 3: a few times the catalog), the staged entries and
playlists once (read by the driver). A file must fit one task's memory (Spark reads a file
whole, at most 2 GiB): a merged file above 256 MiB, which the local engine streams in parts,
gives the same tables here, but its manifest entry lacks the local ``"streamed": true``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from segue.data import schema
from segue.data.ingest import IngestSummary, entry_keys, manifest, playlist_rows, refusal
from segue.data.mpd import SLICE_PATTERN, SliceFile, check_slice, find_slices, parse_bytes
from segue.errors import InputFileError, SegueError
from segue.io import atomic_dir, write_json
from segue.progress import progress
from segue.spark.data import exchange_path

log = logging.getLogger("segue")

_BINARY_FILE_LIMIT = 2**31 - 1  # Spark's binaryFile reads a file into one byte array
_META = list(schema.TRACK_METADATA_COLUMNS)

# What step 1 stages, one table per kind (written by the tasks themselves with pyarrow: the
# rows never pass through the JVM, which measured the bottleneck when they did), and the report
# of each slice, the one thing a task returns to Spark.
ENTRIES_STAGE = pa.schema(
    [
        (schema.PID, pa.int32()),
        (schema.POS, pa.int32()),
        ("h", pa.int64()),  # the track URI's 64-bit hash
    ]
)
PLAYLISTS_STAGE = pa.schema(
    [
        ("slice", pa.int32()),
        ("row", pa.int32()),
        *[(f.name, f.type) for f in schema.PLAYLISTS_SCHEMA],
    ]
)
TRACKS_STAGE = pa.schema(
    [
        ("h", pa.int64()),
        ("h2", pa.int64()),  # a second, independent hash: two URIs under one `h` differ here
        ("key", pa.int64()),  # the appearance staged: slice · 2³² + entry row
        *[(name, schema.TRACKS_SCHEMA.field(name).type) for name in _META],
    ]
)
REPORTS = pa.schema([("slice", pa.int32()), ("report", pa.string())])
_STAGED = {"entries": ENTRIES_STAGE, "playlists": PLAYLISTS_STAGE, "tracks": TRACKS_STAGE}


def _stage_slice(file: SliceFile, index: int, raw: bytes, emitted: _Emitted):
    """One slice's report and staged tables ``{"entries": …, "playlists": …, "tracks": …}``
    (None when it is refused): step 1 of the module docstring, in a Spark task."""
    report: dict = {"size": len(raw)}
    try:
        parsed = parse_bytes(file, raw)
    except InputFileError as exc:
        return {"error": str(exc)}, None
    problems = check_slice(parsed)
    refused = refusal(problems)  # as the local engine: a pid twice in a file breaks the keys
    if refused:
        return {"error": refused}, None
    lengths = parsed.lengths
    n, m = len(lengths), int(lengths.sum())
    pids = parsed.playlists.column(schema.PID).to_numpy().astype(np.int32)
    h = pl.Series(parsed.tracks.column(schema.TRACK_URI)).hash(seed=0).to_numpy().view(np.int64)
    entries = pa.table([*entry_keys(pids, lengths), h], schema=ENTRIES_STAGE)
    playlists = playlist_rows(parsed)
    playlists = pa.table(
        [
            np.full(n, index, np.int32),
            np.arange(n, dtype=np.int32),
            *[playlists.column(f.name).cast(f.type) for f in schema.PLAYLISTS_SCHEMA],
        ],
        schema=PLAYLISTS_STAGE,
    )
    distinct, first = np.unique(h, return_index=True)
    keys = (np.int64(index) << 32) + first
    uris = parsed.tracks.column(schema.TRACK_URI).take(pa.array(first))
    h2 = pl.Series(uris).hash(seed=0x5EC0E5EED).to_numpy().view(np.int64)
    new = ~emitted.earlier(distinct, h2, keys)
    met = parsed.tracks.select(_META).take(pa.array(first[new]))
    tracks = pa.table(
        [h[first[new]], h2[new], keys[new], *[met.column(name) for name in _META]],
        schema=TRACKS_STAGE,
    )
    report.update(
        sha256=parsed.sha256,
        playlists=n,
        entries=m,
        problems=[str(p) for p in problems],
        missing=parsed.missing,
    )
    return report, {"entries": entries, "playlists": playlists, "tracks": tracks}


class _StagedFiles:
    """Where a task stages its tables under ``where``: each slice's entries and playlists in
    files of their own (``entries/slice-<index>.parquet``: the driver reads them back in slice
    order), the task's tracks in one file (``tracks/part-<partition>.parquet``). Each file is
    written under a hidden name and renamed when complete, so a retried task replaces its
    failed attempt's files instead of adding to them (Spark skips hidden files)."""

    ROWS = 1 << 20  # track rows buffered per row group

    def __init__(self, where: str, partition: int, attempt: int) -> None:
        import pyarrow.parquet as pq

        from segue.spark.data import exchange_fs

        self.fs, self.base = exchange_fs(where)
        self.attempt = attempt
        for kind in _STAGED:
            self.fs.create_dir(f"{self.base}/{kind}", recursive=True)
        self.tracks_name = f"tracks/part-{partition:05d}.parquet"
        # The writer does not close a stream it is handed; a remote file system (hdfs://,
        # s3a://) completes the file only when it is closed.
        self.sink = self.fs.open_output_stream(self._hidden(self.tracks_name))
        self.tracks = pq.ParquetWriter(self.sink, TRACKS_STAGE, compression="lz4")
        self.pending: list[pa.Table] = []

    def _hidden(self, name: str) -> str:
        kind, file = name.split("/")
        return f"{self.base}/{kind}/.{file}-{self.attempt}"

    def write(self, index: int, tables: dict[str, pa.Table]) -> None:
        import pyarrow.parquet as pq

        for kind in ("entries", "playlists"):
            name = f"{kind}/slice-{index:06d}.parquet"
            with self.fs.open_output_stream(self._hidden(name)) as f:
                pq.write_table(tables[kind], f, compression="lz4")
            self._publish(name)
        self.pending.append(tables["tracks"])
        if sum(t.num_rows for t in self.pending) >= self.ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.tracks.write_table(pa.concat_tables(self.pending))
            self.pending = []

    def close(self) -> None:
        self._flush()
        self.tracks.close()
        self.sink.close()
        self._publish(self.tracks_name)

    def _publish(self, name: str) -> None:
        """Rename the hidden file to ``name``, replacing a failed attempt's (HDFS's rename does
        not replace a file)."""
        import pyarrow.fs as pafs

        final = f"{self.base}/{name}"
        if self.fs.get_file_info(final).type != pafs.FileType.NotFound:
            self.fs.delete_file(final)
        self.fs.move(self._hidden(name), final)


class _Emitted:
    """The tracks a task has already staged, each with the least appearance it staged: a track
    seen again later in the task is not staged again (a map-side combine: without it, each
    track's URI and metadata would be staged once per slice holding it). Files reach a task in
    Spark's order (packed by size), not slice order, so a track met again at an *earlier*
    appearance is staged again; the least appearance over all tasks is kept (the first
    appearance, as the local engine's). A URI whose first hash matches a staged one but whose
    second does not is staged too, so the driver's check sees the collision."""

    def __init__(self) -> None:
        from segue.data.ingest import HashIndex

        self.index = HashIndex()
        self.keys = np.empty(1 << 16, dtype=np.int64)
        self.h2 = np.empty(1 << 16, dtype=np.int64)
        self.size = 0

    def earlier(self, hashes: np.ndarray, h2: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """bool [k]: whether each distinct ``hashes`` (second hashes ``h2``) was staged at an
        appearance before its ``keys``; records the others as staged at ``keys``."""
        hashes = hashes.view(np.uint64)
        slot = self.index.get(hashes)
        known = slot >= 0
        earlier = np.zeros(len(hashes), dtype=bool)
        same = self.h2[slot[known]] == h2[known]
        earlier[known] = same & (self.keys[slot[known]] < keys[known])
        again = known & ~earlier
        self.keys[slot[again]] = keys[again]
        new = np.flatnonzero(~known)
        while self.size + len(new) > len(self.keys):
            self.keys = np.concatenate((self.keys, np.empty_like(self.keys)))
            self.h2 = np.concatenate((self.h2, np.empty_like(self.h2)))
        self.index.put(hashes[new], np.arange(self.size, self.size + len(new), dtype=np.int32))
        self.keys[self.size : self.size + len(new)] = keys[new]
        self.h2[self.size : self.size + len(new)] = h2[new]
        self.size += len(new)
        return earlier


def _stage(files: list[tuple[str, SliceFile, int]], where: str, excluded: frozenset[int]):
    """The ``mapInArrow`` function of step 1: binaryFile rows in, each slice's report out, its
    tables staged under ``where`` (the slices in ``excluded`` are skipped)."""
    by_name = {file.name: (i, file) for i, (_, file, _) in enumerate(files)}

    def run(batches):
        from pyspark import TaskContext

        context = TaskContext.get()
        staged = _StagedFiles(where, context.partitionId(), context.attemptNumber())
        emitted = _Emitted()
        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content")
            for k, path in enumerate(paths):
                index, file = by_name[path.rsplit("/", 1)[-1]]
                if index in excluded:
                    continue
                report, tables = _stage_slice(file, index, contents[k].as_py(), emitted)
                if tables is not None:
                    staged.write(index, tables)
                yield pa.RecordBatch.from_arrays(
                    [pa.array([index], pa.int32()), pa.array([json.dumps(report)])], schema=REPORTS
                )
        staged.close()

    return run


def list_slices(spark, source: str) -> list[tuple[str, SliceFile, int]]:
    """``(URI Spark reads, SliceFile, size in bytes)`` per slice file of ``source``, in the local
    engine's order (by the pids the names promise). A local directory is listed by
    :func:`find_slices` (the same files, the same errors); any other URI through Hadoop's file
    system, as Spark sees it."""
    if "://" not in source:
        found = []
        for f in find_slices(Path(source)):
            try:
                size = os.stat(f.path).st_size
            except OSError:
                size = 0  # Spark's read reports it, naming the file
            # Not Path.as_uri(): Hadoop would escape its %-escapes again (a space in a folder).
            found.append((f"file://{os.path.abspath(f.path)}", f, size))
    else:
        found = _hadoop_slices(spark, source)
    for _, file, size in found:
        if size > _BINARY_FILE_LIMIT:
            raise InputFileError(
                file.path,
                f"{size:,} bytes: Spark reads a file whole, at most 2 GiB; split it into slices, "
                "or ingest it with the local engine, which streams it",
            )
    return found


def _hadoop_slices(spark, source: str) -> list[tuple[str, SliceFile, int]]:
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()

    def listing(uri: str) -> list[tuple[str, str, int]]:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        fs = path.getFileSystem(conf)
        if not fs.exists(path) or not fs.getFileStatus(path).isDirectory():
            return []
        return [
            (s.getPath().getName(), s.getPath().toString(), s.getLen()) for s in fs.listStatus(path)
        ]

    found = listing(source)
    if not any(SLICE_PATTERN.match(name) for name, _, _ in found):
        found = listing(source.rstrip("/") + "/data") or found  # the MPD zip unpacks into data/
    slices = []
    for name, uri, size in found:
        match = SLICE_PATTERN.match(name)
        if match:
            slices.append((uri, SliceFile(uri, int(match.group(1)), int(match.group(2))), size))
    if not slices:
        raise InputFileError(source, "no MPD slice files (mpd.slice.<start>-<end>.json) found")
    return sorted(slices, key=lambda s: (s[1].start, s[1].end))


def ingest_mpd_spark(
    source: str | Path,
    out: Path,
    *,
    skip_bad: bool = False,
    overwrite: bool = True,
    master: str | None = None,
) -> IngestSummary:
    """Ingest the MPD slices under ``source`` (a directory or any URI Spark reads) into ``out``
    on Spark; the same tables and manifest as the local engine, written whole or not at all."""
    from segue.spark.session import spark_errors, spark_session

    spark = spark_session(master)  # first: it names a missing extra or Java
    # The manifest names the source as the local engine does (a path as Path prints it).
    source = str(source) if "://" in str(source) else str(Path(source))
    out = Path(out)
    with spark_errors("ingest"):
        files = list_slices(spark, source)
        started = time.perf_counter()
        staged_at = exchange_path("ingest")
        try:
            reports = _run_stage(spark, files, staged_at)
            log.info(
                "parsed %d slices on Spark [%.1f s]", len(files), time.perf_counter() - started
            )
            accepted, summary = _decide(reports, _read_staged(spark, staged_at), files, skip_bad)
            if not accepted:
                raise SegueError(f"{source}: every slice was skipped; nothing to ingest")
            log.info("decided: %d of %d slices accepted", len(accepted), len(files))
            refused = set(range(len(files))) - set(accepted)
            if any("error" not in reports[i] for i in refused):
                # A slice refused for a pid an earlier slice holds was parsed and staged, and
                # its task skipped tracks it had met there: stage again without it.
                log.info("staging again without the %d refused slices", len(refused))
                _remove(staged_at)
                _run_stage(spark, files, staged_at, frozenset(refused))
            return _tables(spark, source, out, staged_at, accepted, summary, overwrite)
        finally:
            _remove(staged_at)


def _read_staged(spark, staged_at: str, kind: str = "playlists"):
    """The staged table ``kind`` as a DataFrame (empty, not an error, when no slice parsed)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.read.schema(from_arrow_schema(_STAGED[kind])).parquet(f"{staged_at}/{kind}")


def _remove(where: str) -> None:
    from segue.spark.data import exchange_fs

    filesystem, path = exchange_fs(where)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_dir(path)


def _run_stage(spark, files, where: str, excluded: frozenset[int] = frozenset()) -> dict:
    """Step 1, staged under ``where``: ``{slice: report}``. Each task takes a share of the
    bytes (two tasks per core Spark has), so its combine (:class:`_Emitted`) sees many slices,
    and reads them one file per Arrow batch, so a task holds one slice at a time."""
    from pyspark.sql.pandas.types import from_arrow_schema

    tasks = spark.sparkContext.defaultParallelism * 2
    total = sum(size for _, _, size in files)
    settings = {
        "spark.sql.files.maxPartitionBytes": str(max(128 << 20, -(-total // tasks))),
        "spark.sql.execution.arrow.maxRecordsPerBatch": "1",
    }
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        rows = (
            spark.read.format("binaryFile")
            .load([uri for uri, _, _ in files])
            .select("path", "content")
            .mapInArrow(_stage(files, where, excluded), from_arrow_schema(REPORTS))
            .collect()
        )
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    return {r["slice"]: json.loads(r["report"]) for r in rows}


def _decide(reports: dict, playlists, files, skip_bad: bool) -> tuple[list[int], dict]:
    """Step 2: the accepted slices, and what the manifest says of them (the local rules)."""
    from pyspark.sql import functions as F

    playlists = playlists.select("slice", "row", schema.PID)
    repeated = playlists.groupBy(schema.PID).count().filter(F.col("count") > 1).select(schema.PID)
    shared: dict[int, list[tuple[int, int]]] = {}
    for r in playlists.join(repeated, schema.PID).collect():
        shared.setdefault(r["slice"], []).append((r["row"], r[schema.PID]))
    accepted, seen = [], set()
    summary = {"files": [], "skipped": [], "warnings": [], "missing": {}}
    for index, (_, file, _) in enumerate(files):
        report = reports[index]
        error = report.get("error")
        candidates = sorted(shared.get(index, []))
        if error is None:
            dup = [pid for _, pid in candidates if pid in seen]
            if dup:
                error = (
                    f"{file.path}: pid {dup[0]} already appeared earlier "
                    f"({len(dup)} duplicate pid{'s' if len(dup) > 1 else ''})"
                )
        if error is not None:
            if not skip_bad:
                raise SegueError(
                    f"{error}\n(ingest refuses this slice; pass --skip-bad to skip it)"
                )
            summary["skipped"].append(error)
            log.warning("skipped: %s", error)
            continue
        seen.update(pid for _, pid in candidates)
        accepted.append(index)
        summary["warnings"].extend(report["problems"])
        for key, count in report["missing"].items():
            summary["missing"][key] = summary["missing"].get(key, 0) + count
        if report["playlists"]:
            summary["files"].append(
                {
                    "name": file.name,
                    "size": report["size"],
                    "sha256": report["sha256"],
                    "playlists": report["playlists"],
                    "entries": report["entries"],
                }
            )
    return accepted, summary


class _RowGroups:
    """A Parquet writer fed table by table that writes row groups of ``rows``."""

    def __init__(self, writer, rows: int) -> None:
        self.writer, self.rows = writer, rows
        self.pending: list[pa.Table] = []
        self.count = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.count += table.num_rows
        if self.count >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.rows)
            self.pending, self.count = [], 0


def _staged_tracks(staged_at: str, condition) -> pa.Table:
    """The staged track rows meeting ``condition`` (a pyarrow dataset expression)."""
    import pyarrow.dataset as ds

    from segue.spark.data import exchange_fs

    fs, base = exchange_fs(staged_at)
    dataset = ds.dataset(f"{base}/tracks", filesystem=fs, format="parquet")
    return dataset.to_table(filter=condition)


def _tables(spark, source, out, staged_at, accepted, summary, overwrite) -> IngestSummary:
    """Steps 3 and 4: the tracks ranked on Spark, then the tables written here, slice by slice."""
    started = time.perf_counter()
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from segue.data.ingest import ROW_GROUP_ROWS, HashIndex, tracks_table
    from segue.spark.data import collect, exchange_fs

    # Tracks: each hash's least staged appearance (a shuffle by hash of integers only: each task
    # staged a track once, or a few times), collected; then those appearances' URIs and metadata
    # read here from the staged files (a filter on the appearance: joining the strings on Spark
    # cost 19 s at 100K playlists, reading them here 2 s). Two URIs under one hash would merge
    # two tracks; their second hashes differ: refused.
    winners = collect(
        _read_staged(spark, staged_at, "tracks")
        .filter(F.shiftright("key", 32).isin(accepted))
        .groupBy("h")
        .agg(F.min("key").alias("key"), F.min("h2").alias("_least"), F.max("h2").alias("_most"))
    )
    clash = pc.not_equal(winners.column("_least"), winners.column("_most"))
    if pc.any(clash).as_py():
        h = winners.filter(clash).column("h")[0].as_py()
        uris = sorted(
            set(_staged_tracks(staged_at, pc.field("h") == h)[schema.TRACK_URI].to_pylist())
        )
        raise SegueError(
            f"{source}: two different track URIs share a 64-bit hash ({' and '.join(uris[:2])}); "
            "this is astronomically unlikely — please report it"
        )
    firsts = _staged_tracks(staged_at, pc.field("key").isin(winners.column("key")))
    firsts = firsts.take(pa.array(np.argsort(firsts.column("key").to_numpy(), kind="stable")))
    # The rank of a track's first appearance is its id, as the local engine assigns ids.
    tracks = tracks_table(firsts.select(_META))
    ids = HashIndex()  # hash → track id; vectorised probes, O(1) per entry
    ids.put(
        firsts.column("h").to_numpy().view(np.uint64), np.arange(tracks.num_rows, dtype=np.int32)
    )
    log.info("ranked %d tracks [%.1f s]", tracks.num_rows, time.perf_counter() - started)

    fs, base = exchange_fs(staged_at)
    n_entries, n_playlists = 0, 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        pq.write_table(tracks, tmp / schema.TRACKS_FILE, compression="zstd")
        with (
            contextlib.ExitStack() as stack,
            pq.ParquetWriter(
                tmp / schema.PLAYLIST_TRACKS_FILE,
                schema.PLAYLIST_TRACKS_SCHEMA,
                compression="zstd",
            ) as entries_out,
            pq.ParquetWriter(
                tmp / schema.PLAYLISTS_FILE, schema.PLAYLISTS_SCHEMA, compression="zstd"
            ) as playlists_out,
        ):
            # Row groups as the local engine writes them: 4M entries, the playlists whole up to
            # pyarrow's default of 1Mi rows.
            entries_out = _RowGroups(entries_out, ROW_GROUP_ROWS)
            playlists_out = _RowGroups(playlists_out, 1 << 20)
            bar = stack.enter_context(progress("writing the tables", len(accepted), "slices"))
            for index in accepted:  # in slice order
                bar.advance(1)
                entries = pq.read_table(
                    fs.open_input_file(f"{base}/entries/slice-{index:06d}.parquet")
                )
                track_ids = ids.get(entries.column("h").to_numpy().view(np.uint64))
                if (track_ids < 0).any():  # a staged entry without its track: a bug
                    raise AssertionError(f"slice {index}: entries without a staged track")
                entries_out.write(
                    pa.table(
                        [entries.column(schema.PID), entries.column(schema.POS), track_ids],
                        schema=schema.PLAYLIST_TRACKS_SCHEMA,
                    )
                )
                n_entries += entries.num_rows
                playlists = pq.read_table(
                    fs.open_input_file(f"{base}/playlists/slice-{index:06d}.parquet")
                ).select([f.name for f in schema.PLAYLISTS_SCHEMA])
                playlists_out.write(playlists.cast(schema.PLAYLISTS_SCHEMA))
                n_playlists += playlists.num_rows
            entries_out.flush()
            playlists_out.flush()
        log.info("wrote %d entries [%.1f s]", n_entries, time.perf_counter() - started)
        write_json(
            tmp / schema.MANIFEST_FILE,
            manifest(
                source,
                tracks,
                n_playlists,
                n_entries,
                summary["files"],
                summary["missing"],
                summary["warnings"],
                summary["skipped"],
            ),
        )
    return IngestSummary(
        out,
        n_playlists,
        tracks.num_rows,
        n_entries,
        summary["skipped"],
        summary["warnings"],
        summary["missing"],
    )
