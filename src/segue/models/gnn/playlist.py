"""What the playlist graph models share: BPR examples, held-out edges, query scoring, the base class.

**How a playlist never seen in training is scored (the inductive part).** A challenge query is
a new playlist: its pid is in no training graph. Both playlist graph models therefore give
playlists *no free embedding*: a playlist is a node attached to its tracks, and its
representation is whatever message passing brings it from them — LightGCN's normalised sum,
or PlaylistGAT's attention over its tracks. A query is scored exactly like that: a new
playlist node attached to its seed tracks. Free per-playlist embeddings would need a fold-in
step at query time (an optimisation per query, measured worse than a closed form for BPR in
:mod:`segue.models.factor`), while this way the model is trained on the very operation it is
evaluated on.

**Training mimics queries.** A training step takes a set of training playlists and splits each at
random into a *context* (1 to ``max_context`` of its tracks; challenge queries have 0 to 100 seeds)
and *targets* (the rest); the playlist is represented only through its context, and its own walks
are removed from the graph it is scored in, so no target is in the message passing that scores it —
as a held-out track is at test time (see :mod:`segue.models.gnn.lightgcn`).

**Held-out edges.** Before training, the model holds out ``validation_share`` of the edges of
``validation_playlists`` playlists (:func:`~segue.models.gnn.sampling.split_edges`); message
passing and examples use only the rest, and validation Recall@K on the held-out edges drives
early stopping and the learning-rate schedule. The final inference arrays are computed over all
the training data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.evaluation import metrics as ranking_metrics
from segue.models.base import Queries, Recommender
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.sampling import split_edges
from segue.models.gnn.training import AdvancedTrainer, SimpleTrainer, TrainerConfig, TrainingTask
from segue.models.topn import NormHead, seed_matrix, top_k_factors

# ------------------------------------------------------------------------------------------------
# Held-out edges and validation
# ------------------------------------------------------------------------------------------------


@dataclass
class HeldOut:
    """Held-out edges of some rows: ``queries`` (each row's training tracks as seeds) and
    ``truth`` (its held-out tracks, int64 arrays)."""

    queries: Queries
    truth: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.truth)


def held_out(train: sp.csr_matrix, part: sp.csr_matrix) -> HeldOut:
    rows = np.flatnonzero(np.diff(part.indptr) > 0)
    seeds = train[rows]
    queries = Queries(
        seeds.indptr.astype(np.int64),
        seeds.indices.astype(np.int32),
        [""] * len(rows),
        rows.astype(np.int64),
    )
    truth = np.split(part[rows].indices.astype(np.int64), part[rows].indptr[1:-1])
    return HeldOut(queries, truth)


def carve_validation(matrix: sp.csr_matrix, n_playlists: int, share: float, seed: int):
    """Hold out ``share`` of the edges of up to ``n_playlists`` playlists (at most a tenth of the
    playlists with ≥ 4 tracks), chosen with ``seed``. Returns an ``EdgeSplit`` (empty test)."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(np.diff(matrix.indptr) >= 4)
    take = min(n_playlists, len(candidates) // 10)
    rows = (
        np.sort(rng.choice(candidates, size=take, replace=False))
        if take > 0
        else np.zeros(0, np.int64)
    )
    return split_edges(matrix, (1 - share, share, 0.0), rows=rows, min_edges=4, seed=seed)


def mean_recall(rank, held: HeldOut, k: int) -> float:
    """Mean Recall@k of ``rank(queries, k) -> ids [q, k]`` over the held-out rows."""
    if len(held) == 0:
        return 0.0
    ids = rank(held.queries, k)
    return float(ranking_metrics.recall_at_k(ids, held.truth, k).mean())


# ------------------------------------------------------------------------------------------------
# Scoring helpers (numpy, float64, per query independent of the batch)
# ------------------------------------------------------------------------------------------------


def segment_sum(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """float64 [q, …]: sums of consecutive row groups ``values[indptr[i]:indptr[i+1]]`` (zeros for
    empty groups). ``np.add.reduceat`` adds each group in order, so a query's sum does not depend
    on the other queries of its batch.

    >>> segment_sum(np.array([[1.0], [2.0], [4.0]]), np.array([0, 2, 2, 3])).ravel().tolist()
    [3.0, 0.0, 4.0]
    """
    q = len(indptr) - 1
    out = np.zeros((q, *values.shape[1:]), dtype=np.float64)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(
            values.astype(np.float64, copy=False), indptr[nonempty], axis=0
        )
    return out


def distinct_seeds(
    queries: Queries, n_tracks: int, known: np.ndarray | None = None
) -> sp.csr_matrix:
    """csr [q, n_tracks]: each query's distinct seeds (sorted), only those ``known`` (bool
    [n_tracks]) when given."""
    matrix = seed_matrix(queries, n_tracks, dtype=np.float64)
    if known is not None:
        matrix = sp.csr_matrix(matrix.multiply(known[None, :].astype(np.float64)))
        matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


# ------------------------------------------------------------------------------------------------
# The base Recommender
# ------------------------------------------------------------------------------------------------


def check_playlist_graph_config(config, name: str) -> None:
    """The checks LightGCN's and PlaylistGAT's configs share (their ``__post_init__`` calls it)."""
    if config.factors < 1 or config.max_context < 1 or config.negatives < 0:
        raise SegueError(f"{name}: factors and max_context must be ≥ 1 and negatives ≥ 0")
    if not 0 < config.validation_share < 1:
        raise SegueError(
            f"{name}: validation_share must be within (0, 1), got {config.validation_share}"
        )


class PlaylistGraphRecommender(Recommender):
    """Shared ``_fit`` / ``_candidates`` of the playlist graph models.

    A subclass provides ``_task(graph, held_out)`` (a :class:`TrainingTask` with
    ``inference_arrays(graph)``), ``_set_inference(arrays)`` and ``query_vectors(queries)``
    (float64 [q, d] plus a bool [q] "has a seed the model knows"), and keeps its learned
    arrays in ``self.item_vectors`` (float32 [n_tracks, d]).
    """

    needs = ("torch", "torch_geometric")
    extra = "graph"

    verb = "the graph model links them to this track"

    def _fit(self, data: PlaylistData) -> None:
        c = self.config
        graph = self._graph(data)
        split = carve_validation(
            graph.playlist_tracks, c.validation_playlists, c.validation_share, c.trainer.seed
        )
        held = held_out(split.train, split.validation)
        # Message passing and examples use only the training edges; the full graph is dropped
        # (the carved edges are ≤ 30% of ≤ 500 playlists: the final propagation goes without them
        # rather than keep a second copy of a 66M-edge graph in memory).
        graph = dataclasses.replace(
            graph, playlist_tracks=split.train, track_playlists=sp.csr_matrix(split.train.T)
        )
        del split
        task = self._task(graph, held)
        trainer_cls = AdvancedTrainer if len(held) else SimpleTrainer
        self.history = trainer_cls(self.trainer_config(), self.run).fit(task)
        self.training_log = self.history.summary()  # saved in params.json
        self._set_inference(task.inference_arrays(graph))

    def _graph(self, data: PlaylistData) -> PlaylistGraph:
        return PlaylistGraph.from_playlist_data(data, audio=False)

    def trainer_config(self) -> TrainerConfig:
        config = self.config.trainer
        # The tasks size their own batches (0: by the graph); the trainer needs a valid number.
        return dataclasses.replace(config, batch_size=max(config.batch_size, 1))

    @property
    def _norm_head(self) -> NormHead:
        """The track vectors' :class:`~segue.models.topn.NormHead` (the longest first), built at
        the first query after the vectors were set: the exact scan then stops early for most
        queries, as ALS's does (LightGCN's popular tracks have the longest vectors)."""
        if getattr(self, "_head_of", None) is not self.item_vectors:  # new vectors: a new head
            self._head = NormHead.build(self.item_vectors)
            self._head_of = self.item_vectors
        return self._head

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        vectors, has = self.query_vectors(queries)
        ids, scores = top_k_factors(
            self.item_vectors, vectors, n, seed_matrix(queries, self.n_tracks), head=self._norm_head
        )
        ids[~has] = -1  # no evidence: the base back-fills by popularity
        return ids, scores

    def _rank_ids(self, queries: Queries, k: int) -> np.ndarray:
        """int64 [q, k] used for validation (seeds excluded, -1 where nothing is known)."""
        ids, _ = self._candidates(queries, k)
        return ids


def base_task_fingerprint(task: TrainingTask, config) -> dict:
    return {
        "model": type(task).__name__,
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "trainer"},
        "n_edges": int(task.n_edges),
    }
