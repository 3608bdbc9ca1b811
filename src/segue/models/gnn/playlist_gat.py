"""``playlistgat``: graph attention over a query's seeds, on top of LightGCN's propagation.

The source design's PlaylistGAT is a heterogeneous attention network over playlists, tracks,
artists and genres. Built literally (an attention layer from a track to its own embedding,
artist, album and genres, and one from a playlist to its tracks, every input a free embedding)
and trained exactly as LightGCN is, it stayed far below LightGCN on the real dev playlists
(validation R-precision 0.041 against 0.122 after five minutes each: the free artist, album
and attention parameters fit the training playlists without generalising). So segue keeps
**LightGCN's scorer and puts the attention on top of it**:

* **Tracks** are LightGCN's ``ê_t = (E0_t + E2_t) / 2`` (:mod:`segue.models.gnn.lightgcn`,
  trained on the full graph). A track no training playlist holds (cold start of a new track)
  is represented through the heterogeneous graph instead: the mean ``ê`` of its album's and of
  its artist's tracks that the graph knows, averaged (:func:`cold_track_vectors`).
* **A playlist or a query** is a new node attending over its seeds (Veličković et al., "Graph
  attention networks", ICLR 2018), ``heads`` heads averaged:
  ``logit_s = LeakyReLU(a_src · ê_s + a_dst · mean_S ê) + c · log d_s (+ w · audio_s)`` and
  ``α_s = softmax_S(logit_s)``; ``z = N_S Σ_s ᾱ_s ê_s`` with ``N_S = Σ_s 1 / sqrt(|S| d_s)``.
  The attention starts at ``a = 0, c = −½``, where ``z`` is exactly LightGCN's query
  ``Σ_s ê_s / sqrt(|S| d_s)``, and is trained with the same full-graph steps and softmax on the
  vectors as LightGCN trains them (its gradient does not reach ``E0``: see
  :meth:`PlaylistGATTask.loss`), so the track vectors are LightGCN's and the attention moves a
  seed's weight only where that ranks the training playlists' held-out tracks better.
* **Score** ``z · ê_t``. It is a sum of per-seed terms ``N_S ᾱ_s ê_s · ê_t``, so the attention is
  a faithful explanation: :meth:`PlaylistGATRecommender.explain` reports these terms (they add
  up to the score) with the attention each seed got, read from the torch module itself.

Inference keeps ``ê`` (float32 [T, d]), the training degrees and the attention's few
parameters; a query's attention is a per-query softmax in numpy (float64; independent of its
batch) and the scan is the shared top-k scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries
from segue.models.explain import popularity_explanation, shares
from segue.models.gnn.graph import PlaylistGraph
from segue.models.gnn.lightgcn import (
    SAMPLED_NEGATIVES,
    LightGCNTask,
    PlaylistSplitBatch,
    TrackTable,
    exact_embeddings,
    seed_weights,
)
from segue.models.gnn.playlist import (
    HeldOut,
    PlaylistGraphRecommender,
    check_playlist_graph_config,
    segment_sum,
)
from segue.models.gnn.training import TrainerConfig
from segue.models.registry import register

NEGATIVE_SLOPE = 0.2  # LeakyReLU of the attention logits, as in GAT
DEGREE_PRIOR = -0.5  # c at the start: α_s ∝ d_s^(-1/2), LightGCN's own weights
# (both read by segue.models.nets.SeedAttention, and here by the numpy explanations)


@dataclass(frozen=True)
class PlaylistGATConfig:
    """``factors`` (embedding size); ``heads`` (attention heads over the seeds, averaged);
    ``dropout`` (on the attention while training); ``max_context``, ``negatives``,
    ``regularization``, ``init_std`` as LightGCN's; ``audio`` (seed attention also reads
    ``track_features.parquet`` when present); ``validation_playlists``/``validation_share``;
    ``trainer``: the :class:`~segue.models.gnn.training.TrainerConfig` (batch size as
    LightGCN's)."""

    factors: int = 64  # embedding size of the tracks (and so of playlists and queries)
    heads: int = 4  # attention heads over a query's seeds (averaged)
    dropout: float = 0.1  # dropout on the attention while training, [0, 1)
    max_context: int = 100  # most context tracks a training playlist is represented by
    # softmax negatives per batch: 0 = exact on small data, else 8,192 sampled; n > 0: n sampled
    negatives: int = 0
    regularization: float = 1e-4  # L2 penalty on the layer-0 embeddings a batch touches
    init_std: float = 0.1  # standard deviation of the normal initial layer-0 embeddings
    audio: bool = True  # seed attention also reads track_features.parquet when present
    validation_playlists: int = 500  # playlists with held-out edges for early stopping
    validation_share: float = 0.3  # share of each validation playlist's edges held out, (0, 1)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(batch_size=0))

    def __post_init__(self):
        if self.heads < 1 or not 0 <= self.dropout < 1:
            raise SegueError(
                f"playlistgat: heads must be ≥ 1 and dropout within [0, 1), got heads={self.heads}, "
                f"dropout={self.dropout}"
            )
        check_playlist_graph_config(self, "playlistgat")


def _net(n_tracks: int, config: PlaylistGATConfig, n_audio: int):
    from segue.models.nets import PlaylistGATNet

    c = config
    return PlaylistGATNet(n_tracks, c.factors, c.init_std, c.heads, n_audio, c.dropout)


class PlaylistGATTask(LightGCNTask):
    """LightGCN's full-graph training (batches, the own-playlist removal, the softmax; see
    :mod:`segue.models.gnn.lightgcn`) with the seed attention in place of LightGCN's fixed
    weights when a training playlist is represented by its context."""

    def __init__(
        self,
        graph: PlaylistGraph,
        config: PlaylistGATConfig,
        held: HeldOut,
        owner: PlaylistGATRecommender,
    ):
        self.audio = graph.audio if config.audio else None
        super().__init__(graph, config, held, owner)

    def _build_module(self):
        return _net(
            self.graph.n_tracks, self.config, 0 if self.audio is None else self.audio.shape[1]
        )

    def loss(self, batch: PlaylistSplitBatch):
        """LightGCN's own loss, which alone trains ``E0``, plus the same softmax for the attention's
        query over the vectors detached (it trains the attention only). Trained jointly (one
        loss through both), the model fitted the training playlists better and ranked held-out
        ones worse: on the real dev playlists' validation queries R-precision 0.113 against
        LightGCN's 0.122 after the same five minutes; this way 0.1214 against 0.1213."""
        ego = self.module.embedding.weight
        final, context, targets = self.encode(batch)
        vectors = self.softmax_loss(batch, super().query(batch, context), targets, final, ego)
        attention = self.softmax_loss(
            batch,
            self.query(batch, context.detach()),
            targets.detach(),
            TrackTable(final.table.detach(), final.ids),
            ego,
            negatives=batch.sampled,
            regularize=False,
        )
        return vectors + attention

    def batches(self, rng, n_examples, batch_size):
        """LightGCN's batches, each with the tracks the attention's softmax samples: the batch's
        own when LightGCN samples too, else :data:`SAMPLED_NEGATIVES` drawn as LightGCN draws
        them (the attention has a few hundred parameters: the exact softmax over the catalogue,
        most of a step's time on the real dev set, bought it nothing)."""
        for batch in super().batches(rng, n_examples, batch_size):
            batch.sampled = (
                batch.negatives
                if len(batch.negatives)
                else rng.choice(
                    len(self.proposal),
                    size=min(SAMPLED_NEGATIVES, len(self.proposal)),
                    p=self.proposal,
                )
            )
            yield batch

    def query(self, batch: PlaylistSplitBatch, context):
        degree = np.maximum(
            self.graph.track_degree[batch.context_track] - 1, 1
        )  # without the playlist
        audio = None if self.audio is None else self._tensor(self.audio[batch.context_track])
        z, _ = self.module.attention(
            context,
            self._tensor(batch.context_owner),
            batch.size,
            self._tensor(np.log(degree).astype(np.float32)),
            self._tensor(self.context_weights(batch)),
            audio,
        )
        return z

    def inference_arrays(self, graph: PlaylistGraph) -> dict[str, np.ndarray]:
        ego = self.module.embedding.weight.detach().cpu().numpy().astype(np.float32)
        vectors = exact_embeddings(ego, graph, 3)
        arrays = {
            "track_embeddings": cold_track_vectors(vectors, graph),
            "track_degree": graph.track_degree,
            "track_album": np.asarray(graph.track_album, dtype=np.int64),
            "track_artist": np.asarray(graph.track_artist, dtype=np.int64),
        }
        arrays |= {
            f"attention.{k}": v.detach().cpu().numpy()
            for k, v in self.module.attention.state_dict().items()
        }
        if self.audio is not None:
            arrays["audio"] = self.audio
        return arrays


def cold_track_vectors(vectors: np.ndarray, graph: PlaylistGraph) -> np.ndarray:
    """``vectors`` (float32 [T, d], 0 for tracks no training playlist holds) with each such cold
    track given the mean vector of the known tracks of its album and of its artist, averaged
    over the two that have any (a track alone on its album and artist stays 0). Two sparse
    products over a track × album and a track × artist indicator: no loop over tracks."""
    seen = graph.track_degree > 0
    cold = np.flatnonzero(~seen)
    if len(cold) == 0:
        return vectors
    n = len(vectors)
    total = np.zeros((len(cold), vectors.shape[1]), dtype=np.float64)
    sides = np.zeros(len(cold), dtype=np.float64)
    for ids in (graph.track_album, graph.track_artist):
        ids = np.asarray(ids, dtype=np.int64)
        valid = ids >= 0
        groups = int(ids.max(initial=-1)) + 1
        if groups == 0:
            continue
        member = sp.csr_matrix(
            (np.ones(int(valid.sum())), (np.flatnonzero(valid), ids[valid])), shape=(n, groups)
        )
        known = sp.diags(seen.astype(np.float64)) @ member  # known tracks only
        count = np.asarray(known.sum(0)).ravel()
        means = (known.T @ vectors.astype(np.float64)) / np.maximum(count, 1)[
            :, None
        ]  # [groups, d]
        mine = np.where(valid[cold], ids[cold].clip(0), 0)
        has = valid[cold] & (count[mine] > 0)
        total[has] += means[mine[has]]
        sides += has
    out = vectors.copy()
    out[cold] = np.divide(total, np.maximum(sides, 1)[:, None]).astype(np.float32)
    return out


@register
class PlaylistGATRecommender(PlaylistGraphRecommender):
    """Attention over a query's seeds on top of LightGCN's track vectors; cold tracks through
    their album and artist."""

    name = "playlistgat"
    description = (
        "Graph attention over a query's seeds on LightGCN's propagated track vectors (softmax over "
        "the catalogue); new tracks through their album and artist."
    )
    Config = PlaylistGATConfig
    verb = "the attention over the playlist's tracks links them to this track"

    def _graph(self, data: PlaylistData) -> PlaylistGraph:
        return PlaylistGraph.from_playlist_data(data, audio=self.config.audio)

    def _task(self, graph: PlaylistGraph, held: HeldOut) -> PlaylistGATTask:
        return PlaylistGATTask(graph, self.config, held, self)

    # --- inference arrays ----------------------------------------------------------------------
    def _set_inference(self, arrays: dict[str, np.ndarray]) -> None:
        src = arrays.get("attention.att_src")
        if (
            src is None
            or "track_album" not in arrays
            or src.shape != (self.config.heads, self.config.factors)
        ):
            raise SegueError(
                "playlistgat: the saved arrays are not this version's (attention over LightGCN); "
                "retrain the model with `segue train playlistgat`"
            )
        self.item_vectors = np.ascontiguousarray(arrays["track_embeddings"], dtype=np.float32)
        self.track_degree = np.asarray(arrays["track_degree"], dtype=np.int64)
        self.track_album = np.asarray(arrays["track_album"], dtype=np.int64)
        self.track_artist = np.asarray(arrays["track_artist"], dtype=np.int64)
        self.audio = arrays.get("audio")
        self._attention_arrays = {
            k: np.asarray(v) for k, v in arrays.items() if k.startswith("attention.")
        }
        a = self._attention_arrays
        self.att_src = a["attention.att_src"].astype(np.float64)
        self.att_dst = a["attention.att_dst"].astype(np.float64)
        self.degree_prior = a["attention.degree"].astype(np.float64)
        self.audio_weight = (
            a["attention.audio"].astype(np.float64) if "attention.audio" in a else None
        )

    def attention(self, queries: Queries) -> tuple[sp.csr_matrix, np.ndarray]:
        """Each query's distinct known seeds (csr [q, n_tracks] of LightGCN's weights,
        :func:`~segue.models.gnn.lightgcn.seed_weights`) and the
        attention over them: float64 [nnz, heads], rows aligned with the csr's entries, summing
        to 1 per query and head."""
        seeds = seed_weights(queries, self.n_tracks, self.track_degree)
        indptr, tracks = seeds.indptr, seeds.indices
        owner = np.repeat(np.arange(len(queries)), np.diff(indptr))
        vectors = self.item_vectors[tracks].astype(np.float64)
        mean = segment_sum(vectors, indptr) / np.maximum(np.diff(indptr), 1)[:, None]
        logits = vectors @ self.att_src.T + (mean @ self.att_dst.T)[owner]  # [nnz, heads]
        logits = np.where(logits > 0, logits, NEGATIVE_SLOPE * logits)
        logits += np.log(self.track_degree[tracks])[:, None] * self.degree_prior
        if self.audio_weight is not None and self.audio is not None:
            logits += self.audio[tracks].astype(np.float64) @ self.audio_weight.T
        if len(tracks):
            nonempty = np.diff(indptr) > 0
            peak = np.zeros((len(queries), logits.shape[1]))
            peak[nonempty] = np.maximum.reduceat(logits, indptr[:-1][nonempty], axis=0)
            logits -= peak[owner]
        weights = np.exp(logits)
        return seeds, weights / segment_sum(weights, indptr)[owner]

    def seed_terms(self, queries: Queries) -> tuple[sp.csr_matrix, np.ndarray]:
        """(the seeds as in :meth:`attention`, float64 [nnz]: each seed's weight ``N_S ᾱ_s`` in
        ``z = Σ_s N_S ᾱ_s ê_s``)."""
        seeds, alpha = self.attention(queries)
        total = segment_sum(seeds.data, seeds.indptr)  # N_S
        owner = np.repeat(np.arange(len(queries)), np.diff(seeds.indptr))
        return seeds, total[owner] * alpha.mean(1)

    def query_vectors(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        seeds, weight = self.seed_terms(queries)
        values = self.item_vectors[seeds.indices].astype(np.float64) * weight[:, None]
        return segment_sum(values, seeds.indptr), np.diff(seeds.indptr) > 0

    # --- explanations ----------------------------------------------------------------------------
    def layer_attention(self, seeds: np.ndarray) -> np.ndarray:
        """float32 [len(seeds), heads]: the attention the torch module itself gives each of a
        query's distinct known ``seeds`` (int64, sorted)."""
        import torch

        from segue.models.nets import SeedAttention

        module = SeedAttention(
            self.config.factors,
            self.config.heads,
            0 if self.audio_weight is None else self.audio_weight.shape[1],
            self.config.dropout,
        )
        module.load_state_dict(
            {
                k[len("attention.") :]: torch.from_numpy(np.array(v))
                for k, v in self._attention_arrays.items()
            }
        )
        module.eval()
        degree = self.track_degree[seeds]
        with torch.no_grad():
            _, alpha = module(
                torch.from_numpy(self.item_vectors[seeds]),
                torch.zeros(len(seeds), dtype=torch.long),
                1,
                torch.from_numpy(np.log(degree).astype(np.float32)),
                torch.from_numpy((1 / np.sqrt(len(seeds) * degree)).astype(np.float32)),
                None if self.audio is None else torch.from_numpy(self.audio[seeds]),
            )
        return alpha.numpy()

    def seed_parts(
        self, queries: Queries, row: int, track_ids
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For query ``row``: its distinct known seeds (int64 [s], in first-seen order), the
        attention the module gave them (float64 [s, heads]) and each seed's exact part of the
        score of each of ``track_ids``: float64 [t, s], ``N_S ᾱ_s ê_s · ê_t`` (rows sum to the score)."""
        one = queries.slice(row, row + 1)
        seeds, weight = self.seed_terms(one)
        tracks = seeds.indices.astype(np.int64)
        if len(tracks) == 0:
            return tracks, np.zeros((0, self.config.heads)), np.zeros((len(track_ids), 0))
        alpha = self.layer_attention(tracks).astype(np.float64)
        targets = self.item_vectors[np.asarray(track_ids, dtype=np.int64)].astype(np.float64)
        parts = targets @ (self.item_vectors[tracks].astype(np.float64) * weight[:, None]).T
        first = {}
        for position, t in enumerate(one.seed_ids.tolist()):
            first.setdefault(t, position)
        order = np.argsort([first[s] for s in tracks.tolist()], kind="stable")
        return tracks[order], alpha[order], parts[:, order]

    def track_sources(self, track_id: int) -> list[tuple[str, int, float]]:
        """What ``track_id``'s vector is made of, as (kind, id, weight): a track the graph knows is
        LightGCN's ``(own embedding + playlist context) / 2`` (``"self"`` and ``"playlists"``, id
        -1); a cold one the mean of its album's and its artist's known tracks (see
        :func:`cold_track_vectors`)."""
        if self.track_degree[track_id] > 0:
            return [("self", int(track_id), 0.5), ("playlists", -1, 0.5)]
        known = self.track_degree > 0
        out = []
        for kind, ids in (("album", self.track_album), ("artist", self.track_artist)):
            group = int(ids[track_id])
            if group >= 0 and (known & (ids == group)).any():
                out.append((kind, group, 1.0))
        return [(kind, group, 1.0 / len(out)) for kind, group, _ in out]

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Per-seed parts of each score, ``N_S ᾱ_s ê_s · ê_t`` (they sum to it), with the attention
        the module gave each seed."""
        self._check_fitted()
        track_ids = np.asarray(track_ids, dtype=np.int64)
        seeds, alpha, parts = self.seed_parts(queries, row, track_ids)
        if len(seeds) == 0:
            return [
                popularity_explanation(
                    self, int(t), "A popular track: the playlist has no seed track the graph knows."
                )
                for t in track_ids
            ]
        labels = self.track_labels(seeds)
        out = []
        for i, track in enumerate(track_ids.tolist()):
            share = shares(parts[i])
            if share.sum() == 0:
                out.append(popularity_explanation(self, track))
                continue
            evidence = [
                {
                    "kind": "seed",
                    "track_id": int(seeds[j]),
                    "label": labels[j],
                    "share": float(share[j]),
                    "attention": float(alpha[j].mean()),
                    "attention_heads": [float(a) for a in alpha[j]],
                }
                for j in np.argsort(-share, kind="stable")[:5]
                if share[j] > 0
            ]
            rest = 1.0 - sum(e["share"] for e in evidence)
            if rest > 1e-9:
                evidence.append({"kind": "other", "share": rest})
            named = [e for e in evidence[:2] if e["kind"] == "seed"]
            reason = " and ".join(f"{e['label']} (attention {e['attention']:.2f})" for e in named)
            out.append(
                Explanation(track, evidence, f"Because the playlist has {reason}, and {self.verb}.")
            )
        return out

    # --- persistence -----------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "track_embeddings": self.item_vectors,
            "track_degree": self.track_degree,
            "track_album": self.track_album,
            "track_artist": self.track_artist,
            **self._attention_arrays,
        }
        if self.audio is not None:
            arrays["audio"] = self.audio
        return arrays

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_inference(arrays)
