"""Playlists added while the service runs: an append-only log, replayed at start.

``POST /v1/playlists`` appends one JSON line per playlist to ``playlists.jsonl`` (under the
model's state directory) and the model learns it through ``Recommender.add_playlists``. The log
is the truth; a model's live state is the log folded into it, so:

* **a restart keeps the additions**: the log is replayed when the service starts;
* **several worker processes agree**: before a request, each worker reads what was appended
  since it last looked (one ``stat`` when nothing changed) and learns it, so the request after a
  ``POST`` sees the new playlist whichever worker answers it;
* **crash safety**: a record is one ``write`` of a whole line under an exclusive ``flock``,
  followed by ``fsync``; the response is sent only after that. A line without its newline (the
  process died mid-write) is not a record: it is ignored while serving and cut off, with a
  warning, by the next writer or the next start. A complete line that is not a valid record
  (written by something else) is skipped with an error naming the file and line, at start as
  while serving, so the same log always gives the same state and the records around it count.

Records: ``{"seq": int, "added_at": ISO-8601 UTC, "title": str, "tracks": [uri, ...]}``. URIs, not
ids, so the log reads on its own and could feed a retraining.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from segue.errors import InputFileError, SegueError

log = logging.getLogger(__name__)

LOG_FILE = "playlists.jsonl"


class LiveLogUnwritable(SegueError):
    """The disk refused the record (full, a file-size limit, read-only): nothing was
    acknowledged. ``errno`` says which."""

    def __init__(self, message: str, errno: int | None):
        super().__init__(message)
        self.errno = errno


class LiveLogReplaced(SegueError):
    """The log this process holds open is no longer the file at its path (deleted, or replaced
    by another): a record written to it would be lost, so nothing is written."""


def _check_record(record: object) -> str | None:
    """What is wrong with a decoded record (``None`` when it is fine)."""
    if not isinstance(record, dict):
        return "expected a JSON object"
    if not isinstance(record.get("tracks"), list) or not all(
        isinstance(t, str) for t in record["tracks"]
    ):
        return "field 'tracks' must be a list of track URIs"
    if not isinstance(record.get("title", ""), str):
        return "field 'title' must be a string"
    return None


class LiveLog:
    """One model's log of added playlists; ``apply(records)`` teaches them to the model."""

    def __init__(self, directory: Path, apply: Callable[[list[dict]], None]):
        self.directory = Path(directory)
        self.path = self.directory / LOG_FILE
        self.apply = apply
        self.offset = 0  # bytes of the log already learned by this process
        self.count = 0  # records learned
        self._fd: int | None = None
        self._pid = -1

    # --- reading -----------------------------------------------------------------------------
    def _descriptor(self) -> int | None:
        """This process's own descriptor (a forked worker must not share the parent's lock)."""
        if self._pid != os.getpid():
            self._fd = None
            self._pid = os.getpid()
        if self._fd is None and self.path.exists():
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        return self._fd

    def _read_new(self) -> list[dict]:
        """Complete records after ``offset`` (advances it); a complete line that is not a record
        is logged as an error naming the file and line, and skipped."""
        fd = self._descriptor()
        if fd is None:
            return []
        size = os.fstat(fd).st_size
        if size <= self.offset:
            return []
        data = os.pread(fd, size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1  # a torn last line is not consumed
        records = []
        line_number = self.count
        for line in data[:end].splitlines():
            line_number += 1
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                problem = _check_record(record)
            except orjson.JSONDecodeError as exc:
                problem = f"not valid JSON ({exc})"
            if problem is not None:
                log.error("%s: line %d: %s (skipped)", self.path, line_number, problem)
                continue
            records.append(record)
        self.offset += end
        self.count = line_number
        return records

    def sync(self) -> int:
        """Learn what was appended since the last look; returns the number of new records."""
        records = self._read_new()
        if records:
            self.apply(records)
        return len(records)

    def replay(self) -> int:
        """At start: cut a torn tail, then learn the whole log (a bad line skipped, as while
        serving: the same log must give the same state whenever it is read)."""
        if not self.path.exists():
            return 0
        with self._locked() as fd:
            self._cut_torn_tail(fd)
            records = self._read_new()
        if records:
            self.apply(records)
        return len(records)

    # --- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            os.close(fd)
            _fsync_dir(self.directory)
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._check_linked(fd)
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _check_linked(self, fd: int) -> None:
        """Refuse to write unless ``fd`` is the file at :attr:`path` (the one a restart reads)."""
        mine = os.fstat(fd)
        try:
            linked = os.stat(self.path)
        except FileNotFoundError:
            linked = None
        if linked is None or (linked.st_dev, linked.st_ino) != (mine.st_dev, mine.st_ino):
            raise LiveLogReplaced(
                f"{self.path}: the live log was removed or replaced while the service runs; "
                "nothing was written (restart the service to use the log now at that path)"
            )

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if not size:
            return
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if tail.endswith(b"\n"):
            return
        keep = size - len(tail) + tail.rfind(b"\n") + 1
        log.warning(
            "%s: dropping an incomplete last record (%d bytes; the writer stopped mid-line)",
            self.path,
            size - keep,
        )
        os.ftruncate(fd, keep)
        os.fsync(fd)

    def append(self, title: str, tracks: list[str]) -> dict:
        """Write one record durably, then learn it (with anything other workers appended first)."""
        with self._locked() as fd:
            self._cut_torn_tail(fd)
            self.sync()  # others' records first, in log order
            record = {
                "seq": self.count + 1,
                "added_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "title": title,
                "tracks": tracks,
            }
            line = orjson.dumps(record) + b"\n"
            try:
                written = 0
                while written < len(line):  # one write in practice; a short one is finished here
                    written += os.write(fd, line[written:])
            except OSError as exc:
                # Whatever reached the file is a torn line (never read: readers stop at the last
                # newline): cut it, so the log stays records. If even that fails, the next
                # writer's lock cuts it.
                with contextlib.suppress(OSError):
                    self._cut_torn_tail(fd)
                raise LiveLogUnwritable(
                    f"{self.path}: the disk refused the record ({exc.strerror}); nothing was added",
                    exc.errno,
                ) from None
            try:
                os.fsync(fd)
            except OSError as exc:
                # The line is complete in the file, so other workers may already have learned
                # it: learn it here too (one state), but do not acknowledge what the disk did
                # not confirm. Cutting it instead could undo a record another worker learned.
                self.sync()
                raise LiveLogUnwritable(
                    f"{self.path}: the record was written but the disk did not confirm it "
                    f"({exc.strerror}); not acknowledged: the service has learned it, and a "
                    "restart keeps it only if the disk did",
                    exc.errno,
                ) from None
            self.sync()
        return record

    def check_writable(self) -> None:
        """At start: the log's folder exists or can be made, and a record can be appended
        (raises :class:`~segue.errors.InputFileError` naming the folder otherwise)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            os.close(fd)
        except OSError as exc:
            raise InputFileError(
                self.directory, f"cannot keep the live log here ({exc.strerror})"
            ) from None
        if not os.access(self.path, os.W_OK):
            raise InputFileError(self.path, "not writable: live additions could not be kept")


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
