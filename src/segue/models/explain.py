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
    return Explanation(
        int(track_id), [{"kind": "popularity", "playlists": count, "share": 1.0}], text
    )


def shares(weights: np.ndarray) -> np.ndarray:
    """Non-negative weights → shares summing to 1 (all zero stays all zero).

    >>> shares(np.array([3.0, -1.0, 1.0])).tolist()
    [0.75, 0.0, 0.25]
    """
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    total = weights.sum()
    return weights / total if total > 0 else weights


def from_seed_contributions(
    model,
    seeds: np.ndarray,
    track_ids,
    contributions: np.ndarray,
    verb: str = "playlists with it often include this",
) -> list[Explanation]:
    """Explanations from per-seed contributions to each recommended track's score.

    ``seeds`` int [s]; ``contributions`` float [len(track_ids), s] (negative parts ignored).
    The largest contributors are named (up to :data:`MAX_ITEMS`), the rest summed as "other".
    A track no seed supports is explained by popularity.

    Shares and their order are computed for all tracks at once; the loop only builds the dicts
    (500 explanations took 13–18 ms with per-track numpy calls, which the service cannot afford).
    """
    labels = model.track_labels(seeds)
    track_ids = np.asarray(track_ids, dtype=np.int64)
    weights = np.clip(
        np.asarray(contributions, dtype=np.float64).reshape(len(track_ids), len(seeds)), 0, None
    )
    totals = weights.sum(axis=1)
    supported = totals > 0
    share = np.zeros_like(weights)
    share[supported] = weights[supported] / totals[supported, None]
    order = np.argsort(-share, axis=1, kind="stable")[:, :MAX_ITEMS]
    top = np.take_along_axis(share, order, axis=1)
    # Positive shares come first in each row, so the named seeds are a prefix of the order, and
    # "other" is what they leave (summed left to right, as a Python sum would).
    named = top > 0
    n_named = named.sum(axis=1)
    rest = 1.0 - top.sum(axis=1)
    # Every named seed of every track in one pass (row by row, best first), then cut into rows:
    # a loop of one slice per track instead of a list and a dict display per seed.
    flat = order[named]
    seed_items = [
        {"kind": "seed", "track_id": t, "label": label, "share": value}
        for t, label, value in zip(
            np.asarray(seeds)[flat].tolist(),
            np.asarray(labels, dtype=object)[flat].tolist(),
            top[named].tolist(),
            strict=True,
        )
    ]
    ends = np.cumsum(n_named).tolist()
    # The sentence names the first one or two seeds; many tracks share them, so each is built once.
    first, second = (order[:, i] if order.shape[1] > i else np.full(len(order), -1) for i in (0, 1))
    pairs = zip(first.tolist(), np.where(n_named > 1, second, -1).tolist(), strict=True)
    texts: dict[tuple[int, int], str] = {}
    out = []
    start = 0
    for track, end, left, pair in zip(track_ids.tolist(), ends, rest.tolist(), pairs, strict=True):
        if end == start:
            out.append(popularity_explanation(model, track))
            continue
        evidence = seed_items[start:end]
        if left > 1e-9:
            evidence.append({"kind": "other", "share": left})
        text = texts.get(pair)
        if text is None:
            names = [labels[i] for i in pair if i >= 0]
            text = texts[pair] = f"Because the playlist has {join_names(names)}, and {verb}."
        out.append(Explanation(track, evidence, text))
        start = end
    return out


def join_names(items: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'.

    >>> join_names(["x"]), join_names(["x", "y"]), join_names(["x", "y", "z"])
    ('x', 'x and y', 'x, y and z')
    """
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
