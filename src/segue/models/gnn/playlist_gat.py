"""``playlistgat``: a heterogeneous graph attention network over the playlist graph (the source design's PlaylistGAT).

Two attention layers (PyG ``GATConv``, Veličković et al. 2018), one per side of the graph:

1. **Track layer** — each track attends over its own embedding, its artist, its album and its
   genres (when the data has them), typed by a one-hot edge attribute, so the network learns
   how much a track is "itself" and how much it is its artist or album. A track in few
   playlists has a weak embedding of its own and leans on its artist and album; a track no
   training playlist holds is represented by them alone (its own embedding is zeroed: the cold
   start of a new track). With audio features (``track_features.parquet``), a linear projection
   of them is added to the track's own input.
2. **Playlist layer** — a playlist (or a query: a new playlist node attached to its seed
   tracks, see :mod:`segue.models.gnn.playlist`) attends over its tracks; its own input is the
   mean of its tracks. ``heads`` attention heads, concatenated.

Score ``z_q · h_t``: the playlist's representation against the track's. Trained as LightGCN is
(:class:`~segue.models.gnn.lightgcn.LightGCNTask`: full-graph steps, a softmax over the
catalogue, a training playlist split into the context it attends over and the targets, its own
path removed from the two-hop context of its tracks), so the two models differ only in what
attention adds.

**What it adds, measured.** On the real dev playlists (validation part of a ``segue split``,
five minutes of training each) PlaylistGAT reaches validation Recall@10 0.008 at its best epoch
and R-precision 0.041, against LightGCN's 0.058 and 0.122: the free artist, album and attention
parameters fit the training playlists (the loss falls below LightGCN's) without generalising. So
**LightGCN is segue's graph scorer** — the one offered to the hybrid and the ranker — and
PlaylistGAT is kept for what only it gives: attention explanations (over the seeds, and over a
track's own embedding, artist, album and genres) and tracks no training playlist holds, reached
through their artist and album. It does not yet put its attention on top of LightGCN's scores.

Inference precomputes, for every track, its representation ``h_t``, the playlist layer's message
``W h_t`` and the two attention terms, so a query needs only gathers and per-query softmaxes in
numpy (float64; a query's result does not depend on its batch) and the shared top-k scorer.
:meth:`PlaylistGATRecommender.explain` runs the playlist layer itself on the query node and its
seeds (``return_attention_weights=True``) and reports, for each seed, the attention the layer
gave it and its exact part of the score: ``score = Σ_s Σ_heads α_s (W h_s) · h_t + b · h_t``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries
from segue.models.explain import popularity_explanation, shares
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.lightgcn import (
    LightGCNTask,
    PlaylistSplitBatch,
    Propagation,
    TrackTable,
    exact_two_hop,
)
from segue.models.gnn.playlist import (
    HeldOut,
    PlaylistGraphRecommender,
    distinct_seeds,
    segment_sum,
)
from segue.models.registry import register

SOURCE_KINDS = ("self", "artist", "album", "genre", "playlists")
_CHUNK = 65_536   # tracks per chunk when precomputing every track's representation


@dataclass(frozen=True)
class PlaylistGATConfig:
    """``factors`` (embedding and output size, divisible by ``heads``); ``heads``; ``dropout``
    (on the playlist layer's attention while training); ``max_context`` (most context tracks per
    training playlist); ``negatives`` and ``batch_size`` (as LightGCN's: 0 = chosen by the
    graph's size); ``playlist_context`` (the track layer also attends over the track's exact
    two-hop context ``E2``); ``residual`` (add LightGCN's representation of the
    track, (own + playlist context) / 2, to the track layer's output); ``regularization`` (L2 on the batch's track embeddings); ``audio`` (use
    ``track_features.parquet`` when present); ``validation_playlists``/``validation_share``;
    and the trainer's settings (:class:`~segue.models.gnn.training.TrainerConfig`)."""

    factors: int = 64
    heads: int = 4
    dropout: float = 0.1
    max_context: int = 100
    negatives: int = 0
    playlist_context: bool = True
    residual: bool = False
    regularization: float = 1e-4
    init_std: float = 0.1
    audio: bool = True
    validation_playlists: int = 500
    validation_share: float = 0.3
    mode: str = "quick"
    budget_seconds: float = 0.0
    epochs: int = 0
    patience: int = 0
    batch_size: int = 0
    learning_rate: float = 0.01
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str = ""
    resume: bool = False
    num_threads: int = 1


@dataclass
class TrackSides:
    """What the track layer reads besides the embeddings: ``track_artist``/``track_album`` int64
    [n_tracks] (-1 when the model does not use that side: every track its own artist or album
    says nothing), ``track_genres`` csr or ``None``, ``audio`` float32 [n_tracks, f] or ``None``;
    at inference, ``two_hop`` float32 [n_tracks, d]: every track's exact playlist context
    ``ÂᵀÂE`` (``None`` while training, where it is sampled per example); ``degree`` int64
    [n_tracks]: training playlists per track (a feature of the track's own input: how much
    evidence its embedding has; per example it is counted without the example's playlist)."""

    track_artist: np.ndarray
    track_album: np.ndarray
    track_genres: sp.csr_matrix | None
    audio: np.ndarray | None
    two_hop: np.ndarray | None = None
    degree: np.ndarray | None = None

    @classmethod
    def from_graph(cls, graph: PlaylistGraph) -> TrackSides:
        def side(ids: np.ndarray) -> np.ndarray:
            ids = ids.astype(np.int64)
            informative = len(ids) and len(np.unique(ids)) < len(ids)
            return ids if informative else np.full(len(ids), -1, dtype=np.int64)

        return cls(side(graph.track_artist), side(graph.track_album), graph.track_genres, graph.audio,
                   degree=graph.track_degree)

    @property
    def n_artists(self) -> int:
        return int(self.track_artist.max(initial=-1)) + 1

    @property
    def n_albums(self) -> int:
        return int(self.track_album.max(initial=-1)) + 1

    @property
    def n_genres(self) -> int:
        return 0 if self.track_genres is None else self.track_genres.shape[1]

    def local_graph(self, tracks: np.ndarray, has_context: np.ndarray | None = None):
        """The track layer's bipartite graph for ``tracks`` (int64 [m], repeats allowed: one row
        per (track, example) pair): source nodes are the m rows themselves, then their distinct
        artists, albums and genres, then one playlist-context node per row where ``has_context``
        (bool [m]). Returns ``(artists, albums, genres, source int64 [e], target int64 [e],
        kind int64 [e])``; the context nodes follow the genres, in row order."""
        m = len(tracks)
        parts_src, parts_dst, parts_kind = [np.arange(m)], [np.arange(m)], [np.zeros(m, np.int64)]
        offset = m
        found = []
        for kind, ids in ((1, self.track_artist[tracks]), (2, self.track_album[tracks])):
            have = np.flatnonzero(ids >= 0)
            distinct, inverse = np.unique(ids[have], return_inverse=True)
            parts_src.append(offset + inverse.ravel())
            parts_dst.append(have)
            parts_kind.append(np.full(len(have), kind, np.int64))
            offset += len(distinct)
            found.append(distinct)
        genres = np.zeros(0, np.int64)
        if self.track_genres is not None:
            rows = self.track_genres[tracks]
            owner = np.repeat(np.arange(m), np.diff(rows.indptr))
            genres, inverse = np.unique(rows.indices.astype(np.int64), return_inverse=True)
            parts_src.append(offset + inverse.ravel())
            parts_dst.append(owner)
            parts_kind.append(np.full(len(owner), 3, np.int64))
            offset += len(genres)
        if has_context is not None:
            rows = np.flatnonzero(has_context)
            parts_src.append(offset + np.arange(len(rows)))
            parts_dst.append(rows)
            parts_kind.append(np.full(len(rows), 4, np.int64))
        return (found[0], found[1], genres, np.concatenate(parts_src), np.concatenate(parts_dst),
                np.concatenate(parts_kind))


def _net(sides: TrackSides, n_tracks: int, config: PlaylistGATConfig):
    import torch
    from torch_geometric.nn import GATConv

    d, heads = config.factors, config.heads
    if d % heads:
        raise SegueError(f"playlistgat: factors ({d}) must be divisible by heads ({heads})")

    class PlaylistGATNet(torch.nn.Module):
        """Embeddings of tracks, artists, albums (and genres, audio); the track layer and the
        playlist layer (see the module docstring)."""

        def __init__(self):
            super().__init__()
            self.track = torch.nn.Embedding(n_tracks, d)   # dense: every step propagates every row
            self.artist = torch.nn.Embedding(max(sides.n_artists, 1), d, sparse=True)
            self.album = torch.nn.Embedding(max(sides.n_albums, 1), d, sparse=True)
            self.genre = torch.nn.Embedding(max(sides.n_genres, 1), d)
            for table in (self.track, self.artist, self.album, self.genre):
                torch.nn.init.normal_(table.weight, std=config.init_std)
            self.audio = torch.nn.Linear(sides.audio.shape[1], d) if sides.audio is not None else None
            self.popularity = torch.nn.Linear(1, d)
            self.track_layer = GATConv(d, d // heads, heads=heads, edge_dim=len(SOURCE_KINDS), add_self_loops=False)
            self.playlist_layer = GATConv(d, d // heads, heads=heads, add_self_loops=False, dropout=config.dropout)

        def encode_tracks(self, tracks: np.ndarray, device, own=None, context=None, has_context=None,
                          degree=None, return_attention: bool = False):
            """h [m, d] of ``tracks`` (int64 [m]) through the track layer. ``own``: their
            embedding rows when already looked up; ``context`` [m, d] and ``has_context`` bool
            [m]: each row's playlist context (rows without one get no such edge). At inference
            both come from ``sides.two_hop`` and the tracks' degrees."""
            def t(a):
                return torch.from_numpy(np.ascontiguousarray(a)).to(device)

            if context is None and sides.two_hop is not None:
                context = t(sides.two_hop[tracks])
                has_context = np.abs(sides.two_hop[tracks]).sum(1) > 0
            if context is None:
                has_context = None
            artists, albums, genres, src, dst, kind = sides.local_graph(tracks, has_context)
            if own is None:
                own = self.track(t(tracks))
            if self.audio is not None:
                own = own + self.audio(t(sides.audio[tracks]))
            if degree is None:
                degree = sides.degree[tracks]
            own = own + self.popularity(t(np.log1p(degree).astype(np.float32)[:, None]))
            parts = [own, self.artist(t(artists)), self.album(t(albums)), self.genre(t(genres))]
            if has_context is not None:
                parts.append(context[t(np.flatnonzero(has_context))])
            sources = torch.cat(parts)
            edge_attr = torch.nn.functional.one_hot(t(kind), len(SOURCE_KINDS)).to(own.dtype)
            out = self.track_layer((sources, own), t(np.stack([src, dst])), edge_attr=edge_attr,
                                   return_attention_weights=return_attention)
            if not config.residual:
                return out
            # LightGCN's track representation, (own + playlist context) / 2, as a residual.
            base = own if context is None else (own + context) / 2
            return (out[0] + base, out[1]) if return_attention else out + base

        def encode_queries(self, h_context, owner, n_queries: int, return_attention: bool = False):
            """z [b, d]: each query node attends over its context tracks ``h_context`` [m, d]
            (``owner`` long [m] says whose); its own input is their mean."""
            counts = torch.zeros(n_queries, device=h_context.device).index_add_(
                0, owner, torch.ones(len(owner), device=h_context.device))
            mean = torch.zeros((n_queries, h_context.shape[1]), device=h_context.device).index_add_(
                0, owner, h_context) / counts.clamp(min=1)[:, None]
            edges = torch.stack([torch.arange(len(owner), device=h_context.device), owner])
            return self.playlist_layer((h_context, mean), edges, return_attention_weights=return_attention)

    return PlaylistGATNet()


class PlaylistGATTask(LightGCNTask):
    """LightGCN's full-graph training (batches, the own-playlist removal, the softmax; see
    :mod:`segue.models.gnn.lightgcn`) with the two attention layers in place of LightGCN's fixed
    weights: every track's ``h`` comes from the track layer over its own embedding, artist,
    album, genres and exact two-hop context ``E2``; a training playlist's tracks are re-encoded
    with ``E2 − m_p / sqrt(d)`` (the graph without it) and the playlist layer attends over its
    context."""

    def __init__(self, graph: PlaylistGraph, sides: TrackSides, config: PlaylistGATConfig, held: HeldOut,
                 owner: PlaylistGATRecommender):
        self.sides = sides
        super().__init__(graph, config, held, owner)
        self.all_tracks = np.arange(graph.n_tracks, dtype=np.int64)
        self.seen = graph.track_degree > 0

    def _build_module(self):
        return _net(self.sides, self.graph.n_tracks, self.config)

    def to(self, device) -> None:
        self.device = device
        self.module.to(device)
        if self.config.playlist_context:
            self.propagation = Propagation(self.graph, device)

    def loss(self, batch: PlaylistSplitBatch):

        own = self.module.track.weight
        degree = self.graph.track_degree
        if self.propagation is not None:
            messages = self.propagation.messages(own)
            two_hop = self.propagation.two_hop(messages)
            h_all = self.module.encode_tracks(self.all_tracks, self.device, own=own, context=two_hop,
                                              has_context=self.seen, degree=degree)
        else:
            messages = two_hop = None
            h_all = self.module.encode_tracks(self.all_tracks, self.device, own=own, degree=degree)

        def without_own_playlist(tracks, owners):
            """h of a training playlist's tracks without its walks in their two-hop context. Their
            degree input and which of them have a context stay as in ``h_all``: a target the
            softmax could tell from the other tracks by a lower degree (a track only this playlist
            holds would look new) would teach the model that new-looking tracks are the answer,
            a signal no query has (measured: validation Recall@10 0.007 after 3 epochs, against
            LightGCN's 0.05)."""
            rows = self._tensor(tracks)
            if messages is None:
                return self.module.encode_tracks(tracks, self.device, own=own.index_select(0, rows), degree=degree[tracks])
            scale = self._tensor(self.propagation.inv_sqrt_track[tracks].astype(np.float32))
            context = (two_hop.index_select(0, rows)
                       - scale[:, None] * messages.index_select(0, self._tensor(batch.playlist[owners])))
            return self.module.encode_tracks(tracks, self.device, own=own.index_select(0, rows), context=context,
                                             has_context=self.seen[tracks], degree=degree[tracks])

        # A track only this playlist holds has no walk left once the playlist is out: its
        # zero context would mark it as an answer, a sign the attention picks up (validation
        # Recall@10 fell from epoch 3 as the loss dropped) and no query shows. It is neither a
        # target nor a rival in the softmax (masked as the context is).
        only_here = degree[batch.target_track] <= 1
        if only_here.any():
            batch = dataclasses.replace(
                batch, target_owner=batch.target_owner[~only_here], target_track=batch.target_track[~only_here],
                masked_owner=np.concatenate((batch.masked_owner, batch.target_owner[only_here])),
                masked_track=np.concatenate((batch.masked_track, batch.target_track[only_here])))
        b = batch.size
        h_context = without_own_playlist(batch.context_track, batch.context_owner)
        query = self.module.encode_queries(h_context, self._tensor(batch.context_owner), b)
        targets = without_own_playlist(batch.target_track, batch.target_owner)
        return self.softmax_loss(batch, query, targets, TrackTable(h_all, None), own)

    def inference_arrays(self, graph: PlaylistGraph) -> dict[str, np.ndarray]:
        state = {f"state.{k}": v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        # A track no training playlist holds: its own embedding was never trained, so it is
        # represented by its artist, album (and genres) only (cold start of a new track).
        unseen = graph.track_degree == 0
        state["state.track.weight"] = np.where(unseen[:, None], 0, state["state.track.weight"]).astype(np.float32)
        sides = dataclasses.replace(self.sides, degree=graph.track_degree)
        if self.config.playlist_context:
            sides = dataclasses.replace(sides, two_hop=exact_two_hop(state["state.track.weight"], graph))
        return {**state, **side_arrays(sides)}


def side_arrays(sides: TrackSides) -> dict[str, np.ndarray]:
    out = {"side.track_artist": sides.track_artist, "side.track_album": sides.track_album}
    if sides.track_genres is not None:
        g = sides.track_genres
        out |= {"side.genres.indptr": g.indptr, "side.genres.indices": g.indices,
                "side.genres.shape": np.array(g.shape, dtype=np.int64)}
    if sides.audio is not None:
        out["side.audio"] = sides.audio
    if sides.two_hop is not None:
        out["side.two_hop"] = sides.two_hop
    out["side.degree"] = sides.degree
    return out


def sides_from_arrays(arrays: dict[str, np.ndarray]) -> TrackSides:
    genres = None
    if "side.genres.indptr" in arrays:
        indices = arrays["side.genres.indices"]
        genres = sp.csr_matrix((np.ones(len(indices), np.float32), indices, arrays["side.genres.indptr"]),
                               shape=tuple(arrays["side.genres.shape"]))
    return TrackSides(arrays["side.track_artist"].astype(np.int64), arrays["side.track_album"].astype(np.int64),
                      genres, arrays.get("side.audio"), arrays.get("side.two_hop"), arrays["side.degree"])


@register
class PlaylistGATRecommender(PlaylistGraphRecommender):
    """Heterogeneous GAT over playlists, tracks, artists, albums (genres, audio when present)."""

    name = "playlistgat"
    description = ("Heterogeneous graph attention (tracks ← artist/album/genre, playlist ← tracks), BPR; "
                   "a query is a new playlist node attending over its seeds.")
    Config = PlaylistGATConfig
    verb = "the graph attention links them to this track"

    def _graph(self, data: PlaylistData) -> PlaylistGraph:
        return PlaylistGraph.from_playlist_data(data, audio=self.config.audio)

    def _task(self, graph: PlaylistGraph, held: HeldOut) -> PlaylistGATTask:
        return PlaylistGATTask(graph, TrackSides.from_graph(graph), self.config, held, self)

    # --- inference arrays ----------------------------------------------------------------------
    def _set_inference(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self._state_arrays = {k: v for k, v in arrays.items() if k.startswith(("state.", "side."))}
        self.sides = sides_from_arrays(arrays)
        n_tracks = arrays["state.track.weight"].shape[0]
        self.net = _net(self.sides, n_tracks, self.config)
        self.net.load_state_dict({k[len("state."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                  if k.startswith("state.")})
        self.net.eval()
        heads, d = self.config.heads, self.config.factors
        with torch.no_grad():
            h = np.concatenate([self.net.encode_tracks(np.arange(s, min(s + _CHUNK, n_tracks)), "cpu").numpy()
                                for s in range(0, n_tracks, _CHUNK)]) if n_tracks else np.zeros((0, d), np.float32)
            layer = self.net.playlist_layer
            messages = layer.lin(torch.from_numpy(h)).view(-1, heads, d // heads)
            self.src_logit = (messages * layer.att_src).sum(-1).numpy()           # [T, heads]
            self.dst_logit = (messages * layer.att_dst).sum(-1).numpy()           # [T, heads]
            self.messages = messages.numpy()                                       # [T, heads, d/heads]
            self.bias = layer.bias.numpy().astype(np.float64)                      # [d]
        self.item_vectors = np.ascontiguousarray(h, dtype=np.float32)
        self.negative_slope = float(layer.negative_slope)

    def attention(self, queries: Queries) -> tuple[sp.csr_matrix, np.ndarray]:
        """Each query's distinct seeds (csr [q, n_tracks]) and the playlist layer's attention
        over them: float64 [nnz, heads], rows aligned with the csr's entries, summing to 1 per
        query and head."""
        seeds = distinct_seeds(queries, self.n_tracks)
        indptr, tracks = seeds.indptr, seeds.indices
        owner = np.repeat(np.arange(len(queries)), np.diff(indptr))
        size = np.maximum(np.diff(indptr), 1)[:, None]
        dst = segment_sum(self.dst_logit[tracks], indptr) / size                  # [q, heads]
        logits = self.src_logit[tracks].astype(np.float64) + dst[owner]
        logits = np.where(logits > 0, logits, self.negative_slope * logits)
        if len(tracks):
            top = np.maximum.reduceat(logits, indptr[:-1][np.diff(indptr) > 0], axis=0)
            peak = np.zeros((len(queries), logits.shape[1]))
            peak[np.diff(indptr) > 0] = top
            logits -= peak[owner]
        weights = np.exp(logits)
        return seeds, weights / segment_sum(weights, indptr)[owner]

    def query_vectors(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        seeds, alpha = self.attention(queries)
        values = (alpha[:, :, None] * self.messages[seeds.indices]).reshape(len(seeds.indices), self.config.factors)
        vectors = segment_sum(values, seeds.indptr) + self.bias
        has = np.diff(seeds.indptr) > 0
        vectors[~has] = 0
        return vectors, has

    # --- explanations ----------------------------------------------------------------------------
    def layer_attention(self, seeds: np.ndarray) -> np.ndarray:
        """float32 [len(seeds), heads]: the attention the playlist layer (the torch module itself,
        ``return_attention_weights=True``) gives each of a query's distinct ``seeds`` (int64)."""
        import torch

        with torch.no_grad():
            h = torch.from_numpy(self.item_vectors[seeds])
            owner = torch.zeros(len(seeds), dtype=torch.long)
            _, (edges, alpha) = self.net.encode_queries(h, owner, 1, return_attention=True)
        order = np.argsort(edges[0].numpy(), kind="stable")    # rows back in seed order
        return alpha.numpy()[order]

    def track_sources(self, track_id: int) -> list[tuple[str, int, float]]:
        """How the track layer sees ``track_id``: (kind, id, attention averaged over heads) for
        its own embedding (``"self"``, the track id), its artist, its album, its genres and its
        playlists (``"playlists"``, id -1: the two-hop context over training playlists), read
        from the layer (``return_attention_weights=True``)."""
        import torch

        track = np.array([track_id], dtype=np.int64)
        two_hop = self.sides.two_hop
        has_context = None if two_hop is None else np.abs(two_hop[track]).sum(1) > 0
        artists, albums, genres, src, _, kind = self.sides.local_graph(track, has_context)
        with torch.no_grad():
            _, (edges, alpha) = self.net.encode_tracks(track, "cpu", return_attention=True)
        # The layer returns its edges as given (no self-loops added), so rows match ``kind``.
        assert np.array_equal(edges[0].numpy(), src)
        ids = np.concatenate((track, artists, albums, genres, [-1] * int(has_context.sum() if has_context is not None else 0)))
        return [(SOURCE_KINDS[k], int(ids[j]), float(a))
                for k, j, a in zip(kind.tolist(), src.tolist(), alpha.mean(1).numpy().tolist(), strict=True)]

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Per-seed parts of each score, ``Σ_heads α_s (W h_s)·h_t`` (they and the bias part
        ``b·h_t`` sum to the score), with the attention the layer gave each seed."""
        self._check_fitted()
        track_ids = np.asarray(track_ids, dtype=np.int64)
        one = queries.slice(row, row + 1)
        seeds = distinct_seeds(one, self.n_tracks).indices.astype(np.int64)
        if len(seeds) == 0:
            return [popularity_explanation(self, int(t), "A popular track: the playlist has no seed tracks.")
                    for t in track_ids]
        alpha = self.layer_attention(seeds).astype(np.float64)                 # [s, heads]
        heads = self.config.heads
        targets = self.item_vectors[track_ids].astype(np.float64).reshape(len(track_ids), heads, -1)
        per_head = np.einsum("shc,thc->tsh", self.messages[seeds].astype(np.float64), targets)  # [t, s, heads]
        contributions = (per_head * alpha[None]).sum(2)                         # [t, s]
        bias_part = self.item_vectors[track_ids].astype(np.float64) @ self.bias  # [t]
        labels = self.track_labels(seeds)
        first = {}
        for position, t in enumerate(one.seed_ids.tolist()):
            first.setdefault(t, position)
        order = np.argsort([first[s] for s in seeds.tolist()], kind="stable")
        out = []
        for i, track in enumerate(track_ids.tolist()):
            parts = np.concatenate((contributions[i, order], [bias_part[i]]))
            share = shares(parts)
            if share.sum() == 0:
                out.append(popularity_explanation(self, track))
                continue
            evidence = []
            for j in np.argsort(-share[:-1], kind="stable")[:5]:
                if share[j] > 0:
                    s = order[j]
                    evidence.append({"kind": "seed", "track_id": int(seeds[s]), "label": labels[s],
                                     "share": float(share[j]), "attention": float(alpha[s].mean()),
                                     "attention_heads": [float(a) for a in alpha[s]]})
            if share[-1] > 0:
                evidence.append({"kind": "popularity", "playlists": int(self.popularity[track]),
                                 "share": float(share[-1])})
            rest = 1.0 - sum(e["share"] for e in evidence)
            if rest > 1e-9:
                evidence.append({"kind": "other", "share": rest})
            named = [e for e in evidence if e["kind"] == "seed"][:2]
            reason = " and ".join(f"{e['label']} (attention {e['attention']:.2f})" for e in named)
            text = (f"Because the playlist has {reason}, and {self.verb}." if named
                    else f"A track the model scores well for any playlist (in {int(self.popularity[track]):,} "
                         "training playlists).")
            out.append(Explanation(track, evidence, text))
        return out

    # --- persistence -----------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(self._state_arrays)

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_inference(arrays)
