"""Ordered parallel map with a bounded window, for per-file work (slices) in worker processes.

``multiprocessing.Pool.imap`` runs ahead of a slow consumer and buffers every result; with
slices of tens of MB that makes memory grow with the dataset. Here at most ``window`` results
are in flight or waiting, so memory stays bounded whatever the number of files.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def ordered_map(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int | None = None,
    window: int | None = None,
) -> Iterator[R]:
    """Yield ``func(item)`` for each item, in order, computed in ``workers`` forked processes.

    ``func`` must be a module-level function. With ``workers == 1`` everything runs inline
    (easier to debug, and what tests of small inputs use).
    """
    workers = workers or default_workers()
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    window = window or 2 * workers
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.apply_async(func, (item,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
