"""``itemknn``: item–item co-occurrence neighbours over every track, scores summed over the seeds.

The source design kept only the 10K most popular tracks; here every track of the catalog gets its
``n_neighbors`` most similar tracks. The similarity is computed by ``implicit``'s multithreaded
C++ kernel (``all_pairs_knn``), which walks each track's playlists once and keeps a bounded heap
per track, so it never materialises the full co-occurrence matrix (at 1M playlists that would be
billions of pairs). What is kept is a sparse [n_tracks, n_tracks] matrix with at most
``n_neighbors`` entries per row.

Similarities (``similarity``):
- ``cosine``: co-occurrence count / sqrt(pop(i) · pop(j)) on binary playlist membership.
- ``bm25``: membership re-weighted by BM25 first (``implicit``'s ``bm25_weight``: long playlists
  and very popular tracks count less), then dot products.

**Live updates** (``add_playlists``, used by ``segue serve``; cosine only). A stored cosine gives
back its co-occurrence count, ``co(i, j) = sim(i, j) · sqrt(pop(i) · pop(j))``. For each track
``i`` of the new playlists, its row is recomputed: stored counts plus the new pair counts, over
the new popularities, and the best ``n_neighbors`` kept. Those rows live in a sparse correction
``_delta`` (effective similarity = ``similarity + _delta``), so an update costs the touched rows,
never a rebuild. Two approximations, both from what a top-n list cannot know:

- a pair that co-occurred before but was not among ``i``'s stored neighbours counts as 0 + the
  new count (a refit could rank it a little higher);
- the rows of untouched tracks ``k`` keep ``sim(k, i)`` for a touched ``i`` at ``i``'s old
  popularity: too high by a factor ``sqrt(pop_new(i) / pop_old(i))`` (≈ 1 + 1/(2·pop(i)) for
  one new playlist; finding every row that lists ``i`` would be a scan of all neighbour lists).

With no cut-off (``n_neighbors`` ≥ the number of tracks), touched rows equal a refit's exactly
(``tests/models/test_live.py``). BM25 weights depend on every playlist's length and on each
track's document frequency, so ``similarity="bm25"`` refuses live updates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import (
    Explanation,
    LiveUpdateUnsupported,
    Queries,
    Recommender,
    sorted_unique,
)
from segue.models.explain import from_seed_contributions
from segue.models.registry import register
from segue.models.topn import seed_matrix, top_n_sparse

log = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "bm25")


@dataclass(frozen=True)
class ItemKNNConfig:
    n_neighbors: int = 200          # neighbours kept per track
    similarity: str = "cosine"      # "cosine" or "bm25"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    num_threads: int = 0            # 0: one per core (results do not depend on it)

    def __post_init__(self):
        if self.similarity not in SIMILARITIES:
            raise SegueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")
        if self.n_neighbors < 1:
            raise SegueError(f"n_neighbors must be at least 1, got {self.n_neighbors}")


def weighted_membership(matrix: sp.csr_matrix, config: ItemKNNConfig) -> sp.csr_matrix:
    """Playlists × tracks [p, t] float64 (what the kernel takes) weighted so that column dot products are the similarity."""
    from implicit.nearest_neighbours import bm25_weight

    binary = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    binary.data[:] = 1
    if config.similarity == "cosine":
        norms = np.sqrt(np.bincount(binary.indices, minlength=binary.shape[1]))
        binary.data /= norms[binary.indices]
        return binary
    weighted = bm25_weight(binary.T, K1=config.bm25_k1, B=config.bm25_b).T
    return sp.csr_matrix(weighted, dtype=np.float64)


def neighbours(matrix: sp.csr_matrix, config: ItemKNNConfig) -> sp.csr_matrix:
    """[t, t] float32 CSR: each track's ``n_neighbors`` most similar other tracks (no diagonal)."""
    from implicit.nearest_neighbours import all_pairs_knn

    weighted = weighted_membership(matrix, config)
    # One extra neighbour because the kernel counts a track as its own neighbour.
    similarity = all_pairs_knn(weighted, config.n_neighbors + 1, show_progress=False,
                               num_threads=config.num_threads).tocsr()
    similarity.setdiag(0)
    similarity.eliminate_zeros()
    similarity = sp.csr_matrix(similarity, dtype=np.float32)
    # Keep exactly n_neighbors (the kernel kept n+1 and some rows never held their diagonal).
    ids, scores = top_n_sparse(similarity, config.n_neighbors)
    keep = ids >= 0
    rows = np.repeat(np.arange(similarity.shape[0]), keep.sum(axis=1))
    result = sp.csr_matrix((scores[keep], (rows, ids[keep])), shape=similarity.shape, dtype=np.float32)
    result.sort_indices()
    return result


@register
class ItemKNNRecommender(Recommender):
    name = "itemknn"
    description = "Item–item kNN over all tracks (cosine or BM25 co-occurrence), summed over the seeds."
    Config = ItemKNNConfig
    batch_size = 256

    def _fit(self, data: PlaylistData) -> None:
        log.info("itemknn: %d nearest neighbours of %s tracks (%s)", self.config.n_neighbors,
                 f"{data.n_tracks:,}", self.config.similarity)
        self.similarity = neighbours(data.matrix, self.config)
        self._delta = None

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.similarity
        if self._delta is not None:   # live updates are saved as if trained
            s = self._rows(np.arange(self.n_tracks))
        return {"sim_indptr": s.indptr, "sim_indices": s.indices, "sim_data": s.data}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.popularity)
        self.similarity = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]),
                                        shape=(n, n))
        self._delta = None

    def _rows(self, track_ids: np.ndarray) -> sp.csr_matrix:
        """[len(track_ids), n_tracks] float32 CSR: the tracks' current neighbour rows."""
        rows = self.similarity[track_ids]
        if self._delta is not None:
            rows = sp.csr_matrix(rows + self._delta[track_ids])
            rows.eliminate_zeros()
            rows.sort_indices()
        return rows

    def _add_playlists(self, queries: Queries) -> None:
        if self.config.similarity != "cosine":
            raise LiveUpdateUnsupported(
                "itemknn learns new playlists live with similarity=cosine only (BM25 weights depend "
                "on every playlist); retrain it with the new playlists")
        n = self.n_tracks
        new = seed_matrix(queries, n, dtype=np.float64)                   # [k, t] binary
        touched = sorted_unique(new.indices)                              # [T] int32
        if not len(touched):
            return
        local = sp.csr_matrix(new[:, touched])                            # [k, T]
        pair_counts = sp.coo_matrix(local.T @ local)                      # [T, T]; diagonal: new playlists
        pop_old = self.popularity.astype(np.float64)[touched]
        pop_new = pop_old + np.asarray(local.sum(axis=0)).ravel()

        def popularity(columns: np.ndarray, updated: bool) -> np.ndarray:
            values = self.popularity[columns].astype(np.float64)
            if updated:
                at = np.minimum(np.searchsorted(touched, columns), len(touched) - 1)
                values += np.where(touched[at] == columns, (pop_new - pop_old)[at], 0.0)
            return values

        current = sp.coo_matrix(self._rows(touched))                      # [T, t]
        counts = current.data * np.sqrt(pop_old[current.row] * popularity(current.col, updated=False))
        off = pair_counts.row != pair_counts.col
        merged = sp.csr_matrix((np.concatenate((counts, pair_counts.data[off])),
                                (np.concatenate((current.row, pair_counts.row[off])),
                                 np.concatenate((current.col, touched[pair_counts.col[off]])))), shape=(len(touched), n))
        merged.sum_duplicates()
        entry_rows = np.repeat(np.arange(len(touched)), np.diff(merged.indptr))
        merged.data /= np.sqrt(pop_new[entry_rows] * popularity(merged.indices, updated=True))
        ids, sims = top_n_sparse(merged, self.config.n_neighbors)
        keep = ids >= 0
        new_rows = sp.csr_matrix((sims[keep], (np.repeat(np.arange(len(touched)), keep.sum(axis=1)), ids[keep])),
                                 shape=(len(touched), n), dtype=np.float32)
        # The correction's touched rows become (new row − trained row); the others stay.
        change = sp.coo_matrix(new_rows - self.similarity[touched])
        rows, cols, values = touched[change.row], change.col, change.data
        if self._delta is not None:
            old = sp.coo_matrix(self._delta)
            stay = ~np.isin(old.row, touched)
            rows, cols, values = (np.concatenate((rows, old.row[stay])), np.concatenate((cols, old.col[stay])),
                                  np.concatenate((values, old.data[stay])))
        self._delta = sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, n))

    def _scores(self, queries: Queries) -> sp.csr_matrix:
        """[b, n_tracks] float32 CSR: summed similarity of each track to the query's seeds."""
        seeds = seed_matrix(queries, self.n_tracks)
        if self._delta is None:
            return seeds @ self.similarity
        return sp.csr_matrix(seeds @ self.similarity + seeds @ self._delta)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        return top_n_sparse(self._scores(queries), n)

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        seeds = np.unique(queries.seeds(row))
        contributions = self._rows(seeds)[:, np.asarray(track_ids, dtype=np.int64)].toarray().T
        return from_seed_contributions(self, seeds, track_ids, contributions)

