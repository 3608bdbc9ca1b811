"""Explanations shared by the models: evidence with shares that sum to 1, and a sentence.

Evidence items are dicts with a ``kind`` (``"seed"``, ``"title"``, ``"component"``,
``"popularity"``, ``"other"``), a ``share`` (≥ 0; the items of one explanation sum to 1) and
fields for that kind (``track_id``/``label`` for a seed, ``title`` for a title, ``component``
and ``weight`` for a hybrid part).
"""

from __future__ import annotations

import numpy as np

from segue.models.base import Explanation

MAX_ITEMS = 5  # evidence items named per explanation; the rest are summed into "other"


def popularity_explanation(model, track_id: int, reason: str = "") -> Explanation:
    """The fallback: a track recommended because it is popular (back-fill, or no evidence)."""
    count = int(model.popularity[track_id])
    text = reason or f"A popular track: in {count:,} training playlists."
    return Explanation(int(track_id), [{"kind": "popularity", "playlists": count, "share": 1.0}], text)


def shares(weights: np.ndarray) -> np.ndarray:
    """Non-negative weights → shares summing to 1 (all zero stays all zero).

    >>> shares(np.array([3.0, -1.0, 1.0])).tolist()
    [0.75, 0.0, 0.25]
    """
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    total = weights.sum()
    return weights / total if total > 0 else weights


def from_seed_contributions(model, seeds: np.ndarray, track_ids, contributions: np.ndarray,
                            verb: str = "playlists with it often include this") -> list[Explanation]:
    """Explanations from per-seed contributions to each recommended track's score.

    ``seeds`` int [s]; ``contributions`` float [len(track_ids), s] (negative parts ignored).
    The largest contributors are named (up to :data:`MAX_ITEMS`), the rest summed as "other".
    A track no seed supports is explained by popularity.

    Shares and their order are computed for all tracks at once; the loop only builds the dicts
    (500 explanations took 13–18 ms with per-track numpy calls, which the service cannot afford).
    """
    labels = model.track_labels(seeds)
    track_ids = np.asarray(track_ids, dtype=np.int64)
    weights = np.clip(np.asarray(contributions, dtype=np.float64).reshape(len(track_ids), len(seeds)), 0, None)
    totals = weights.sum(axis=1)
    supported = totals > 0
    share = np.zeros_like(weights)
    share[supported] = weights[supported] / totals[supported, None]
    order = np.argsort(-share, axis=1, kind="stable")[:, :MAX_ITEMS]
    top = np.take_along_axis(share, order, axis=1)
    # Positive shares come first in each row, so the named seeds are a prefix of the order, and
    # "other" is what they leave (summed left to right, as a Python sum would).
    n_named = (top > 0).sum(axis=1).tolist()
    rest = (1.0 - top.sum(axis=1)).tolist()
    top, order, seed_list = top.tolist(), order.tolist(), np.asarray(seeds).tolist()
    texts: dict[tuple[int, ...], str] = {}   # many tracks name the same one or two seeds
    out = []
    for row, track in enumerate(track_ids.tolist()):
        k = n_named[row]
        if not k:
            out.append(popularity_explanation(model, track))
            continue
        named = order[row][:k]
        evidence = [{"kind": "seed", "track_id": seed_list[i], "label": labels[i], "share": value}
                    for i, value in zip(named, top[row], strict=False)]
        if rest[row] > 1e-9:
            evidence.append({"kind": "other", "share": rest[row]})
        key = tuple(named[:2])
        text = texts.get(key)
        if text is None:
            text = texts[key] = f"Because the playlist has {_and([labels[i] for i in key])}, and {verb}."
        out.append(Explanation(track, evidence, text))
    return out


def _and(items: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'.

    >>> _and(["x"]), _and(["x", "y"]), _and(["x", "y", "z"])
    ('x', 'x and y', 'x, y and z')
    """
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
