"""How a collection's tracks go together: the structure every recommender learns from, measured
the same way on generated and on real playlists (``benchmarks/calibrate.py``, ``segue generate
mpd --report``).

Published MPD marginals (lengths, unique counts, histograms: :mod:`segue.data.synthetic.calibration`)
say nothing about which tracks share playlists; these figures do. All of them are shares or means,
so a generated collection can be compared with a real one of the same size and population:

* **pair co-occurrence** — for a random pair of tracks in the same playlist, how many playlists
  hold both (share of such pairs held by that playlist only, by ≥ 5, by ≥ 20; the mean);
* **companions** — playlists split in two halves at random; for a playlist of one half, the share
  of its tracks that are among the :attr:`StructureSettings.companions` most frequent companions
  (in the other half) of at least one of its other tracks: how guessable a track is from the rest
  of its playlist by co-occurrence alone;
* **rules** — association rules (:func:`segue.mining.rules.find_rules`) at fixed support,
  confidence and lift, per 1,000 playlists;
* **artist runs** — share of consecutive tracks by the same artist; distinct artists per track of
  a playlist (overall and by length band);
* **titles** — distinct normalised titles per playlist, share of titles with an emoji, with an
  upper-case letter;
* **popularity** — share of tracks held by one playlist only, Gini of track counts.

Everything is vectorised over playlists (pairs are sampled: a fixed number, seeded), so the
cost is bounded at any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.analysis.eda import gini, normalize_names_mpd
from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import SegueError

LENGTH_BANDS = ((5, 20), (20, 50), (50, 100), (100, 251))
_EMOJI_CLASS = "[\U0001f300-\U0001faff\u2600-\u27bf\U0001f000-\U0001f2ff]"  # emoji and symbols


@dataclass(frozen=True)
class StructureSettings:
    """``pairs``: in-playlist track pairs sampled for the co-occurrence figures; ``companions``
    (k of the companion share) and ``companion_playlists`` (playlists of the second half scored);
    rule thresholds (``rule_support`` a share of playlists); ``seed``."""

    pairs: int = 200_000
    companions: int = 50
    companion_playlists: int = 500
    rule_support: float = 0.005
    rule_confidence: float = 0.2
    rule_lift: float = 1.2
    seed: int = 0


def _pair_sample(
    matrix: sp.csr_matrix, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random pairs of distinct tracks sharing a playlist, each playlist drawn with
    probability ∝ its number of pairs (so every in-playlist pair is equally likely):
    (playlist, track a, track b), int64 [n] each."""
    length = np.diff(matrix.indptr).astype(np.int64)
    pairs = length * (length - 1)
    if pairs.sum() == 0:
        raise SegueError("no playlist holds two tracks: no pair to measure")
    playlist = rng.choice(len(length), size=n, p=pairs / pairs.sum())
    first = rng.integers(0, length[playlist])
    second = (first + rng.integers(1, length[playlist])) % length[playlist]  # ≠ first
    start = matrix.indptr[playlist].astype(np.int64)
    return (
        playlist,
        matrix.indices[start + first].astype(np.int64),
        matrix.indices[start + second].astype(np.int64),
    )


def pair_counts(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int64 [n]: playlists holding both ``a[i]`` and ``b[i]`` (rows of the binary ``matrix``
    [playlists, tracks]), by one elementwise product of two column selections.

    >>> m = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float32))
    >>> pair_counts(m, np.array([0, 1, 0]), np.array([1, 2, 2])).tolist()
    [2, 2, 1]
    """
    binary = matrix.astype(bool).astype(np.int64).tocsc()
    return np.asarray(binary[:, a].multiply(binary[:, b]).sum(axis=0)).ravel().astype(np.int64)


def top_companions(matrix: sp.csr_matrix, tracks: np.ndarray, k: int) -> sp.csr_matrix:
    """bool csr [n_tracks, n_tracks]: row ``s`` (for ``s`` in ``tracks``) marks the ``k`` tracks
    most often in a playlist with ``s`` (ties broken by lower id; ``s`` itself excluded);
    other rows are empty.

    >>> m = sp.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=np.float32))
    >>> top_companions(m, np.array([0]), 1).toarray().astype(int).tolist()
    [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    """
    binary = matrix.astype(bool).astype(np.float32)
    tracks = np.unique(np.asarray(tracks, dtype=np.int64))
    counts = (binary.T.tocsr()[tracks] @ binary).tocoo()  # [len(tracks), n_tracks]
    row, col, value = counts.row.astype(np.int64), counts.col.astype(np.int64), counts.data
    keep = tracks[row] != col
    row, col, value = row[keep], col[keep], value[keep]
    order = np.lexsort((col, -value, row))  # by row, count descending, id
    row, col = row[order], col[order]
    first = np.searchsorted(row, np.arange(len(tracks)))
    rank = np.arange(len(row)) - first[row]
    top = rank < k
    n = matrix.shape[1]
    return sp.csr_matrix(
        (np.ones(int(top.sum()), dtype=bool), (tracks[row[top]], col[top])), shape=(n, n)
    )


def companion_share(
    matrix: sp.csr_matrix, k: int, n_playlists: int, rng: np.random.Generator
) -> float:
    """Share of the tracks of up to ``n_playlists`` playlists of one random half that are among
    the ``k`` most frequent companions, in the other half, of another track of their playlist."""
    order = rng.permutation(matrix.shape[0])
    half = len(order) // 2
    learn, score = matrix[np.sort(order[:half])], matrix[np.sort(order[half:])[:n_playlists]]
    score = score[np.diff(score.indptr) >= 2]
    if score.shape[0] == 0:
        raise SegueError("too few playlists with two tracks to measure companions")
    top = top_companions(learn, score.indices, k)
    # For every ordered pair (s, t), s ≠ t, of a scored playlist: is t among s's companions?
    length = np.diff(score.indptr).astype(np.int64)
    owner = np.repeat(np.arange(len(length)), length * length)
    within = np.arange(len(owner)) - np.repeat(
        np.cumsum(length * length) - length * length, length * length
    )
    s_pos = within // np.repeat(length, length * length)
    t_pos = within % np.repeat(length, length * length)
    start = score.indptr[owner].astype(np.int64)
    s, t = (
        score.indices[start + s_pos].astype(np.int64),
        score.indices[start + t_pos].astype(np.int64),
    )
    other = s_pos != t_pos
    n = np.int64(matrix.shape[1])
    top = top.tocoo()
    keys = np.sort(top.row.astype(np.int64) * n + top.col)
    wanted = s * n + t
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    hit = other & (keys[at] == wanted) if len(keys) else np.zeros(len(s), dtype=bool)
    # A track (owner, t_pos) counts when any s of its playlist names it.
    track_key = start + t_pos
    found = np.zeros(int(score.indptr[-1]), dtype=bool)
    np.logical_or.at(found, track_key[hit], True)
    return float(found.mean())


def artist_runs(data: PlaylistData) -> dict[str, float]:
    """Share of consecutive tracks (in playlist order) by the same artist, and distinct artists
    per track of a playlist (mean, overall and by length band)."""
    from segue.models.sequence import training_sequences

    indptr, ids = training_sequences(data)  # each playlist's tracks in order
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    artist = data.track_artist[ids]
    same_playlist = owner[1:] == owner[:-1]
    same_artist = (artist[1:] == artist[:-1]) & same_playlist
    out = {"same-artist adjacent share": float(same_artist.sum() / max(same_playlist.sum(), 1))}
    # Distinct artists per playlist from the incidence matrix's columns mapped to artists.
    m = data.matrix.tocoo()
    pairs = np.unique(
        m.row.astype(np.int64) * (int(data.track_artist.max()) + 1) + data.track_artist[m.col]
    )
    distinct = np.bincount(pairs // (int(data.track_artist.max()) + 1), minlength=data.n_playlists)
    length = np.diff(data.matrix.indptr)
    ok = length > 0
    ratio = distinct[ok] / length[ok]
    out["distinct artists per track"] = float(ratio.mean())
    for low, high in LENGTH_BANDS:
        band = (length[ok] >= low) & (length[ok] < high)
        out[f"distinct artists per track, {low}–{high - 1} tracks"] = (
            float(ratio[band].mean()) if band.any() else float("nan")
        )
    return out


def title_stats(names: list[str]) -> dict[str, float]:
    """Distinct normalised titles per playlist; shares of titles with an emoji, an upper-case letter."""
    if not names:
        return {}
    series = pl.Series(list(names), dtype=pl.String)
    return {
        "distinct normalised titles per playlist": float(
            normalize_names_mpd(series).n_unique() / len(names)
        ),
        "titles with an emoji": float(series.str.contains(_EMOJI_CLASS).mean()),
        "titles with an upper-case letter": float((series != series.str.to_lowercase()).mean()),
    }


def structure_stats(
    data_dir: Path, settings: StructureSettings = StructureSettings(), *, sample: int | None = None
) -> dict[str, float]:
    """Every figure of the module docstring for the ingested dataset ``data_dir``, by name; on
    ``sample`` playlists drawn at random (seeded) when it holds more. Co-occurrence figures
    depend on the number of playlists, so collections are compared at equal size; sampling also
    bounds the cost (the companions' and pair counts' products grow with the popular tracks'
    playlist counts, which grow with the collection)."""
    import tempfile

    from segue.data.tables import Tables

    data_dir = Path(data_dir)
    n = pq.read_metadata(data_dir / schema.PLAYLISTS_FILE).num_rows
    if sample is not None and n > sample:
        chosen = np.zeros(n, dtype=bool)
        chosen[np.random.default_rng(settings.seed).choice(n, size=sample, replace=False)] = True
        with tempfile.TemporaryDirectory(prefix="segue-structure-") as tmp:
            Tables.read(data_dir).keep(chosen).write(Path(tmp), source=f"{sample} of {data_dir}")
            return structure_stats(Path(tmp), settings)
    return _structure_stats(data_dir, settings)


def _structure_stats(data_dir: Path, settings: StructureSettings) -> dict[str, float]:
    from segue.mining.rules import RuleThresholds, find_rules

    data = PlaylistData.load(Path(data_dir))
    matrix = data.matrix
    rng = np.random.default_rng(settings.seed)
    _, a, b = _pair_sample(matrix, settings.pairs, rng)
    counts = pair_counts(matrix, a, b)
    popularity = data.track_popularity
    used = popularity[popularity > 0]
    rules = find_rules(
        matrix,
        RuleThresholds(
            min_support=settings.rule_support,
            min_confidence=settings.rule_confidence,
            min_lift=settings.rule_lift,
            max_len=2,
        ).check(),
    )
    out = {
        "playlists": float(data.n_playlists),
        "mean length": float(np.diff(matrix.indptr).mean()),
        "tracks per 1,000 entries": float(1000 * (popularity > 0).sum() / max(matrix.nnz, 1)),
        "tracks in one playlist only (share)": float((used == 1).mean()),
        "Gini of track counts": float(gini(np.sort(used)) or 0.0),
        "in-playlist pairs in that playlist only": float((counts == 1).mean()),
        "in-playlist pairs in ≥ 5 playlists": float((counts >= 5).mean()),
        "in-playlist pairs in ≥ 20 playlists": float((counts >= 20).mean()),
        "playlists per in-playlist pair (mean)": float(counts.mean()),
        f"companion share (top {settings.companions})": companion_share(
            matrix, settings.companions, settings.companion_playlists, rng
        ),
        "pair rules per 1,000 playlists": float(1000 * len(rules) / data.n_playlists),
    }
    out.update(artist_runs(data))
    out.update(title_stats([n for n in data.names if n]))
    return out


def length_matched(
    lengths: np.ndarray, reference: np.ndarray, n: int, rng: np.random.Generator, bins: int = 20
) -> np.ndarray:
    """bool [len(lengths)]: ``n`` playlists of a pool whose length histogram follows
    ``reference``'s (int arrays of playlist lengths): the reference's ``bins`` quantile bands,
    each filled in proportion from the pool's playlists of that band, at random.

    A population is how a generated collection is made comparable with a selected real one (the
    dev set keeps playlists with ≥ 10 followers: longer and more curated than the MPD's average).
    Raises :class:`SegueError` when a band of the pool is too small.

    >>> pool = np.array([5, 5, 5, 5, 50, 50, 50, 50])
    >>> chosen = length_matched(pool, np.array([50, 50, 50, 5]), 4, np.random.default_rng(0), bins=2)
    >>> int(chosen[:4].sum()), int(chosen[4:].sum())      # one short, three long, as the reference
    (1, 3)
    """
    lengths, reference = np.asarray(lengths), np.asarray(reference)
    top = max(int(reference.max()), int(lengths.max(initial=0))) + 1
    edges = np.unique(
        np.concatenate((np.quantile(reference, np.linspace(0, 1, bins + 1))[:-1], [top]))
    )
    band_ref = np.clip(np.searchsorted(edges, reference, side="right") - 1, 0, len(edges) - 2)
    band_pool = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, len(edges) - 2)
    quota = np.floor(np.bincount(band_ref, minlength=len(edges) - 1) / len(reference) * n).astype(
        np.int64
    )
    quota[np.argmax(quota)] += n - quota.sum()  # the rounding's remainder to the largest band
    chosen = np.zeros(len(lengths), dtype=bool)
    for band, want in enumerate(quota.tolist()):  # ≤ bins bands, not a loop over playlists
        members = np.flatnonzero(band_pool == band)
        if want > len(members):
            raise SegueError(
                f"the pool has {len(members)} playlists of {int(edges[band])}–{int(edges[band + 1]) - 1} "
                f"tracks, {want} are needed: generate more playlists"
            )
        chosen[rng.choice(members, size=want, replace=False)] = True
    return chosen
