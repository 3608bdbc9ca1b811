"""Readers of listening sources: each turns files into :class:`~segue.data.listening_ingest.PlayBatch` es.

Formats (``segue ingest sessions SOURCE --format …``; ``auto`` picks by what SOURCE holds):

``generated``
    A directory written by ``segue generate sessions`` (``raw_sessions.csv`` + catalogs).
``spotify``
    Spotify's account data export: ``StreamingHistory*.json`` files, each a JSON array of
    ``{"endTime": "2020-05-01 12:34", "artistName", "trackName", "msPlayed"}`` as Spotify ships
    it (UTC, minute precision). The play's start is ``endTime − msPlayed``. The export holds one
    account and no user name: the user key is ``--user`` (default: the directory's name). The
    *extended* streaming history (``Streaming_History_Audio_*.json`` / ``endsong_*.json``: ``ts``,
    ``username``, ``ms_played``, ``master_metadata_track_name``, ``…_album_artist_name``,
    ``spotify_track_uri``) is read too; its podcast episodes (no track) are left out, counted.
    Neither gives track durations: completion is unknown and the edge weight falls back to the
    normalised play count (see :mod:`segue.data.sessions`).
``lastfm``
    Last.fm scrobbles as tab-separated lines ``user, timestamp (ISO 8601), artist MBID, artist,
    track MBID, track`` — the Last.fm-1K dataset's format, no header (a header line is
    recognised and skipped), no quoting (names may contain quotes). MBIDs identify tracks and
    artists when present, else the names do. No ms_played, no durations.
``table``
    A generic interactions table, delimited text with a header (``.csv``, ``.dat``, …; the
    delimiter — comma, tab, ``;`` or ``|`` — is sniffed from the first lines unless
    ``--delimiter`` names it; see :mod:`segue.data.delimited`) or Parquet: ``--user-col`` and
    ``--item-col`` name the key columns; ``--timestamp-col`` makes every row one play at that time
    (ISO strings, or numbers: seconds if below 10^11, else milliseconds); without it the table is
    counts only (``--count-col``, else one per row) and has no sessions. Optional:
    ``--ms-played-col``, ``--duration-col``, ``--artist-col``, ``--name-col``, and ``--genres``:
    a second table giving the items genres (e.g. Last.fm hetrec2011's ``user_taggedartists.dat``
    with ``--genre-col tagID --genre-names tags.dat``; see :mod:`segue.data.item_genres`).

Every reader streams (CSV in blocks, Parquet by row group, JSON file by file) and reports bad
input as one :class:`InputFileError` naming the file, the line or record, and the field. With
``skip_bad`` a malformed line (wrong number of fields, a missing key) is skipped and counted in
the summary and ``manifest.json`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segue.data import schema
from segue.data.delimited import (
    PARQUET_SUFFIXES,
    delimiter_name,
    header_columns,
    quote_char,
    sniff_delimiter,
)
from segue.data.item_genres import MIN_APPLICATIONS, TOP_GENRES, item_genres
from segue.data.listening_ingest import (
    PLAY_COLUMNS,
    ListeningIngestSummary,
    ListeningSource,
    PlayBatch,
    ingest_listening,
)
from segue.data.synthetic import sessions as generated
from segue.errors import InputFileError, SegueError

FORMATS = ("auto", "generated", "spotify", "lastfm", "table")
BLOCK_BYTES = 16 << 20
KEY_SEPARATOR = "\x1f"  # between artist and track name in keys built from names
MAX_WARNINGS = 20


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def play_frame(n: int, **columns) -> pl.DataFrame:
    """A frame with every :data:`PLAY_COLUMNS` column (null where not given)."""
    return pl.DataFrame(
        {
            name: columns[name] if name in columns else pl.Series(name, [None] * n, dtype=dtype)
            for name, dtype in PLAY_COLUMNS.items()
        },
        schema=PLAY_COLUMNS,
    )


class DelimitedFile:
    """Stream a delimited text file as string columns, in blocks, with each row's line number.

    ``names``: column names when the file has no header (else the header gives them);
    ``skip_bad``: skip lines with the wrong number of fields (counted in ``source``) instead of
    stopping. Line numbers assume one record per line (true of every format read here).
    """

    def __init__(
        self,
        path: Path,
        source: ListeningSource,
        *,
        delimiter: str = ",",
        quote_char: str | bool = '"',
        escape_char: str | bool = False,
        names: list[str] | None = None,
        skip_header: bool = False,
        skip_bad: bool = False,
        block_bytes: int = BLOCK_BYTES,
    ):
        self.path, self.source = Path(path), source
        self.delimiter, self.quote_char, self.escape_char = delimiter, quote_char, escape_char
        self.names, self.skip_header, self.skip_bad, self.block_bytes = (
            names,
            skip_header,
            skip_bad,
            block_bytes,
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, pl.DataFrame, int]]:
        bad: list[int] = []
        refused: list[InputFileError] = []

        def on_invalid(row) -> str:
            if not self.skip_bad:  # raised below: an exception cannot cross pyarrow's callback
                refused.append(
                    InputFileError(
                        self.path,
                        f"expected {row.expected_columns} fields, found {row.actual_columns} "
                        f"({row.text[:80]!r}); pass --skip-bad to skip such lines",
                        where=f"line {row.number}",
                    )
                )
                return "error"
            bad.append(row.number)
            self.source.skipped_rows += 1
            if len(self.source.warnings) < MAX_WARNINGS:
                self.source.warnings.append(
                    f"{self.path.name}: line {row.number}: skipped, "
                    f"{row.actual_columns} fields instead of {row.expected_columns}"
                )
            return "skip"

        header_lines = 1 if (self.names is None or self.skip_header) else 0
        read = pacsv.ReadOptions(
            use_threads=False,
            block_size=self.block_bytes,
            column_names=self.names,
            skip_rows=1 if (self.names is not None and self.skip_header) else 0,
        )
        parse = pacsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char=self.quote_char,
            escape_char=self.escape_char,
            newlines_in_values=False,
            invalid_row_handler=on_invalid,
        )
        with open(self.path, "rb") as handle:
            try:
                if self.names is None:
                    header = handle.readline().decode("utf-8", "replace").rstrip("\r\n")
                    columns = [c.strip().strip('"') for c in header.split(self.delimiter)]
                    handle.seek(0)
                else:
                    columns = self.names
                convert = pacsv.ConvertOptions(
                    column_types=dict.fromkeys(columns, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                )
                reader = pacsv.open_csv(
                    handle, read_options=read, parse_options=parse, convert_options=convert
                )
                next_line = header_lines + 1
                position = 0
                for batch in reader:
                    n = batch.num_rows
                    candidates = np.arange(next_line, next_line + n + len(bad), dtype=np.int64)
                    lines = candidates[~np.isin(candidates, bad)][:n]
                    next_line = int(lines[-1]) + 1 if n else next_line
                    bad = [b for b in bad if b >= next_line]
                    frame = pl.from_arrow(pa.Table.from_batches([batch]))
                    frame.columns = [c.strip().strip('"') for c in frame.columns]
                    done = handle.tell()
                    yield lines, frame, done - position
                    position = done
            except pa.ArrowInvalid as exc:
                if refused:
                    raise refused[0] from None
                raise InputFileError(self.path, f"unreadable as delimited text ({exc})") from None


def require_columns(
    path: Path, present: list[str], wanted: list[str], *, note: str | None = None
) -> None:
    """An error naming ``path``, the ``wanted`` columns it lacks, those it has, and ``note``."""
    missing = [c for c in wanted if c not in present]
    if missing:
        raise InputFileError(
            path,
            f"has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(present)})" + (f"; {note}" if note else ""),
        )


def parse_int(
    path: Path, frame: pl.DataFrame, column: str, lines: np.ndarray, *, required: bool
) -> pl.Series:
    """Int64 from a string (or numeric) column; a bad or (if ``required``) missing value is an error."""
    raw = frame[column]
    if raw.dtype == pl.Utf8:
        text = raw.str.strip_chars()
        values = text.cast(pl.Float64, strict=False)
        bad = values.is_null() & text.is_not_null() & (text != "")
        bad = bad | (values.is_not_null() & ~values.is_finite().fill_null(True))
    else:
        values = raw.cast(pl.Float64, strict=False)
        bad = values.is_null() & raw.is_not_null()
    if bad.any():
        i = int(bad.arg_max())
        raise InputFileError(
            path, f"field {column}: {raw[i]!r} is not a number", where=f"line {lines[i]}"
        )
    if required and values.is_null().any():
        i = int(values.is_null().arg_max())
        raise InputFileError(path, f"field {column} is empty", where=f"line {lines[i]}")
    return values.round(0).cast(pl.Int64)


def parse_time(
    path: Path,
    frame: pl.DataFrame,
    column: str,
    lines: np.ndarray,
    fmt: str | None = None,
    *,
    unit: str = "line",
    label: str | None = None,
) -> pl.Series:
    """Int64 ms since the epoch (UTC) from ISO-like strings (a zone-less time is taken as UTC) or
    numbers (seconds below 10^11, else milliseconds). Missing or unparseable values are errors
    naming the ``unit`` ("line" or "record") and the field (``label``, default ``column``)."""
    label = label or column
    raw = frame[column]
    if raw.dtype == pl.Utf8:
        numeric = raw.str.strip_chars().cast(pl.Float64, strict=False)
        if numeric.is_not_null().all():
            raw = numeric
    if raw.dtype != pl.Utf8:
        values = raw.cast(pl.Float64, strict=False)
        if values.is_null().any():
            i = int(values.is_null().arg_max())
            raise InputFileError(path, f"field {label} is empty", where=f"{unit} {lines[i]}")
        seconds = values.abs().max() < 1e11
        return (values * (1000.0 if seconds else 1.0)).round(0).cast(pl.Int64)
    text = raw.str.strip_chars()
    if text.is_null().any():
        i = int(text.is_null().arg_max())
        raise InputFileError(path, f"field {label} is empty", where=f"{unit} {lines[i]}")
    hint = "" if fmt else " (give --time-format if the format is unusual)"
    try:
        parsed = text.str.to_datetime(format=fmt, time_unit="ms", strict=False)
    except pl.exceptions.PolarsError:
        # The format is inferred from the first value: that one is not a time we know.
        raise InputFileError(
            path, f"field {label}: {text[0]!r} is not a time{hint}", where=f"{unit} {lines[0]}"
        ) from None
    if parsed.dtype.time_zone is not None:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    if parsed.is_null().any():
        i = int(parsed.is_null().arg_max())
        raise InputFileError(
            path,
            f"field {label}: {text[i]!r} is not a time"
            + (" (formats may not mix within a file)" if not fmt else ""),
            where=f"{unit} {lines[i]}",
        )
    return parsed.cast(pl.Int64)


def _files(source: Path, patterns: tuple[str, ...]) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InputFileError(source, "no such file or directory")
    files = sorted({p for pattern in patterns for p in source.glob(pattern) if p.is_file()})
    if not files:
        raise InputFileError(source, f"holds no {' or '.join(patterns)} files")
    return files


def _size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files)


# --------------------------------------------------------------------------------------------
# Generated data
# --------------------------------------------------------------------------------------------


def _read_small_csv(path: Path, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, schema_overrides=columns, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(path, f"unreadable ({str(exc).splitlines()[0]})") from None
    require_columns(path, frame.columns, list(columns))
    frame = frame.select(list(columns))
    for name, dtype in columns.items():
        if dtype != pl.Utf8:
            lines = np.arange(2, frame.height + 2)
            values = (
                parse_int(path, frame, name, lines, required=True)
                if dtype == pl.Int64
                else frame[name].cast(pl.Float64, strict=False)
            )
            if dtype != pl.Int64 and (values.is_null() & frame[name].is_not_null()).any():
                i = int((values.is_null() & frame[name].is_not_null()).arg_max())
                raise InputFileError(
                    path, f"field {name}: {frame[name][i]!r} is not a number", where=f"line {i + 2}"
                )
            frame = frame.with_columns(values.alias(name))
    return frame


def generated_source(directory: Path, *, skip_bad: bool = False) -> ListeningSource:
    """The files of ``segue generate sessions`` (see :mod:`segue.data.synthetic.sessions`)."""
    directory = Path(directory)
    raw = directory / generated.RAW_SESSIONS_CSV
    if not raw.exists():
        raise InputFileError(
            raw, "missing; is this a directory written by `segue generate sessions`?"
        )
    s = pl.Utf8
    source = ListeningSource(
        f"generated sessions in {directory}",
        "generated",
        lambda: iter(()),
        raw.stat().st_size,
        catalog_file=directory / generated.TRACKS_CSV,
    )
    if (directory / generated.USERS_CSV).exists():
        users = _read_small_csv(directory / generated.USERS_CSV, {"user_id": s, "user_type": s})
        bad = ~users["user_type"].is_in(list(schema.USER_TYPES)) & users["user_type"].is_not_null()
        if bad.any():
            i = int(bad.arg_max())
            raise InputFileError(
                directory / generated.USERS_CSV,
                f"field user_type: {users['user_type'][i]!r} is not "
                f"one of {', '.join(schema.USER_TYPES)}",
                where=f"line {i + 2}",
            )
        source.users = users.rename({"user_id": "user_key"})
    if (directory / generated.TRACKS_CSV).exists():
        tracks = _read_small_csv(
            directory / generated.TRACKS_CSV,
            {
                "track_id": s,
                "track_name": s,
                "artist_id": s,
                "artist_name": s,
                "duration_ms": pl.Int64,
            },
        )
        source.tracks = tracks.rename({"track_id": "track_key", "artist_id": "artist_key"})
    if (directory / generated.GENRES_CSV).exists():
        genres = _read_small_csv(
            directory / generated.GENRES_CSV, {"genre_id": pl.Int64, "genre_name": s}
        )
        if genres["genre_id"].to_list() != list(range(genres.height)):
            raise InputFileError(
                directory / generated.GENRES_CSV, "genre_id is not 0..n-1 in order"
            )
        source.genre_names = genres["genre_name"].to_list()
        for file, key, attr in (
            (generated.SONG_GENRES_CSV, "track_id", "track_genres"),
            (generated.ARTIST_GENRES_CSV, "artist_id", "artist_genres"),
        ):
            if (directory / file).exists():
                pairs = _read_small_csv(directory / file, {key: s, "genre_id": pl.Int64})
                setattr(source, attr, pairs.rename({key: key.replace("_id", "_key")}))
        if (directory / generated.USER_GENRE_PREFERENCES_CSV).exists():
            prefs = _read_small_csv(
                directory / generated.USER_GENRE_PREFERENCES_CSV,
                {"user_id": s, "genre_id": pl.Int64, "affinity": pl.Float64},
            )
            source.user_genre_preferences = prefs.rename({"user_id": "user_key"})

    def batches() -> Iterator[PlayBatch]:
        for lines, frame, nbytes in DelimitedFile(raw, source, skip_bad=skip_bad):
            require_columns(raw, frame.columns, ["user_id", "track_id", "timestamp", "ms_played"])
            keep = frame["user_id"].is_not_null() & frame["track_id"].is_not_null()
            if not keep.all():
                if not skip_bad:
                    i = int((~keep).arg_max())
                    field = "user_id" if frame["user_id"][i] is None else "track_id"
                    raise InputFileError(raw, f"field {field} is empty", where=f"line {lines[i]}")
                _skip(source, raw, lines[~keep.to_numpy()], "no user_id or track_id")
                frame, lines = frame.filter(keep), lines[keep.to_numpy()]
            n = frame.height
            duration = (
                parse_int(raw, frame, "track_duration_ms", lines, required=False)
                if "track_duration_ms" in frame.columns
                else pl.Series([None] * n, dtype=pl.Int64)
            )
            yield PlayBatch(
                raw,
                play_frame(
                    n,
                    user_key=frame["user_id"],
                    track_key=frame["track_id"],
                    timestamp=parse_time(raw, frame, "timestamp", lines),
                    ms_played=parse_int(raw, frame, "ms_played", lines, required=True),
                    duration_ms=duration,
                    line=pl.Series(lines),
                ),
                nbytes,
            )

    source.batches = batches
    return source


def _skip(source: ListeningSource, path: Path, lines: np.ndarray, why: str) -> None:
    source.skipped_rows += len(lines)
    for line in lines[: max(0, MAX_WARNINGS - len(source.warnings))].tolist():
        source.warnings.append(f"{path.name}: line {line}: skipped, {why}")


# --------------------------------------------------------------------------------------------
# Spotify
# --------------------------------------------------------------------------------------------


class _AccountPlay(msgspec.Struct):
    endTime: str
    artistName: str | None
    trackName: str | None
    msPlayed: int


class _ExtendedPlay(msgspec.Struct):
    ts: str
    ms_played: int
    master_metadata_track_name: str | None = None
    master_metadata_album_artist_name: str | None = None
    spotify_track_uri: str | None = None
    username: str | None = None


ACCOUNT_FIELDS = {
    "endTime": pl.Utf8,
    "artistName": pl.Utf8,
    "trackName": pl.Utf8,
    "msPlayed": pl.Int64,
}
EXTENDED_FIELDS = {
    "ts": pl.Utf8,
    "username": pl.Utf8,
    "ms_played": pl.Int64,
    "master_metadata_track_name": pl.Utf8,
    "master_metadata_album_artist_name": pl.Utf8,
    "spotify_track_uri": pl.Utf8,
}
SPOTIFY_PATTERNS = ("StreamingHistory*.json", "Streaming_History_Audio_*.json", "endsong*.json")


def _read_json_records(path: Path, fields: dict, struct: type) -> pl.DataFrame:
    """A Spotify JSON array as columns; a record of the wrong shape is named by msgspec's path."""
    data = path.read_bytes()
    try:
        frame = pl.read_json(data, schema=fields)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        try:
            msgspec.json.decode(data, type=list[struct])
        except msgspec.ValidationError as detail:
            raise InputFileError(
                path, f"{detail} (expected Spotify's {', '.join(fields)} records)"
            ) from None
        except msgspec.DecodeError as detail:
            raise InputFileError(path, f"not valid JSON ({detail})") from None
        raise InputFileError(path, f"unreadable ({str(exc).splitlines()[0]})") from None
    return frame


def spotify_source(
    path: Path, *, user: str | None = None, skip_bad: bool = False
) -> ListeningSource:
    """A Spotify export: a directory of streaming-history files, or one file."""
    path = Path(path)
    files = _files(path, SPOTIFY_PATTERNS) if path.is_dir() else [path]
    default_user = user or (path.name if path.is_dir() else path.parent.name) or "me"
    source = ListeningSource(f"Spotify export {path}", "spotify", lambda: iter(()), _size(files))

    def batches() -> Iterator[PlayBatch]:
        for file in files:
            head = file.read_bytes()[:4096]
            extended = b'"ts"' in head or b'"ms_played"' in head
            fields = EXTENDED_FIELDS if extended else ACCOUNT_FIELDS
            frame = _read_json_records(file, fields, _ExtendedPlay if extended else _AccountPlay)
            records = np.arange(
                frame.height, dtype=np.int64
            )  # 0-based, as msgspec's $[i] names them
            if extended:
                frame = frame.rename(
                    {
                        "ts": "endTime",
                        "ms_played": "msPlayed",
                        "master_metadata_track_name": "trackName",
                        "master_metadata_album_artist_name": "artistName",
                    }
                )
            required = ["endTime", "msPlayed"]
            for field in required:
                missing = frame[field].is_null()
                if missing.any():
                    i = int(missing.arg_max())
                    original = (
                        {"endTime": "ts", "msPlayed": "ms_played"}[field] if extended else field
                    )
                    if not skip_bad:
                        raise InputFileError(
                            file, f"field {original} is missing", where=f"record {records[i]}"
                        )
                    _skip_records(source, file, records[missing.to_numpy()], f"no {original}")
                    frame, records = frame.filter(~missing), records[~missing.to_numpy()]
            no_track = frame["trackName"].is_null()
            if no_track.any():  # podcast episodes (extended) or records without a track name
                if extended or skip_bad:
                    source.skipped_rows += int(no_track.sum())
                    if extended:
                        source.warnings.append(
                            f"{file.name}: {int(no_track.sum()):,} records without a track "
                            "(podcast episodes) left out"
                        )
                    else:
                        _skip_records(source, file, records[no_track.to_numpy()], "no trackName")
                    frame, records = frame.filter(~no_track), records[~no_track.to_numpy()]
                else:
                    raise InputFileError(
                        file,
                        "field trackName is missing",
                        where=f"record {records[int(no_track.arg_max())]}",
                    )
            negative = frame["msPlayed"] < 0
            if negative.any():
                raise InputFileError(
                    file,
                    f"field msPlayed: {frame['msPlayed'][int(negative.arg_max())]} is negative",
                    where=f"record {records[int(negative.arg_max())]}",
                )
            end = parse_time(
                file,
                frame,
                "endTime",
                records,
                unit="record",
                label="ts" if extended else "endTime",
            )
            artist = frame["artistName"].fill_null("")
            names = artist + KEY_SEPARATOR + frame["trackName"]
            track_key = frame["spotify_track_uri"].fill_null(names) if extended else names
            user_key = (
                frame["username"].fill_null(default_user)
                if extended
                else pl.Series([default_user] * frame.height, dtype=pl.Utf8)
            )
            yield PlayBatch(
                file,
                play_frame(
                    frame.height,
                    user_key=user_key,
                    track_key=track_key,
                    track_name=frame["trackName"],
                    artist_key=frame["artistName"],
                    artist_name=frame["artistName"],
                    timestamp=end - frame["msPlayed"],
                    ms_played=frame["msPlayed"],
                    line=pl.Series(records),
                ),
                file.stat().st_size,
            )

    source.batches = batches
    return source


def _skip_records(source: ListeningSource, path: Path, records: np.ndarray, why: str) -> None:
    source.skipped_rows += len(records)
    for r in records[: max(0, MAX_WARNINGS - len(source.warnings))].tolist():
        source.warnings.append(f"{path.name}: record {r}: skipped, {why}")


# --------------------------------------------------------------------------------------------
# Last.fm
# --------------------------------------------------------------------------------------------

LASTFM_COLUMNS = ["user_id", "timestamp", "artist_mbid", "artist_name", "track_mbid", "track_name"]


def lastfm_source(path: Path, *, skip_bad: bool = False) -> ListeningSource:
    """Last.fm scrobble TSVs (the Last.fm-1K layout): a file or a directory of ``*.tsv``."""
    path = Path(path)
    files = _files(path, ("*.tsv", "*.tsv.txt"))
    source = ListeningSource(f"Last.fm scrobbles {path}", "lastfm", lambda: iter(()), _size(files))

    def batches() -> Iterator[PlayBatch]:
        for file in files:
            with open(file, "rb") as handle:
                first = handle.readline().decode("utf-8", "replace").lower()
            header = (
                bool(re.match(r"\s*(user|userid|user_id)\s*\t", first)) and "timestamp" in first
            )
            reader = DelimitedFile(
                file,
                source,
                delimiter="\t",
                quote_char=False,
                names=LASTFM_COLUMNS,
                skip_header=header,
                skip_bad=skip_bad,
            )
            for lines, frame, nbytes in reader:
                track_name = frame["track_name"]
                key_missing = frame["user_id"].is_null() | (
                    track_name.is_null() & frame["track_mbid"].is_null()
                )
                if key_missing.any():
                    if not skip_bad:
                        i = int(key_missing.arg_max())
                        field = "user" if frame["user_id"][i] is None else "track name"
                        raise InputFileError(
                            file,
                            f"field {field} is empty (pass --skip-bad to skip such lines)",
                            where=f"line {lines[i]}",
                        )
                    _skip(source, file, lines[key_missing.to_numpy()], "no user or track")
                    keep = ~key_missing
                    frame, lines = frame.filter(keep), lines[keep.to_numpy()]
                artist = frame["artist_name"]
                names = artist.fill_null("") + KEY_SEPARATOR + frame["track_name"].fill_null("")
                yield PlayBatch(
                    file,
                    play_frame(
                        frame.height,
                        user_key=frame["user_id"],
                        track_key=frame["track_mbid"].fill_null(names),
                        track_name=frame["track_name"],
                        artist_key=frame["artist_mbid"].fill_null(artist),
                        artist_name=artist,
                        timestamp=parse_time(file, frame, "timestamp", lines),
                        line=pl.Series(lines),
                    ),
                    nbytes,
                )

    source.batches = batches
    return source


# --------------------------------------------------------------------------------------------
# Generic tables
# --------------------------------------------------------------------------------------------


def table_source(
    path: Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    count_col: str | None = None,
    timestamp_col: str | None = None,
    ms_played_col: str | None = None,
    duration_col: str | None = None,
    artist_col: str | None = None,
    name_col: str | None = None,
    time_format: str | None = None,
    delimiter: str | None = None,
    skip_bad: bool = False,
    genres: Path | None = None,
    genre_item_col: str | None = None,
    genre_col: str | None = None,
    genre_names: Path | None = None,
    genre_top: int = TOP_GENRES,
    genre_min_count: int = MIN_APPLICATIONS,
) -> ListeningSource:
    """A delimited text (with a header) or Parquet interactions table; columns named by the
    arguments. ``delimiter``: sniffed from the first lines unless given (``,``, tab, ``;``, ``|``).
    ``genres``: a table of (``genre_item_col``, default ``item_col``; ``genre_col``, default
    ``genre``) rows giving the items genres (:func:`segue.data.item_genres.item_genres`)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    if count_col and timestamp_col:
        raise SegueError(
            "give --timestamp-col (one play per row) or --count-col (counts without times), not both"
        )
    if genres is None and (genre_item_col or genre_col or genre_names):
        raise SegueError("--genre-item-col, --genre-col and --genre-names need --genres FILE")
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    counts_only = timestamp_col is None
    source = ListeningSource(
        f"interactions table {path}",
        "table",
        lambda: iter(()),
        path.stat().st_size,
        counts_only=counts_only,
    )
    wanted = [
        c
        for c in (
            user_col,
            item_col,
            count_col,
            timestamp_col,
            ms_played_col,
            duration_col,
            artist_col,
            name_col,
        )
        if c
    ]
    given_delimiter = delimiter  # the genre tables are sniffed on their own unless one is given
    if not parquet:
        delimiter = delimiter or sniff_delimiter(path)
        # Checked before the first block is parsed: with the wrong delimiter the header is one
        # column, and the message should say how the file was read.
        require_columns(
            path,
            header_columns(path, delimiter),
            wanted,
            note=f"read as {delimiter_name(delimiter)}-separated; give --delimiter if that is wrong",
        )
    if genres is not None:
        found = item_genres(
            genres,
            item_col=genre_item_col or item_col,
            genre_col=genre_col or "genre",
            names=genre_names,
            top=genre_top,
            min_count=genre_min_count,
            delimiter=given_delimiter,
        )
        source.track_genres = found.pairs.rename({"item_key": "track_key"})
        source.genre_names, source.genre_file = found.names, found.file
        source.warnings += found.ignored

    def frames() -> Iterator[tuple[np.ndarray, pl.DataFrame, int]]:
        if not parquet:
            yield from DelimitedFile(
                path,
                source,
                delimiter=delimiter,
                quote_char=quote_char(delimiter) or False,
                skip_bad=skip_bad,
            )
            return
        try:
            handle = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFileError(path, f"not a Parquet file ({exc})") from None
        require_columns(path, handle.schema_arrow.names, wanted)
        row = 0
        per_group = path.stat().st_size // max(handle.num_row_groups, 1)
        for batch in handle.iter_batches(batch_size=1_000_000, columns=wanted):
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            lines = np.arange(
                row + 1, row + 1 + frame.height, dtype=np.int64
            )  # "line" = row number
            row += frame.height
            yield lines, frame, min(per_group, path.stat().st_size)

    def batches() -> Iterator[PlayBatch]:
        for lines, frame, nbytes in frames():
            require_columns(path, frame.columns, wanted)
            keys = {}
            for role, column in (("user", user_col), ("item", item_col)):
                values = frame[column].cast(pl.Utf8).str.strip_chars()
                keys[role] = values.replace("", None)
            missing = keys["user"].is_null() | keys["item"].is_null()
            if missing.any():
                if not skip_bad:
                    i = int(missing.arg_max())
                    column = user_col if keys["user"][i] is None else item_col
                    raise InputFileError(
                        path,
                        f"field {column} is empty (pass --skip-bad to skip such rows)",
                        where=f"line {lines[i]}",
                    )
                _skip(source, path, lines[missing.to_numpy()], f"no {user_col} or {item_col}")
                keep = ~missing
                frame, lines = frame.filter(keep), lines[keep.to_numpy()]
                keys = {k: v.filter(keep) for k, v in keys.items()}
            n = frame.height
            columns = {
                "user_key": keys["user"],
                "track_key": keys["item"],
                "line": pl.Series(lines),
            }
            if timestamp_col:
                columns["timestamp"] = parse_time(path, frame, timestamp_col, lines, time_format)
            if count_col:
                columns["count"] = parse_int(path, frame, count_col, lines, required=True)
            if ms_played_col:
                columns["ms_played"] = parse_int(path, frame, ms_played_col, lines, required=False)
            if duration_col:
                columns["duration_ms"] = parse_int(path, frame, duration_col, lines, required=False)
            if artist_col:
                columns["artist_key"] = columns["artist_name"] = frame[artist_col].cast(pl.Utf8)
            if name_col:
                columns["track_name"] = frame[name_col].cast(pl.Utf8)
            yield PlayBatch(path, play_frame(n, **columns), nbytes)

    source.batches = batches
    return source


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """``generated``, ``spotify``, ``lastfm`` or ``table`` from what ``path`` holds."""
    path = Path(path)
    if path.is_dir():
        if (path / generated.RAW_SESSIONS_CSV).exists():
            return "generated"
        if any(path.glob("*.json")):
            return "spotify"
        if any(path.glob("*.tsv")):
            return "lastfm"
        raise InputFileError(
            path,
            "cannot tell its format (no raw_sessions.csv, Spotify *.json or Last.fm *.tsv); "
            "give --format",
        )
    if not path.exists():
        raise InputFileError(path, "no such file or directory")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "spotify"
    if suffix == ".tsv":
        return "lastfm"
    if suffix in (".csv", ".dat", ".txt", ".parquet", ".pq"):
        return "table"
    raise InputFileError(
        path, f"cannot tell the format of a {suffix or 'suffix-less'} file; give --format"
    )


def ingest_sessions(
    source: Path,
    out: Path,
    *,
    format: str = "auto",
    user: str | None = None,
    skip_bad: bool = False,
    **table_options,
) -> ListeningIngestSummary:
    """Read ``source`` in ``format`` and write a listening dataset to ``out``; returns a summary.

    ``table_options`` (format ``table`` only): ``user_col``, ``item_col``, ``count_col``,
    ``timestamp_col``, ``ms_played_col``, ``duration_col``, ``artist_col``, ``name_col``,
    ``time_format``, ``delimiter``, and the genres table's ``genres``, ``genre_item_col``,
    ``genre_col``, ``genre_names``, ``genre_top``, ``genre_min_count`` (see :func:`table_source`).
    """
    if format not in FORMATS:
        raise SegueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    given = {k: v for k, v in table_options.items() if v is not None}
    # Naming a table's columns says what the file is, whatever its suffix (a .tsv need not be Last.fm's).
    table_file = format == "auto" and given and Path(source).is_file()
    kind = "table" if table_file else detect_format(source) if format == "auto" else format
    if given and kind != "table":
        raise SegueError(
            f"{', '.join('--' + k.replace('_', '-') for k in given)} only apply to --format table "
            f"(this source is read as {kind})"
        )
    if user is not None and kind != "spotify":
        raise SegueError(f"--user only applies to Spotify exports (this source is read as {kind})")
    if kind == "generated":
        reader = generated_source(source, skip_bad=skip_bad)
    elif kind == "spotify":
        reader = spotify_source(source, user=user, skip_bad=skip_bad)
    elif kind == "lastfm":
        reader = lastfm_source(source, skip_bad=skip_bad)
    else:
        reader = table_source(source, skip_bad=skip_bad, **given)
    return ingest_listening(reader, out)
