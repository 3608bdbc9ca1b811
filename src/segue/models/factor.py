"""``svd``, ``als``, ``bpr``: matrix-factorisation models with one scoring, fold-in and explanation path.

Every model here learns **item factors** ``Y`` (float32 [n_tracks, k]) and answers a query —
a playlist never seen in training — by **folding it in**: a query factor ``u`` (float64 [k]) is
solved from its seeds with the item factors held fixed, and a track's score is ``y_t · u``. The
queries are never added to training. One weighted least-squares form covers all three models::

    u = A⁻¹ b,   b = Σ_s w_s y_s,   A = G + d Σ_s y_s y_sᵀ

over the query's distinct seeds ``s`` known to training, where the model chooses ``G`` (float64
[k, k]), the per-seed weights ``w_s`` and the constant ``d``:

========  ===========================  ==================  ==============  =====================
model     item factors ``Y``           ``G``               ``w_s``         ``d``
========  ===========================  ==================  ==============  =====================
``svd``   right singular vectors V     I                   tf-idf weight   0  (projection Vᵀw)
``als``   implicit's ALS item factors  YᵀY + λI            α               α − 1  (exact user step)
``bpr``   BPR item factors (+ bias)    YᵀY + λ_fold I      1               0  (ridge regression)
========  ===========================  ==================  ==============  =====================

Because ``A`` is fixed for a query, ``u`` is a sum of per-seed terms and so is every score:
``score(t) = Σ_s w_s · y_tᵀ A⁻¹ y_s``. :meth:`FactorRecommender.explain` reports exactly these
terms (the decomposition implicit's ``ALS.explain`` uses), so explanation shares are the
seeds' parts of the score (negative parts left out).

Scoring (:func:`segue.models.topn.top_k_factors`, shared with every model that scores by a dot
product with item vectors): the product with all item factors is computed in cache-sized
chunks, blocks of queries in parallel on all cores, keeping only entries above a per-query
threshold estimated from a sample of the items, so no dense [q, n_tracks] array is ever built
and no ``argpartition`` runs over the catalog. At 2.26M tracks this is about twice as fast
as ``implicit.cpu.topk`` (which materialises [100, n_tracks] blocks). The candidates are then
re-scored exactly, so a query's ranking does not depend on its batch. Seeds are never returned;
ties go to the lower track id.

Most tracks of a real catalog are rare, and rare tracks have small factors: at 1M playlists
98% of the SVD's and ALS's item vectors are too short to reach a query's 500th score even
pointing straight at the query (``y·u ≤ |y| |u|``). The models therefore keep a copy of their
longest item vectors, longest first (:class:`NormHead`), and the scan of a block of queries
walks it only until the next vector is too short for every query of the block — the same
candidates as the full scan, a small part of the work. Rows whose bound does not fall inside
the head (BPR's item vectors are all of similar length) are scanned in full.

Determinism: ``svd`` is seeded (``seed``) and runs its dense algebra on one BLAS thread;
``als`` is deterministic for any ``num_threads`` (each user/item solve is independent and
implicit's BLAS is held to one thread); ``bpr`` trains by lock-free parallel SGD whose result
depends on thread timing, so its ``num_threads`` defaults to 1 (0 = all cores trains faster but
not reproducibly). ``num_threads`` is about training; scoring always uses every core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.registry import register
from segue.models.topn import NormHead, cpu_threads, seed_matrix, top_k_factors

# Queries per chunk when building the per-query matrices A (float64 [chunk, k, k]).
_GRAM_CHUNK = 128


class FactorRecommender(Recommender):
    """Shared scoring, fold-in and explanation of the factor models (see the module docstring).

    Subclasses set ``item_factors`` (float32 [n_tracks, k]) and ``gram`` (``G``, float64
    [k, k]) in ``_fit``/``_load_arrays`` and may override :meth:`_seed_weights` and
    :attr:`seed_gram_weight` (``d``).
    """

    verb = "their latent factors point to this track"

    def __init__(self, config=None):
        super().__init__(config)
        self.item_factors: np.ndarray | None = None
        self.gram: np.ndarray | None = None

    # --- what the three models differ in ----------------------------------------------------
    @property
    def seed_gram_weight(self) -> float:
        """``d``: how much each seed's outer product ``y_s y_sᵀ`` adds to ``A`` (0: ``A = G``)."""
        return 0.0

    def _seed_weights(self, queries: Queries) -> sp.csr_matrix:
        """``w``: CSR float32 [q, n_tracks], the weight of each distinct seed of each query."""
        return seed_matrix(queries, self.n_tracks)

    # --- fold-in -------------------------------------------------------------------------------
    def _known(self, weights: sp.csr_matrix) -> sp.csr_matrix:
        """``weights`` without seeds training never saw (their factors carry no evidence)."""
        keep = self.popularity[weights.indices] > 0
        if keep.all():
            return weights
        rows = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))[keep]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=weights.shape[0]))))
        return sp.csr_matrix(
            (weights.data[keep], weights.indices[keep], indptr), shape=weights.shape
        )

    def fold_in(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        """Query factors ``u`` float64 [q, k], and a bool [q] mask of queries with evidence.

        A query without a seed known to training has no evidence (``u = 0``, mask False). Every
        step works row by row in a fixed order (CSR products, reductions over a middle axis, one
        solve per query), so a query's factors do not depend on its batch.
        """
        self._check_fitted()
        weights = self._known(self._seed_weights(queries))
        b = np.asarray(weights @ self.item_factors, dtype=np.float64)  # [q, k]
        has = np.diff(weights.indptr) > 0
        u = np.empty_like(b)
        with threadpool_limits(1, "blas"):
            for start in range(0, len(b), _GRAM_CHUNK):
                rows = slice(start, min(start + _GRAM_CHUNK, len(b)))
                if self.seed_gram_weight == 0:
                    # u = b G⁻¹ summed over the middle axis: plain elementwise adds in order.
                    u[rows] = (b[rows, :, None] * self._gram_inverse[None]).sum(axis=1)
                else:
                    u[rows] = np.linalg.solve(self._query_grams(weights[rows]), b[rows][..., None])[
                        ..., 0
                    ]
        return u, has

    @property
    def _norm_head(self) -> NormHead:
        """The item factors' :class:`NormHead` (built at the first query: a quarter of the
        factors' memory, about a second at 2.3M tracks)."""
        head = getattr(self, "_head", None)
        if head is None:
            head = self._head = NormHead.build(self.item_factors)
        return head

    @property
    def _gram_inverse(self) -> np.ndarray:
        inverse = getattr(self, "_gram_inv", None)
        if inverse is None:
            inverse = self._gram_inv = np.linalg.inv(self.gram)
        return inverse

    def _query_grams(self, weights: sp.csr_matrix) -> np.ndarray:
        """``A = G + d Σ_s y_s y_sᵀ`` per row of ``weights`` (CSR [c, n_tracks]): float64 [c, k, k].

        One small product per query: its shape depends on that query alone, so BLAS takes the
        same path for it in any batch.
        """
        grams = np.empty((weights.shape[0], *self.gram.shape))
        for row in range(weights.shape[0]):
            seeds = weights.indices[weights.indptr[row] : weights.indptr[row + 1]]
            ys = self.item_factors[seeds].astype(np.float64)  # [l, k]
            grams[row] = self.gram + self.seed_gram_weight * (ys.T @ ys)
        return grams

    # --- scoring -------------------------------------------------------------------------------
    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        u, has = self.fold_in(queries)
        ids, scores = top_k_factors(
            self.item_factors, u, n, seed_matrix(queries, self.n_tracks), head=self._norm_head
        )
        ids[~has] = -1  # no evidence: the base back-fills by popularity
        return ids, scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Per-seed terms ``w_s · y_tᵀ A⁻¹ y_s`` of each track's score (they sum to the score)."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        one = queries.slice(row, row + 1)
        weights = self._known(self._seed_weights(one))
        if weights.nnz == 0:
            return [
                popularity_explanation(
                    self, int(t), "A popular track: the playlist has no seed track the model knows."
                )
                for t in track_ids
            ]
        seeds = weights.indices.astype(np.int64)
        a = self.gram if self.seed_gram_weight == 0 else self._query_grams(weights)[0]
        solved = np.linalg.solve(
            a, (self.item_factors[seeds].astype(np.float64) * weights.data[:, None]).T
        )
        contributions = self.item_factors[track_ids].astype(np.float64) @ solved  # [t, s]
        # Name seeds in playlist order (the weight matrix sorted them by id).
        first = {}
        for position, t in enumerate(one.seed_ids.tolist()):
            first.setdefault(t, position)
        order = np.argsort([first[s] for s in seeds.tolist()], kind="stable")
        return from_seed_contributions(
            self, seeds[order], track_ids, contributions[:, order], self.verb
        )

    # --- persistence ---------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors, "gram": self.gram}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self.gram = arrays["gram"].astype(np.float64)
        self._gram_inv = self._head = None

    def _set_factors(self, item_factors: np.ndarray, gram: np.ndarray) -> None:
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.gram = np.asarray(gram, dtype=np.float64)
        self._gram_inv = self._head = None


def item_gram(item_factors: np.ndarray, regularization: float) -> np.ndarray:
    """``YᵀY + λI`` float64 [k, k] from float32 [n, k] factors (the product in float32 as implicit
    computes it, on one BLAS thread so it rounds the same every time)."""
    with threadpool_limits(1, "blas"):
        gram = (item_factors.T @ item_factors).astype(np.float64)
    return gram + regularization * np.eye(gram.shape[0])


def effective_factors(factors: int, shape: tuple[int, int]) -> int:
    """``factors`` capped at half the smaller side of the training matrix (at least 1).

    A factorisation keeping that many dimensions no longer summarises the matrix, it copies it:
    at full rank a fold-in projection returns the seeds themselves and scores every other track
    by noise. Real data (10⁵–10⁶ rows and columns) never reaches the cap.

    >>> effective_factors(128, (300, 100)), effective_factors(128, (10**6, 2 * 10**6))
    (50, 128)
    """
    return max(1, min(factors, min(shape) // 2))


def _check_positive(name: str, **values) -> None:
    for key, value in values.items():
        if value <= 0:
            raise SegueError(f"{name}: {key} must be positive, got {value}")


# ================================================================================================
@dataclass(frozen=True)
class SVDConfig:
    """``factors``: rank k (see :func:`effective_factors`). ``weighting``: ``"tfidf"``
    (default), ``"bm25"`` or ``"none"``. ``bm25_k1``/``bm25_b``: BM25 length normalisation.
    ``n_iter``/``oversamples``: randomized SVD power iterations and extra dimensions.
    ``seed``: seed of the random projection.

    On the validation part of a 100k-playlist generated split (R-precision): tf-idf 0.064 >
    BM25 0.059 > none 0.053 at k = 64 or 128; k = 64 beat 32, 128 and 200. Real MPD playlists
    disagree, and the defaults follow them: BM25 at k = 128 beat tf-idf at k = 64 on two seeds
    of a real split (256 scored a little higher still, at twice the fit time; 512 lower)."""

    factors: int = 128  # tuned on real MPD playlists (with bm25: R-precision 0.117 → 0.129)
    weighting: str = "bm25"  # tuned on real MPD playlists (tf-idf → bm25 at 128 factors)
    bm25_k1: float = 1.2  # BM25 k1 (> 0; bm25 weighting): how much a playlist's length scales it
    bm25_b: float = 0.75  # BM25 b (0..1; bm25 weighting): share of length normalisation; 0 = none
    n_iter: int = 4  # power iterations of the randomized SVD (more: more accurate, slower)
    oversamples: int = 10  # extra dimensions the randomized SVD samples beyond the rank
    seed: int = 0  # seed of the randomized SVD's random projection

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise SegueError(
                f"svd: weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}"
            )
        _check_positive("svd", factors=self.factors, bm25_k1=self.bm25_k1)
        if not 0 <= self.bm25_b <= 1:
            raise SegueError(f"svd: bm25_b must be within 0..1, got {self.bm25_b}")


WEIGHTINGS = ("none", "tfidf", "bm25")


@register
class SVDRecommender(FactorRecommender):
    """Truncated SVD of the weighted playlist × track matrix ``W ≈ U Σ Vᵀ`` (PureSVD).

    Weighting (``"tfidf"``, the default): entry ``(p, t)`` of the 0/1 matrix becomes the
    smoothed BM25 idf ``idf_t = log(1 + (N − df_t + 0.5) / (df_t + 0.5))`` — a track in half of
    all playlists says less about a playlist than a rare one, and without it the leading factors
    are spent on reproducing popularity. ``"bm25"`` also scales row ``p`` by BM25's length
    normalisation ``(k1 + 1) / (1 + k1 (1 − b + b · len_p / mean_len))`` (a long playlist's
    entries count less each); ``"none"`` keeps the 0/1 matrix. A query row is weighted the same
    way (its length is its number of distinct seeds), folded in as ``u = Vᵀ w`` and scored
    ``V u`` — for a training row exactly its rank-k reconstruction. Scores are in the weighted
    space (not divided back by idf: that would hand the top of every list to the hits).
    """

    name = "svd"
    description = "Truncated SVD (PureSVD) of the tf-idf-weighted playlist × track matrix; fold-in projection."
    Config = SVDConfig
    verb = "the SVD's latent factors link them to this track"

    def _fit(self, data: PlaylistData) -> None:
        from sklearn.utils.extmath import randomized_svd

        c = self.config
        lengths = np.diff(data.matrix.indptr)
        self.mean_length = float(lengths.mean()) if len(lengths) else 1.0
        self.column_weights = self._idf(data.track_popularity, data.n_playlists)
        matrix = data.matrix.astype(np.float32)
        matrix.data = (
            self._row_weights(lengths)[np.repeat(np.arange(len(lengths)), lengths)]
            * self.column_weights[matrix.indices]
        )
        rank = effective_factors(c.factors, matrix.shape)
        if rank >= min(matrix.shape):
            raise SegueError("svd: the training matrix is too small to factorise")
        # One BLAS thread: the QR/LU steps of the range finder then round the same on every run.
        with threadpool_limits(1, "blas"):
            _, singular, vt = randomized_svd(
                matrix,
                rank,
                n_oversamples=c.oversamples,
                n_iter=c.n_iter,
                random_state=c.seed,
            )
        self.singular_values = singular.astype(np.float32)
        # V has orthonormal columns, so the least-squares fold-in needs no Gram matrix: G = I.
        self._set_factors(vt.T, np.eye(rank))

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        """float32 [n_tracks]: 0 for tracks training never saw."""
        if self.config.weighting == "none":
            idf = np.ones(len(df))
        else:
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
        return np.where(df > 0, idf, 0).astype(np.float32)

    def _row_weights(self, lengths: np.ndarray) -> np.ndarray:
        """float32 [rows]: BM25's length normalisation of a 0/1 row (1 without BM25)."""
        c = self.config
        if c.weighting != "bm25":
            return np.ones(len(lengths), dtype=np.float32)
        norm = 1 - c.bm25_b + c.bm25_b * lengths / self.mean_length
        return ((c.bm25_k1 + 1) / (1 + c.bm25_k1 * norm)).astype(np.float32)

    def _seed_weights(self, queries: Queries) -> sp.csr_matrix:
        weights = seed_matrix(queries, self.n_tracks)
        row = self._row_weights(np.diff(weights.indptr))
        weights.data = (
            row[np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))]
            * self.column_weights[weights.indices]
        )
        return weights

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._arrays(),
            "singular_values": self.singular_values,
            "column_weights": self.column_weights,
            "mean_length": np.array([self.mean_length], dtype=np.float64),
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_arrays(arrays)
        self.singular_values = arrays["singular_values"]
        self.column_weights = arrays["column_weights"].astype(np.float32)
        self.mean_length = float(arrays["mean_length"][0])


# ================================================================================================
@dataclass(frozen=True)
class ALSConfig:
    """implicit's ALS (Hu, Koren & Volinsky 2008 with conjugate-gradient steps): ``factors``,
    ``regularization`` λ, ``alpha`` (confidence of a playlist's tracks; implicit uses C = α·R),
    ``iterations``, ``seed`` (initial factors) and ``num_threads`` (0 = all cores; ALS
    is deterministic for any count).

    On the 100k validation split, R-precision hardly moved with α ∈ {1, 5, 20, 40} (0.055–0.057)
    or λ ∈ {0.01, 1, 10}; 64 factors matched 128 at half the fit and scoring time there, but
    not on real MPD playlists, where 128 won on two seeds of a real split."""

    factors: int = 128  # tuned on real MPD playlists (R-precision 0.128 → 0.133; fit ~1.7-2x)
    regularization: float = 0.01  # L2 penalty λ on the factors (training and query fold-in)
    alpha: float = 20.0  # confidence α of a playlist's tracks (implicit's C = α·R); > 0
    iterations: int = 15  # ALS sweeps (alternating playlist and track steps)
    seed: int = 0  # seed of the initial factors
    num_threads: int = 0  # training threads (0 = all cores; ALS is deterministic for any count)

    def __post_init__(self):
        _check_positive("als", factors=self.factors, alpha=self.alpha, iterations=self.iterations)
        if self.regularization < 0 or self.num_threads < 0:
            raise SegueError(
                f"als: regularization and num_threads must be ≥ 0, got {self.regularization} "
                f"and {self.num_threads}"
            )


@register
class ALSRecommender(FactorRecommender):
    """Implicit-feedback ALS; a query is folded in by the exact ALS user step.

    That step, for item factors ``Y`` and confidences ``c_s = α`` on the seeds (1 elsewhere),
    is ``u = (YᵀY + λI + (α − 1) Σ_s y_s y_sᵀ)⁻¹ α Σ_s y_s`` — what training solves for every
    playlist (there by conjugate gradient, here exactly), so folding in a training playlist
    reproduces its trained factors once training has converged.
    """

    name = "als"
    description = (
        "Implicit-feedback ALS (implicit, CPU); queries folded in by the exact ALS user solve."
    )
    Config = ALSConfig
    verb = "ALS's latent factors link them to this track"
    engines = ("local", "spark")  # segue.spark.als: MLlib's ALS, the same model format

    @property
    def seed_gram_weight(self) -> float:
        return self.config.alpha - 1.0

    def _seed_weights(self, queries: Queries) -> sp.csr_matrix:
        weights = seed_matrix(queries, self.n_tracks)
        weights.data *= np.float32(self.config.alpha)
        return weights

    def _fit(self, data: PlaylistData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        if self.run.engine == "spark":
            from segue.spark.als import als_item_factors
            from segue.spark.session import spark_errors

            with spark_errors("als"):
                items = als_item_factors(data, c, self.run.master)
            self._set_factors(items, item_gram(items, c.regularization))
            return
        # implicit warns, and runs many times slower, when BLAS threads compete with its own.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=effective_factors(c.factors, data.matrix.shape),
                regularization=c.regularization,
                alpha=c.alpha,
                iterations=c.iterations,
                random_state=c.seed,
                num_threads=cpu_threads(c.num_threads),
            )
            model.fit(data.matrix.astype(np.float32, copy=False), show_progress=False)
        items = model.item_factors
        # A track no training playlist holds keeps (a few CG steps from) its random start.
        items[data.track_popularity == 0] = 0
        self.playlist_factors = model.user_factors  # float32 [n_playlists, k]; not saved
        self._set_factors(items, item_gram(items, c.regularization))


# ================================================================================================
@dataclass(frozen=True)
class BPRConfig:
    """implicit's BPR (Rendle et al. 2009, SGD with sampled negatives): ``factors`` (plus an
    item-bias column), ``learning_rate``, ``regularization``, ``iterations`` (epochs),
    ``fold_in_regularization`` (ridge λ of the query fold-in), ``seed`` and
    ``num_threads`` (training threads; 1 by default because parallel SGD is not reproducible).

    On the 100k validation split: learning rate 0.05 reached R-precision 0.021–0.033, 0.01–0.02
    reached 0.042–0.044 (50 epochs at 0.02 ≈ 100 at 0.01, at half the time); the fold-in's
    λ = 100 beat 1 slightly (0.0436 vs 0.0423), and beat both the mean of the seed factors
    (0.033) and a fold-in by the BPR loss itself against popularity-sampled negatives (0.027).
    BPR stays well behind ALS and SVD (0.057, 0.064) on this data. On real MPD playlists
    128 factors and a looser fold-in (λ = 10) won on two seeds of a real split; the
    learning rate, regularization and epochs above were not beaten there."""

    factors: int = 128  # tuned on real MPD playlists (with λ_fold 10: R-precision 0.110 → 0.116)
    learning_rate: float = 0.02  # SGD step size (0.01–0.02 beat 0.05 on the validation split)
    regularization: float = 0.01  # L2 penalty λ on the factors during training
    iterations: int = 50  # training epochs over the playlists' tracks
    fold_in_regularization: float = 10.0  # tuned on real MPD playlists (0.110 → 0.112 at 64)
    seed: int = 0  # seed of the initial factors and the negative sampling
    num_threads: int = 1  # training threads (0 = all cores; 1: parallel SGD is not reproducible)

    def __post_init__(self):
        _check_positive(
            "bpr",
            factors=self.factors,
            learning_rate=self.learning_rate,
            iterations=self.iterations,
        )
        if self.regularization < 0 or self.fold_in_regularization <= 0 or self.num_threads < 0:
            raise SegueError(
                "bpr: regularization and num_threads must be ≥ 0 and fold_in_regularization "
                "positive"
            )


@register
class BPRRecommender(FactorRecommender):
    """Bayesian Personalized Ranking; a query is folded in by ridge regression.

    BPR has no closed-form user step (its loss is a sum of log-sigmoids over sampled pairs), so
    a query factor is the regularised least-squares fit of its 0/1 seed indicator ``p`` from
    the item factors (bias column included): ``u = (YᵀY + λ_fold I)⁻¹ Yᵀ p``. Scores ``Y u``
    rank tracks by how well they are predicted to belong with the seeds; ``u`` is linear in the
    seeds, which keeps scoring batched and explanations exact.
    """

    name = "bpr"
    description = (
        "Bayesian Personalized Ranking (implicit, CPU); queries folded in by ridge regression."
    )
    Config = BPRConfig
    verb = "BPR's latent factors link them to this track"

    def _fit(self, data: PlaylistData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=effective_factors(c.factors, data.matrix.shape),
                learning_rate=c.learning_rate,
                regularization=c.regularization,
                iterations=c.iterations,
                random_state=c.seed,
                num_threads=cpu_threads(c.num_threads),
            )
            model.fit(data.matrix.astype(np.float32, copy=False), show_progress=False)
        items = model.item_factors  # float32 [n_tracks, factors + 1]; the last column is the bias
        self._set_factors(items, item_gram(items, c.fold_in_regularization))
