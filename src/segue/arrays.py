"""Vectorised array helpers shared across the package (no Python loop over rows).

* :func:`ranges` — the concatenated ``arange(s, s + l)`` of many (start, length) pairs: the
  positions of many CSR rows, or of many slices of an event log, at once.
* :func:`sorted_unique` — ``np.unique`` by sorting.
"""

from __future__ import annotations

import numpy as np


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64: the concatenation of ``arange(s, s + l)`` for each (s, l).

    >>> ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(total, dtype=np.int64)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``values`` (flattened; dtype kept): ``np.unique`` by sorting,
    because numpy 2.4's hash-based ``np.unique`` (taken when no ``return_*`` is asked) measured
    30× slower here (11.7 s vs 0.4 s on 2M int64).

    >>> sorted_unique(np.array([3, 1, 3, 2])).tolist()
    [1, 2, 3]
    """
    values = np.sort(np.asarray(values), axis=None)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values
