"""RecSys Challenge 2018 submissions: writing them, and checking them as the challenge did.

The format (``submission.csv``, gzipped as ``submission.csv.gz`` for upload) is plain text.
Lines starting with ``#`` and blank lines are ignored; fields are separated by commas and
surrounding whitespace is dropped. The first data line is ``team_info,<team name>,<email>``;
then comes one line per challenge playlist::

    team_info,my team,me@example.com
    1000002,spotify:track:7dZ6dAs6NmJYmHUuLUrxrN,spotify:track:...   (500 track URIs)

Every challenge pid must appear exactly once, with exactly ``n`` (500) distinct track URIs, none
of them a seed track of that playlist, and no pid outside the challenge set may appear.
:func:`check_submission` collects every violation instead of stopping at the first one; each is
a :class:`Violation` whose ``kind`` is one of :data:`VIOLATION_KINDS`:

``unreadable``
    The file is missing, not valid gzip (when named ``.gz`` or starting with the gzip magic
    bytes) or not UTF-8. Reported alone: nothing else can be checked.
``no_team_info``
    The first data line is not a ``team_info`` line (or there is no data line at all).
``bad_team_info``
    A ``team_info`` line without exactly 3 fields, with an empty team name or an email that
    does not look like an address, or a ``team_info`` line after the first data line.
``bad_line``
    A playlist line with empty fields (``,,`` or a trailing comma).
``bad_pid``
    The first field of a playlist line is not a non-negative integer.
``unknown_pid``
    A pid that is not in the challenge set.
``duplicate_pid``
    A pid on a second line.
``missing_pid``
    A challenge pid without a line (reported with ``line`` None).
``wrong_count``
    A playlist line without exactly ``n`` track URIs.
``duplicate_track``
    A track URI listed twice for one playlist.
``seed_track``
    A seed track of the playlist among its recommendations.
``bad_uri``
    A track URI that is not ``spotify:track:`` followed by 22 letters or digits (checked only
    with ``strict_uris=True``, the default; otherwise any non-empty field is taken as a URI).

:func:`write_submission` refuses to write anything :func:`check_submission` would reject for
reasons it can see (it does not know the challenge set). Gzip output is deterministic: the same
input gives byte-identical files.
"""

from __future__ import annotations

import gzip
import operator
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from segue.data import schema
from segue.errors import InputFileError, SegueError
from segue.io import atomic_file

N_TRACKS = 500
"""Track URIs per playlist line in the RecSys Challenge 2018."""

TEAM_INFO = "team_info"

VIOLATION_KINDS: tuple[str, ...] = (
    "unreadable",
    "no_team_info",
    "bad_team_info",
    "bad_line",
    "bad_pid",
    "unknown_pid",
    "duplicate_pid",
    "missing_pid",
    "wrong_count",
    "duplicate_track",
    "seed_track",
    "bad_uri",
)
"""Every ``Violation.kind``, in the order :meth:`SubmissionReport.format_text` lists them."""

_URI_PREFIX = "spotify:track:"
_URI_RE = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
# A whole row of good URIs, checked in one regex call (about 4x faster than URI by URI).
_URI_ROW_RE = re.compile(r"(?:spotify:track:[0-9A-Za-z]{22},)*spotify:track:[0-9A-Za-z]{22}")
_EMAIL_RE = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 16 << 20  # bytes of text per gzip member; fixed so output never depends on cores
_EXAMPLES = 3  # URIs quoted per message
# ASCII characters str.strip() removes; text that is ASCII and has none of them needs no
# stripping (checked with `in`, about 30x faster than str.isprintable on a 18 kB row).
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def is_track_uri(uri: str) -> bool:
    """Whether ``uri`` is a Spotify track URI: ``spotify:track:`` then 22 base-62 characters.

    >>> is_track_uri("spotify:track:7dZ6dAs6NmJYmHUuLUrxrN")
    True
    >>> is_track_uri("spotify:track:7dZ6dAs6NmJYmHUuLUrxr")
    False
    >>> is_track_uri("spotify:album:7dZ6dAs6NmJYmHUuLUrxrN")
    False
    """
    return _URI_RE.fullmatch(uri) is not None


def is_email(text: str) -> bool:
    """Whether ``text`` looks like an email address (``local@domain.tld``, no spaces or commas).

    >>> is_email("me@example.com"), is_email("me@localhost"), is_email("a b@example.com")
    (True, False, False)
    """
    return _EMAIL_RE.fullmatch(text) is not None


def _has_no_whitespace(text: str) -> bool:
    """True when ``text`` is ASCII without whitespace (False may still be harmless)."""
    if not text.isascii():
        return False
    for char in _ASCII_WHITESPACE:
        if char in text:
            return False
    return True


def _location(line: int | None, pid: int | None) -> str:
    if line is not None and pid is not None:
        return f"line {line} (pid {pid})"
    if line is not None:
        return f"line {line}"
    if pid is not None:
        return f"pid {pid}"
    return ""


def _short(text: str, limit: int = 60) -> str:
    """``repr`` of ``text``, cut to about ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(_short(u) for u in items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


@dataclass(frozen=True)
class Violation:
    """One way a submission breaks the rules.

    ``line`` is 1-based in the decompressed text (None for file-level problems and missing
    pids); ``pid`` is None when the line has no readable pid; ``kind`` is one of
    :data:`VIOLATION_KINDS`; ``message`` names the line and pid, then the problem.
    """

    line: int | None
    pid: int | None
    kind: str
    message: str

    @property
    def problem(self) -> str:
        """The message without its ``line N (pid P): `` prefix."""
        where = _location(self.line, self.pid)
        return self.message.removeprefix(f"{where}: ") if where else self.message

    def __str__(self) -> str:
        return self.message


def _violation(kind: str, line: int | None, pid: int | None, problem: str) -> Violation:
    where = _location(line, pid)
    return Violation(line, pid, kind, f"{where}: {problem}" if where else problem)


@dataclass
class SubmissionReport:
    """What :func:`check_submission` found.

    ``rows`` maps each challenge pid seen to its track URIs as read (first line of a pid only;
    empty fields dropped); lines with bad or unknown pids are not in it. ``n_rows`` counts the
    playlist lines read, good or bad. ``team`` and ``email`` come from the ``team_info`` line
    (None when there is none).
    """

    path: Path
    violations: list[Violation] = field(default_factory=list)
    team: str | None = None
    email: str | None = None
    n_rows: int = 0
    rows: dict[int, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the submission breaks no rule."""
        return not self.violations

    def counts(self) -> dict[str, int]:
        """Number of violations per kind, in :data:`VIOLATION_KINDS` order (kinds seen only)."""
        seen = Counter(v.kind for v in self.violations)
        return {kind: seen[kind] for kind in VIOLATION_KINDS if seen[kind]}

    def by_kind(self, kind: str) -> list[Violation]:
        """The violations of one kind, in file order."""
        return [v for v in self.violations if v.kind == kind]

    def format_text(self, max_per_kind: int = 10) -> str:
        """A readable summary: a verdict line, counts per kind, then up to ``max_per_kind``
        example messages per kind."""
        who = ""
        if self.team is not None:
            who = f", team {self.team!r}" + (f" <{self.email}>" if self.email else "")
        if self.ok:
            return f"{self.path}: ok, {self.n_rows} playlist rows{who}\n"
        counts = self.counts()
        out = [
            f"{self.path}: {len(self.violations)} violation(s), {self.n_rows} playlist rows{who}"
        ]
        width = max(len(kind) for kind in counts)
        out += [f"  {kind:<{width}}  {count}" for kind, count in counts.items()]
        for kind, count in counts.items():
            out.append(f"{kind} ({count}):")
            examples = self.by_kind(kind)[: max(max_per_kind, 0)]
            out += [f"  {v.message}" for v in examples]
            if count > len(examples):
                out.append(f"  … and {count - len(examples)} more")
        return "\n".join(out) + "\n"


# --- writing --------------------------------------------------------------------------------


def _check_text_field(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise SegueError(f"submission {name} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise SegueError(f"submission {name} is empty")
    if "," in text or "\n" in text or "\r" in text:
        raise SegueError(f"submission {name} {value!r} must not contain commas or line breaks")
    return text


def _bad_uris(row: Sequence[str]) -> list[str]:
    """URIs the checker would not read back as written (slow path, per URI)."""
    return [u for u in row if not u or "," in u or "\n" in u or "\r" in u or u != u.strip()]


def _row_text(pid: int, row: Sequence[str], n: int) -> str:
    """``pid,uri_1,...,uri_n`` after checking ``row``; raises SegueError naming the pid."""
    if len(row) != n:
        raise SegueError(f"pid {pid}: {len(row)} track URIs, expected exactly {n}")
    try:
        joined = ",".join(row)
    except TypeError:
        bad = next(u for u in row if not isinstance(u, str))
        raise SegueError(f"pid {pid}: track URIs must be strings, got {bad!r}") from None
    # Fast path: exactly n-1 commas means no URI holds a comma; ASCII without whitespace means
    # no line breaks and nothing the reader's strip() would remove. Empty URIs are caught below.
    if not (_has_no_whitespace(joined) and joined.count(",") == n - 1):
        bad = _bad_uris(row)
        if bad:
            raise SegueError(
                f"pid {pid}: track URIs must be non-empty, without commas, line breaks or "
                f"surrounding whitespace; got {_examples(bad)}"
            )
    uniq = set(row)
    if len(uniq) != n:
        dups = [u for u, c in Counter(row).items() if c > 1]
        raise SegueError(f"pid {pid}: duplicate track URIs {_examples(dups)}")
    if "" in uniq:
        raise SegueError(f"pid {pid}: empty track URI")
    return f"{pid},{joined}"


def _gzip_deterministic(data: bytes, level: int) -> bytes:
    """Gzip ``data`` with mtime 0 and no file name, as one member per fixed-size chunk.

    Members are compressed in parallel (zlib drops the GIL); concatenated gzip members are a
    valid gzip file (RFC 1952) and the chunking is fixed, so the bytes never depend on cores.
    """
    if len(data) <= _GZIP_CHUNK:
        return zlib.compress(data, level, 31)
    view = memoryview(data)
    chunks = [view[i : i + _GZIP_CHUNK] for i in range(0, len(data), _GZIP_CHUNK)]
    workers = min(len(chunks), os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        return b"".join(pool.map(lambda c: zlib.compress(c, level, 31), chunks))


def write_submission(
    path: Path | str,
    pids: Sequence[int],
    ranked_uris: Sequence[Iterable[str]],
    *,
    team: str,
    email: str,
    n: int = N_TRACKS,
    compresslevel: int = 1,
) -> Path:
    """Write a challenge submission: a ``team_info`` line, then ``pid,uri_1,...,uri_n`` per pid.

    ``ranked_uris[i]`` holds the recommendations for ``pids[i]``, best first: exactly ``n``
    distinct non-empty URIs without commas, line breaks or surrounding whitespace. ``team`` and
    ``email`` must be non-empty and comma-free; ``email`` must look like an address. Everything
    is checked before anything is written; a problem raises :class:`SegueError` naming the pid.

    The file is written atomically; it is gzipped (deterministically, ``compresslevel`` 1 by
    default for speed) when ``path`` ends with ``.gz``. Returns the path written.
    """
    path = Path(path)
    team = _check_text_field("team name", team)
    email = _check_text_field("email", email)
    if not is_email(email):
        raise SegueError(f"submission email {email!r} does not look like an email address")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SegueError(f"n must be a positive integer, got {n!r}")
    if len(pids) != len(ranked_uris):
        raise SegueError(f"{len(pids)} pids but {len(ranked_uris)} rows of track URIs")
    lines = [f"{TEAM_INFO},{team},{email}"]
    seen: set[int] = set()
    for raw_pid, raw_row in zip(pids, ranked_uris, strict=True):
        try:
            pid = operator.index(raw_pid)
        except TypeError:
            raise SegueError(f"pid {raw_pid!r} is not an integer") from None
        if pid < 0:
            raise SegueError(f"pid {pid} is negative")
        if pid in seen:
            raise SegueError(f"pid {pid} appears twice")
        seen.add(pid)
        row = raw_row if isinstance(raw_row, list | tuple) else list(raw_row)
        lines.append(_row_text(pid, row, n))
    lines.append("")
    try:
        data = "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SegueError(f"submission text cannot be encoded as UTF-8 ({exc.reason})") from None
    del lines
    if path.name.endswith(".gz"):
        data = _gzip_deterministic(data, compresslevel)
    with atomic_file(path) as handle:
        handle.write(data)
    return path


# --- checking -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The decompressed, decoded text; raises ValueError with the reason when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    if path.name.endswith(".gz") or raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"not a valid gzip file ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start} of the decompressed text)") from None


def _seed_sets(challenge_entries: Iterable[dict]) -> dict[int, frozenset[str]]:
    seeds: dict[int, frozenset[str]] = {}
    for entry in challenge_entries:
        tracks = entry.get("tracks") or ()
        seeds[int(entry[schema.PID])] = frozenset(t[schema.TRACK_URI] for t in tracks)
    return seeds


def _check_team_info(fields: list[str], lineno: int, report: SubmissionReport) -> None:
    add = report.violations.append
    if len(fields) != 3:
        add(
            _violation(
                "bad_team_info",
                lineno,
                None,
                f"team_info line has {len(fields)} fields, expected 3: "
                f"team_info,<team name>,<email>",
            )
        )
        return
    _, team, email = fields
    report.team, report.email = team, email
    if not team:
        add(_violation("bad_team_info", lineno, None, "team_info line has an empty team name"))
    if not is_email(email):
        add(
            _violation(
                "bad_team_info",
                lineno,
                None,
                f"team_info email {_short(email)} does not look like an email address",
            )
        )


def check_submission(
    path: Path | str,
    challenge_entries: Sequence[dict] | None,
    *,
    n: int = N_TRACKS,
    strict_uris: bool = True,
) -> SubmissionReport:
    """Check a submission file as the challenge did; collects every violation, never raises
    for a bad file.

    ``challenge_entries`` are the playlists of the challenge set (as from
    :func:`segue.data.challenge.read_challenge`); None skips the checks that need it (unknown,
    missing pids and seed tracks). See the module docstring for the rules and the kinds.
    """
    path = Path(path)
    report = SubmissionReport(path)
    add = report.violations.append
    try:
        text = _read_text(path)
    except ValueError as exc:
        add(_violation("unreadable", None, None, f"{path}: {exc}"))
        return report
    seeds_by_pid = None if challenge_entries is None else _seed_sets(challenge_entries)
    no_seeds: frozenset[str] = frozenset()
    first_line: dict[int, int] = {}  # pid -> line it first appeared on
    rows = report.rows
    started = False  # a first data line has been seen
    for lineno, raw_line in enumerate(text.split("\n"), 1):
        line = raw_line.strip()
        if not line or line[0] == "#":
            continue
        fields = line.split(",")
        if not _has_no_whitespace(line):  # maybe whitespace to drop around fields
            fields = [f.strip() for f in fields]
        if fields[0] == TEAM_INFO:
            if started:
                add(
                    _violation(
                        "bad_team_info",
                        lineno,
                        None,
                        "team_info line after the first data line (it must come first)",
                    )
                )
            else:
                _check_team_info(fields, lineno, report)
                started = True
            continue
        if not started:
            add(
                _violation(
                    "no_team_info",
                    lineno,
                    None,
                    f"the first data line must be team_info,<team name>,<email>; "
                    f"got {_short(line, 40)}",
                )
            )
            started = True
        report.n_rows += 1

        pid_text = fields[0]
        if not (pid_text.isascii() and pid_text.isdigit()):
            add(
                _violation(
                    "bad_pid",
                    lineno,
                    None,
                    f"pid {_short(pid_text, 30)} is not a non-negative integer",
                )
            )
            continue
        pid = int(pid_text)
        tracks = fields[1:]
        uniq = set(tracks)
        if "" in uniq:
            empty = [str(i + 2) for i, t in enumerate(tracks) if not t]
            add(
                _violation(
                    "bad_line",
                    lineno,
                    pid,
                    f"empty field(s) at position(s) {', '.join(empty[:5])}"
                    f"{' …' if len(empty) > 5 else ''} (stray or trailing comma?)",
                )
            )
            tracks = [t for t in tracks if t]
            uniq.discard("")

        seeds = no_seeds
        if pid in first_line:
            add(
                _violation(
                    "duplicate_pid",
                    lineno,
                    pid,
                    f"pid appears again (first on line {first_line[pid]})",
                )
            )
            if seeds_by_pid is not None:
                seeds = seeds_by_pid.get(pid, no_seeds)
        else:
            first_line[pid] = lineno
            if seeds_by_pid is not None and pid not in seeds_by_pid:
                add(_violation("unknown_pid", lineno, pid, "pid is not in the challenge set"))
            else:
                rows[pid] = tracks
                if seeds_by_pid is not None:
                    seeds = seeds_by_pid[pid]

        if len(tracks) != n:
            add(
                _violation(
                    "wrong_count", lineno, pid, f"{len(tracks)} track URIs, expected exactly {n}"
                )
            )
        if len(uniq) != len(tracks):
            dups = [u for u, c in Counter(tracks).items() if c > 1]
            add(
                _violation(
                    "duplicate_track",
                    lineno,
                    pid,
                    f"{len(dups)} track URI(s) listed more than once: {_examples(dups)}",
                )
            )
        if seeds and not seeds.isdisjoint(uniq):
            given = [u for u in tracks if u in seeds]
            add(
                _violation(
                    "seed_track",
                    lineno,
                    pid,
                    f"{len(given)} seed track(s) of this playlist recommended: {_examples(given)}",
                )
            )
        if strict_uris and tracks and _URI_ROW_RE.fullmatch(",".join(tracks)) is None:
            bad = [u for u in tracks if _URI_RE.fullmatch(u) is None]
            add(
                _violation(
                    "bad_uri",
                    lineno,
                    pid,
                    f"{len(bad)} malformed track URI(s) (expected {_URI_PREFIX!r} and "
                    f"22 letters or digits): {_examples(bad)}",
                )
            )

    if not started:
        add(
            _violation(
                "no_team_info",
                None,
                None,
                "no data lines: expected team_info,<team name>,<email> then one line "
                "per challenge playlist",
            )
        )
    if seeds_by_pid is not None:
        for pid in seeds_by_pid:
            if pid not in first_line:
                add(
                    _violation(
                        "missing_pid", None, pid, "challenge playlist has no line in the submission"
                    )
                )
    return report


def read_submission(
    path: Path | str,
    challenge_entries: Sequence[dict] | None = None,
    *,
    n: int = N_TRACKS,
    strict_uris: bool = True,
) -> dict[int, list[str]]:
    """The rows of a valid submission, pid -> track URIs in ranked order.

    Raises :class:`InputFileError` naming the file, the line and the problem of the first
    violation :func:`check_submission` finds (file order; missing pids last).
    """
    report = check_submission(path, challenge_entries, n=n, strict_uris=strict_uris)
    if report.violations:
        first = report.violations[0]
        more = len(report.violations) - 1
        problem = first.problem + (f" (and {more} more violation(s))" if more else "")
        if first.kind == "unreadable":
            problem = first.problem.removeprefix(f"{report.path}: ")
        raise InputFileError(report.path, problem, _location(first.line, first.pid) or None)
    return report.rows
