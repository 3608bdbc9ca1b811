"""User-facing errors.

Anything a user can get wrong (a path, a file's content, a parameter) raises :class:`SegueError`
with a message naming the file, the record and the field. The CLI prints the message and exits
with status 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
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
        # A URI (hdfs://host/dir, read by Spark) is shown as given: Path would fold its "//".
        shown = path if isinstance(path, str) and "://" in path else str(self.path)
        location = f"{shown}: {where}" if where else shown
        super().__init__(f"{location}: {problem}")


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, or "".

    >>> did_you_mean("itemnn", ["itemknn", "popular"])
    " (did you mean 'itemknn'?)"
    >>> did_you_mean("zzz", ["itemknn"])
    ''
    """
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
