"""The graph models' torch modules, in one place, at module level.

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
"""

from __future__ import annotations

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
