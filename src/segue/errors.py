"""User-facing errors.

Anything a user can get wrong (a path, a file's content, a parameter) raises :class:`SegueError`
with a message naming the file, the record and the field. The CLI prints the message and exits
with status 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SegueError(Exception):
    """An error caused by input the user gave us; its message is shown as is."""


class InputFileError(SegueError):
    """A file the user handed over is missing, unreadable or malformed.

    The message reads ``<file>: <where>: <what>``, e.g.
    ``mpd.slice.0-999.json: playlist 17 (pid 17): field 'num_tracks' is 52 but it has 51 tracks``.
    """

    def __init__(self, path: Path | str, problem: str, where: str | None = None):
        self.path = Path(path)
        self.problem = problem
        self.where = where
        location = f"{self.path}: {where}" if where else str(self.path)
        super().__init__(f"{location}: {problem}")
