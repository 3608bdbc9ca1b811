"""``lightgcn``: LightGCN (He et al., SIGIR 2020) over the playlist–track graph, inductive in playlists.

LightGCN propagates embeddings over the normalised bipartite adjacency
``Â = D_p^{-1/2} R D_t^{-1/2}`` without weights or non-linearities and averages the layers.
Here playlists have no layer-0 embedding (see :mod:`segue.models.gnn.playlist`: a query is a
new playlist node), so with LightGCN's ``K = 3`` layers the odd layers of tracks and the even
layers of playlists vanish and what remains is, up to a constant factor:

* track ``t``:  ``ê_t = (E0_t + E2_t) / 2`` with ``E2 = Âᵀ Â E0`` (two hops: track → its
  playlists → their tracks);
* playlist or query with tracks ``S``: ``z = Σ_{s∈S} ê_s / sqrt(|S| · d_s)`` (LightGCN's
  propagation into the new node, ``d_s`` the seed's training degree);
* score ``z · ê_t``.

``layers = 1`` keeps only ``E0`` (no propagation: a plain item-embedding model, the ablation).

**Training on the full graph.** Every step propagates the whole graph with two sparse products
(``m = D_p^{-1} R D_t^{-1/2} E0``: one message per playlist; ``E2 = D_t^{-1/2} Rᵀ m``) and
back-propagates through their transposes (kept beside them: torch's own backward of a sparse
product transposes the matrix on every call, measured 12× slower than the product at 66M
edges). A step's batch is a set of training playlists; each is split at random into a *context*
(a uniform share of its tracks, 1 to ``max_context`` of them) and *targets* (the rest), and the
playlist is represented only through its context, as a query is through its seeds. Its own
path through the graph is removed exactly: ``E2`` of a track ``x`` of playlist ``p`` holds
``m_p / sqrt(d_x)``, which carries the targets into the context (and the context into the
targets), so ``ê_x − ½ m_p / sqrt(d_x)`` is used for ``p``'s tracks — the graph without ``p``,
as a query is absent from it.

**Loss.** The targets are scored with a softmax over the catalogue (the multinomial likelihood
of Liang et al., "Variational autoencoders for collaborative filtering", WWW 2018), which
measured far better than BPR with one or 512 uniform negatives on the real dev playlists
(validation R-precision 0.123 against 0.094 and 0.083 after the same time); ``negatives``
sets how: every track (exact) while ``n_playlists × n_tracks`` stays under
:data:`EXACT_SOFTMAX_CELLS`, else that many tracks shared by the batch, drawn by
popularity^0.75 and log-Q corrected (Jean et al., ACL 2015), with one log-sum-exp per playlist.
Contexts are masked out of the softmax (seeds are never recommended). LightGCN's L2 penalty on
the layer-0 embeddings a batch touches. The trainer (:mod:`segue.models.gnn.training`) stops on
its wall-clock budget, its epoch cap or validation Recall@10 (early stopping, best weights
kept); an epoch visits every training playlist once.

Because ``z`` is a sum over seeds, every score is a sum of per-seed terms
``ê_s · ê_t / sqrt(|S| d_s)``; :meth:`LightGCNRecommender.explain` reports exactly these
terms, over the query node's actual neighbours (its seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.arrays import ranges
from segue.errors import SegueError
from segue.models.base import Explanation, Queries
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.playlist import (
    HeldOut,
    PlaylistGraphRecommender,
    base_task_fingerprint,
    check_playlist_graph_config,
    distinct_seeds,
    mean_recall,
    segment_sum,
)
from segue.models.gnn.training import TrainerConfig, TrainingTask, seeded_module
from segue.models.registry import register

# The exact softmax scores every (playlist, track) pair once per epoch; above this many pairs
# (the real dev set: 5,000 playlists × 180,000 tracks = 0.9e9, 13 s an epoch on one core) the
# batch shares ``negatives`` sampled tracks instead.
EXACT_SOFTMAX_CELLS = 2e9
SAMPLED_NEGATIVES = 8_192
NEGATIVE_POWER = 0.75
STEPS_PER_EPOCH = 32  # batch = max(256, playlists / 32) by default: a full propagation per step


@dataclass(frozen=True)
class LightGCNConfig:
    """``factors`` (embedding size); ``layers`` 3 (LightGCN's K: two-hop track propagation) or 1
    (no propagation); ``negatives`` (0: the exact softmax on small data, else
    :data:`SAMPLED_NEGATIVES`; n > 0: n sampled tracks per batch, all of them when the catalogue
    is smaller); ``max_context`` (most context tracks per training playlist);
    ``regularization`` (L2 on the layer-0 embeddings a batch touches);
    ``validation_playlists``/``validation_share`` (held-out edges for early stopping);
    ``trainer``: the :class:`~segue.models.gnn.training.TrainerConfig` (its ``batch_size``:
    playlists per step, 0 = max(256, playlists / 32))."""

    factors: int = 64  # embedding size of the tracks (and so of playlists and queries)
    layers: int = 3  # LightGCN's K: 3 (two-hop track propagation) or 1 (no propagation)
    # softmax negatives per batch: 0 = exact on small data, else 8,192 sampled; n > 0: n sampled
    negatives: int = 0
    max_context: int = 100  # most context tracks a training playlist is represented by
    regularization: float = 1e-4  # L2 penalty on the layer-0 embeddings a batch touches
    init_std: float = 0.1  # standard deviation of the normal initial layer-0 embeddings
    validation_playlists: int = 500  # playlists with held-out edges for early stopping
    validation_share: float = 0.3  # share of each validation playlist's edges held out, (0, 1)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(batch_size=0))

    def __post_init__(self):
        if self.layers not in (1, 3):
            raise SegueError(f"lightgcn: layers must be 1 or 3, got {self.layers}")
        check_playlist_graph_config(self, "lightgcn")


def _net(n_tracks: int, factors: int, init_std: float):
    from segue.models.nets import LightGCNNet

    return LightGCNNet(n_tracks, factors, init_std)


def _torch_csr(matrix: sp.csr_matrix, values: np.ndarray, device):
    """A torch CSR tensor of ``matrix``'s structure with ``values``; 32-bit indices while they
    fit (half the memory of torch's default int64: 0.5 GB at 66M edges)."""
    import torch

    index = np.int32 if max(matrix.nnz, *matrix.shape) < 2**31 else np.int64
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(index)),
        torch.from_numpy(matrix.indices.astype(index)),
        torch.from_numpy(values.astype(np.float32)),
        size=matrix.shape,
        device=device,
    )


class Propagation:
    """The two normalised products of a training graph (torch sparse CSR, float32) and their
    transposes: ``to_playlists`` [P, T] = ``D_p^{-1} R D_t^{-1/2}``, ``to_tracks`` [T, P] =
    ``D_t^{-1/2} Rᵀ`` (``d`` the training degrees; tracks of degree 0 get 0)."""

    def __init__(self, graph: PlaylistGraph, device):
        import warnings

        r = graph.playlist_tracks
        rt = graph.track_playlists
        t_degree = graph.track_degree.astype(np.float64)
        p_degree = graph.playlist_degree.astype(np.float64)
        self.inv_sqrt_track = np.divide(
            1.0, np.sqrt(t_degree), out=np.zeros_like(t_degree), where=t_degree > 0
        )
        inv_playlist = np.divide(1.0, p_degree, out=np.zeros_like(p_degree), where=p_degree > 0)
        # R's rows: value of (p, t) = 1/d_p · 1/sqrt(d_t); Rᵀ's rows: (t, p) = 1/sqrt(d_t) for
        # ``to_tracks`` and 1/sqrt(d_t) · 1/d_p for the transpose of ``to_playlists``.
        inv_sqrt = self.inv_sqrt_track.astype(np.float32)
        inv_playlist = inv_playlist.astype(np.float32)
        r_row_value = np.repeat(inv_playlist, np.diff(r.indptr))  # 1/d_p of each entry of R
        rt_row_value = np.repeat(inv_sqrt, np.diff(rt.indptr))  # 1/sqrt(d_t) of each entry of Rᵀ
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self.to_playlists = _torch_csr(r, r_row_value * inv_sqrt[r.indices], device)
            self.to_playlists_t = _torch_csr(rt, rt_row_value * inv_playlist[rt.indices], device)
            self.to_tracks = _torch_csr(rt, rt_row_value, device)
            self.to_tracks_t = _torch_csr(r, inv_sqrt[r.indices], device)
        del r_row_value, rt_row_value
        from segue.models.nets import SparseProduct

        self.product = SparseProduct

    def messages(self, ego):
        """``m`` [P, d]: each playlist's mean of ``E0_t / sqrt(d_t)``."""
        return self.product.apply(self.to_playlists, self.to_playlists_t, ego)

    def two_hop(self, messages):
        """``E2`` [T, d] = ``D_t^{-1/2} Rᵀ m``."""
        return self.product.apply(self.to_tracks, self.to_tracks_t, messages)

    def two_hop_rows(self, track_playlists: sp.csr_matrix, rows: np.ndarray, messages):
        """``E2`` of ``rows`` only ([r, d]): the row slice of ``Rᵀ`` (``track_playlists``, the
        training graph's) and its transpose, built for this step."""
        part = track_playlists[rows]
        values = np.repeat(self.inv_sqrt_track[rows].astype(np.float32), np.diff(part.indptr))
        part = sp.csr_matrix((values, part.indices, part.indptr), shape=part.shape)
        device = messages.device
        with_t = part.T.tocsr()
        return self.product.apply(
            _torch_csr(part, part.data, device), _torch_csr(with_t, with_t.data, device), messages
        )


@dataclass
class TrackTable:
    """Track representations: ``table`` [r, d] (a torch tensor) of the tracks ``ids`` (sorted
    int64 [r]; None: every track, row = id)."""

    table: object
    ids: np.ndarray | None

    def take(self, tracks: np.ndarray, tensor):
        """[m, d]: the rows of ``tracks`` (int64 [m], each in ``ids``). ``index_select``, not
        ``table[...]``: its backward is one ``index_add``, where advanced indexing sorts the
        indices to accumulate."""
        at = tracks if self.ids is None else np.searchsorted(self.ids, tracks)
        return self.table.index_select(0, tensor(at))


@dataclass
class PlaylistSplitBatch:
    """A step's playlists (int64 [B]) and each one's random split: ``context_owner``/
    ``context_track`` and ``target_owner``/``target_track`` (int64, owner = index into the
    batch) and ``context_size`` int64 [B] (≥ 1); ``negatives`` int64 [K] the sampled softmax's
    shared tracks (empty for the exact softmax); ``masked_owner``/``masked_track`` the cells
    kept out of the exact softmax (the context by default)."""

    size: int
    playlist: np.ndarray
    context_owner: np.ndarray
    context_track: np.ndarray
    target_owner: np.ndarray
    target_track: np.ndarray
    context_size: np.ndarray
    negatives: np.ndarray
    masked_owner: np.ndarray | None = None
    masked_track: np.ndarray | None = None
    sampled: np.ndarray | None = (
        None  # tracks a model's second, sampled softmax uses (PlaylistGAT's)
    )

    def __post_init__(self):
        # Cells kept out of the exact softmax: the context (seeds are never recommended), and
        # whatever a model adds.
        if self.masked_owner is None:
            self.masked_owner, self.masked_track = self.context_owner, self.context_track


def split_playlists(
    matrix: sp.csr_matrix, playlists: np.ndarray, max_context: int, rng: np.random.Generator
) -> PlaylistSplitBatch:
    """Each of ``playlists`` (int64 [B], ≥ 2 tracks each) split into a random context of
    ``clip(⌊u · d⌋, 1, min(d − 1, max_context))`` tracks (``u`` uniform, ``d`` its length) and
    the remaining tracks as targets."""
    degree = np.diff(matrix.indptr)[playlists].astype(np.int64)
    owner = np.repeat(np.arange(len(playlists)), degree)
    positions = ranges(matrix.indptr[playlists].astype(np.int64), degree)
    tracks = matrix.indices[positions].astype(np.int64)
    # A random rank within each playlist: sort by (owner, random key).
    order = np.lexsort((rng.random(len(positions)), owner))
    rank = np.empty(len(positions), dtype=np.int64)
    rank[order] = np.arange(len(positions)) - np.repeat(np.cumsum(degree) - degree, degree)
    size = np.clip(
        np.floor(rng.random(len(playlists)) * degree).astype(np.int64),
        1,
        np.minimum(degree - 1, max_context),
    )
    is_context = rank < size[owner]
    return PlaylistSplitBatch(
        len(playlists),
        playlists,
        owner[is_context],
        tracks[is_context],
        owner[~is_context],
        tracks[~is_context],
        size,
        np.zeros(0, dtype=np.int64),
    )


class LightGCNTask(TrainingTask):
    def __init__(
        self,
        graph: PlaylistGraph,
        config: LightGCNConfig,
        held: HeldOut,
        owner: LightGCNRecommender,
    ):
        layers = getattr(config, "layers", 3)  # PlaylistGAT's configs: always two hops
        self.layers = layers
        self.graph = graph
        self.config = config
        self.held = held
        self.owner = owner
        self.playlists = np.flatnonzero(graph.playlist_degree >= 2)
        if len(self.playlists) == 0:
            raise SegueError("lightgcn: no training playlist has two tracks: nothing to learn from")
        self.n_edges = len(self.playlists)  # an epoch visits every playlist once
        self.batch_size = config.trainer.batch_size or max(
            256, math.ceil(len(self.playlists) / STEPS_PER_EPOCH)
        )
        n_tracks = graph.n_tracks
        if config.negatives == 0:
            exact = len(self.playlists) * n_tracks <= EXACT_SOFTMAX_CELLS
            self.negatives = n_tracks if exact else SAMPLED_NEGATIVES
        else:
            self.negatives = config.negatives
        self.exact = self.negatives >= n_tracks
        weights = graph.track_degree.astype(np.float64) ** NEGATIVE_POWER
        self.proposal = weights / weights.sum()
        self.module = seeded_module(config.trainer.seed, self._build_module)
        self.device = None
        self.propagation = None

    def _build_module(self):
        return _net(self.graph.n_tracks, self.config.factors, self.config.init_std)

    def fingerprint(self) -> dict:
        return {**base_task_fingerprint(self, self.config), "tracks": self.graph.n_tracks}

    def to(self, device) -> None:
        super().to(device)
        if self.layers == 3:
            self.propagation = Propagation(self.graph, device)

    def batches(self, rng, n_examples, batch_size):
        order = np.concatenate(
            [rng.permutation(self.playlists) for _ in range(-(-n_examples // len(self.playlists)))]
        )[:n_examples]
        for start in range(0, len(order), self.batch_size):
            batch = split_playlists(
                self.graph.playlist_tracks,
                order[start : start + self.batch_size],
                self.config.max_context,
                rng,
            )
            if not self.exact:
                batch.negatives = rng.choice(
                    len(self.proposal), size=self.negatives, p=self.proposal
                )
            yield batch

    def _tensor(self, array: np.ndarray, dtype=None):
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return tensor if dtype is None else tensor.to(dtype)

    def propagate(self, rows: np.ndarray | None = None) -> tuple[TrackTable, object]:
        """(``ê`` of ``rows`` (sorted int64; None: every track) as a :class:`TrackTable`, ``m``
        [P, d] or None for one layer) from the current ``E0``. With ``rows``, ``E2`` is computed
        for those tracks only (a row slice of ``Rᵀ`` a step): the catalogue-sized tables, and
        their gradients, that a full ``ê`` costs are never built (measured: most of a step's
        time at 729,000 tracks)."""
        ego = self.module.embedding.weight
        if self.propagation is None:
            return TrackTable(
                ego if rows is None else ego.index_select(0, self._tensor(rows)), rows
            ), None
        messages = self.propagation.messages(ego)
        if rows is None:
            return TrackTable((ego + self.propagation.two_hop(messages)) / 2, None), messages
        two_hop = self.propagation.two_hop_rows(self.graph.track_playlists, rows, messages)
        return TrackTable((ego.index_select(0, self._tensor(rows)) + two_hop) / 2, rows), messages

    def without_own_playlist(
        self, final: TrackTable, messages, tracks: np.ndarray, playlists: np.ndarray
    ):
        """[m, d]: ``ê`` of ``tracks`` (int64 [m]) in the graph without ``playlists[i]`` (the
        track's own): ``ê_x − ½ m_p / sqrt(d_x)`` (see the module docstring)."""
        rows = final.take(tracks, self._tensor)
        if messages is None:
            return rows
        scale = self._tensor((0.5 * self.propagation.inv_sqrt_track[tracks]).astype(np.float32))
        return rows - scale[:, None] * messages.index_select(0, self._tensor(playlists))

    def encode(self, batch: PlaylistSplitBatch):
        """``(final, context [m, d], targets [n, d])`` for a step: ``ê`` of the tracks the step
        needs (every track for the exact softmax) as a :class:`TrackTable`, and ``ê`` of the
        batch's context and target tracks in the graph without their own playlist."""
        needed = (
            None
            if self.exact
            else np.unique(
                np.concatenate((batch.context_track, batch.target_track, batch.negatives))
            )
        )
        final, messages = self.propagate(needed)
        context = self.without_own_playlist(
            final, messages, batch.context_track, batch.playlist[batch.context_owner]
        )
        targets = self.without_own_playlist(
            final, messages, batch.target_track, batch.playlist[batch.target_owner]
        )
        return final, context, targets

    def loss(self, batch: PlaylistSplitBatch):
        final, context, targets = self.encode(batch)
        return self.softmax_loss(
            batch, self.query(batch, context), targets, final, self.module.embedding.weight
        )

    def context_weights(self, batch: PlaylistSplitBatch) -> np.ndarray:
        """float32 [context]: LightGCN's weight ``1 / sqrt(|S| d_s)`` of each context track, its
        degree counted without the playlist (as a query is not in the graph)."""
        degree = np.maximum(self.graph.track_degree[batch.context_track] - 1, 1)
        return (1.0 / np.sqrt(batch.context_size[batch.context_owner] * degree)).astype(np.float32)

    def query(self, batch: PlaylistSplitBatch, context):
        """[B, d]: each training playlist's representation from its context tracks' ``context``
        [m, d] (rows of ``batch.context_track``): LightGCN's weighted sum."""
        import torch

        weights = self._tensor(self.context_weights(batch))
        return torch.zeros(
            (batch.size, context.shape[1]), device=self.device, dtype=context.dtype
        ).index_add_(0, self._tensor(batch.context_owner), context * weights[:, None])

    def softmax_loss(
        self,
        batch: PlaylistSplitBatch,
        query,
        targets,
        final: TrackTable,
        ego,
        *,
        negatives: np.ndarray | None = None,
        regularize: bool = True,
    ):
        """Mean over the batch's targets of ``−log softmax``: ``query`` [B, d] against its targets'
        representations ``targets`` [n, d] (without the own playlist) over the catalogue's
        ``final`` (every track: exact) or sampled negatives (the batch's, or ``negatives`` int64
        [K] when given; log-Q corrected), contexts masked out; plus (``regularize``) L2 on the
        rows of ``ego`` (layer 0) the batch touched."""
        import torch

        b = batch.size
        target_owner = self._tensor(batch.target_owner)
        target_score = (query[target_owner] * targets).sum(1)  # [targets]
        if negatives is None and self.exact:
            logits = query @ final.table.T  # [B, T]
            # The targets' logits with the own-playlist path removed; the contexts masked out.
            n = logits.shape[1]
            flat = logits.reshape(-1)
            target_cell = self._tensor(batch.target_owner * n + batch.target_track)
            context_cell = self._tensor(batch.masked_owner * n + batch.masked_track)
            flat = flat.index_put((target_cell,), target_score).index_fill(
                0, context_cell, float("-inf")
            )
            normaliser = torch.logsumexp(flat.reshape(b, n), dim=1)[target_owner]
        else:
            negatives = batch.negatives if negatives is None else negatives
            correction = self._tensor(
                np.log(len(negatives) * self.proposal[negatives]).astype(np.float32)
            )
            sampled = query @ final.take(negatives, self._tensor).T - correction[None, :]  # [B, K]
            # The target against the batch's shared sample: one log-sum-exp per playlist.
            normaliser = torch.logaddexp(
                target_score, torch.logsumexp(sampled, dim=1)[target_owner]
            )
        loss = (normaliser - target_score).mean()
        if not regularize:
            return loss
        used = np.concatenate((batch.context_track, batch.target_track, batch.negatives))
        rows = self._tensor(np.unique(used))
        return loss + self.config.regularization * ego.index_select(0, rows).pow(2).sum() / b

    def inference_arrays(self, graph: PlaylistGraph) -> dict[str, np.ndarray]:
        ego = self.module.embedding.weight.detach().cpu().numpy().astype(np.float32)
        return {
            "track_embeddings": exact_embeddings(ego, graph, self.config.layers),
            "track_degree": graph.track_degree,
        }

    def validate(self, k: int) -> float:
        self.owner._set_inference(self.inference_arrays(self.graph))
        return mean_recall(self.owner._rank_ids, self.held, k)


def seed_weights(queries: Queries, n_tracks: int, degree: np.ndarray) -> sp.csr_matrix:
    """csr [q, n_tracks] float64: LightGCN's ``1 / sqrt(|S| d_s)`` for each distinct seed the graph
    knows (``degree`` int64 [n_tracks], the training degrees; ``|S|`` counts the known seeds).

    >>> seed_weights(Queries.from_lists([[0, 1, 2]]), 3, np.array([4, 0, 1])).toarray().round(3).tolist()
    [[0.354, 0.0, 0.707]]
    """
    matrix = distinct_seeds(queries, n_tracks, known=degree > 0)
    size = np.diff(matrix.indptr)
    matrix.data = 1.0 / np.sqrt(np.repeat(size, size) * degree[matrix.indices])
    return matrix


def exact_two_hop(ego: np.ndarray, graph: PlaylistGraph) -> np.ndarray:
    """float32 [n_tracks, d]: ``Âᵀ Â E0`` by two sparse products (O(edges × d), no dense
    playlist × track array); 0 for tracks no training playlist holds."""
    degree = graph.track_degree.astype(np.float64)
    seen = degree > 0
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=seen)
    scaled = ego * inv_sqrt[:, None].astype(np.float32)
    playlist = graph.playlist_tracks @ scaled  # [P, d]
    p_degree = graph.playlist_degree.astype(np.float64)
    playlist *= np.divide(1.0, p_degree, out=np.zeros_like(p_degree), where=p_degree > 0)[
        :, None
    ].astype(np.float32)
    return ((graph.track_playlists @ playlist) * inv_sqrt[:, None].astype(np.float32)).astype(
        np.float32
    )


def exact_embeddings(ego: np.ndarray, graph: PlaylistGraph, layers: int) -> np.ndarray:
    """float32 [n_tracks, d]: ``(E0 + Âᵀ Â E0) / 2`` (``E0`` for ``layers == 1``); tracks no
    training playlist holds get 0 (their embeddings were never trained)."""
    seen = graph.track_degree > 0
    if layers == 1:
        return np.where(seen[:, None], ego, 0).astype(np.float32)
    return np.where(seen[:, None], (ego + exact_two_hop(ego, graph)) / 2, 0).astype(np.float32)


@register
class LightGCNRecommender(PlaylistGraphRecommender):
    """LightGCN over the playlist–track graph; a query is a new playlist node on its seeds."""

    name = "lightgcn"
    description = "LightGCN (graph propagation, BPR, neighbour sampling); a query is a new playlist node on its seeds."
    Config = LightGCNConfig
    verb = "LightGCN's propagation over the playlist graph links them to this track"

    def _task(self, graph: PlaylistGraph, held: HeldOut) -> LightGCNTask:
        return LightGCNTask(graph, self.config, held, self)

    def _set_inference(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_vectors = np.ascontiguousarray(arrays["track_embeddings"], dtype=np.float32)
        self.track_degree = np.asarray(arrays["track_degree"], dtype=np.int64)

    def query_vectors(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        weights = seed_weights(queries, self.n_tracks, self.track_degree)
        values = self.item_vectors[weights.indices].astype(np.float64) * weights.data[:, None]
        return segment_sum(values, weights.indptr), np.diff(weights.indptr) > 0

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Per-seed terms ``ê_s · ê_t / sqrt(|S| d_s)`` of each track's score (they sum to it)."""
        self._check_fitted()
        track_ids = np.asarray(track_ids, dtype=np.int64)
        weights = seed_weights(queries.slice(row, row + 1), self.n_tracks, self.track_degree)
        if weights.nnz == 0:
            return [
                popularity_explanation(
                    self, int(t), "A popular track: the playlist has no seed track the graph knows."
                )
                for t in track_ids
            ]
        seeds = weights.indices.astype(np.int64)
        contributions = (
            self.item_vectors[track_ids].astype(np.float64)
            @ (self.item_vectors[seeds].astype(np.float64) * weights.data[:, None]).T
        )
        first = {}
        for position, t in enumerate(queries.seeds(row).tolist()):
            first.setdefault(t, position)
        order = np.argsort([first[s] for s in seeds.tolist()], kind="stable")
        return from_seed_contributions(
            self, seeds[order], track_ids, contributions[:, order], self.verb
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"track_embeddings": self.item_vectors, "track_degree": self.track_degree}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_inference(arrays)
