"""Reading MPD slice files: discovery, parsing into Arrow, and the checks the real data obeys.

A slice is decoded by msgspec (faster than orjson on this data) and converted to Arrow with an
explicit type that names every field of the real format, so no per-record Python work happens
and a field absent from a reduced copy simply comes out as nulls, counted per field. Only when
conversion fails (a field of the wrong type) does a slow pass look for the offending record, to
name it.

Decoding a whole file costs about four times its size in memory: fine for the MPD's 33 MB
slices, not for a merged multi-GB file. :func:`slice_parts` therefore streams any file above
``STREAM_ABOVE_BYTES`` with ijson (yajl's C parser, ~190 MB/s) in parts of
``PART_PLAYLISTS`` playlists, each parsed exactly like a slice, so memory stays bounded by the
part whatever the file's size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import ijson
import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from segue.data import schema
from segue.errors import InputFileError

SLICE_PATTERN = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json$")
FULL_MPD_SLICES = 1000
STREAM_ABOVE_BYTES = 256 * 2**20  # files larger than this are streamed in parts
PART_PLAYLISTS = 1000  # playlists per streamed part: the MPD's own slice size


@dataclass(frozen=True)
class SliceFile:
    path: Path | str  # a local path, or the URI of a file Spark reads (hdfs://…, s3a://…)
    start: int  # first pid the name promises
    end: int  # last pid (inclusive)

    @property
    def name(self) -> str:
        return PurePosixPath(str(self.path)).name


def find_slices(directory: Path) -> list[SliceFile]:
    """The ``mpd.slice.<start>-<end>.json`` files in ``directory`` (or its ``data/``), by start."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(directory, "no such directory")
    candidates = list(directory.iterdir())
    if not any(SLICE_PATTERN.match(p.name) for p in candidates) and (directory / "data").is_dir():
        candidates = list((directory / "data").iterdir())  # the MPD zip unpacks into data/
    slices = []
    for path in candidates:
        match = SLICE_PATTERN.match(path.name)
        if match:
            slices.append(SliceFile(path, int(match.group(1)), int(match.group(2))))
    if not slices:
        raise InputFileError(directory, "no MPD slice files (mpd.slice.<start>-<end>.json) found")
    return sorted(slices, key=lambda s: (s.start, s.end))


def _track_type() -> tuple[pa.DataType, pa.DataType]:
    track = pa.struct(
        [
            (schema.POS, pa.int64()),
            (schema.ARTIST_NAME, pa.string()),
            (schema.TRACK_URI, pa.string()),
            (schema.ARTIST_URI, pa.string()),
            (schema.TRACK_NAME, pa.string()),
            (schema.ALBUM_URI, pa.string()),
            (schema.DURATION_MS, pa.int64()),
            (schema.ALBUM_NAME, pa.string()),
        ]
    )
    playlist = pa.struct(
        [
            (schema.NAME, pa.string()),
            (schema.COLLABORATIVE, pa.string()),
            (schema.PID, pa.int64()),
            (schema.MODIFIED_AT, pa.int64()),
            (schema.NUM_TRACKS, pa.int64()),
            (schema.NUM_ALBUMS, pa.int64()),
            (schema.NUM_FOLLOWERS, pa.int64()),
            (schema.NUM_EDITS, pa.int64()),
            (schema.DURATION_MS, pa.int64()),
            (schema.NUM_ARTISTS, pa.int64()),
            (schema.DESCRIPTION, pa.string()),
            ("tracks", pa.list_(track)),
        ]
    )
    return track, playlist


TRACK_TYPE, PLAYLIST_TYPE = _track_type()
_EXPECTED_PY_TYPES = {pa.string(): (str,), pa.int64(): (int,), pa.bool_(): (bool,)}


@dataclass
class ParsedSlice:
    """One slice as columns.

    ``playlists`` has the columns of ``schema.PLAYLISTS_SCHEMA`` (``num_tracks`` as given in the
    file, possibly null); ``lengths`` (int64, [n]) are the actual track counts;
    ``tracks`` has ``schema.TRACK_METADATA_COLUMNS`` plus ``pos`` as given (int64, null when
    absent), one row per entry in file order. ``missing`` counts records lacking each field
    (keys ``playlist.<field>`` and ``track.<field>``).

    A streamed file arrives in parts: ``first`` is the index in the file of the part's first
    playlist and ``last`` marks the file's final part; ``size`` and ``sha256`` describe the
    whole file and are set on the last part only (0 and "" before).
    """

    file: SliceFile
    size: int
    sha256: str
    playlists: pa.Table
    lengths: np.ndarray
    tracks: pa.Table
    missing: dict[str, int] = field(default_factory=dict)
    first: int = 0
    last: bool = True

    @property
    def whole(self) -> bool:
        """True when this is the whole file (not one part of a streamed file)."""
        return self.first == 0 and self.last


def _position(raw: bytes, pos: int) -> str:
    line = raw.count(b"\n", 0, pos) + 1
    column = pos - (raw.rfind(b"\n", 0, pos) + 1) + 1
    return f"line {line}, column {column} (byte {pos:,} of {len(raw):,})"


def _decode(path: Path, raw: bytes) -> object:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        pass
    # msgspec's message lacks a line number; orjson gives the exact position of the failure.
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        pos = min(int(exc.pos), len(raw))
        truncated = pos >= len(raw.rstrip()) - 1
        what = "the file ends early (truncated?)" if truncated else f"invalid JSON: {exc.msg}"
        raise InputFileError(path, what, _position(raw, pos)) from None
    raise InputFileError(path, "invalid JSON")  # pragma: no cover - decoders disagree


def _find_bad_record(path: Path, playlists: list, first: int = 0) -> InputFileError:
    """Slow path after Arrow refused the data: name the first record and field of the wrong type."""
    for i, pl in enumerate(playlists, start=first):
        if not isinstance(pl, dict):
            return InputFileError(
                path, f"expected a playlist object, got {type(pl).__name__}", f"playlist {i}"
            )
        where = f"playlist {i} (pid {pl.get('pid', '?')})"
        for f in PLAYLIST_TYPE:
            if f.name == "tracks":
                continue
            value = pl.get(f.name)
            if value is not None and (
                not isinstance(value, _EXPECTED_PY_TYPES[f.type])
                or (f.type == pa.int64() and isinstance(value, bool))
            ):
                return InputFileError(
                    path, f"field {f.name!r} should be {_type_word(f.type)}, got {value!r}", where
                )
        tracks = pl.get("tracks")
        if tracks is not None and not isinstance(tracks, list):
            return InputFileError(
                path, f"field 'tracks' should be a list, got {type(tracks).__name__}", where
            )
        for j, tr in enumerate(tracks or ()):
            if not isinstance(tr, dict):
                return InputFileError(
                    path, f"expected a track object, got {tr!r}", f"{where}, track {j}"
                )
            for f in TRACK_TYPE:
                value = tr.get(f.name)
                if value is not None and (
                    not isinstance(value, _EXPECTED_PY_TYPES[f.type])
                    or (f.type == pa.int64() and isinstance(value, bool))
                ):
                    return InputFileError(
                        path,
                        f"field {f.name!r} should be {_type_word(f.type)}, got {value!r}",
                        f"{where}, track {j}",
                    )
    return InputFileError(path, "records could not be converted (unknown reason)")


def _type_word(t: pa.DataType) -> str:
    return {pa.string(): "a string", pa.int64(): "an integer", pa.bool_(): "true/false"}[t]


def parse_slice(file: SliceFile) -> ParsedSlice:
    """Parse one whole slice. Raises :class:`InputFileError` naming the file, record and field."""
    path = file.path
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc.strerror})") from None
    return parse_bytes(file, raw)


def parse_bytes(file: SliceFile, raw: bytes) -> ParsedSlice:
    """Parse a whole slice already read into memory (``raw``: the file's bytes), e.g. by Spark
    from any file system it reaches; errors name ``file.path``."""
    path = file.path
    doc = _decode(path, raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("playlists"), list):
        raise InputFileError(path, "expected a JSON object with a 'playlists' list")
    parsed = _parse_playlists(file, doc["playlists"])
    parsed.size, parsed.sha256 = len(raw), hashlib.sha256(raw).hexdigest()
    return parsed


def _parse_playlists(file: SliceFile, playlists: list, first: int = 0) -> ParsedSlice:
    path = file.path
    try:
        array = pa.array(playlists, type=PLAYLIST_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Some copies write `collaborative` as a JSON boolean (the real files use "true"/"false"),
        # sometimes mixed within a file: normalise it per playlist and try again.
        for pl in playlists:
            if isinstance(pl, dict) and isinstance(pl.get(schema.COLLABORATIVE), bool):
                pl[schema.COLLABORATIVE] = "true" if pl[schema.COLLABORATIVE] else "false"
        try:
            array = pa.array(playlists, type=PLAYLIST_TYPE)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise _find_bad_record(path, playlists, first) from None
    return _columns(file, array, first)


@dataclass(frozen=True)
class SlicePart:
    """One unit of parsing work (see :func:`slice_parts`).

    ``raw`` None: the whole file, read by the worker. Otherwise ``raw`` is a JSON list of up to
    ``PART_PLAYLISTS`` playlists of a streamed file, the first being the file's ``first``-th;
    the file's last part carries its ``size`` and ``sha256``. ``error`` (with ``where``) says
    that the stream failed here; parsing the part raises it, like any malformed slice.
    """

    file: SliceFile
    first: int = 0
    raw: bytes | None = None
    last: bool = True
    size: int = 0
    sha256: str = ""
    error: str | None = None
    where: str | None = None


def slice_parts(files: Iterable[SliceFile]) -> Iterator[SlicePart]:
    """The work for ``files``: each file whole, or in streamed parts above ``STREAM_ABOVE_BYTES``."""
    for file in files:
        try:
            size = file.path.stat().st_size
        except OSError:
            size = 0  # the worker's read reports it, naming the file
        if size <= STREAM_ABOVE_BYTES:
            yield SlicePart(file)
        else:
            yield from _stream_parts(file)


class _HashingReader:
    """A binary file that hashes and counts what is read through it (for the manifest)."""

    def __init__(self, f) -> None:
        self.f, self.sha256, self.count = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha256.update(data)
        self.count += len(data)
        return data


def _stream_parts(file: SliceFile) -> Iterator[SlicePart]:
    first, batch, pending = 0, [], None
    try:
        with open(file.path, "rb") as f:
            reader = _HashingReader(f)
            for playlist in ijson.items(reader, "playlists.item", use_float=True):
                batch.append(playlist)
                if len(batch) == PART_PLAYLISTS:
                    if pending is not None:
                        yield pending
                    pending = SlicePart(file, first, orjson.dumps(batch), last=False)
                    first, batch = first + len(batch), []
            reader.read()  # anything after the document (ijson stops at its end)
    except OSError as exc:
        yield SlicePart(file, first, error=f"cannot read ({exc.strerror})")
        return
    except (ijson.JSONError, orjson.JSONEncodeError) as exc:
        if pending is not None:
            yield pending
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"near byte {reader.count:,}, after playlist {first + len(batch) - 1}"
        if "premature EOF" in message or "Incomplete" in message:
            message = "the file ends early (truncated?)"
        else:
            message = f"invalid JSON: {message}"
        yield SlicePart(file, first + len(batch), error=message, where=where)
        return
    if pending is None and not batch:
        yield SlicePart(file, error="expected a JSON object with a non-empty 'playlists' list")
        return
    if batch:
        if pending is not None:
            yield pending
        pending = SlicePart(file, first, orjson.dumps(batch), last=False)
    yield SlicePart(file, pending.first, pending.raw, True, reader.count, reader.sha256.hexdigest())


def parse_part(part: SlicePart) -> ParsedSlice:
    """Parse one :class:`SlicePart`; raises :class:`InputFileError` like :func:`parse_slice`."""
    if part.error is not None:
        raise InputFileError(part.file.path, part.error, part.where)
    if part.raw is None:
        return parse_slice(part.file)
    parsed = _parse_playlists(part.file, msgspec.json.decode(part.raw), part.first)
    parsed.first, parsed.last, parsed.size, parsed.sha256 = (
        part.first,
        part.last,
        part.size,
        part.sha256,
    )
    return parsed


def _columns(file: SliceFile, array: pa.StructArray, first: int = 0) -> ParsedSlice:
    path = file.path
    missing: dict[str, int] = {}
    for f in array.type:
        nulls = array.field(f.name).null_count
        if nulls:
            missing[f"playlist.{f.name}"] = nulls
    pid = array.field(schema.PID)
    if pid.null_count:
        i = int(np.flatnonzero(pid.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputFileError(path, "required field 'pid' is missing", f"playlist {first + i}")
    pid_np = pid.to_numpy()
    tracks_list = array.field("tracks")
    if tracks_list.null_count:
        i = int(np.flatnonzero(tracks_list.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputFileError(
            path, "required field 'tracks' is missing", f"playlist {first + i} (pid {pid_np[i]})"
        )
    too_big = (pid_np < 0) | (pid_np > np.iinfo(np.int32).max)
    if too_big.any():
        i = int(np.flatnonzero(too_big)[0])
        raise InputFileError(
            path,
            f"field 'pid' must be between 0 and 2^31-1, got {pid_np[i]}",
            f"playlist {first + i}",
        )
    lengths = np.diff(tracks_list.offsets.to_numpy()).astype(np.int64)
    flat = tracks_list.flatten()
    for f in flat.type:
        nulls = flat.field(f.name).null_count
        if nulls:
            missing[f"track.{f.name}"] = nulls
    uri = flat.field(schema.TRACK_URI)
    if uri.null_count:
        k = int(np.flatnonzero(uri.is_null().to_numpy(zero_copy_only=False))[0])
        owner = int(np.searchsorted(np.cumsum(lengths), k, side="right"))
        j = k - int(np.concatenate(([0], np.cumsum(lengths)))[owner])
        raise InputFileError(
            path,
            "required field 'track_uri' is missing",
            f"playlist {first + owner} (pid {pid_np[owner]}), track {j}",
        )

    lowered = pc.utf8_lower(array.field(schema.COLLABORATIVE))
    collab = pc.if_else(
        pc.equal(lowered, "true"),
        True,
        pc.if_else(pc.equal(lowered, "false"), False, pa.scalar(None, pa.bool_())),
    )
    playlists = pa.table(
        {
            schema.PID: pid.cast(pa.int32()),
            schema.NAME: array.field(schema.NAME),
            schema.DESCRIPTION: array.field(schema.DESCRIPTION),
            schema.COLLABORATIVE: collab,
            schema.MODIFIED_AT: array.field(schema.MODIFIED_AT),
            schema.NUM_TRACKS: _int32(array.field(schema.NUM_TRACKS)),
            schema.NUM_ALBUMS: _int32(array.field(schema.NUM_ALBUMS)),
            schema.NUM_FOLLOWERS: _int32(array.field(schema.NUM_FOLLOWERS)),
            schema.NUM_EDITS: _int32(array.field(schema.NUM_EDITS)),
            schema.DURATION_MS: array.field(schema.DURATION_MS),
            schema.NUM_ARTISTS: _int32(array.field(schema.NUM_ARTISTS)),
        }
    )
    tracks = pa.table(
        {name: flat.field(name) for name in (schema.POS, *schema.TRACK_METADATA_COLUMNS)}
    )
    return ParsedSlice(file, 0, "", playlists, lengths, tracks, missing)


def _int32(values: pa.Array) -> pa.Array:
    # Counts in real files fit easily; a value that does not is clipped rather than wrapped.
    clipped = pc.min_element_wise(pc.max_element_wise(values, -(2**31)), 2**31 - 1)
    return clipped.cast(pa.int32())


@dataclass(frozen=True)
class Problem:
    """A violated invariant: where and what. ``severity`` is "error" or "warning"."""

    file: str
    where: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.where}: {self.message}"
            if self.where
            else f"{self.file}: {self.message}"
        )


def check_slice(parsed: ParsedSlice) -> list[Problem]:
    """The MPD's invariants, vectorised: counts, length range, pos sequence, pid range, uniqueness."""
    file = parsed.file
    problems: list[Problem] = []
    pid = parsed.playlists.column(schema.PID).to_numpy()
    n = len(pid)

    def add(mask: np.ndarray, message, severity="error") -> None:
        for i in np.flatnonzero(mask)[:5]:
            problems.append(
                Problem(
                    file.name, f"playlist {parsed.first + i} (pid {pid[i]})", message(i), severity
                )
            )
        extra = int(mask.sum()) - 5
        if extra > 0:
            problems.append(
                Problem(
                    file.name, "", f"... and {extra} more playlists with the same problem", severity
                )
            )

    if parsed.whole:  # a streamed file's count is checked once its last part is in
        problems += count_problems(file, n)
    add(
        (pid < file.start) | (pid > file.end),
        lambda i: f"pid {pid[i]} is outside the slice's range {file.start}-{file.end}",
    )
    uniq, counts = np.unique(pid, return_counts=True)
    dup = np.isin(pid, uniq[counts > 1])
    add(
        dup,
        lambda i: (
            f"pid {pid[i]} appears {counts[np.searchsorted(uniq, pid[i])]} times in this file"
        ),
    )
    lengths = parsed.lengths
    num_tracks = parsed.playlists.column(schema.NUM_TRACKS)
    if num_tracks.null_count < n:
        declared = num_tracks.to_numpy(zero_copy_only=False)
        declared = (
            np.where(np.isnan(declared.astype(float)), lengths, declared)
            if num_tracks.null_count
            else declared
        )
        add(
            declared != lengths,
            lambda i: f"field 'num_tracks' is {int(declared[i])} but it has {lengths[i]} tracks",
        )
    add(
        (lengths < 5) | (lengths > 250),
        lambda i: f"has {lengths[i]} tracks; MPD playlists have 5 to 250",
    )
    pos = parsed.tracks.column(schema.POS)
    if pos.null_count < len(pos):
        pos_np = pos.to_numpy(zero_copy_only=False)
        pos_np = (
            np.where(np.isnan(pos_np.astype(float)), -1, pos_np).astype(np.int64)
            if pos.null_count
            else pos_np
        )
        owner = np.repeat(np.arange(n), lengths)
        index_in_list = (
            np.arange(len(pos_np)) - np.concatenate(([0], np.cumsum(lengths)))[:-1][owner]
        )
        bad = np.zeros(n, dtype=bool)
        bad[owner[pos_np != index_in_list]] = True
        add(bad, lambda i: "field 'pos' does not run 0, 1, 2, … in list order")
    return problems


def count_problems(file: SliceFile, n: int) -> list[Problem]:
    """The file holds as many playlists as its name promises (``n`` counted)."""
    expected = file.end - file.start + 1
    if n == expected:
        return []
    return [
        Problem(
            file.name,
            "",
            f"has {n} playlists; its name promises {expected} (pids {file.start}-{file.end})",
        )
    ]
