"""``playlistknn``: the training playlists nearest to the query vote for their tracks.

This is the user-based neighbourhood that the strongest kNN entries of the RecSys Challenge 2018
used: cosine between the query's seed set and every training playlist that shares a seed, the
``n_neighbors`` closest kept, each voting for its tracks with weight similarity ** ``power``
(a power > 1 lets the closest playlists dominate). Nothing is learned but the (normalised)
membership matrix, so fitting is a copy and the cost is at query time: a walk through the
playlists of the seeds, then one through the neighbours' tracks.

How queries are scored: the two sparse products (seeds × reach → similarity to every touched
playlist, neighbour weights × members → votes) run in a numba kernel, each query by one thread
into a dense accumulator, keeping its best entries by a partition. scipy's products built the
whole [batch, playlists] similarity matrix (tens of millions of entries per batch at 1M
playlists, on one core) only for a sort of all of it to keep 100 per row. The kernel adds in
the order scipy's product adds (seeds by id, then each seed's playlists in stored order; voters
by playlist id), so similarities and votes are the same float32 numbers, and ties go to the
lower id as :func:`~segue.models.topn.top_n_sparse` breaks them.

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

import numba
import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender, csr_arrays, csr_from_arrays
from segue.models.explain import from_seed_contributions
from segue.models.registry import register
from segue.models.topn import seed_matrix


@dataclass(frozen=True)
class PlaylistKNNConfig:
    n_neighbors: int = 100  # training playlists that vote
    power: float = 2.0  # vote weight = cosine ** power
    max_seed_playlists: int = 20000  # playlists one seed can reach (sampled beyond; 0 = no cap)
    seed: int = 0  # seed of that sampling of a popular seed's playlists

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
    description = (
        "Playlist kNN: the most similar training playlists (cosine) vote for their tracks."
    )
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
        self.playlist_norm = np.sqrt(np.diff(members.indptr)).astype(np.float32)  # [p]
        reach = sp.csr_matrix(members.T, dtype=np.float32)  # [t, p], rows = a track's playlists
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
        live = (
            new
            if self._live_members is None
            else sp.vstack([self._live_members, new], format="csr")
        )
        reach = sp.csr_matrix(live.T, dtype=np.float32)  # [t, live playlists], uncapped
        reach.data /= np.sqrt(np.diff(live.indptr)).astype(np.float32)[reach.indices]
        self._live_members, self._live_reach = live, reach

    def _arrays(self) -> dict[str, np.ndarray]:
        m = self.members
        if self._live_members is not None:  # playlists learned live are saved as training ones
            m = sp.vstack([m, self._live_members], format="csr")
        return csr_arrays("members", m, values=False)

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if "members_indptr" not in arrays:
            raise KeyError("members_indptr")
        members = csr_from_arrays("members", arrays, len(self.popularity))
        self._set_members(members)

    def _neighbours(self, queries: Queries) -> sp.csr_matrix:
        """[b, p] float32 CSR: vote weights of each query's ``n_neighbors`` nearest playlists
        (columns ≥ p: playlists learned live)."""
        ids, weights = self._nearest(queries)
        keep = ids >= 0
        rows = np.repeat(np.arange(len(queries)), keep.sum(axis=1))
        return sp.csr_matrix(
            (weights[keep], (rows, ids[keep])), shape=(len(queries), self._n_voters())
        )

    def _n_voters(self) -> int:
        return self.members.shape[0] + (
            0 if self._live_members is None else self._live_members.shape[0]
        )

    def _nearest(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        """Each query's ``n_neighbors`` nearest playlists, nearest first (ties: lower id):
        ids int64 [b, n_neighbors] (-1 pads) and vote weights float32 (cosine ** power, 0 pads)."""
        seeds = seed_matrix(queries, self.n_tracks)
        k = self.config.n_neighbors
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        sims = np.zeros((len(queries), k), dtype=np.float32)
        live = self._live_reach if self._live_reach is not None else _EMPTY_CSR
        with _threads() as threads:
            _nearest_kernel(
                seeds.indptr.astype(np.int64),
                seeds.indices.astype(np.int64),
                self.reach.indptr,
                self.reach.indices,
                self.reach.data,
                live.indptr,
                live.indices,
                live.data,
                self.members.shape[0],
                self._n_voters(),
                threads,
                ids,
                sims,
            )
        query_norm = np.sqrt(np.maximum(np.diff(seeds.indptr), 1)).astype(np.float32)
        return ids, (sims / query_norm[:, None]) ** self.config.power

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, weights = self._nearest(queries)
        # Voters by playlist id: the order a sparse product of the weights would add them in.
        order = np.lexsort((ids, ids < 0), axis=1)
        ids, weights = (
            np.take_along_axis(ids, order, axis=1),
            np.take_along_axis(weights, order, axis=1),
        )
        live = self._live_members if self._live_members is not None else _EMPTY_CSR
        out_ids = np.full((len(queries), n), -1, dtype=np.int64)
        out_scores = np.zeros((len(queries), n), dtype=np.float32)
        with _threads() as threads:
            _vote_kernel(
                ids,
                weights,
                self.members.indptr,
                self.members.indices,
                live.indptr,
                live.indices,
                self.members.shape[0],
                self.n_tracks,
                threads,
                out_ids,
                out_scores,
            )
        return out_ids, out_scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        # A track's score is Σ_p w(p)·[t ∈ p]; a seed's share is the weight of the voting
        # playlists that hold both the seed and the track (split evenly among the seeds they hold).
        one = queries.slice(row, row + 1)
        seeds = np.unique(one.seed_ids)
        weights = self._neighbours(one)
        voters = weights.indices
        w = weights.data
        if self._live_members is None:
            block = self.members[voters]  # [v, t]
        else:  # voters ≥ p are playlists learned live
            p = self.members.shape[0]
            old, new = voters < p, voters >= p
            block = sp.vstack(
                [self.members[voters[old]], self._live_members[voters[new] - p]], format="csr"
            )
            w = np.concatenate((w[old], w[new]))
        holds_track = block[:, np.asarray(track_ids, dtype=np.int64)].toarray()  # [v, k]
        holds_seed = block[:, seeds].toarray()  # [v, s]
        per_seed = holds_seed / np.maximum(holds_seed.sum(axis=1, keepdims=True), 1)
        contributions = (holds_track * w[:, None]).T @ per_seed  # [k, s]
        return from_seed_contributions(
            self, seeds, track_ids, contributions, verb="the most similar playlists include this"
        )


def _sample_rows(matrix: sp.csr_matrix, cap: int, seed: int) -> sp.csr_matrix:
    """Keep at most ``cap`` random entries per row (seeded, the same on every run)."""
    rng = np.random.default_rng(seed)
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((rng.random(len(rows)), rows))
    rank = np.arange(len(rows)) - matrix.indptr[rows]
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[rank < cap]] = True
    kept = sp.csr_matrix(
        (
            matrix.data[keep],
            matrix.indices[keep],
            np.concatenate(([0], np.cumsum(np.minimum(counts, cap)))),
        ),
        shape=matrix.shape,
    )
    return kept


_EMPTY_CSR = sp.csr_matrix((1, 1), dtype=np.float32)  # stands for "no playlists learned live"


class _threads:
    """numba's thread count for one call (every core), restored afterwards."""

    def __enter__(self) -> int:
        self.previous = numba.get_num_threads()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        return numba.config.NUMBA_NUM_THREADS

    def __exit__(self, *exc) -> None:
        numba.set_num_threads(self.previous)


@numba.njit(parallel=True, cache=True, nogil=True)
def _nearest_kernel(
    seed_indptr,
    seeds,
    reach_indptr,
    reach_indices,
    reach_data,
    live_indptr,
    live_indices,
    live_data,
    n_train,
    n_voters,
    n_threads,
    out_ids,
    out_sims,
):  # pragma: no cover - compiled
    """Per query: Σ over its seeds of their reach rows (training playlists, then those learned
    live at ``n_train`` + column), the best ``k`` = out_ids.shape[1] written to out_ids/out_sims."""
    q = len(seed_indptr) - 1
    n_live_tracks = len(live_indptr) - 1 if n_voters > n_train else 0
    # Queries interleaved over the threads (query r to thread r mod T) balance short and long ones.
    for thread in numba.prange(n_threads):
        acc = np.zeros(n_voters, dtype=np.float32)
        seen = np.zeros(n_voters, dtype=np.bool_)
        touched = np.empty(n_voters, dtype=np.int64)
        ids = np.empty(n_voters, dtype=np.int64)
        vals = np.empty(n_voters, dtype=np.float32)
        for r in range(thread, q, n_threads):
            m = 0
            for a in range(seed_indptr[r], seed_indptr[r + 1]):
                s = seeds[a]
                for b in range(reach_indptr[s], reach_indptr[s + 1]):
                    j = reach_indices[b]
                    if not seen[j]:
                        seen[j] = True
                        touched[m] = j
                        m += 1
                    acc[j] += reach_data[b]
            for a in range(seed_indptr[r], seed_indptr[r + 1]):
                s = seeds[a]
                if s < n_live_tracks:
                    for b in range(live_indptr[s], live_indptr[s + 1]):
                        j = n_train + live_indices[b]
                        if not seen[j]:
                            seen[j] = True
                            touched[m] = j
                            m += 1
                        acc[j] += live_data[b]
            _best(touched, m, acc, ids, vals, out_ids[r], out_sims[r])
            for x in range(m):
                acc[touched[x]] = 0
                seen[touched[x]] = False


@numba.njit(parallel=True, cache=True, nogil=True)
def _vote_kernel(
    voters,
    weights,
    m_indptr,
    m_indices,
    live_indptr,
    live_indices,
    n_train,
    n_tracks,
    n_threads,
    out_ids,
    out_scores,
):  # pragma: no cover - compiled
    """Per query: Σ over its voters (ascending ids, -1 last) of weight × membership row; the
    training voters' sum plus, separately summed, the live voters' (as the two sparse products
    added); the best ``n`` = out_ids.shape[1] written to out_ids/out_scores."""
    q, k = voters.shape
    for thread in numba.prange(n_threads):
        acc = np.zeros(n_tracks, dtype=np.float32)
        live_acc = np.zeros(n_tracks, dtype=np.float32)
        seen = np.zeros(n_tracks, dtype=np.bool_)
        touched = np.empty(n_tracks, dtype=np.int64)
        ids = np.empty(n_tracks, dtype=np.int64)
        vals = np.empty(n_tracks, dtype=np.float32)
        for r in range(thread, q, n_threads):
            m = 0
            has_live = False
            for a in range(k):
                p = voters[r, a]
                if p < 0:
                    break
                w = weights[r, a]
                if p < n_train:
                    for b in range(m_indptr[p], m_indptr[p + 1]):
                        j = m_indices[b]
                        if not seen[j]:
                            seen[j] = True
                            touched[m] = j
                            m += 1
                        acc[j] += w
                else:
                    has_live = True
                    p -= n_train
                    for b in range(live_indptr[p], live_indptr[p + 1]):
                        j = live_indices[b]
                        if not seen[j]:
                            seen[j] = True
                            touched[m] = j
                            m += 1
                        live_acc[j] += w
            if has_live:
                for x in range(m):
                    acc[touched[x]] += live_acc[touched[x]]
                    live_acc[touched[x]] = 0
            _best(touched, m, acc, ids, vals, out_ids[r], out_scores[r])
            for x in range(m):
                acc[touched[x]] = 0
                seen[touched[x]] = False


@numba.njit(cache=True, nogil=True)
def _best(touched, m, acc, ids, vals, out_ids, out_vals):  # pragma: no cover - compiled
    """The best ``len(out_ids)`` positive entries ``acc[touched[:m]]``, best first, ties to the
    lower id (``ids``/``vals``: scratch of at least ``m``); the rest of out_ids/out_vals is kept."""
    k = len(out_ids)
    c = 0
    for x in range(m):
        j = touched[x]
        if acc[j] > 0:
            ids[c] = j
            vals[c] = acc[j]
            c += 1
    if c > k:
        # The k-th largest value; of the entries tied with it, the lowest ids are kept.
        cut = np.partition(vals[:c], c - k)[c - k]
        above = 0
        n_ties = 0
        for x in range(c):
            if vals[x] > cut:
                above += 1
            elif vals[x] == cut:
                n_ties += 1
        ties = np.empty(n_ties, dtype=np.int64)
        t = 0
        kept = 0
        for x in range(c):
            if vals[x] > cut:
                ids[kept] = ids[x]
                vals[kept] = vals[x]
                kept += 1
            elif vals[x] == cut:
                ties[t] = ids[x]
                t += 1
        ties.sort()
        for t in range(k - above):
            ids[kept] = ties[t]
            vals[kept] = cut
            kept += 1
        c = kept
    by_id = np.argsort(ids[:c])
    by_value = np.argsort(-vals[:c][by_id], kind="mergesort")
    for x in range(c):
        y = by_id[by_value[x]]
        out_ids[x] = ids[y]
        out_vals[x] = vals[y]
