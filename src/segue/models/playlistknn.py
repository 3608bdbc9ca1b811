"""``playlistknn``: the training playlists nearest to the query vote for their tracks.

This is the user-based neighbourhood that the strongest kNN entries of the RecSys Challenge 2018
used: cosine between the query's seed set and every training playlist that shares a seed, the
``n_neighbors`` closest kept, each voting for its tracks with weight similarity ** ``power``
(a power > 1 lets the closest playlists dominate). Nothing is learned but the (normalised)
membership matrix, so fitting is a copy and the cost is at query time: one sparse product
through the playlists of the seeds, one through the neighbours' tracks.

Very popular seeds touch a large share of all playlists while saying little about the query;
``max_seed_playlists`` caps how many playlists one seed reaches (a seed held by more is
represented by a seeded random sample of them), which bounds the query cost at full scale.

**Live updates** (``add_playlists``, used by ``segue serve``): new playlists are kept in a small
second membership matrix and become neighbours like the training ones, exactly (same cosine,
same vote). The one difference: the ``max_seed_playlists`` sample is drawn over the training
playlists only, so a new playlist is always reachable from its tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import from_seed_contributions
from segue.models.registry import register
from segue.models.topn import seed_matrix, top_n_sparse


@dataclass(frozen=True)
class PlaylistKNNConfig:
    n_neighbors: int = 100          # training playlists that vote
    power: float = 2.0              # vote weight = cosine ** power
    max_seed_playlists: int = 20000  # playlists one seed can reach (sampled beyond; 0 = no cap)
    seed: int = 0

    def __post_init__(self):
        if self.n_neighbors < 1:
            raise SegueError(f"n_neighbors must be at least 1, got {self.n_neighbors}")
        if self.power <= 0:
            raise SegueError(f"power must be positive, got {self.power}")
        if self.max_seed_playlists < 0:
            raise SegueError(f"max_seed_playlists must be ≥ 0, got {self.max_seed_playlists}")


@register
class PlaylistKNNRecommender(Recommender):
    name = "playlistknn"
    description = "Playlist kNN: the most similar training playlists (cosine) vote for their tracks."
    Config = PlaylistKNNConfig
    batch_size = 256

    def _fit(self, data: PlaylistData) -> None:
        members = sp.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        members.data[:] = 1
        members.sum_duplicates()
        self._set_members(members)

    def _set_members(self, members: sp.csr_matrix) -> None:
        """``members`` [p, t] float32 binary CSR; derives the per-seed reach matrix [t, p]."""
        self.members = members
        self.playlist_norm = np.sqrt(np.diff(members.indptr)).astype(np.float32)   # [p]
        reach = sp.csr_matrix(members.T, dtype=np.float32)   # [t, p], rows = a track's playlists
        cap = self.config.max_seed_playlists
        counts = np.diff(reach.indptr)
        if cap and counts.max(initial=0) > cap:
            reach = _sample_rows(reach, cap, self.config.seed)
        # 1/|p| folded in so one product gives cosine up to the query's own norm.
        reach.data /= self.playlist_norm[reach.indices]
        self.reach = reach
        self._live_members = self._live_reach = None

    def _add_playlists(self, queries: Queries) -> None:
        new = seed_matrix(queries, self.n_tracks)
        live = new if self._live_members is None else sp.vstack([self._live_members, new], format="csr")
        reach = sp.csr_matrix(live.T, dtype=np.float32)   # [t, live playlists], uncapped
        reach.data /= np.sqrt(np.diff(live.indptr)).astype(np.float32)[reach.indices]
        self._live_members, self._live_reach = live, reach

    def _arrays(self) -> dict[str, np.ndarray]:
        m = self.members
        if self._live_members is not None:   # playlists learned live are saved as training ones
            m = sp.vstack([m, self._live_members], format="csr")
        return {"members_indptr": m.indptr, "members_indices": m.indices}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        indptr, indices = arrays["members_indptr"], arrays["members_indices"]
        members = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                                shape=(len(indptr) - 1, len(self.popularity)))
        self._set_members(members)

    def _neighbours(self, queries: Queries) -> sp.csr_matrix:
        """[b, p] float32 CSR: vote weights of each query's ``n_neighbors`` nearest playlists."""
        seeds = seed_matrix(queries, self.n_tracks)
        similarity = seeds @ self.reach                                    # [b, p]
        if self._live_members is not None:                                 # [b, p + live]
            similarity = sp.hstack([similarity, seeds @ self._live_reach], format="csr")
        query_norm = np.sqrt(np.maximum(np.diff(seeds.indptr), 1)).astype(np.float32)
        ids, sims = top_n_sparse(similarity, self.config.n_neighbors)
        sims = (sims / query_norm[:, None]) ** self.config.power
        keep = ids >= 0
        rows = np.repeat(np.arange(len(queries)), keep.sum(axis=1))
        return sp.csr_matrix((sims[keep], (rows, ids[keep])), shape=(len(queries), similarity.shape[1]))

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        weights = self._neighbours(queries)
        if self._live_members is None:
            return top_n_sparse(weights @ self.members, n)
        p = self.members.shape[0]
        return top_n_sparse(weights[:, :p] @ self.members + weights[:, p:] @ self._live_members, n)

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        # A track's score is Σ_p w(p)·[t ∈ p]; a seed's share is the weight of the voting
        # playlists that hold both the seed and the track (split evenly among the seeds they hold).
        one = queries.slice(row, row + 1)
        seeds = np.unique(one.seed_ids)
        weights = self._neighbours(one)
        voters = weights.indices
        w = weights.data
        if self._live_members is None:
            block = self.members[voters]                                   # [v, t]
        else:                                # voters ≥ p are playlists learned live
            p = self.members.shape[0]
            old, new = voters < p, voters >= p
            block = sp.vstack([self.members[voters[old]], self._live_members[voters[new] - p]], format="csr")
            w = np.concatenate((w[old], w[new]))
        holds_track = block[:, np.asarray(track_ids, dtype=np.int64)].toarray()   # [v, k]
        holds_seed = block[:, seeds].toarray()                             # [v, s]
        per_seed = holds_seed / np.maximum(holds_seed.sum(axis=1, keepdims=True), 1)
        contributions = (holds_track * w[:, None]).T @ per_seed            # [k, s]
        return from_seed_contributions(self, seeds, track_ids, contributions,
                                       verb="the most similar playlists include this")


def _sample_rows(matrix: sp.csr_matrix, cap: int, seed: int) -> sp.csr_matrix:
    """Keep at most ``cap`` random entries per row (seeded, the same on every run)."""
    rng = np.random.default_rng(seed)
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((rng.random(len(rows)), rows))
    rank = np.arange(len(rows)) - matrix.indptr[rows]
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[rank < cap]] = True
    kept = sp.csr_matrix((matrix.data[keep], matrix.indices[keep], np.concatenate(([0], np.cumsum(np.minimum(counts, cap))))),
                         shape=matrix.shape)
    return kept
