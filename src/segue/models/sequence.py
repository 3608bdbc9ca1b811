"""Next-track models: ``sknn`` (session-kNN) and ``gru4rec`` (a GRU over the session so far).

Both are Recommenders: a :class:`~segue.models.base.Queries` row holds seed tracks *in order*,
which is exactly a session prefix, and they answer it with the tracks likeliest to come next.
They train on ordered sequences (:func:`training_sequences`): the plays of each session for a
:class:`~segue.data.sessions.SessionData` (``ListeningData.to_session_data()``), each playlist in
playlist order for a dataset loaded from disk (``playlist_tracks.parquet``), and — for a
:class:`PlaylistData` built in memory, which keeps no order — each row's tracks by id.

``sknn`` — V-SKNN (Ludewig & Jannach, "Evaluation of session-based recommendation algorithms",
2018): a query's weight on each of its tracks grows linearly with recency (the last track weighs
1, the first 1/L); a training session's similarity is the summed weight of the query tracks it
holds, over sqrt(its length); the ``n_neighbors`` most similar sessions vote for their tracks with
their similarity. As in the paper, each track only looks at a sample of ``sample_size`` sessions
that hold it — the same sample for every track (a seeded random priority over sessions stands in
for the paper's recency, which segue's session rows do not order globally) — so a query costs
O(prefix × sample_size) whatever the data's size. Every step is a sparse matrix product over the
batch; explanations are the exact per-seed parts of each score.

``gru4rec`` — GRU4Rec (Hidasi et al., "Session-based recommendations with recurrent neural
networks", ICLR 2016; the sampled losses of Hidasi & Karatzoglou, CIKM 2018): track embeddings →
one GRU layer → scores ``h · w_t + b_t`` over all tracks. Trained with torch on the CPU on windows
of ``max_length`` consecutive tracks, predicting each next track, with ``loss``:

* ``bpr_max`` (default) — BPR-max, GRU4Rec's own (Hidasi & Karatzoglou 2018): against
  ``n_negatives`` tracks drawn by popularity^``sample_alpha`` (shared by the batch), the
  softmax-weighted pairwise loss plus score regularisation;
* ``cross_entropy`` — sampled softmax over the same samples, with the log-Q correction of Jean et
  al. (2015).

Sampled copies of the target are masked out; a catalog of at most ``n_negatives`` tracks uses all
of them (no sampling). Defaults are for the CPU: step time grows with positions × negatives, and
512 negatives trained 3× faster per step than GRU4Rec's 2,048 (at 2,000 generated users:
next-track HitRate@10 0.205 vs 0.209 with cross-entropy; BPR-max with 512: 0.221).

Inference needs no torch: the trained weights are plain arrays (saved in ``arrays.npz``), the GRU
is run in numpy float64 and the best tracks are found by :func:`~segue.models.factor.top_k_factors`
(exact float64 re-scoring). A query's state can differ alone and in a batch only by float64
rounding in BLAS (~1e-16 relative), far below any score gap the ranking depends on. Training is seeded; ``num_threads`` fixes torch's threads while
training (results are reproducible for a given thread count). It defaults to one: the
matrices are small, and on this 2-core machine two threads ran the planted contract data 18×
slower than one (68 s against 3.7 s, OpenMP threads contending with other processes). Explanations remove each seed from
the prefix in turn and report how much the track's score drops (occlusion).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.factor import cpu_threads, top_k_factors
from segue.models.registry import register
from segue.models.topn import top_n_sparse

log = logging.getLogger(__name__)


def training_sequences(data: PlaylistData) -> tuple[np.ndarray, np.ndarray]:
    """Each training row's tracks in order: ``indptr`` int64 [rows + 1] and ``ids`` int32 [m]
    (repeats kept). See the module docstring for where the order comes from."""
    indptr = getattr(data, "sequence_indptr", None)
    ids = getattr(data, "sequence_ids", None)
    if indptr is not None and ids is not None:
        return np.asarray(indptr, dtype=np.int64), np.asarray(ids, dtype=np.int32)
    if data.path is not None and (data.path / schema.PLAYLIST_TRACKS_FILE).exists():
        # PlaylistData.load checked that entries are in playlist order; pos order within each.
        entries = pq.read_table(data.path / schema.PLAYLIST_TRACKS_FILE, columns=[schema.TRACK_ID])
        ids = entries.column(schema.TRACK_ID).to_numpy().astype(np.int32)
        lengths = pq.read_table(data.path / schema.PLAYLISTS_FILE, columns=[schema.NUM_TRACKS]).column(
            schema.NUM_TRACKS).to_numpy().astype(np.int64)
        if lengths.sum() == len(ids):
            return np.r_[0, np.cumsum(lengths)].astype(np.int64), ids
    return data.matrix.indptr.astype(np.int64), data.matrix.indices.astype(np.int32)


def recency_weights(queries: Queries, max_prefix: int) -> sp.csr_matrix:
    """CSR float64 [q, n]: the last ``max_prefix`` tracks of each query weighted by position —
    the last 1, the one before (L-1)/L, …, the first of them 1/L; a repeated track keeps its
    latest weight. (``n`` = largest id + 1; callers reshape.)

    >>> recency_weights(Queries.from_lists([[3, 1, 3, 2], []]), 3).toarray().round(3).tolist()
    [[0.0, 0.333, 1.0, 0.667], [0.0, 0.0, 0.0, 0.0]]
    """
    lengths = queries.lengths()
    keep = np.minimum(lengths, max_prefix)
    row = np.repeat(np.arange(len(queries)), lengths)
    position = np.arange(len(queries.seed_ids)) - queries.indptr[:-1][row]          # 0-based
    from_end = lengths[row] - position                                               # 1 = last
    use = from_end <= keep[row]
    weight = (keep[row] - from_end + 1) / np.maximum(keep[row], 1)
    row, ids, weight = row[use], queries.seed_ids[use].astype(np.int64), weight[use]
    # Latest occurrence wins: sort by (row, id, weight) and keep the last of each (row, id).
    order = np.lexsort((weight, ids, row))
    row, ids, weight = row[order], ids[order], weight[order]
    last = np.r_[(row[1:] != row[:-1]) | (ids[1:] != ids[:-1]), True] if len(row) else np.zeros(0, bool)
    n = int(ids.max(initial=-1)) + 1
    return sp.csr_matrix((weight[last], (row[last], ids[last])), shape=(len(queries), n))


# --------------------------------------------------------------------------------------------
# Session-kNN
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKNNConfig:
    n_neighbors: int = 100      # most similar training sessions that vote
    sample_size: int = 1000     # sessions each track looks at (the same random sample for all)
    max_prefix: int = 50        # latest query tracks used
    seed: int = 0

    def __post_init__(self):
        for name in ("n_neighbors", "sample_size", "max_prefix"):
            if getattr(self, name) < 1:
                raise SegueError(f"{name} must be at least 1, got {getattr(self, name)}")


@register
class SessionKNNRecommender(Recommender):
    name = "sknn"
    description = "Session-kNN (V-SKNN): recent-weighted overlap with training sessions; next-track baseline."
    Config = SessionKNNConfig
    batch_size = 256

    def _fit(self, data: PlaylistData) -> None:
        indptr, ids = training_sequences(data)
        n_rows = len(indptr) - 1
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        sessions = sp.csr_matrix((np.ones(len(ids), np.float32), (rows, ids)), shape=(n_rows, data.n_tracks))
        sessions.sum_duplicates()
        sessions.data[:] = 1.0
        self.sessions = sessions
        self._build_index()

    def _build_index(self) -> None:
        """``item_sessions`` CSR float64 [n_tracks, n_sessions]: each track's sampled sessions,
        valued 1/sqrt(session length) (the similarity's normalisation)."""
        sessions = self.sessions
        n_sessions = sessions.shape[0]
        priority = np.random.default_rng(self.config.seed).permutation(n_sessions)
        by_item = sessions.T.tocsr()
        item = np.repeat(np.arange(by_item.shape[0]), np.diff(by_item.indptr))
        order = np.lexsort((priority[by_item.indices], item))
        rank = np.arange(len(order)) - by_item.indptr[item[order]]
        keep = order[rank < self.config.sample_size]
        size = np.maximum(np.diff(sessions.indptr), 1).astype(np.float64)
        index = sp.csr_matrix((1.0 / np.sqrt(size[by_item.indices[keep]]), (item[keep], by_item.indices[keep])),
                              shape=by_item.shape)
        index.sort_indices()
        self.item_sessions = index

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.sessions
        return {"sessions_indptr": s.indptr, "sessions_indices": s.indices,
                "sessions_shape": np.array(s.shape, dtype=np.int64)}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        shape = tuple(int(x) for x in arrays["sessions_shape"])
        indices = arrays["sessions_indices"]
        self.sessions = sp.csr_matrix((np.ones(len(indices), np.float32), indices, arrays["sessions_indptr"]), shape=shape)
        self._build_index()

    def _weights(self, queries: Queries) -> sp.csr_matrix:
        w = recency_weights(queries, self.config.max_prefix)
        w.resize((len(queries), self.n_tracks))
        return w

    def _neighbours(self, weights: sp.csr_matrix) -> sp.csr_matrix:
        """CSR [q, n_sessions]: each query's ``n_neighbors`` most similar sessions and their similarity."""
        similarity = (weights @ self.item_sessions).tocsr()
        ids, scores = top_n_sparse(similarity, self.config.n_neighbors)
        keep = ids >= 0
        rows = np.repeat(np.arange(weights.shape[0]), keep.sum(axis=1))
        return sp.csr_matrix((scores[keep].astype(np.float64), (rows, ids[keep])),
                             shape=(weights.shape[0], self.sessions.shape[0]))

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        votes = self._neighbours(self._weights(queries)) @ self.sessions
        return top_n_sparse(sp.csr_matrix(votes, dtype=np.float32), n)

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """A track's score is Σ over neighbour sessions holding it of Σ over seeds in that session
        of weight(seed)/sqrt(|session|): each seed's part is its sum (exact)."""
        one = queries.slice(row, row + 1)
        weights = self._weights(one)
        seeds = weights.indices.astype(np.int64)
        track_ids = np.asarray(track_ids, dtype=np.int64)
        if len(seeds) == 0:
            return [popularity_explanation(self, int(t), "A popular track: the session has no tracks yet.")
                    for t in track_ids]
        neighbours = self._neighbours(weights)
        members = self.sessions[neighbours.indices]                       # [k, n_tracks]
        norm = 1.0 / np.sqrt(np.maximum(np.diff(self.sessions.indptr)[neighbours.indices], 1))
        has_seed = members[:, seeds].toarray() * norm[:, None] * weights.data[None, :]   # [k, s]
        has_track = members[:, track_ids].toarray()                                       # [k, t]
        contributions = has_track.T @ has_seed                                            # [t, s]
        return from_seed_contributions(self, seeds, track_ids, contributions,
                                       "sessions with it often go on to this")


# --------------------------------------------------------------------------------------------
# GRU4Rec
# --------------------------------------------------------------------------------------------

LOSSES = ("cross_entropy", "bpr_max")


@dataclass(frozen=True)
class GRUConfig:
    embedding_dim: int = 64
    hidden_size: int = 100
    epochs: int = 10
    min_steps: int = 100          # at least this many optimiser steps, however small the data
    batch_size: int = 128         # windows per step
    max_length: int = 50          # window length (and the latest query tracks used)
    learning_rate: float = 0.003
    loss: str = "bpr_max"         # or "cross_entropy"
    n_negatives: int = 512        # sampled tracks per step (the whole catalog when it is smaller)
    sample_alpha: float = 0.75    # negatives ∝ popularity^alpha
    bpr_regularization: float = 1.0
    dropout: float = 0.1
    seed: int = 0
    num_threads: int = 1          # torch threads while training (0: all cores; see the docstring)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise SegueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("embedding_dim", "hidden_size", "batch_size", "max_length", "n_negatives"):
            if getattr(self, name) < 1:
                raise SegueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.min_steps < 0:
            raise SegueError("epochs and min_steps must be ≥ 0")
        if not 0 <= self.dropout < 1:
            raise SegueError(f"dropout must be in [0, 1), got {self.dropout}")


def training_windows(indptr: np.ndarray, ids: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences cut into windows of at most ``max_length + 1`` tracks that overlap by one, so
    each transition (track → next track) is in exactly one window. Returns ``starts`` int64 [w]
    (into ``ids``) and ``lengths`` int64 [w] (≥ 2); sequences shorter than 2 give none.

    >>> training_windows(np.array([0, 5, 6, 8]), np.arange(8), 2)
    (array([0, 2, 6]), array([3, 3, 2]))
    """
    lengths = np.diff(indptr)
    transitions = np.maximum(lengths - 1, 0)
    per = -(-transitions // max_length)                     # windows per sequence (ceil)
    seq = np.repeat(np.arange(len(lengths)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    starts = indptr[:-1][seq] + k * max_length
    window = np.minimum(max_length, transitions[seq] - k * max_length) + 1
    return starts.astype(np.int64), window.astype(np.int64)


@register
class GRURecommender(Recommender):
    name = "gru4rec"
    description = "GRU4Rec: a GRU over the session so far, sampled softmax or BPR-max (torch, CPU)."
    Config = GRUConfig
    batch_size = 512

    # --- training ------------------------------------------------------------------------------
    def _fit(self, data: PlaylistData) -> None:
        import torch

        cfg = self.config
        indptr, ids = training_sequences(data)
        n = data.n_tracks
        starts, lengths = training_windows(indptr, ids, cfg.max_length)
        threads_before = torch.get_num_threads()
        torch.set_num_threads(cpu_threads(cfg.num_threads))
        try:
            torch.manual_seed(cfg.seed)
            rng = np.random.default_rng(cfg.seed)
            net = _GRUNet(n, cfg.embedding_dim, cfg.hidden_size, cfg.dropout)
            if len(starts):
                self.training_log = _train(net, ids, starts, lengths, n, self.popularity, cfg, rng)
            else:
                log.warning("gru4rec: no sequence has two tracks; the model only knows popularity")
                self.training_log = {}
            state = {k: v.detach().numpy().astype(np.float32).copy() for k, v in net.state_dict().items()}
        finally:
            torch.set_num_threads(threads_before)
        self._set_weights(state["embedding.weight"], state["gru.weight_ih_l0"], state["gru.weight_hh_l0"],
                          state["gru.bias_ih_l0"], state["gru.bias_hh_l0"], state["output.weight"],
                          state["output_bias.weight"][:, 0])

    def _set_weights(self, embedding, w_ih, w_hh, b_ih, b_hh, output, bias) -> None:
        self.embedding = np.asarray(embedding, dtype=np.float32)     # [n + 1, E] (last row: padding)
        self.w_ih, self.w_hh = np.asarray(w_ih, np.float32), np.asarray(w_hh, np.float32)   # [3H, E], [3H, H]
        self.b_ih, self.b_hh = np.asarray(b_ih, np.float32), np.asarray(b_hh, np.float32)   # [3H]
        self.output = np.asarray(output, dtype=np.float32)           # [n, H]
        self.output_bias = np.asarray(bias, dtype=np.float32)        # [n]
        self._items = np.ascontiguousarray(np.hstack((self.output, self.output_bias[:, None])), dtype=np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "w_ih": self.w_ih, "w_hh": self.w_hh, "b_ih": self.b_ih,
                "b_hh": self.b_hh, "output": self.output, "output_bias": self.output_bias}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n, h = len(self.popularity), self.config.hidden_size
        if arrays["output"].shape != (n, h) or arrays["embedding"].shape[0] != n + 1:
            raise SegueError("gru4rec arrays do not match the catalog size and hidden_size")
        self._set_weights(arrays["embedding"], arrays["w_ih"], arrays["w_hh"], arrays["b_ih"], arrays["b_hh"],
                          arrays["output"], arrays["output_bias"])

    # --- inference (numpy) --------------------------------------------------------------------
    def hidden_states(self, queries: Queries) -> np.ndarray:
        """float64 [q, H]: the GRU's state after each query's last ``max_length`` tracks (0 when
        empty). Queries are run longest first so that each step updates a leading block of rows;
        the input projections are computed once per distinct track of the batch."""
        q, h_size = len(queries), self.config.hidden_size
        lengths = np.minimum(queries.lengths(), self.config.max_length)
        hidden = np.zeros((q, h_size))
        steps = int(lengths.max(initial=0))
        if steps == 0:
            return hidden
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        # Right-aligned grid [q, steps] of track ids in ``order``; row r's tracks fill its last columns.
        grid = np.full((q, steps), -1, dtype=np.int64)
        row = np.repeat(np.arange(q), sorted_lengths)
        within = np.arange(sorted_lengths.sum()) - np.repeat(np.cumsum(sorted_lengths) - sorted_lengths, sorted_lengths)
        first = (queries.indptr[1:] - lengths)[order]
        grid[row, steps - np.repeat(sorted_lengths, sorted_lengths) + within] = queries.seed_ids[np.repeat(first, sorted_lengths) + within]
        distinct, local = np.unique(grid[grid >= 0], return_inverse=True)
        projected = self.embedding[distinct].astype(np.float64) @ self.w_ih.T.astype(np.float64) + self.b_ih  # [u, 3H]
        slot = np.full(grid.shape, -1, dtype=np.int64)
        slot[grid >= 0] = local.ravel()
        w_hh_t = self.w_hh.T.astype(np.float64)
        b_hh = self.b_hh.astype(np.float64)
        h = np.zeros((q, h_size))
        for t in range(steps):
            active = int(np.searchsorted(-sorted_lengths, -(steps - t), side="right"))  # rows with ≥ steps - t tracks
            gi = projected[slot[:active, t]]
            gh = h[:active] @ w_hh_t + b_hh
            r = _sigmoid(gi[:, :h_size] + gh[:, :h_size])
            z = _sigmoid(gi[:, h_size:2 * h_size] + gh[:, h_size:2 * h_size])
            cand = np.tanh(gi[:, 2 * h_size:] + r * gh[:, 2 * h_size:])
            h[:active] = (1 - z) * cand + z * h[:active]
        hidden[order] = h
        return hidden

    def _scores_of(self, queries: Queries, track_ids: np.ndarray) -> np.ndarray:
        """float64 [q, t]: score of each of ``track_ids`` after each query."""
        h = self.hidden_states(queries)
        return h @ self.output[track_ids].astype(np.float64).T + self.output_bias[track_ids].astype(np.float64)

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        h = self.hidden_states(queries)
        users = np.hstack((h, np.ones((len(queries), 1))))
        ids, scores = top_k_factors(self._items, users, n)
        ids[queries.lengths() == 0] = -1       # no session yet: the base back-fills by popularity
        return ids, scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Occlusion: each seed's share is how much a track's score drops without that seed."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        seeds = queries.seeds(row)[-self.config.max_length:]
        if len(seeds) == 0:
            return [popularity_explanation(self, int(t), "A popular track: the session has no tracks yet.")
                    for t in track_ids]
        without = [np.delete(seeds, i).tolist() for i in range(len(seeds))]
        batch = Queries.from_lists([seeds.tolist(), *without])
        scores = self._scores_of(batch, track_ids)                       # [1 + s, t]
        drops = (scores[0][None, :] - scores[1:]).T                       # [t, s]
        # The same track may sit at several positions: name it once with its summed part.
        unique, first = np.unique(seeds, return_index=True)
        order = np.argsort(first)
        merged = np.zeros((len(track_ids), len(unique)))
        for j, track in enumerate(unique[order]):  # per distinct seed (≤ max_length), not per play
            merged[:, j] = np.clip(drops[:, seeds == track], 0, None).sum(axis=1)
        return from_seed_contributions(self, unique[order], track_ids, merged,
                                       "sessions like this one go on to it")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))    # overflow-free logistic


def _GRUNet(n_tracks: int, embedding_dim: int, hidden_size: int, dropout: float):
    """The torch module (built lazily so importing this file does not import torch)."""
    import torch
    from torch import nn

    class GRUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(n_tracks + 1, embedding_dim, padding_idx=n_tracks)
            self.gru = nn.GRU(embedding_dim, hidden_size, batch_first=True)
            self.dropout = nn.Dropout(dropout)
            self.output = nn.Embedding(n_tracks, hidden_size)
            self.output_bias = nn.Embedding(n_tracks, 1)
            nn.init.normal_(self.embedding.weight, std=0.05)
            nn.init.normal_(self.output.weight, std=0.05)
            nn.init.zeros_(self.output_bias.weight)
            with torch.no_grad():
                self.embedding.weight[n_tracks].zero_()

        def forward(self, x):
            states, _ = self.gru(self.dropout(self.embedding(x)))
            return self.dropout(states)

    return GRUNet()


def _train(net, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, n_tracks: int, popularity: np.ndarray,
           cfg: GRUConfig, rng: np.random.Generator) -> dict:
    """Adam over windows batched by similar length; returns a small training log."""
    import torch

    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    # Windows sorted by length, cut into batches (little padding); batch order shuffled per epoch.
    by_length = np.argsort(lengths, kind="stable")
    batches = [by_length[i:i + cfg.batch_size] for i in range(0, len(by_length), cfg.batch_size)]
    steps = max(cfg.epochs * len(batches), cfg.min_steps if cfg.epochs > 0 else 0)
    full = n_tracks <= cfg.n_negatives
    weights = np.power(popularity.astype(np.float64) + 1.0, cfg.sample_alpha)
    probability = weights / weights.sum()
    log_q = torch.from_numpy(np.log(probability * cfg.n_negatives).astype(np.float32))
    if full:
        log_q = torch.zeros(n_tracks)
    all_tracks = torch.arange(n_tracks)
    cumulative = np.cumsum(probability)
    started = time.perf_counter()
    losses = []
    net.train()
    step = 0
    while step < steps:
        for b in rng.permutation(len(batches)):
            if step >= steps:
                break
            window = batches[b]
            width = int(lengths[window].max())
            grid = np.full((len(window), width), n_tracks, dtype=np.int64)
            offsets = np.arange(width)[None, :]
            inside = offsets < lengths[window][:, None]
            grid[inside] = ids[(starts[window][:, None] + offsets)[inside]]
            x = torch.from_numpy(grid[:, :-1])
            y = torch.from_numpy(grid[:, 1:])
            mask = y != n_tracks
            states = net(x)[mask]                                 # [N, H]
            target = y[mask]                                      # [N]
            if full:   # every track is a negative: no sampling, no correction
                negatives = all_tracks
            else:
                negatives = torch.from_numpy(np.minimum(np.searchsorted(cumulative, rng.random(cfg.n_negatives)),
                                                        n_tracks - 1))
            positive = (states * net.output(target)).sum(1) + net.output_bias(target)[:, 0]
            negative = states @ net.output(negatives).T + net.output_bias(negatives)[:, 0]
            accidental = negatives[None, :] == target[:, None]
            if cfg.loss == "cross_entropy":
                logits = torch.cat((positive[:, None] - log_q[target][:, None],
                                    (negative - log_q[negatives][None, :]).masked_fill(accidental, -1e9)), 1)
                loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long))
            else:
                negative = negative.masked_fill(accidental, -1e9)
                softmax = torch.softmax(negative, dim=1)
                pairwise = (softmax * torch.sigmoid(positive[:, None] - negative)).sum(1)
                loss = (-torch.log(pairwise + 1e-10) + cfg.bpr_regularization
                        * (softmax * negative.masked_fill(accidental, 0) ** 2).sum(1)).mean()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimiser.step()
            losses.append(loss.item())
            step += 1
    net.eval()
    seconds = time.perf_counter() - started
    log.info("gru4rec: %d steps over %d windows in %.1f s, last loss %.4f", steps, len(starts), seconds,
             float(np.mean(losses[-20:])) if losses else float("nan"))
    return {"steps": steps, "windows": len(starts), "seconds": seconds,
            "loss_first": float(np.mean(losses[:20])) if losses else None,
            "loss_last": float(np.mean(losses[-20:])) if losses else None}
