"""``gat`` and ``genre_gat``: graph attention recommenders over the listening graph (users are nodes).

The source design's two session models, over :class:`~segue.models.gnn.graph.ListeningGraph` in
its homogeneous form (one id space with offsets, relations typed by a one-hot edge attribute):

``gat`` (basic, collaborative only)
    user / track / artist embeddings (32-d), one ``GATConv`` layer with 4 heads of 8 dimensions
    (concatenated: 32), dropout 0.1; score ``cos(u, t)`` (the source's ``u · t`` measured worse,
    see :func:`basic_config`; ``score="dot"`` restores it).
``genre_gat`` (genre-aware)
    genre nodes as well (track and artist ``has_genre`` edges); 64-d embeddings; ``GATConv``
    64 → 4 heads × 16 (64), batch norm, ELU, dropout 0.2, then ``GATConv`` 64 → 2 heads × 32
    averaged (32); score ``α · cos(u, t) + (1 − α) · cos(g_u, g_t)`` with ``α = 0.8``, where
    ``g_u`` is the user's genre shares **from their own training listens** and ``g_t`` the
    track's genres. Cosines keep the two terms on one scale, so ``α`` means what it says; BPR
    is applied to the score divided by a temperature.

Both use every listens attribute in the attention (``edge_dim``: play count, completion, whether
completion is known, edge weight, and the relation), a self-loop per node added explicitly (a
"self" relation: PyG's automatic self-loops would pair a node with the wrong row when sources and
targets are numbered apart), and no user → genre edges unless asked for.

Training (BPR, :mod:`segue.models.gnn.training`): a batch of training edges (user, track⁺), a
negative per edge that the user never played in training, and the K-hop neighbourhood of the
batch's users and tracks sampled with ``fanout`` neighbours per node and hop, **without the
batch's own (user, track⁺) edges** in either direction — the edge being predicted is never in
the message passing that predicts it. Validation Recall@10 on the split's validation part
(its edges are not in the training graph at all) drives early stopping.

Inference computes every node's representation exactly, layer by layer over all in-edges, in
chunks of destinations (memory bounded by the chunk), then ranks every track for a user by one
inner product (the genre-aware score is an inner product of concatenated, weighted unit
vectors) with training tracks excluded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from segue.arrays import ranges
from segue.errors import InputFileError, SegueError
from segue.models.base import ARRAYS_FILE, PARAMS_FILE, read_model, saved_config, write_model
from segue.models.config import RunOptions
from segue.models.gnn.graph import (
    LISTEN_ATTRIBUTES,
    USER_GENRE_SOURCES,
    HomogeneousGraph,
    ListeningGraph,
    genre_profile,
    graph_arrays,
    graph_from_arrays,
)
from segue.models.gnn.sampling import contains, edge_keys, sample_negatives
from segue.models.gnn.training import (
    AdvancedTrainer,
    SimpleTrainer,
    TrainerConfig,
    TrainingTask,
    bpr_loss,
    seeded_module,
)
from segue.models.registry import register
from segue.models.topn import top_k_factors

INFERENCE_CHUNK_EDGES = 1_000_000


@dataclass(frozen=True)
class ListeningGATConfig:
    """Architecture (``genre_aware``, ``factors`` of the input embeddings, ``hidden``/``heads``/
    ``concat`` per layer, ``dropout``), scoring (``score``: ``"dot"`` = ``u · t`` or
    ``"cosine"`` = ``α cos(u, t) + (1 − α) cos(g_u, g_t)``, the genre term only for the
    genre-aware model; BPR on the cosine score divided by ``temperature``), sampling
    (``fanout``: neighbours per node at each hop, one entry per layer), ``regularization`` (L2 on
    the batch's input embeddings), ``user_genres`` (``"none"``; ``"listening"`` or ``"stated"``
    opt in to user → genre edges), and ``trainer``
    (:class:`~segue.models.gnn.training.TrainerConfig`)."""

    genre_aware: bool = False  # genre nodes (has_genre edges) and a genre term in the score
    score: str = "dot"  # "dot" = u · t, or "cosine" = α cos(u, t) + (1 − α) cos(g_u, g_t)
    factors: int = 32  # width of every node's input embedding
    hidden: tuple[int, ...] = (8,)  # output dimensions per head of each GATConv layer
    heads: tuple[int, ...] = (4,)  # attention heads of each layer
    concat: tuple[bool, ...] = (True,)  # per layer: concatenate the heads (else average them)
    dropout: float = 0.1  # dropout before each layer, [0, 1)
    alpha: float = 1.0  # genre-aware score: weight α of cos(u, t) against the genre cosine, [0, 1]
    temperature: float = 1.0  # the cosine score is divided by it for BPR (> 0; lower: sharper)
    fanout: tuple[int, ...] = (10,)  # neighbours sampled per node at each hop, one per layer
    regularization: float = 1e-4  # L2 penalty on the batch's input embeddings
    init_std: float = 0.1  # standard deviation of the normal initial input embeddings
    user_genres: str = "none"  # user → genre edges: "none", "listening" or "stated" (opt in)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if not self.hidden or not (
            len(self.hidden) == len(self.heads) == len(self.concat) == len(self.fanout)
        ):
            raise SegueError("hidden, heads, concat and fanout need one entry per layer")
        if not 0 <= self.alpha <= 1 or self.temperature <= 0:
            raise SegueError("alpha must be within [0, 1] and temperature positive")
        if self.score not in ("dot", "cosine") or (self.genre_aware and self.score != "cosine"):
            raise SegueError(
                "score must be dot or cosine (cosine for the genre-aware model, so that alpha "
                "weighs two terms on one scale)"
            )
        if self.user_genres not in USER_GENRE_SOURCES:
            raise SegueError(
                f"user_genres must be one of {', '.join(USER_GENRE_SOURCES)}, "
                f"got {self.user_genres!r}"
            )


@dataclass(frozen=True)
class GATConfig(ListeningGATConfig):
    """The source design's basic model (one GAT layer of 8-d heads), with the values a 15-trial
    ``segue tune gat`` study chose on 1,000 generated listeners (validation Recall@10 0.105
    against 0.083 for the source's 4 heads, 32-d inputs, dropout 0.1, learning rate 0.01): 8
    heads, 102-d inputs, dropout 0.36, learning rate 0.0016, L2 7.5e-4. Scored by cosine over a
    temperature (0.14; the temperature mattered most in the study) rather than the source's
    ``u · t``: the dot product reached validation Recall@10 0.05–0.06 (``score="dot"`` keeps it)."""

    score: str = "cosine"
    temperature: float = 0.14
    factors: int = 102
    heads: tuple[int, ...] = (8,)
    dropout: float = 0.36
    regularization: float = 7.5e-4
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(learning_rate=0.0016))


@dataclass(frozen=True)
class GenreGATConfig(ListeningGATConfig):
    """The genre-aware model: 64 → 32 over two layers, batch norm, dropout 0.2, α = 0.8."""

    genre_aware: bool = True
    factors: int = 64
    hidden: tuple[int, ...] = (16, 32)
    heads: tuple[int, ...] = (4, 2)
    concat: tuple[bool, ...] = (True, False)
    dropout: float = 0.2
    alpha: float = 0.8
    temperature: float = 0.1
    fanout: tuple[int, ...] = (10, 5)
    score: str = "cosine"


# ------------------------------------------------------------------------------------------------
# Graph with explicit self-loops, and subgraph sampling
# ------------------------------------------------------------------------------------------------


def with_self_loops(homo: HomogeneousGraph) -> HomogeneousGraph:
    """A copy with one "self" edge per node (its own relation type, appended last)."""
    n = homo.n_nodes
    kinds = len(homo.relations)
    dim = homo.edge_dim + 1
    attr = np.zeros((len(homo.source) + n, dim), dtype=np.float32)
    dst = np.concatenate(
        (
            np.repeat(np.arange(n, dtype=np.int64), np.diff(homo.indptr)),
            np.arange(n, dtype=np.int64),
        )
    )
    src = np.concatenate((homo.source, np.arange(n, dtype=np.int64)))
    # relation one-hots first, then the self flag, then the listens attributes and affinity
    attr[: len(homo.source), :kinds] = homo.edge_attr[:, :kinds]
    attr[len(homo.source) :, kinds] = 1.0
    attr[: len(homo.source), kinds + 1 :] = homo.edge_attr[:, kinds:]
    edge_type = np.concatenate((homo.edge_type.astype(np.int16), np.full(n, kinds, np.int16)))
    order = np.lexsort((src, dst))
    indptr = np.concatenate(([0], np.cumsum(np.bincount(dst, minlength=n)))).astype(np.int64)
    return HomogeneousGraph(
        homo.node_types,
        homo.offsets,
        n,
        indptr,
        src[order],
        edge_type[order],
        attr[order],
        [*homo.relations, ("node", "self", "node")],
    )


@dataclass
class Subgraph:
    """``nodes`` int64 [n] global ids, the targets first (``n_targets``); ``edge_index`` int64
    [2, e] local (source, destination); ``edge_attr`` float32 [e, edge_dim]."""

    nodes: np.ndarray
    n_targets: int
    edge_index: np.ndarray
    edge_attr: np.ndarray


def sample_subgraph(
    graph: HomogeneousGraph,
    targets: np.ndarray,
    fanouts: tuple[int, ...],
    rng: np.random.Generator,
    exclude_keys: np.ndarray | None = None,
) -> Subgraph:
    """The ``len(fanouts)``-hop in-neighbourhood of ``targets`` (distinct global ids), ``fanouts[h]``
    edges per node at hop ``h`` (drawn with replacement above it; every edge below it; -1 = all),
    self-loops always kept,
    edges whose ``destination * n_nodes + source`` is in ``exclude_keys`` (sorted) dropped. Each
    node's edges are drawn once, when it first enters the frontier (as PyG's NeighborLoader)."""
    targets = np.asarray(targets, dtype=np.int64)
    seen = np.sort(targets)
    frontier = targets
    src_parts, dst_parts, pos_parts = [], [], []
    for fanout in fanouts:
        if len(frontier) == 0:
            break
        start = graph.indptr[frontier]
        degree = graph.indptr[frontier + 1] - start
        take = degree if fanout < 0 else np.minimum(degree, fanout)
        owner = np.repeat(np.arange(len(frontier), dtype=np.int64), take)
        offset = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(take) - take, take)
        drawn = degree[owner] > take[owner]
        offset[drawn] = (rng.random(int(drawn.sum())) * degree[owner[drawn]]).astype(np.int64)
        position = start[owner] + offset
        src, dst = graph.source[position], frontier[owner]
        keep = src != dst  # self-loops are added for every node below
        if exclude_keys is not None and len(exclude_keys):
            keep &= ~contains(exclude_keys, dst, src, graph.n_nodes)
        src_parts.append(src[keep])
        dst_parts.append(dst[keep])
        pos_parts.append(position[keep])
        new = np.setdiff1d(np.unique(src[keep]), seen, assume_unique=True)
        seen = np.union1d(seen, new)
        frontier = new
    others = np.setdiff1d(seen, targets, assume_unique=False)
    nodes = np.concatenate((targets, others))
    order = np.argsort(nodes, kind="stable")

    def local(ids: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(nodes[order], ids)]

    src = np.concatenate(src_parts) if src_parts else np.zeros(0, np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, np.int64)
    position = np.concatenate(pos_parts) if pos_parts else np.zeros(0, np.int64)
    self_position = _self_positions(graph, nodes)
    edge_index = np.stack(
        [
            np.concatenate((local(src), np.arange(len(nodes)))),
            np.concatenate((local(dst), np.arange(len(nodes)))),
        ]
    )
    attr = graph.edge_attr[np.concatenate((position, self_position))]
    return Subgraph(nodes, len(targets), edge_index, attr)


def _self_positions(graph: HomogeneousGraph, nodes: np.ndarray) -> np.ndarray:
    """Position of each node's self-loop among its in-edges (the graph has one per node)."""
    start, stop = graph.indptr[nodes], graph.indptr[nodes + 1]
    # in-edges are sorted by source, so the self-loop is where source == node
    lengths = stop - start
    positions = ranges(start, lengths)
    owner = np.repeat(np.arange(len(nodes)), lengths)
    hit = graph.source[positions] == nodes[owner]
    out = np.full(len(nodes), -1, dtype=np.int64)
    out[owner[hit]] = positions[hit]
    if np.any(out < 0):
        raise SegueError("graph without self-loops: build it with with_self_loops()")
    return out


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------


def _net(n_nodes: int, edge_dim: int, config: ListeningGATConfig):
    from segue.models.nets import ListeningGATNet

    return ListeningGATNet(n_nodes, edge_dim, config)


# ------------------------------------------------------------------------------------------------
# Training task
# ------------------------------------------------------------------------------------------------


@dataclass
class EdgeBatch:
    size: int
    user: np.ndarray
    positive: np.ndarray
    negative: np.ndarray


class ListeningGATTask(TrainingTask):
    def __init__(self, model: ListeningGATRecommender, validation=None):
        self.model = model
        self.config = model.config
        self.graph = model.homo
        self.listens = model.graph.listens
        self.n_edges = int(self.listens.nnz)
        self.degree = np.diff(self.listens.indptr)
        self.validation = validation
        self.module = seeded_module(
            self.config.trainer.seed,
            lambda: _net(self.graph.n_nodes, self.graph.edge_dim, self.config),
        )
        model.net = self.module
        self.device = None
        self._rng = None

    def fingerprint(self) -> dict:
        return {
            "config": {k: v for k, v in dataclasses.asdict(self.config).items() if k != "trainer"},
            "n_nodes": self.graph.n_nodes,
            "n_edges": self.n_edges,
        }

    def batches(self, rng, n_examples, batch_size):
        self._rng = rng
        if self.n_edges == 0:
            raise SegueError("the listening graph has no training edges")
        rounds = -(-n_examples // self.n_edges)
        order = np.concatenate([rng.permutation(self.n_edges) for _ in range(rounds)])[:n_examples]
        user_of = np.repeat(np.arange(self.listens.shape[0], dtype=np.int64), self.degree)
        for start in range(0, len(order), batch_size):
            edges = order[start : start + batch_size]
            user = user_of[edges]
            negative = sample_negatives(
                user, self.listens.indptr, self.listens.indices, self.listens.shape[1], rng
            )
            yield EdgeBatch(
                len(edges), user, self.listens.indices[edges].astype(np.int64), negative
            )

    def loss(self, batch: EdgeBatch):

        offsets = self.graph.offsets
        user_nodes = batch.user + offsets["user"]
        pos_nodes = batch.positive + offsets["track"]
        neg_nodes = batch.negative + offsets["track"]
        targets, inverse = np.unique(
            np.concatenate((user_nodes, pos_nodes, neg_nodes)), return_inverse=True
        )
        inverse = inverse.ravel()
        n = np.int64(self.graph.n_nodes)
        # The batch's supervision edges, both directions, are invisible to its message passing.
        hidden = np.unique(np.concatenate((pos_nodes * n + user_nodes, user_nodes * n + pos_nodes)))
        sub = sample_subgraph(self.graph, targets, self.config.fanout, self._rng, hidden)
        t = self.model.tensor
        out = self.module(t(sub.nodes), t(sub.edge_index), t(sub.edge_attr))[: sub.n_targets]
        b = batch.size
        u, p, q = out[t(inverse[:b])], out[t(inverse[b : 2 * b])], out[t(inverse[2 * b :])]
        pos = self.model.torch_score(u, p, batch.user, batch.positive)
        neg = self.model.torch_score(u, q, batch.user, batch.negative)
        ego = self.module.embedding(t(targets))
        return bpr_loss(pos, neg) + self.config.regularization * ego.pow(2).sum() / b

    def validate(self, k: int) -> float | None:
        if self.validation is None or len(self.validation) == 0:
            return None
        from segue.evaluation.sessions import user_metrics, without_excluded

        self.model._prepare_inference()
        ranking = self.model.recommend_users(self.validation.users, k)
        top = without_excluded(ranking, self.validation.exclude, k)
        return float(user_metrics(top, self.validation.truth, k)["recall"].mean())


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


class ListeningGATRecommender:
    """A GAT recommender over a listening graph (users, not playlists, are asked):
    ``fit(train, validation, run)``, ``recommend_users(users, n)``, ``explain(user, tracks)``,
    ``save``/``load`` in the model directory every segue model uses (``params.json`` +
    ``arrays.npz``, :func:`~segue.models.base.write_model`). Registered as ``gat`` and
    ``genre_gat`` (their ``Config`` holds their defaults), trained by ``segue train``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    data: ClassVar[str] = "listening"
    Config: ClassVar[type] = ListeningGATConfig
    needs: ClassVar[tuple[str, ...]] = ("torch", "torch_geometric")
    extra: ClassVar[str] = "graph"

    def __init__(self, config: ListeningGATConfig | None = None):
        self.config = config if config is not None else self.Config()
        self.net = None
        self.history = None
        self.training_log: dict = {}

    # --- graph and fitting -----------------------------------------------------------------------
    def _set_graph(self, graph: ListeningGraph) -> None:
        self.graph = graph
        self.homo = with_self_loops(graph.homogeneous(genres=self.config.genre_aware))
        self.train_keys = edge_keys(graph.listens)
        track_genres = graph.track_genres
        if graph.n_genres and track_genres.nnz < graph.n_tracks:
            # tracks without genres of their own take their artist's
            artist_rows = (
                sp.csr_matrix(graph.artist_genres[graph.track_artist])
                if graph.artist_genres.shape[0]
                else None
            )
            if artist_rows is not None:
                missing = np.diff(track_genres.indptr) == 0
                track_genres = sp.csr_matrix(
                    track_genres + sp.diags(missing.astype(np.float32)) @ artist_rows
                )
                track_genres.data[:] = 1.0
        self.track_genre_unit = unit_rows(track_genres)
        self.user_genre_unit = (
            unit_rows(genre_profile(graph.listens, track_genres))
            if graph.n_genres
            else sp.csr_matrix((graph.n_users, 0), dtype=np.float32)
        )
        self.user_genre_profile = genre_profile(graph.listens, track_genres)
        self.track_listeners = np.bincount(graph.listens.indices, minlength=graph.n_tracks).astype(
            np.int64
        )

    def fit(self, train, validation=None, run: RunOptions | None = None) -> ListeningGATRecommender:
        """Train on a training :class:`~segue.data.sessions.ListeningData` (its edges only);
        ``validation``: the split's validation :class:`~segue.evaluation.sessions.ListeningTask`
        (early stopping), or ``None`` (the simple trainer, fixed epochs); ``run``: device,
        checkpoints, threads."""
        graph = ListeningGraph.from_listening(train, user_genres=self.config.user_genres)
        if graph.n_genres == 0 and self.config.genre_aware:
            raise SegueError(f"{self.name}: the listening data has no genres; use the basic gat")
        self._set_graph(graph)
        self.user_type = graph.user_type
        task = ListeningGATTask(self, validation)
        trainer_cls = AdvancedTrainer if validation is not None else SimpleTrainer
        self.history = trainer_cls(self.config.trainer, run).fit(task)
        self.training_log = self.history.summary()
        self.net.to("cpu")
        self._prepare_inference()
        return self

    def tensor(self, array: np.ndarray):
        import torch

        device = next(self.net.parameters()).device
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    def torch_score(self, user, track, user_ids: np.ndarray, track_ids: np.ndarray):
        """Scores of matched rows (training): ``u · t`` or the genre-aware score / temperature."""
        import torch

        c = self.config
        if c.score == "dot":
            return (user * track).sum(1)
        collab = torch.nn.functional.cosine_similarity(user, track, dim=1)
        if not c.genre_aware:
            return collab / c.temperature
        genre = np.asarray(
            self.user_genre_unit[user_ids].multiply(self.track_genre_unit[track_ids]).sum(axis=1)
        ).ravel()
        return (
            c.alpha * collab + (1 - c.alpha) * self.tensor(genre.astype(np.float32))
        ) / c.temperature

    # --- inference --------------------------------------------------------------------------------
    def _prepare_inference(self) -> None:
        """Every node's representation, exactly, layer by layer (chunks of destinations)."""
        import torch

        net, homo = self.net, self.homo
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        layer_inputs = []
        with torch.no_grad():
            x = net.embedding.weight
            for i, layer in enumerate(net.layers):
                layer_inputs.append(x)
                out = []
                for lo, hi in _chunks(homo.indptr, INFERENCE_CHUNK_EDGES):
                    edges = np.arange(homo.indptr[lo], homo.indptr[hi])
                    dst = np.repeat(np.arange(hi - lo), np.diff(homo.indptr[lo : hi + 1]))
                    index = torch.from_numpy(np.stack([homo.source[edges], dst])).to(device)
                    attr = torch.from_numpy(homo.edge_attr[edges]).to(device)
                    out.append(layer((x, x[lo:hi]), index, edge_attr=attr))
                x = torch.cat(out)
                if i < len(net.layers) - 1:
                    if i < len(net.norms):
                        x = net.norms[i](x)
                    x = torch.nn.functional.elu(x)
        net.train(was_training)
        final = x.cpu().numpy().astype(np.float32)
        self.layer_inputs = [v.detach().cpu().numpy() for v in layer_inputs]
        users = final[homo.offsets["user"] : homo.offsets["user"] + self.graph.n_users]
        tracks = final[homo.offsets["track"] : homo.offsets["track"] + self.graph.n_tracks]
        self.user_vectors, self.track_vectors = users, tracks
        if self.config.genre_aware:
            a = self.config.alpha
            self.user_side = np.hstack(
                (a * unit_vectors(users), (1 - a) * self.user_genre_unit.toarray())
            ).astype(np.float64)
            self.track_side = np.hstack(
                (unit_vectors(tracks), self.track_genre_unit.toarray())
            ).astype(np.float32)
        elif self.config.score == "cosine":
            self.user_side, self.track_side = (
                unit_vectors(users),
                unit_vectors(tracks).astype(np.float32),
            )
        else:
            self.user_side, self.track_side = users.astype(np.float64), tracks

    def recommend_users(
        self, users, n: int = 10, *, exclude_training: bool = True, collaborative_only: bool = False
    ) -> np.ndarray:
        """int64 [len(users), n]: the best tracks for each user, their training tracks excluded
        (``-1`` pads when fewer remain). ``collaborative_only`` drops the genre term (α = 1) to
        measure how much it moves the ranking."""
        users = np.asarray(users, dtype=np.int64)
        vectors = self.user_side[users]
        items = self.track_side
        if collaborative_only and self.config.genre_aware:
            d = self.user_vectors.shape[1]
            vectors, items = vectors[:, :d], np.ascontiguousarray(items[:, :d])
        exclude = None
        if exclude_training:  # widened when tracks were added after training (cold start)
            rows = sp.csr_matrix(self.graph.listens[users])
            exclude = sp.csr_matrix(
                (rows.data, rows.indices, rows.indptr), shape=(len(users), items.shape[0])
            )
        ids, _ = top_k_factors(items, vectors, n, exclude)
        return ids

    def scores(self, user: int, track_ids) -> dict[str, np.ndarray]:
        """The score's parts for ``user`` and ``track_ids``: ``collaborative``, ``genre``, ``total``."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        if not self.config.genre_aware:
            if self.config.score == "cosine":
                collab = (
                    unit_vectors(self.track_vectors[track_ids])
                    @ unit_vectors(self.user_vectors[user : user + 1])[0]
                )
            else:
                collab = self.track_vectors[track_ids].astype(np.float64) @ self.user_vectors[
                    user
                ].astype(np.float64)
            return {"collaborative": collab, "genre": np.zeros(len(track_ids)), "total": collab}
        a = self.config.alpha
        collab = (
            unit_vectors(self.track_vectors[track_ids])
            @ unit_vectors(self.user_vectors[user : user + 1])[0]
        )
        genre = np.asarray(
            self.track_genre_unit[track_ids] @ self.user_genre_unit[user].T.toarray()
        ).ravel()
        return {
            "collaborative": a * collab,
            "genre": (1 - a) * genre,
            "total": a * collab + (1 - a) * genre,
        }

    # --- explanations -----------------------------------------------------------------------------
    def explain(self, user: int, track_ids, labels=None):
        """Why ``track_ids`` for ``user``: attention over the user's real neighbours, read from the
        last layer, genre evidence and popularity (see :mod:`segue.models.gnn.explain`)."""
        from segue.models.gnn.explain import explain_listening

        return explain_listening(self, user, track_ids, labels)

    # --- persistence ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """The model directory (:func:`~segue.models.base.write_model`): the network's state
        dict and the training graph (:func:`~segue.models.gnn.graph.graph_arrays`) as arrays,
        whole or not at all; nothing pickled."""
        graph, described = graph_arrays(self.graph)
        arrays = {f"state.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        params = {
            "graph": described,
            **({"training": self.training_log} if self.training_log else {}),
        }
        with write_model(path, self, params, {**arrays, **graph}):
            pass

    @classmethod
    def load(cls, path: Path) -> ListeningGATRecommender:
        """A saved ``gat``/``genre_gat`` (:func:`~segue.models.base.read_model`); a directory of
        another kind, or one saved by an incompatible version, is refused naming the file."""
        import torch

        path = Path(path)
        model_cls, params, arrays = read_model(path, cls)
        if not issubclass(model_cls, ListeningGATRecommender):
            raise InputFileError(
                path / PARAMS_FILE,
                f"holds a {model_cls.name!r} model, not a listening graph model (gat, genre_gat)",
            )
        model = model_cls(saved_config(model_cls, params, path))
        try:
            graph = graph_from_arrays(arrays, params["graph"])
        except (KeyError, ValueError) as exc:
            raise InputFileError(
                path / ARRAYS_FILE,
                f"has no graph {exc} (saved by another version?); retrain it with `segue train`",
            ) from None
        model._set_graph(graph)
        model.user_type = graph.user_type
        model.training_log = params.get("training", {})
        model.net = _net(model.homo.n_nodes, model.homo.edge_dim, model.config)
        state = {
            k[6:]: torch.from_numpy(np.array(v))
            for k, v in arrays.items()
            if k.startswith("state.")
        }
        try:
            model.net.load_state_dict(state)
        except RuntimeError as exc:  # missing or mis-shaped weights
            raise InputFileError(
                path / ARRAYS_FILE,
                f"weights that do not fit the saved config ({str(exc)[:200]}); retrain it",
            ) from None
        model._prepare_inference()
        return model


@register
class GATRecommender(ListeningGATRecommender):
    name = "gat"
    description = "Graph attention network over listeners, tracks and artists (BPR)."
    Config = GATConfig


@register
class GenreGATRecommender(ListeningGATRecommender):
    name = "genre_gat"
    description = "Genre-aware graph attention network; scores mix listening and genre affinity."
    Config = GenreGATConfig


def _chunks(indptr: np.ndarray, max_edges: int):
    """(lo, hi) ranges of destination nodes whose in-edges number about ``max_edges`` each."""
    n = len(indptr) - 1
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(indptr, indptr[lo] + max_edges, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        yield lo, hi
        lo = hi


def unit_vectors(x: np.ndarray) -> np.ndarray:
    """float64 rows of ``x`` scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """float32 CSR rows of ``matrix`` scaled to length 1 (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norm = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)


__all__ = [
    "LISTEN_ATTRIBUTES",
    "GATConfig",
    "GATRecommender",
    "GenreGATConfig",
    "GenreGATRecommender",
    "ListeningGATConfig",
    "ListeningGATRecommender",
    "sample_subgraph",
    "with_self_loops",
]
