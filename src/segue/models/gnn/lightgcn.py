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

Training: BPR over sampled examples (:class:`~segue.models.gnn.playlist.PlaylistExamples`) with
``E2`` estimated by neighbour sampling — ``fanout`` playlists per track, ``fanout`` tracks per
playlist, rescaled so the estimate is unbiased, and with the example's own playlist removed
from the walks — so a batch costs O(batch × context × fanout²) whatever the size of the graph,
and no dense playlist × track matrix is ever built. LightGCN's L2 penalty on the layer-0
embeddings of the batch. After training, ``ê`` is computed exactly for every track with two
sparse products.

Because ``z`` is a sum over seeds, every score is a sum of per-seed terms
``ê_s · ê_t / sqrt(|S| d_s)``; :meth:`LightGCNRecommender.explain` reports exactly these
terms, over the query node's actual neighbours (its seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.errors import SegueError
from segue.models.base import Explanation, Queries
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.playlist import (
    HeldOut,
    PlaylistBatch,
    PlaylistExamples,
    PlaylistGraphRecommender,
    base_task_fingerprint,
    distinct_seeds,
    mean_recall,
    segment_sum,
)
from segue.models.gnn.sampling import sample_neighbors
from segue.models.gnn.training import TrainingTask, bpr_loss, seeded_module
from segue.models.registry import register


@dataclass(frozen=True)
class LightGCNConfig:
    """``factors`` (embedding size); ``layers`` 3 (LightGCN's K: two-hop track propagation) or 1
    (no propagation); ``fanout`` (neighbours per hop when sampling); ``max_context`` (most
    context tracks per example); ``regularization`` (L2 on the batch's layer-0 embeddings);
    ``validation_playlists``/``validation_share`` (held-out edges for early stopping); and the
    trainer's settings (see :class:`~segue.models.gnn.training.TrainerConfig`)."""

    factors: int = 64
    layers: int = 3
    fanout: int = 3
    max_context: int = 10
    regularization: float = 1e-4
    init_std: float = 0.1
    validation_playlists: int = 500
    validation_share: float = 0.3
    mode: str = "quick"
    epochs: int = 0
    patience: int = 0
    batch_size: int = 512
    learning_rate: float = 0.01
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str = ""
    resume: bool = False
    num_threads: int = 1


def _net(n_tracks: int, factors: int, init_std: float):
    import torch

    class LightGCNNet(torch.nn.Module):
        """Layer-0 track embeddings (the only parameters LightGCN has)."""

        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(n_tracks, factors, sparse=True)
            torch.nn.init.normal_(self.embedding.weight, std=init_std)

    return LightGCNNet()


@dataclass
class PropagationPlan:
    """Sampled two-hop walks for a batch (see :func:`propagation_plan`).

    Walks start at the ``distinct`` tracks (int64 [u]); hop 1 picks playlists
    (``hop1_track`` [h]: index into ``distinct``; ``hop1_playlist`` [h]), hop 2 tracks
    (``walk_hop1`` [w]: index into hop 1; ``walk_source`` [w]; ``walk_coef`` float32 [w] =
    1 / (n2 · sqrt(d_source))). For each (track, excluded playlist) pair of the batch:
    ``pair_track`` (index into ``distinct``), ``pair_scale`` float32 (``sqrt(d) / n1`` with the
    degree and the hop-1 count taken without the excluded playlist; 0 when nothing is left) and
    ``pair_group`` (the hop-1 group of walks through the excluded playlist, -1 when none), with
    ``hop1_group`` [h] numbering the distinct (track, playlist) hop-1 pairs.
    """

    distinct: np.ndarray
    hop1_track: np.ndarray
    hop1_group: np.ndarray
    n_groups: int
    walk_hop1: np.ndarray
    walk_source: np.ndarray
    walk_coef: np.ndarray
    pair_track: np.ndarray
    pair_scale: np.ndarray
    pair_group: np.ndarray


def propagation_plan(graph: PlaylistGraph, tracks: np.ndarray, excluded_playlist: np.ndarray, fanout: int,
                     rng: np.random.Generator) -> PropagationPlan:
    """A sampled, unbiased estimate of ``E2 = Âᵀ Â E0`` for each of ``tracks`` (int64 [m]) in
    the graph **without** ``excluded_playlist[i]`` (int64 [m]: the example's own playlist).

    ``E2_t = Σ_p Σ_t' E0_t' / (sqrt(d_t d_p) sqrt(d_p d_t'))``; with ``n1`` of the ``d_t``
    playlists and ``n2`` of each playlist's ``d_p`` tracks drawn, the rescaled estimate is
    ``sqrt(d_t) / n1 · Σ_p 1/n2 Σ_t' E0_t' / sqrt(d_t')`` — exact when every neighbour is taken.
    Walks are drawn once per distinct track of the batch; for each pair the walks through the
    excluded playlist are subtracted and ``d_t``, ``n1`` counted without it.
    """
    t_degree, p_degree = graph.track_degree, graph.playlist_degree
    distinct, pair_track = np.unique(tracks, return_inverse=True)
    pair_track = pair_track.ravel()
    hop1_track, hop1_playlist = sample_neighbors(graph.track_playlists.indptr, graph.track_playlists.indices,
                                                 distinct, fanout, rng)
    walk_hop1, walk_source = sample_neighbors(graph.playlist_tracks.indptr, graph.playlist_tracks.indices,
                                              hop1_playlist, fanout, rng)
    n2 = np.minimum(p_degree[hop1_playlist], fanout)[walk_hop1].astype(np.float64)
    walk_coef = 1.0 / (n2 * np.sqrt(np.maximum(t_degree[walk_source], 1)))
    # Group hop-1 draws by (track, playlist) so a pair can subtract its excluded playlist's walks.
    n_playlists = np.int64(graph.n_playlists)
    group_keys, hop1_group, group_size = np.unique(hop1_track * n_playlists + hop1_playlist,
                                                   return_inverse=True, return_counts=True)
    pair_keys = pair_track * n_playlists + excluded_playlist
    at = np.minimum(np.searchsorted(group_keys, pair_keys), max(len(group_keys) - 1, 0))
    found = (group_keys[at] == pair_keys) if len(group_keys) else np.zeros(len(pair_keys), dtype=bool)
    pair_group = np.where(found, at, -1)
    n1 = np.bincount(hop1_track, minlength=len(distinct))[pair_track] - np.where(found, group_size[at], 0)
    degree = t_degree[tracks] - graph.holds(excluded_playlist, tracks)
    scale = np.divide(np.sqrt(np.maximum(degree, 0)), n1, out=np.zeros(len(tracks)), where=n1 > 0)
    return PropagationPlan(distinct, hop1_track, hop1_group.ravel(), len(group_keys), walk_hop1, walk_source,
                           walk_coef.astype(np.float32), pair_track, scale.astype(np.float32), pair_group)


def sampled_two_hop(embedding, plan: PropagationPlan, device):
    """(``E0`` [m, d], sampled ``E2`` [m, d]) of a plan's (track, excluded playlist) pairs, from
    the embedding table ``embedding`` (a ``torch.nn.Embedding``). Each distinct track is looked
    up once, so a sparse gradient has no repeated rows (SparseAdam would sort every repeat)."""
    import torch

    def tensor(array):
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    needed, inverse = np.unique(np.concatenate((plan.distinct, plan.walk_source)), return_inverse=True)
    rows = embedding(tensor(needed))
    inverse = inverse.ravel()
    ego_distinct = rows[tensor(inverse[:len(plan.distinct)])]
    messages = rows[tensor(inverse[len(plan.distinct):])] * tensor(plan.walk_coef)[:, None]
    d = rows.shape[1]
    hop1 = torch.zeros((len(plan.hop1_track), d), device=device).index_add_(0, tensor(plan.walk_hop1), messages)
    per_track = torch.zeros((len(plan.distinct), d), device=device).index_add_(0, tensor(plan.hop1_track), hop1)
    per_group = torch.zeros((plan.n_groups + 1, d), device=device).index_add_(
        0, tensor(plan.hop1_group), hop1)                      # the last row stays 0 ("no group")
    group = np.where(plan.pair_group >= 0, plan.pair_group, plan.n_groups)
    two_hop = (per_track[tensor(plan.pair_track)] - per_group[tensor(group)]) * tensor(plan.pair_scale)[:, None]
    return ego_distinct[tensor(plan.pair_track)], two_hop


class LightGCNTask(TrainingTask):
    def __init__(self, graph: PlaylistGraph, config: LightGCNConfig, held: HeldOut, owner: LightGCNRecommender):
        if config.layers not in (1, 3):
            raise SegueError(f"lightgcn: layers must be 1 or 3, got {config.layers}")
        if config.factors < 1 or config.fanout < 1:
            raise SegueError("lightgcn: factors and fanout must be ≥ 1")
        self.graph = graph
        self.config = config
        self.held = held
        self.owner = owner
        self.examples = PlaylistExamples(graph.playlist_tracks, config.max_context)
        self.n_edges = self.examples.n_edges
        self.track_degree = graph.track_degree
        self.module = seeded_module(config.seed, lambda: _net(graph.n_tracks, config.factors, config.init_std))
        self.device = None
        self._rng = np.random.default_rng(config.seed + 1)

    def fingerprint(self) -> dict:
        return {**base_task_fingerprint(self, self.config), "tracks": self.graph.n_tracks}

    def batches(self, rng, n_examples, batch_size):
        self._rng = rng
        return self.examples.epoch(rng, n_examples, batch_size)

    def final_embeddings(self, tracks: np.ndarray, excluded: np.ndarray):
        """(``ê`` [m, d], ``E0`` [m, d]) of ``tracks`` (int64 [m]) in the graph without
        ``excluded[i]`` (see :func:`propagation_plan`)."""
        if self.config.layers == 1:
            distinct, inverse = np.unique(tracks, return_inverse=True)
            ego = self.module.embedding(self._tensor(distinct))[self._tensor(inverse.ravel())]
            return ego, ego
        plan = propagation_plan(self.graph, tracks, excluded, self.config.fanout, self._rng)
        ego, two_hop = sampled_two_hop(self.module.embedding, plan, self.device)
        return (ego + two_hop) / 2, ego

    def _tensor(self, array: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def loss(self, batch: PlaylistBatch):
        import torch

        b, m = batch.size, len(batch.context_track)
        tracks = np.concatenate((batch.context_track, batch.positive, batch.negative))
        example = np.concatenate((batch.context_owner, np.arange(b), np.arange(b)))
        final, ego = self.final_embeddings(tracks, batch.playlist[example])
        context, positive, negative = final[:m], final[m:m + b], final[m + b:]
        # The context tracks' degrees without the example's playlist (as a query is absent).
        degree = np.maximum(self.track_degree[batch.context_track] - 1, 1)
        norm = 1.0 / np.sqrt(batch.context_size[batch.context_owner] * degree)
        owner = torch.from_numpy(batch.context_owner).to(self.device)
        query = torch.zeros((b, final.shape[1]), device=self.device, dtype=final.dtype).index_add_(
            0, owner, context * torch.from_numpy(norm.astype(np.float32)).to(self.device)[:, None])
        loss = bpr_loss((query * positive).sum(1), (query * negative).sum(1))
        return loss + self.config.regularization * ego.pow(2).sum() / b

    def inference_arrays(self, graph: PlaylistGraph) -> dict[str, np.ndarray]:
        ego = self.module.embedding.weight.detach().cpu().numpy().astype(np.float32)
        return {"track_embeddings": exact_embeddings(ego, graph, self.config.layers),
                "track_degree": graph.track_degree}

    def validate(self, k: int) -> float:
        self.owner._set_inference(self.inference_arrays(self.graph))
        return mean_recall(self.owner._rank_ids, self.held, k)


def exact_two_hop(ego: np.ndarray, graph: PlaylistGraph) -> np.ndarray:
    """float32 [n_tracks, d]: ``Âᵀ Â E0`` by two sparse products (O(edges × d), no dense
    playlist × track array); 0 for tracks no training playlist holds."""
    degree = graph.track_degree.astype(np.float64)
    seen = degree > 0
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=seen)
    scaled = ego * inv_sqrt[:, None].astype(np.float32)
    playlist = graph.playlist_tracks @ scaled                        # [P, d]
    p_degree = graph.playlist_degree.astype(np.float64)
    playlist *= np.divide(1.0, p_degree, out=np.zeros_like(p_degree), where=p_degree > 0)[:, None].astype(np.float32)
    return ((graph.track_playlists @ playlist) * inv_sqrt[:, None].astype(np.float32)).astype(np.float32)


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

    def _seed_weights(self, queries: Queries) -> sp.csr_matrix:
        """csr [q, n_tracks] float64: ``1 / sqrt(|S| d_s)`` for each distinct seed the graph knows."""
        matrix = distinct_seeds(queries, self.n_tracks, known=self.track_degree > 0)
        size = np.diff(matrix.indptr)
        matrix.data = 1.0 / np.sqrt(np.repeat(size, size) * self.track_degree[matrix.indices])
        return matrix

    def query_vectors(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        weights = self._seed_weights(queries)
        values = self.item_vectors[weights.indices].astype(np.float64) * weights.data[:, None]
        return segment_sum(values, weights.indptr), np.diff(weights.indptr) > 0

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Per-seed terms ``ê_s · ê_t / sqrt(|S| d_s)`` of each track's score (they sum to it)."""
        self._check_fitted()
        track_ids = np.asarray(track_ids, dtype=np.int64)
        weights = self._seed_weights(queries.slice(row, row + 1))
        if weights.nnz == 0:
            return [popularity_explanation(self, int(t), "A popular track: the playlist has no seed track "
                                           "the graph knows.") for t in track_ids]
        seeds = weights.indices.astype(np.int64)
        contributions = (self.item_vectors[track_ids].astype(np.float64)
                         @ (self.item_vectors[seeds].astype(np.float64) * weights.data[:, None]).T)
        first = {}
        for position, t in enumerate(queries.seeds(row).tolist()):
            first.setdefault(t, position)
        order = np.argsort([first[s] for s in seeds.tolist()], kind="stable")
        return from_seed_contributions(self, seeds[order], track_ids, contributions[:, order], self.verb)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"track_embeddings": self.item_vectors, "track_degree": self.track_degree}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_inference(arrays)
