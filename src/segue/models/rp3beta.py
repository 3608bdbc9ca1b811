"""``rp3beta``: a three-step random walk track → playlist → track, popular tracks discounted.

RP3beta (Paudel, Christoffel, Bernstein et al., "Updatable, accurate, diverse, and scalable
recommendations for interactive applications", ACM TiiS 2016; among the strongest simple
baselines in Ferrari Dacrema et al., "Are we really making much progress?", RecSys 2019). With
``X`` the binary playlists × tracks matrix, ``len(p)`` the tracks of playlist ``p`` and
``pop(i)`` the playlists holding track ``i``:

- ``P_ui = X / len(p)`` row by row (playlist → track: a step to one of the playlist's tracks),
- ``P_iu = Xᵀ / pop(i)`` row by row (track → playlist: a step to one of the track's playlists),
- ``W = (P_iu^α · P_ui^α) · diag(pop^-β)``, the powers taken entry by entry, so

  ``W(i, j) = pop(i)^-α · Σ_{p ∋ i, j} len(p)^-α · pop(j)^-β``.

With ``β = 0`` this is P3α (Cooper et al. 2014), and with ``α = 1`` as well row ``i`` is the
probability of reaching ``j`` from ``i`` in two steps (track → playlist → track). ``β`` divides
every arrival by the target's popularity, so that hits no longer win every walk (the paper trades
a little accuracy for much diversity). The diagonal is dropped, each row keeps its
``n_neighbors`` largest entries, and ``normalize_rows`` (default on) divides each row by its sum
(L1, as the reference implementation of Ferrari Dacrema et al. does: every seed then casts the
same total vote). A query's score is the sum of its distinct seeds' rows:
``score(j) = Σ_{i ∈ seeds} row_scale(i) · W(i, j)``.

**Computation.** ``W`` is exactly segue's co-occurrence kernel
(:func:`segue.features.cooccurrence.top_k_cooccurrence`, the one itemknn uses) on the weights
``w(p, i) = len(p)^-α/2`` (so ``w(p, i) · w(p, j) = len(p)^-α``) with ``row_factor = pop^-α`` and
``column_factor = pop^-β``: the kernel ranks row ``i`` by ``co(i, j) · pop(j)^-β`` — the RP3beta
order — and stores ``W(i, j)``. It walks blocks of track rows on every core, one dense accumulator
row per thread, so neither the [t, t] product nor any dense [p, t] or [t, t] matrix is built;
memory is the kept neighbours (8 bytes each) plus one block. Scoring and explanations are
itemknn's: a sparse seed matrix times the neighbour matrix, and each seed's term as its share.

**Defaults** from the validation part of a challenge-style split of the real MPD sample
(``/work/shared/data/real-mpd-dev``, 6,071 playlists; ``segue split --per-category 100
--seed 0``: 4,071 playlists to train on, 1,000 validation queries). R-precision, itemknn at its
defaults 0.1227: over α ∈ {0.5, 0.75, 1}, β ∈ {0.3, 0.5, 0.7}, ``n_neighbors`` ∈ {100, 300} the
best was α = 0.5, β = 0.3, 300 neighbours (0.1188), and R-precision fell at every step up in β.
Below the grid (α = 0.5, 300 neighbours): β 0.2 0.1230, 0.1 0.1245, 0 0.1256 (β 0 against 0.3:
+0.0068, and against itemknn +0.0029, both significant in the paired test); at β = 0, α 0.25,
0.5 and 0.75 are within 0.0005 (α 1: 0.1241), and 100 neighbours give 0.1235. So the defaults
are α = 0.5, β = 0 (P3α), 300 neighbours. On 4,071 playlists most tracks are seen once or twice,
so a popularity penalty mostly promotes noise; on larger data tune β again (``--param beta=…``).
300 neighbours cost up to 2.4 KB per track (5.5 GB at 2.3M tracks, an upper bound: rare tracks
have fewer companions); 200 is itemknn's budget.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.features.cooccurrence import top_k_cooccurrence
from segue.models.base import Explanation, Queries, Recommender, csr_arrays, csr_from_arrays
from segue.models.explain import from_seed_contributions
from segue.models.registry import register
from segue.models.topn import dense_columns, seed_matrix, top_n_sparse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RP3betaConfig:
    alpha: float = 0.5  # exponent of both transition probabilities (1: the plain walk)
    beta: float = 0.0  # popularity penalty: arrivals at j divided by pop(j)^beta
    n_neighbors: int = 300  # neighbours kept per track (memory: 8 bytes each)
    normalize_rows: bool = True  # each track's kept row sums to 1 (L1)
    num_threads: int = 0  # 0: one per core (results do not depend on it)

    def __post_init__(self):
        for field in ("alpha", "beta"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise SegueError(f"{field} must be a finite number at least 0, got {value}")
        if self.n_neighbors < 1:
            raise SegueError(f"n_neighbors must be at least 1, got {self.n_neighbors}")
        if self.num_threads < 0:
            raise SegueError(
                f"num_threads must be at least 0 (0: one per core), got {self.num_threads}"
            )


def similarity(matrix: sp.csr_matrix, config: RP3betaConfig) -> sp.csr_matrix:
    """[t, t] float32 CSR: ``W`` of the module docstring for the playlists × tracks ``matrix``
    (repeats count once), each row's ``n_neighbors`` largest entries, no diagonal, before row
    normalisation."""
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.eliminate_zeros()
    lengths = np.diff(binary.indptr).astype(np.float64)
    # w(p, i) · w(p, j) = len(p)^-α: the kernel multiplies the two sides' weights.
    binary.data = np.repeat(
        np.where(lengths > 0, lengths, 1) ** (-config.alpha / 2), np.diff(binary.indptr)
    ).astype(np.float32)
    pop = np.bincount(binary.indices, minlength=binary.shape[1]).astype(np.float64)
    pop[pop == 0] = 1  # tracks no playlist holds have no neighbours anyway
    return top_k_cooccurrence(
        binary,
        config.n_neighbors,
        row_factor=pop**-config.alpha,
        column_factor=pop**-config.beta,
        num_threads=config.num_threads,
        description="rp3beta neighbours",
    )


def l1_row_scales(weights: sp.csr_matrix, normalize: bool) -> np.ndarray:
    """float32 [t]: 1 / each row's sum (1 for empty rows, or without normalising)."""
    if not normalize:
        return np.ones(weights.shape[0], dtype=np.float32)
    total = np.asarray(weights.sum(axis=1, dtype=np.float64)).ravel()
    return np.where(total > 0, 1.0 / np.where(total > 0, total, 1), 1.0).astype(np.float32)


@register
class RP3betaRecommender(Recommender):
    name = "rp3beta"
    description = (
        "RP3beta: random walk track → playlist → track, arrivals divided by popularity^beta."
    )
    Config = RP3betaConfig
    batch_size = 256

    def _fit(self, data: PlaylistData) -> None:
        c = self.config
        log.info(
            "rp3beta: %d neighbours of %s tracks (alpha %g, beta %g)",
            c.n_neighbors,
            f"{data.n_tracks:,}",
            c.alpha,
            c.beta,
        )
        self.similarity = similarity(data.matrix, c)
        self.row_scale = l1_row_scales(self.similarity, c.normalize_rows)

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {**csr_arrays("sim", s), "row_scale": self.row_scale}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.similarity = csr_from_arrays("sim", arrays)
        self.row_scale = arrays["row_scale"].astype(np.float32)

    def _scores(self, queries: Queries) -> sp.csr_matrix:
        """[b, n_tracks] float32 CSR: the distinct seeds' rows, each times its row scale, summed."""
        seeds = seed_matrix(queries, self.n_tracks)
        seeds.data = self.row_scale[seeds.indices]
        return seeds @ self.similarity

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        return top_n_sparse(self._scores(queries), n)

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        seeds = np.unique(queries.seeds(row))
        rows = self.similarity[seeds].copy()
        rows.data *= np.repeat(self.row_scale[seeds], np.diff(rows.indptr))  # each seed's row scale
        contributions = dense_columns(rows, track_ids).T
        return from_seed_contributions(self, seeds, track_ids, contributions)
