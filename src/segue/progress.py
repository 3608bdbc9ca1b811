"""Progress for long work: a rich bar on a terminal, plain timestamped log lines otherwise.

Log lines carry the done/total count, the rate, an ETA and the process's resident memory, so a
log file of a long run shows where it is and what it costs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

log = logging.getLogger("segue")


def rss_gib() -> float:
    """Resident memory of this process and its children, in GiB."""
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # a child that just exited
            pass
    return total / 2**30


class Progress:
    """Counts units of work toward a total and reports them.

    ``advance(k)`` is cheap: output happens at most every ``every_s`` seconds (plain mode) or at
    the terminal's refresh rate (rich mode).
    """

    def __init__(self, description: str, total: int, unit: str = "items", every_s: float = 5.0):
        self.description = description
        self.total = max(int(total), 0)
        self.unit = unit
        self.every_s = every_s
        self.done = 0
        self.start = time.perf_counter()
        self._last = self.start
        self._bar = None
        self._task = None
        if _interactive():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def advance(self, k: int = 1) -> None:
        self.done += k
        if self._bar is not None:
            self._bar.update(self._task, advance=k)
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._log(now)

    def _log(self, now: float) -> None:
        """One plain line, also while the bar is shown: log files (a pipeline stage's) need it;
        the CLI's terminal handler drops lines marked ``segue_bar`` (the bar says the same)."""
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        log.info(
            "%s: %d/%d %s (%.1f%%), %.1f %s/s, ETA %.0f s, RSS %.2f GiB",
            self.description,
            self.done,
            self.total,
            self.unit,
            pct,
            rate,
            self.unit,
            eta,
            rss_gib(),
            extra={"segue_bar": self._bar is not None},
        )

    def close(self) -> None:
        self._log(time.perf_counter())
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress(description: str, total: int, unit: str = "items") -> Iterator[Progress]:
    """Context manager around :class:`Progress` that always closes the display."""
    bar = Progress(description, total, unit)
    try:
        yield bar
    finally:
        bar.close()


def _interactive() -> bool:
    return sys.stderr.isatty() and logging.getLogger("segue").getEffectiveLevel() <= logging.INFO
