"""Every torch module of segue's models, in one place, at module level.

This module imports torch (and PyG) when it is imported, so the model modules import it inside
the functions that build or run a network: ``segue --help``, the classic models and the CLI never
pay for torch. Every module's parameters are created in a fixed order from torch's global
generator, so :func:`~segue.models.gnn.training.seeded_module` makes them depend on the seed alone.

* :class:`LightGCNNet` — LightGCN's layer-0 track embeddings (He et al. 2020).
* :class:`SparseProduct` — ``matrix @ dense`` whose backward reuses a transpose built once.
* :class:`SeedAttention`, :class:`PlaylistGATNet` — PlaylistGAT: attention over a query's seeds
  on LightGCN's track vectors (GAT's LeakyReLU scoring, Veličković et al. 2018).
* :class:`ListeningGATNet` — the listening GATs: GATConv layers over users, tracks, artists and
  genres with edge attributes.
* :class:`GRUNet` — GRU4Rec (Hidasi et al. 2016; Hidasi & Karatzoglou 2018): a GRU over a
  session's tracks, scored against sparse output embeddings.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import GATConv
from torch_geometric.utils import softmax

from segue.models.gnn.playlist_gat import DEGREE_PRIOR, NEGATIVE_SLOPE


class LightGCNNet(torch.nn.Module):
    """Layer-0 track embeddings [n_tracks, factors] (the only parameters LightGCN has); dense,
    as every step's propagation touches every row."""

    def __init__(self, n_tracks: int, factors: int, init_std: float):
        super().__init__()
        self.embedding = torch.nn.Embedding(n_tracks, factors)
        torch.nn.init.normal_(self.embedding.weight, std=init_std)


class SparseProduct(torch.autograd.Function):
    """``matrix @ dense`` whose backward is ``transpose @ grad`` with a transpose built once."""

    @staticmethod
    def forward(ctx, matrix, transpose, dense):
        ctx.transpose = transpose
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.transpose, grad.contiguous())


class SeedAttention(torch.nn.Module):
    """The query node's attention over its seeds (see :mod:`segue.models.gnn.playlist_gat`):
    ``att_src``, ``att_dst`` [heads, d], ``degree`` [heads] (c), ``audio`` [heads, f] (w) or
    absent."""

    def __init__(self, factors: int, heads: int, n_audio: int, dropout: float):
        super().__init__()
        self.att_src = torch.nn.Parameter(torch.zeros(heads, factors))
        self.att_dst = torch.nn.Parameter(torch.zeros(heads, factors))
        self.degree = torch.nn.Parameter(torch.full((heads,), DEGREE_PRIOR))
        self.audio = torch.nn.Parameter(torch.zeros(heads, n_audio)) if n_audio else None
        self.dropout = dropout

    def forward(self, seeds, owner, n_queries: int, log_degree, weight, audio=None):
        """``(z [b, d], α [m, heads])`` for ``seeds`` [m, d] (ê of each query's seeds, ``owner``
        long [m] says whose), ``log_degree`` [m], ``weight`` [m] (``1 / sqrt(|S| d_s)``,
        summed into ``N_S``), ``audio`` [m, f] or None."""
        count = torch.zeros(n_queries, device=seeds.device).index_add_(
            0, owner, torch.ones_like(log_degree)
        )
        mean = torch.zeros((n_queries, seeds.shape[1]), device=seeds.device).index_add_(
            0, owner, seeds
        )
        mean = mean / count.clamp(min=1)[:, None]
        logits = (
            torch.nn.functional.leaky_relu(
                seeds @ self.att_src.T + (mean @ self.att_dst.T)[owner], NEGATIVE_SLOPE
            )
            + log_degree[:, None] * self.degree
        )
        if self.audio is not None and audio is not None:
            logits = logits + audio @ self.audio.T
        alpha = softmax(logits, owner, num_nodes=n_queries)  # [m, heads]
        kept = torch.nn.functional.dropout(alpha, self.dropout, self.training)
        total = torch.zeros(n_queries, device=seeds.device).index_add_(0, owner, weight)  # N_S
        z = torch.zeros_like(mean).index_add_(0, owner, kept.mean(1, keepdim=True) * seeds)
        return z * total[:, None], alpha


class PlaylistGATNet(torch.nn.Module):
    """LightGCN's layer-0 track embeddings (``embedding``, dense: every step propagates every
    row) and the seed attention (``attention``)."""

    def __init__(
        self,
        n_tracks: int,
        factors: int,
        init_std: float,
        heads: int,
        n_audio: int,
        dropout: float,
    ):
        super().__init__()
        self.embedding = torch.nn.Embedding(n_tracks, factors)
        torch.nn.init.normal_(self.embedding.weight, std=init_std)
        self.attention = SeedAttention(factors, heads, n_audio, dropout)


class ListeningGATNet(torch.nn.Module):
    """Sparse input embeddings [n_nodes, factors] for every node, then one GATConv per entry of
    ``hidden``/``heads``/``concat`` (batch norm between layers for the genre-aware model), ELU
    between layers, dropout before each."""

    def __init__(self, n_nodes: int, edge_dim: int, config):
        super().__init__()
        self.dropout = config.dropout
        self.embedding = torch.nn.Embedding(n_nodes, config.factors, sparse=True)
        torch.nn.init.normal_(self.embedding.weight, std=config.init_std)
        self.layers = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        width = config.factors
        for i, (hidden, heads, concat) in enumerate(
            zip(config.hidden, config.heads, config.concat, strict=True)
        ):
            self.layers.append(
                GATConv(
                    width,
                    hidden,
                    heads=heads,
                    concat=concat,
                    edge_dim=edge_dim,
                    add_self_loops=False,
                )
            )
            width = hidden * heads if concat else hidden
            if config.genre_aware and i < len(config.hidden) - 1:
                self.norms.append(torch.nn.BatchNorm1d(width))
        self.out_dim = width

    def forward(self, nodes, edge_index, edge_attr, return_attention: bool = False):
        """Representations of ``nodes`` (long [n], global ids) over a local subgraph; with
        ``return_attention``, also the last layer's attention (edge_index, α)."""
        x = self.embedding(nodes)
        attention = None
        for i, layer in enumerate(self.layers):
            x = torch.nn.functional.dropout(x, self.dropout, self.training)
            last = i == len(self.layers) - 1
            if last and return_attention:
                x, attention = layer(
                    x, edge_index, edge_attr=edge_attr, return_attention_weights=True
                )
            else:
                x = layer(x, edge_index, edge_attr=edge_attr)
            if not last:
                if i < len(self.norms):
                    x = self.norms[i](x)
                x = torch.nn.functional.elu(x)
        return (x, attention) if return_attention else x


class GRUNet(torch.nn.Module):
    """GRU4Rec's network. ``items`` [n, H] and ``item_bias`` [n, 1] score a state ``h`` as
    ``h · items[t] + bias[t]``; the GRU reads ``inputs`` [n, E] when ``embedding_dim`` > 0, else
    ``items`` itself (tied, E = H). The tables are sparse: a step's gradient touches only its
    tracks and sampled negatives, so a step costs the same for 1,000 tracks or 150,000."""

    def __init__(
        self,
        n_tracks: int,
        embedding_dim: int,
        hidden_size: int,
        dropout: float,
        embedding_dropout: float = 0.0,
    ):
        super().__init__()
        nn = torch.nn
        width = embedding_dim or hidden_size
        self.items = nn.Embedding(n_tracks, hidden_size, sparse=True)
        self.item_bias = nn.Embedding(n_tracks, 1, sparse=True)
        self.inputs = nn.Embedding(n_tracks, embedding_dim, sparse=True) if embedding_dim else None
        self.gru = nn.GRU(width, hidden_size, batch_first=True)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.dropout = nn.Dropout(dropout)
        # GRU4Rec's initialisation: uniform in ±sqrt(6 / (fan_in + fan_out)) per matrix.
        for table in (self.items, self.inputs):
            if table is not None:
                bound = np.sqrt(6.0 / (n_tracks + table.embedding_dim))
                nn.init.uniform_(table.weight, -bound, bound)
        nn.init.zeros_(self.item_bias.weight)

    def input_table(self):
        return self.inputs if self.inputs is not None else self.items

    def forward(self, x):
        """x int64 [B, T] (right-padded with any valid id) → states float32 [B, T, H]."""
        states, _ = self.gru(self.embedding_dropout(self.input_table()(x)))
        return self.dropout(states)

    def numpy_weights(self) -> tuple[np.ndarray, ...]:
        """(embedding [n + 1, E] with a zero padding row, w_ih, w_hh, b_ih, b_hh, output [n, H],
        bias [n]) as float32 arrays: what the numpy inference reads."""

        def plain(t):
            return t.detach().numpy().astype(np.float32).copy()

        table = plain(self.input_table().weight)
        return (
            np.vstack((table, np.zeros((1, table.shape[1]), np.float32))),
            plain(self.gru.weight_ih_l0),
            plain(self.gru.weight_hh_l0),
            plain(self.gru.bias_ih_l0),
            plain(self.gru.bias_hh_l0),
            plain(self.items.weight),
            plain(self.item_bias.weight)[:, 0],
        )
