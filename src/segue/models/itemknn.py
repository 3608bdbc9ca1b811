"""``itemknn``: item–item co-occurrence neighbours over every track, scores summed over the seeds.

The source design kept only the 10K most popular tracks; here every track of the catalog gets its
``n_neighbors`` most similar tracks, found by segue's co-occurrence kernel
(:func:`segue.features.cooccurrence.top_k_cooccurrence`: multithreaded, one dense row at a time,
so the full co-occurrence matrix — billions of pairs at 1M playlists — is never built). What is
kept is a sparse [n_tracks, n_tracks] matrix with at most ``n_neighbors`` entries per row.

Similarities (``similarity``):

- ``cosine`` — the *asymmetric* cosine of the strongest kNN entries of the RecSys Challenge 2018
  (Aiolli's ``α``): ``sim(i, j) = co(i, j) / (pop(i)^α · pop(j)^(1−α))`` for a seed ``i`` and a
  candidate ``j``. ``α = 0.5`` is the plain cosine, which on sparse data ranks a track seen once
  beside the seed as high as a hit seen with it a hundred times; ``α → 1`` tends to the
  conditional probability ``P(j | i)``, which favours the popular. The
  kernel ranks row ``i``'s candidates by ``co(i, j) · pop(j)^-(1−α)`` (the asymmetric order; the
  seed's own factor is the same for the whole row).
- ``bm25``: membership re-weighted by BM25 first (``implicit``'s ``bm25_weight``: long playlists
  and very popular tracks count less), then dot products.

``normalize_rows`` (default on) scales each track's neighbour list so its best neighbour scores 1
(the scale is kept apart, ``row_scale``): every seed then votes on the same scale, instead of a
rare seed, whose similarities are large, drowning the others. Defaults from the validation part of
the demo split (20K generated playlists, R-precision): cosine 0.008, α = 0.9 0.042, α = 0.9 with
row normalisation 0.054 (1,000 neighbours). More neighbours help a little (200: 0.050, 500: 0.053,
1,000: 0.054) and cost 8 bytes each: at 1M playlists 500 neighbours kept 820M entries (6.6 GB),
so the default is 200, which keeps the model within 8 GB at that scale (benchmarks/RESULTS.md).

**Live updates** (``add_playlists``, used by ``segue serve``; cosine only). A stored similarity
gives back its co-occurrence count, ``co(i, j) = sim(i, j) · pop(i)^α · pop(j)^(1−α)``. For each
track ``i`` of the new playlists, its row is recomputed: stored counts plus the new pair counts,
over the new popularities, the best ``n_neighbors`` kept and its row scale renewed. Those rows live
in a sparse correction ``_delta`` (effective similarity = ``similarity + _delta``), so an update
costs the touched rows, never a rebuild. Two approximations, both from what a top-n list cannot
know:

- a pair that co-occurred before but was not among ``i``'s stored neighbours counts as 0 + the
  new count (a refit could rank it a little higher);
- the rows of untouched tracks ``k`` keep ``sim(k, i)`` for a touched ``i`` at ``i``'s old
  popularity, too high by ``(pop_new(i) / pop_old(i))^(1−α)``, and keep their row scale (finding
  every row that lists ``i`` would be a scan of all neighbour lists).

With no cut-off (``n_neighbors`` ≥ the number of tracks), touched rows equal a refit's exactly
(``tests/models/test_live.py``). BM25 weights depend on every playlist's length and on each
track's document frequency, so ``similarity="bm25"`` refuses live updates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.arrays import sorted_unique
from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.features.cooccurrence import top_k_cooccurrence
from segue.models.base import (
    Explanation,
    LiveUpdateUnsupported,
    Queries,
    Recommender,
    csr_arrays,
    csr_from_arrays,
)
from segue.models.explain import from_seed_contributions
from segue.models.registry import register
from segue.models.topn import dense_columns, seed_matrix, top_n_sparse

log = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "bm25")


@dataclass(frozen=True)
class ItemKNNConfig:
    # Neighbours kept per track (memory: 8 bytes each); tuned on real MPD playlists
    # (R-precision 0.123 → 0.125; 1000 only reached 0.126 at twice the memory).
    n_neighbors: int = 500
    similarity: str = "cosine"  # "cosine" (asymmetric by alpha) or "bm25"
    alpha: float = 0.9  # cosine's asymmetry: 0.5 = plain cosine, → 1 = P(candidate | seed)
    normalize_rows: bool = True  # each track's best neighbour scores 1
    bm25_k1: float = 1.2  # BM25 k1 of the bm25 similarity (implicit's K1): term saturation
    bm25_b: float = 0.75  # BM25 b of the bm25 similarity (0..1): length normalisation, 0 = none
    num_threads: int = 0  # 0: one per core (results do not depend on it)

    def __post_init__(self):
        if self.similarity not in SIMILARITIES:
            raise SegueError(
                f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}"
            )
        if self.n_neighbors < 1:
            raise SegueError(f"n_neighbors must be at least 1, got {self.n_neighbors}")
        if not 0 <= self.alpha <= 1:
            raise SegueError(f"alpha must be within 0..1, got {self.alpha}")


def _popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """float64 [t]: playlists holding each track (a binary matrix's column counts)."""
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)


def neighbours(matrix: sp.csr_matrix, config: ItemKNNConfig) -> sp.csr_matrix:
    """[t, t] float32 CSR: each track's ``n_neighbors`` most similar other tracks (no diagonal),
    the similarity of the module docstring (before row normalisation)."""
    from implicit.nearest_neighbours import bm25_weight

    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.data[:] = 1
    if config.similarity == "cosine":
        pop = _popularity(binary)
        pop[pop == 0] = 1  # tracks no playlist holds have no neighbours anyway
        return top_k_cooccurrence(
            binary,
            config.n_neighbors,
            row_factor=pop**-config.alpha,
            column_factor=pop ** -(1 - config.alpha),
            num_threads=config.num_threads,
            description="itemknn neighbours",
        )
    weighted = sp.csr_matrix(
        bm25_weight(binary.T, K1=config.bm25_k1, B=config.bm25_b).T, dtype=np.float32
    )
    return top_k_cooccurrence(
        weighted,
        config.n_neighbors,
        num_threads=config.num_threads,
        description="itemknn neighbours",
    )


def row_scales(similarity: sp.csr_matrix, normalize: bool) -> np.ndarray:
    """float32 [t]: 1 / the best similarity of each row (1 for empty rows, or without normalising)."""
    if not normalize:
        return np.ones(similarity.shape[0], dtype=np.float32)
    best = similarity.max(axis=1).toarray().ravel()
    return np.where(best > 0, 1.0 / np.where(best > 0, best, 1), 1.0).astype(np.float32)


@register
class ItemKNNRecommender(Recommender):
    name = "itemknn"
    description = "Item–item kNN over all tracks (asymmetric cosine or BM25 co-occurrence), summed over the seeds."
    Config = ItemKNNConfig
    batch_size = 256
    engines = ("local", "spark")  # segue.spark.itemknn: the same neighbours (cosine)

    def _fit(self, data: PlaylistData) -> None:
        c = self.config
        log.info(
            "itemknn: %d nearest neighbours of %s tracks (%s%s)",
            c.n_neighbors,
            f"{data.n_tracks:,}",
            c.similarity,
            f", alpha {c.alpha}" if c.similarity == "cosine" else "",
        )
        if self.run.engine == "spark":
            from segue.spark.itemknn import itemknn_neighbours
            from segue.spark.session import spark_errors

            with spark_errors("itemknn"):
                self.similarity = itemknn_neighbours(data, c, self.run.master)
        else:
            self.similarity = neighbours(data.matrix, c)
        self.row_scale = row_scales(self.similarity, c.normalize_rows)
        self._delta = None

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.similarity
        if self._delta is not None:  # live updates are saved as if trained
            s = self._rows(np.arange(self.n_tracks))
        return {**csr_arrays("sim", s), "row_scale": self.row_scale}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity = csr_from_arrays("sim", arrays)
        self.row_scale = arrays["row_scale"].astype(np.float32)
        self._delta = None

    def _rows(self, track_ids: np.ndarray) -> sp.csr_matrix:
        """[len(track_ids), n_tracks] float32 CSR: the tracks' current neighbour rows (before
        row normalisation)."""
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
                "on every playlist); retrain it with the new playlists"
            )
        n, alpha = self.n_tracks, self.config.alpha
        new = seed_matrix(queries, n, dtype=np.float64)  # [k, t] binary
        touched = sorted_unique(new.indices)  # [T] int32
        if not len(touched):
            return
        local = sp.csr_matrix(new[:, touched])  # [k, T]
        pair_counts = sp.coo_matrix(local.T @ local)  # [T, T]; diagonal: new playlists
        pop_old = self.popularity.astype(np.float64)[touched]
        pop_new = pop_old + np.asarray(local.sum(axis=0)).ravel()

        def popularity(columns: np.ndarray, updated: bool) -> np.ndarray:
            values = self.popularity[columns].astype(np.float64)
            if updated:
                at = np.minimum(np.searchsorted(touched, columns), len(touched) - 1)
                values += np.where(touched[at] == columns, (pop_new - pop_old)[at], 0.0)
            return values

        current = sp.coo_matrix(self._rows(touched))  # [T, t]
        counts = (
            current.data
            * pop_old[current.row] ** alpha
            * popularity(current.col, updated=False) ** (1 - alpha)
        )
        off = pair_counts.row != pair_counts.col
        merged = sp.csr_matrix(
            (
                np.concatenate((counts, pair_counts.data[off])),
                (
                    np.concatenate((current.row, pair_counts.row[off])),
                    np.concatenate((current.col, touched[pair_counts.col[off]])),
                ),
            ),
            shape=(len(touched), n),
        )
        merged.sum_duplicates()
        entry_rows = np.repeat(np.arange(len(touched)), np.diff(merged.indptr))
        merged.data /= pop_new[entry_rows] ** alpha * popularity(merged.indices, updated=True) ** (
            1 - alpha
        )
        ids, sims = top_n_sparse(merged, self.config.n_neighbors)
        keep = ids >= 0
        new_rows = sp.csr_matrix(
            (sims[keep], (np.repeat(np.arange(len(touched)), keep.sum(axis=1)), ids[keep])),
            shape=(len(touched), n),
            dtype=np.float32,
        )
        self.row_scale = self.row_scale.copy()
        self.row_scale[touched] = row_scales(new_rows, self.config.normalize_rows)
        # The correction's touched rows become (new row − trained row); the others stay.
        change = sp.coo_matrix(new_rows - self.similarity[touched])
        rows, cols, values = touched[change.row], change.col, change.data
        if self._delta is not None:
            old = sp.coo_matrix(self._delta)
            stay = ~np.isin(old.row, touched)
            rows, cols, values = (
                np.concatenate((rows, old.row[stay])),
                np.concatenate((cols, old.col[stay])),
                np.concatenate((values, old.data[stay])),
            )
        self._delta = sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(n, n))

    def _scores(self, queries: Queries) -> sp.csr_matrix:
        """[b, n_tracks] float32 CSR: each track's similarity to the query's seeds, each seed's row
        scaled by its row scale, summed."""
        seeds = seed_matrix(queries, self.n_tracks)
        seeds.data = self.row_scale[seeds.indices]
        if self._delta is None:
            return seeds @ self.similarity
        return sp.csr_matrix(seeds @ self.similarity + seeds @ self._delta)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        return top_n_sparse(self._scores(queries), n)

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        seeds = np.unique(queries.seeds(row))
        rows = self._rows(seeds).copy()
        rows.data *= np.repeat(self.row_scale[seeds], np.diff(rows.indptr))  # each seed's row scale
        contributions = dense_columns(rows, track_ids).T
        return from_seed_contributions(self, seeds, track_ids, contributions)
