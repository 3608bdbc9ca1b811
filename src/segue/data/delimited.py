"""Delimited text tables of unknown dialect: which delimiter they use, and reading small ones whole.

Real interaction and tag tables come comma-, tab-, semicolon- or pipe-separated whatever their
suffix says (Last.fm hetrec2011 ships tab-separated ``.dat`` files; European spreadsheet exports
use ``;``). :func:`sniff_delimiter` decides from the file's first lines instead of trusting the
suffix: for each candidate it splits every line (quote-aware, except for tabs) and prefers a
delimiter that gives the same number of fields, more than one, on every line — the header
included, so a comma inside a tab-separated name does not win. Python's ``csv.Sniffer`` was not
used: on short samples it picks letters or spaces, and its answer depends on which character
happens to be most regular rather than on the whole line splitting consistently.

Tab-separated files are read without quoting (as Last.fm and hetrec write them: names may hold
quotes); the others with ``"`` quoting.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import polars as pl

from segue.errors import InputFileError, SegueError

DELIMITERS = (",", "\t", ";", "|")
NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
SAMPLE_BYTES = 64 << 10
SAMPLE_LINES = 20
PARQUET_SUFFIXES = (".parquet", ".pq")


def delimiter_name(delimiter: str) -> str:
    """``"tab"`` for ``"\\t"`` and so on; other characters quoted (``"'#'"``)."""
    return NAMES.get(delimiter, repr(delimiter))


def parse_delimiter(text: str) -> str:
    """The character a ``--delimiter`` value names: one character, or ``tab``/``\\t``, ``comma``,
    ``semicolon``, ``pipe``.

    >>> [parse_delimiter(t) for t in ("tab", "\\\\t", ";", "pipe")]
    ['\\t', '\\t', ';', '|']
    """
    words = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = words.get(text.strip().lower(), text)
    if len(value) != 1 or value in '\r\n"':
        raise SegueError(
            f"--delimiter must be one character (or tab, comma, semicolon, pipe), got {text!r}"
        )
    return value


def quote_char(delimiter: str) -> str | None:
    """The quote character of files with this delimiter: none for tab-separated files."""
    return None if delimiter == "\t" else '"'


def _sample_lines(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(head) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line was cut mid-way
    return [line for line in lines if line.strip()][:SAMPLE_LINES]


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    quoting = csv.QUOTE_NONE if quote_char(delimiter) is None else csv.QUOTE_MINIMAL
    return [len(row) for row in csv.reader(lines, delimiter=delimiter, quoting=quoting)]


def sniff_delimiter(path: Path, candidates: tuple[str, ...] = DELIMITERS) -> str:
    """The delimiter of a text table, from its first lines (see the module docstring).

    A candidate that splits every sampled line into the same number (> 1) of fields beats one
    that does not; then more fields win; then the candidates' order (``,`` first). Without any
    split (a one-column file) the answer is a tab for ``.tsv``/``.tab`` files, else a comma.
    """
    path = Path(path)
    try:
        lines = _sample_lines(path)
    except OSError as exc:
        raise InputFileError(path, f"unreadable ({exc.strerror or exc})") from None
    best, best_key = None, None
    for order, delimiter in enumerate(candidates):
        counts = _field_counts(lines, delimiter) if lines else []
        if not counts or counts[0] < 2:
            continue  # the header (or first row) does not split: not this one
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        key = (consistent == 1.0, consistent, statistics.median(counts), -order)
        if best_key is None or key > best_key:
            best, best_key = delimiter, key
    if best is None:
        return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    return best


def header_columns(path: Path, delimiter: str) -> list[str]:
    """The column names of a text table's first line, stripped of spaces and quotes."""
    lines = _sample_lines(path)
    if not lines:
        return []
    quoting = csv.QUOTE_NONE if quote_char(delimiter) is None else csv.QUOTE_MINIMAL
    row = next(csv.reader(lines[:1], delimiter=delimiter, quoting=quoting))
    return [c.strip().strip('"') for c in row]


def table_columns(path: Path, delimiter: str | None = None) -> list[str]:
    """The column names of a Parquet file or of a text table's header (delimiter sniffed unless given)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return list(pl.read_parquet_schema(path))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputFileError(path, f"not a Parquet file ({str(exc).splitlines()[0]})") from None
    return header_columns(path, delimiter or sniff_delimiter(path))


def read_small_table(
    path: Path, columns: list[str], *, delimiter: str | None = None, what: str = "table"
) -> pl.DataFrame:
    """``columns`` of a table small enough to read whole (a Parquet file, or delimited text with a
    header, its delimiter sniffed unless given), all as strings with spaces stripped.

    Invalid UTF-8 is replaced rather than refused: tag tables in circulation (hetrec2011's
    ``tags.dat``) hold a few Latin-1 names. Errors name the file, the missing columns, the
    columns found and, for text, the delimiter it was read with.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"no such file (the {what})")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputFileError(path, f"not a Parquet file ({str(exc).splitlines()[0]})") from None
        note = ""
    else:
        delimiter = delimiter or sniff_delimiter(path)
        note = f"; read as {delimiter_name(delimiter)}-separated, give --delimiter if that is wrong"
        present = header_columns(path, delimiter)
        missing = [c for c in columns if c not in present]
        if missing:
            raise InputFileError(
                path,
                f"has no column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))} (columns: {', '.join(present)}){note}",
            )
        try:
            frame = pl.read_csv(
                path,
                separator=delimiter,
                quote_char=quote_char(delimiter),
                infer_schema=False,
                encoding="utf8-lossy",
                truncate_ragged_lines=True,
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputFileError(
                path,
                f"unreadable as {delimiter_name(delimiter)}-separated text "
                f"({str(exc).splitlines()[0]})",
            ) from None
        frame.columns = [c.strip().strip('"') for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputFileError(
            path,
            f"has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(frame.columns)}){note}",
        )
    return frame.select([pl.col(c).cast(pl.Utf8).str.strip_chars().alias(c) for c in columns])
