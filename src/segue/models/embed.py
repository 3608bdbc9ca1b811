"""``embed``: track embeddings from co-occurrence, scored by cosine to the seeds' centroid.

The source design's "neural" baseline, kept as a named baseline: each of the ``vocabulary_size``
most popular tracks is described by its co-occurrence with the others (how many training
playlists hold both), damped by ``log1p`` so a few huge counts do not drown the rest and with the
diagonal (a track's own popularity) left out. A seeded truncated SVD reduces these rows to
``n_components`` dimensions and the embeddings are L2-normalised. A query's score for a
vocabulary track is the cosine between the track and the centroid of its seeds' embeddings
(seeds outside the vocabulary are ignored; a query with none gets popularity).

Since ``cos(t, c) = Σ_s e_t·e_s / (n |c|)`` for the centroid ``c`` of ``n`` seeds, each seed's
share of a score is ``cos(seed, track) / n`` up to the common factor ``1/|c|``: the explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.registry import register
from segue.models.topn import top_k_factors


@dataclass(frozen=True)
class EmbedConfig:
    """``vocabulary_size``: tracks with an embedding (the most popular). ``n_components``:
    embedding dimensions (capped below the vocabulary size). ``seed``: SVD seed."""

    vocabulary_size: int = 20_000  # tracks with an embedding: the most popular ones (≥ 2)
    n_components: int = 128  # embedding dimensions (capped below the vocabulary size)
    seed: int = 0  # seed of the randomized truncated SVD

    def __post_init__(self):
        if self.vocabulary_size < 2 or self.n_components < 1:
            raise SegueError("embed: vocabulary_size must be ≥ 2 and n_components ≥ 1")


@register
class EmbedRecommender(Recommender):
    name = "embed"
    description = (
        "Co-occurrence embeddings of the top tracks (truncated SVD); cosine to the seed centroid."
    )
    Config = EmbedConfig

    def _fit(self, data: PlaylistData) -> None:
        from sklearn.decomposition import TruncatedSVD
        from threadpoolctl import threadpool_limits

        c = self.config
        played = self._popular_order[self.popularity[self._popular_order] > 0]
        vocabulary = played[: c.vocabulary_size].astype(np.int32)  # most popular first
        if len(vocabulary) < 2:
            raise SegueError("embed: fewer than two tracks occur in training")
        columns = data.matrix.tocsc()[:, vocabulary].tocsr()  # [playlists, v]
        cooc = (columns.T @ columns).tocsr()  # [v, v] counts
        cooc.setdiag(0)
        cooc.eliminate_zeros()
        cooc.data = np.log1p(cooc.data).astype(np.float32)
        dims = min(c.n_components, len(vocabulary) - 1)
        # One BLAS thread: the randomized SVD's QR/LU steps then round the same on every run.
        with threadpool_limits(1, "blas"):
            svd = TruncatedSVD(dims, algorithm="randomized", random_state=c.seed)
            vectors = svd.fit_transform(cooc)  # [v, dims]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._set(
            vocabulary, np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        )

    def _set(self, vocabulary: np.ndarray, embeddings: np.ndarray) -> None:
        self.vocabulary = vocabulary.astype(np.int32)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)  # [v, d], unit rows
        self.position = np.full(self.n_tracks, -1, dtype=np.int64)  # track id → vocabulary row
        self.position[self.vocabulary] = np.arange(len(self.vocabulary))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"vocabulary": self.vocabulary, "embeddings": self.embeddings}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set(arrays["vocabulary"], arrays["embeddings"])

    def _seeds(self, queries: Queries) -> sp.csr_matrix:
        """CSR float32 [q, v]: 1 for each distinct in-vocabulary seed (columns = vocabulary rows)."""
        cols = self.position[queries.seed_ids]
        keep = cols >= 0
        rows = np.repeat(np.arange(len(queries)), queries.lengths())[keep]
        matrix = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (rows, cols[keep])),
            shape=(len(queries), len(self.vocabulary)),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1
        return matrix

    def centroids(self, queries: Queries) -> np.ndarray:
        """Unit centroid direction of each query's seed embeddings: float64 [q, d] (0 rows where
        a query has no seed in the vocabulary)."""
        self._check_fitted()
        seeds = self._seeds(queries)
        centroid = np.asarray(
            seeds @ self.embeddings, dtype=np.float64
        )  # sums; scale is irrelevant
        norms = np.linalg.norm(centroid, axis=1, keepdims=True)
        return np.divide(centroid, norms, out=np.zeros_like(centroid), where=norms > 0)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        seeds = self._seeds(queries)
        unit = self.centroids(queries)
        pos, scores = top_k_factors(self.embeddings, unit, n, seeds)
        ids = np.where(pos >= 0, self.vocabulary[np.maximum(pos, 0)], -1)
        ids[~unit.any(axis=1)] = -1  # no evidence: popularity back-fill
        return ids, scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Each seed's ``cos(seed, track) / n`` (the terms of the cosine to the centroid)."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        seeds = queries.seeds(row)
        _, first = np.unique(seeds, return_index=True)
        seeds = seeds[np.sort(first)]
        seeds = seeds[self.position[seeds] >= 0]
        if len(seeds) == 0:
            return [
                popularity_explanation(
                    self,
                    int(t),
                    "A popular track: no seed track of the playlist is "
                    "among the tracks the model embeds.",
                )
                for t in track_ids
            ]
        tracks = self.position[track_ids]
        vectors = np.where((tracks >= 0)[:, None], self.embeddings[np.maximum(tracks, 0)], 0)
        contributions = (
            vectors.astype(np.float64) @ self.embeddings[self.position[seeds]].T / len(seeds)
        )
        return from_seed_contributions(
            self,
            seeds,
            track_ids,
            contributions,
            "tracks that co-occur like these point to this one",
        )
