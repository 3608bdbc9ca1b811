"""Candidates and their features for the two-stage ranker (``rerank``).

Stage one pools candidates: the union of every component's scaled list (see
:mod:`segue.models.ensemble`), ordered by the sum of the scaled scores (an untuned blend) and cut
to ``n_candidates`` per query. Stage two describes every (query, candidate) pair by the features
below, so that a learning-to-rank model can order the pool; this is the shape of the RecSys
Challenge 2018's leading solutions (vl6 and Avito teams: candidates from several recommenders,
then gradient-boosted trees over their scores, ranks and track/seed statistics).

Features (float32, one column each, in this order; ``C`` components):

* per component ``c``: ``c:score`` (its scaled score, 0 when it did not list the track) and
  ``c:rank`` (1-based place in its list, ``depth + 1`` when absent);
* ``lists`` — how many components listed it; ``blend`` — the sum of the scaled scores;
  ``blend_rank`` — 1-based place in the pool;
* ``log_popularity`` — log(1 + training playlists holding the track);
* ``artist_share`` / ``album_share`` — share of the query's distinct seeds by the track's artist /
  on its album;
* ``cooc_max``, ``cooc_mean`` — the largest and the mean over the seeds ``s`` of the confidence
  ``co(s, t) / pop(s)`` (the share of the seed's playlists that also hold the track);
  ``cooc_share`` — share of the seeds that co-occur with it; ``cooc_log_count`` — log(1 + the
  largest co-occurrence count). ``co`` is read from each seed's ``k`` most co-occurring tracks
  (:func:`segue.features.cooccurrence.top_k_cooccurrence`), so memory stays ``k`` per track;
  a pair outside a seed's top ``k`` counts 0;
* ``artist_cooc_max``, ``artist_cooc_mean``, ``artist_cooc_share`` — the same confidences one
  level up, between the track's artist and the seeds' distinct artists (playlists × artists
  membership): on sparse data two tracks rarely share a playlist while their artists often do;
* the query's ``seed_count`` (distinct seeds), ``has_title`` and ``group`` (see
  :func:`segue.evaluation.split.seed_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from segue.models.topn import seed_matrix, top_n_sparse

QUERY_FEATURES = ("seed_count", "has_title", "group")


def feature_names(components: list[str]) -> list[str]:
    """Column names of :func:`candidate_features`' matrix for these components.

    >>> feature_names(["itemknn"])[:3]
    ['itemknn:score', 'itemknn:rank', 'lists']
    """
    per_component = [f"{c}:{kind}" for c in components for kind in ("score", "rank")]
    return [
        *per_component,
        "lists",
        "blend",
        "blend_rank",
        "log_popularity",
        "artist_share",
        "album_share",
        "cooc_max",
        "cooc_mean",
        "cooc_share",
        "cooc_log_count",
        "artist_cooc_max",
        "artist_cooc_mean",
        "artist_cooc_share",
        *QUERY_FEATURES,
    ]


@dataclass
class Candidates:
    """A batch's candidate pool, flat and grouped by query.

    ``indptr`` int64 [b + 1]: query ``r``'s candidates are ``track_ids[indptr[r]:indptr[r + 1]]``,
    in pool order (best blend first); ``features`` float32 [m, F] (:func:`feature_names`).
    """

    indptr: np.ndarray
    track_ids: np.ndarray
    features: np.ndarray

    def rows(self) -> np.ndarray:
        """int64 [m]: the query of each candidate."""
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))


def lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[i], cols[i]]`` for every i, 0 where nothing is stored (float64 [len(rows)]).

    >>> m = sp.csr_matrix(np.array([[0.0, 2.0], [3.0, 0.0]]))
    >>> lookup(m, np.array([0, 1, 1]), np.array([1, 0, 1])).tolist()
    [2.0, 3.0, 0.0]
    """
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    stride = np.int64(matrix.shape[1])
    keys = (
        np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * stride
        + matrix.indices
    )
    wanted = np.asarray(rows, dtype=np.int64) * stride + np.asarray(cols, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, matrix.data[at] if len(keys) else 0.0, 0.0).astype(np.float64)


def row_ranks(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Same pattern as ``matrix``; each entry's 1-based place in its row (value descending, id
    ascending).

    >>> row_ranks(sp.csr_matrix(np.array([[0.5, 0.0, 0.9, 0.5]]))).toarray().tolist()
    [[2.0, 0.0, 1.0, 3.0]]
    """
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    place = np.empty(len(order), dtype=np.float32)
    place[order] = np.arange(len(order)) - matrix.indptr[rows[order]] + 1
    return sp.csr_matrix((place, matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape)


def pool(
    lists: list[sp.csr_matrix], n_candidates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of the scaled lists, best ``n_candidates`` by blended score per row.

    Returns ``indptr`` int64 [b + 1], ``track_ids`` int64 [m] and ``blend`` float32 [m], grouped by
    row in pool order (ties by lower id).
    """
    union = lists[0].copy()
    for lst in lists[1:]:
        union = union + lst
    ids, blend = top_n_sparse(sp.csr_matrix(union), n_candidates)
    valid = ids >= 0
    indptr = np.concatenate(([0], np.cumsum(valid.sum(axis=1)))).astype(np.int64)
    return indptr, ids[valid].astype(np.int64), blend[valid].astype(np.float32)


@dataclass
class Cooccurrence:
    """What the co-occurrence features read: each track's and each artist's most co-occurring
    tracks / artists with their counts (CSR float32, square), and how many playlists hold each
    artist (int64 [n_artists])."""

    tracks: sp.csr_matrix
    artists: sp.csr_matrix
    artist_popularity: np.ndarray

    @classmethod
    def build(cls, matrix: sp.csr_matrix, track_artist: np.ndarray, k: int) -> Cooccurrence:
        """From a playlists × tracks CSR matrix and each track's artist (int32 [n_tracks])."""
        from segue.features.cooccurrence import top_k_cooccurrence

        n_artists = max(int(track_artist.max(initial=-1)) + 1, 1)
        to_artist = sp.csr_matrix(
            (np.ones(len(track_artist), np.float32), (np.arange(len(track_artist)), track_artist)),
            shape=(len(track_artist), n_artists),
        )
        by_artist = sp.csr_matrix(matrix @ to_artist)
        by_artist.data[:] = 1
        return cls(
            top_k_cooccurrence(matrix, k, description="co-occurring tracks"),
            top_k_cooccurrence(by_artist, k, description="co-occurring artists"),
            np.diff(sp.csc_matrix(by_artist).indptr).astype(np.int64),
        )


def candidate_features(
    lists: list[sp.csr_matrix],
    queries,
    groups: np.ndarray,
    popularity: np.ndarray,
    track_artist: np.ndarray,
    track_album: np.ndarray,
    cooccurrence: Cooccurrence,
    n_candidates: int,
    depth: int,
) -> Candidates:
    """The pool of a batch and its features (see the module docstring).

    ``lists``: per component CSR float32 [b, n_tracks] scaled lists; ``queries``: the batch
    (``Queries``); ``groups`` int64 [b]; ``popularity`` int [n_tracks]; ``track_artist``,
    ``track_album`` int32 [n_tracks].
    """
    indptr, track_ids, blend = pool(lists, n_candidates)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    columns = []
    in_lists = np.zeros(len(track_ids))
    for lst in lists:
        score = lookup(lst, rows, track_ids)
        rank = lookup(row_ranks(lst), rows, track_ids)
        columns += [score, np.where(rank > 0, rank, depth + 1)]
        in_lists += score > 0
    seeds = seed_matrix(queries, len(popularity))
    seed_count = np.diff(seeds.indptr).astype(np.float64)
    per_seed = 1.0 / np.maximum(seed_count, 1)
    artist_counts = _grouped_counts(seeds, track_artist)
    album_counts = _grouped_counts(seeds, track_album)
    cooc = _stats(cooccurrence.tracks, popularity, seeds, indptr, track_ids)
    # Artists: each query's distinct seed artists against its candidates' distinct artists.
    n_artists = np.int64(len(cooccurrence.artist_popularity))
    seed_artists = sp.csr_matrix(artist_counts[:, :n_artists])
    seed_artists.data[:] = 1
    pairs, inverse = np.unique(
        rows.astype(np.int64) * n_artists + track_artist[track_ids], return_inverse=True
    )
    pair_indptr = np.searchsorted(pairs // n_artists, np.arange(len(indptr)))
    artist_cooc = _stats(
        cooccurrence.artists,
        cooccurrence.artist_popularity,
        seed_artists,
        pair_indptr,
        pairs % n_artists,
    )[inverse.reshape(-1)]
    per_seed_artist = 1.0 / np.maximum(np.diff(seed_artists.indptr), 1)
    titled = np.array([bool((t or "").strip()) for t in queries.titles], dtype=np.float64)
    columns += [
        in_lists,
        blend,
        np.arange(len(track_ids)) - indptr[rows] + 1.0,
        np.log1p(popularity[track_ids].astype(np.float64)),
        lookup(artist_counts, rows, track_artist[track_ids]) * per_seed[rows],
        lookup(album_counts, rows, track_album[track_ids]) * per_seed[rows],
        cooc[:, 0],
        cooc[:, 1] * per_seed[rows],
        cooc[:, 2] * per_seed[rows],
        np.log1p(cooc[:, 3]),
        artist_cooc[:, 0],
        artist_cooc[:, 1] * per_seed_artist[rows],
        artist_cooc[:, 2] * per_seed_artist[rows],
        seed_count[rows],
        titled[rows],
        np.asarray(groups, dtype=np.float64)[rows],
    ]
    features = (
        np.column_stack(columns).astype(np.float32)
        if len(track_ids)
        else np.zeros((0, len(columns)), dtype=np.float32)
    )
    return Candidates(indptr, track_ids, features)


def _stats(
    cooccurrence: sp.csr_matrix,
    popularity: np.ndarray,
    seeds: sp.csr_matrix,
    indptr: np.ndarray,
    ids: np.ndarray,
) -> np.ndarray:
    """float64 [m, 4] of :func:`_cooccurrence_stats` for CSR ``seeds`` [b, n] and pooled ``ids``
    grouped by ``indptr``."""
    # The co-occurrence arrays and the popularity go in as they are (numba compiles per dtype):
    # converting them costs a copy of the whole matrix per batch (0.1 s on a 3,000-playlist model).
    return _cooccurrence_stats(
        cooccurrence.indptr,
        cooccurrence.indices,
        cooccurrence.data,
        np.asarray(popularity),
        seeds.indptr.astype(np.int64),
        seeds.indices.astype(np.int64),
        np.asarray(indptr, dtype=np.int64),
        np.asarray(ids, dtype=np.int64),
    )


def _grouped_counts(seeds: sp.csr_matrix, key: np.ndarray) -> sp.csr_matrix:
    """CSR [b, max key + 1]: per query, how many of its distinct seeds have each key (artist, album)."""
    rows = np.repeat(np.arange(seeds.shape[0]), np.diff(seeds.indptr))
    width = int(key.max(initial=-1)) + 1 if len(key) else 1
    counts = sp.csr_matrix(
        (np.ones(len(rows)), (rows, key[seeds.indices])), shape=(seeds.shape[0], max(width, 1))
    )
    counts.sum_duplicates()
    return counts


@numba.njit(cache=True, parallel=True)
def _cooccurrence_stats(
    c_indptr, c_indices, c_data, popularity, s_indptr, s_indices, indptr, track_ids
):  # pragma: no cover - compiled
    """float64 [m, 4] per candidate: max confidence, summed confidence, seeds co-occurring, max count.

    Each query's candidates (``track_ids[indptr[r]:indptr[r + 1]]``) are sorted once; every seed's
    stored neighbours (sorted ids) are then merged against them, O(k + candidates) per seed.
    """
    out = np.zeros((len(track_ids), 4))
    for r in numba.prange(len(indptr) - 1):
        lo, hi = indptr[r], indptr[r + 1]
        order = np.argsort(track_ids[lo:hi])
        cand = track_ids[lo:hi][order]
        for j in range(s_indptr[r], s_indptr[r + 1]):
            seed = s_indices[j]
            pop = max(float(popularity[seed]), 1.0)
            a, a_end = c_indptr[seed], c_indptr[seed + 1]
            b = 0
            while a < a_end and b < len(cand):
                if c_indices[a] < cand[b]:
                    a += 1
                elif c_indices[a] > cand[b]:
                    b += 1
                else:
                    at = lo + order[b]
                    count = float(c_data[a])
                    confidence = count / pop
                    out[at, 0] = max(out[at, 0], confidence)
                    out[at, 1] += confidence
                    out[at, 2] += 1.0
                    out[at, 3] = max(out[at, 3], count)
                    a += 1
                    b += 1
    return out
