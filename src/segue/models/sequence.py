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
networks", ICLR 2016; the sampled losses of Hidasi & Karatzoglou, "Recurrent neural networks with
top-k gains", CIKM 2018): track embeddings → one GRU layer → scores ``h · w_t + b_t`` over all
tracks. Trained with torch on the CPU the way Hidasi & Czapp ("The effect of third party
implementations on reproducibility", RecSys 2023) list as mattering:

* **Constrained (tied) embeddings** (``embedding_dim=0``, the default): a track's GRU input is its
  output vector, as in GRU4Rec's ``constrained_embedding`` — half the parameters, and a track
  seen mostly as a target still has a trained input.
* **Loss**: ``cross_entropy`` (default) — softmax over the target and ``n_negatives`` tracks drawn
  by popularity^``sample_alpha``, shared by the batch, with the log-Q correction of Jean et al.
  (2015) weighted by ``logq``; or ``bpr_max``, GRU4Rec's BPR-max with score regularisation.
  Sampled copies of the target are masked out; a catalog of at most ``n_negatives`` tracks uses
  all of them (no sampling, no correction).
* **Adagrad** (GRU4Rec's optimiser) on **sparse** embedding gradients: a step touches only its
  tracks and its negatives, so it costs the same for 10,000 tracks or 150,000. (Dense Adam over
  the whole table spent 475 s on 10 epochs of the real MPD split below.)
* **Dropout** on the GRU's input (``embedding_dropout``) and output (``dropout``).
* **Early stopping**: ``validation_share`` of the sequences (seeded) are held out; after each
  epoch the next-track HitRate@10 of up to ``validation_queries`` of their positions is measured
  against the whole catalog, training stops after ``patience`` epochs without a better one, and
  the best epoch's weights are kept. ``budget_seconds`` caps the wall clock (validation
  included). ``training_log`` — epochs run, the validation curve, the best epoch and why training
  stopped — is saved in ``params.json`` (``"training"``) and printed by ``segue train``.

One departure: GRU4Rec feeds session-parallel mini-batches one step at a time (no
back-propagation through time); segue trains on windows of ``max_length`` consecutive tracks with
back-propagation through the window, which is the operation inference performs (the state starts
at zero ``max_length`` tracks before the prediction).

Defaults were tuned on the validation part of the real MPD split (``segue split`` of the real
dev set: 4,071 training playlists, 129,991 tracks) and checked on its test part with
``benchmarks/bench_sequence.py`` (2 shared cores, one torch thread). Test part, before → after:
R-precision 0.0333 → 0.1013, NDCG 0.2390 → 0.4087, next-track HitRate@10 (5 seeded cut points
per held-out playlist) 0.0385 → 0.0707, MRR@10 0.0207 → 0.0306; session-kNN 0.1243, 0.4530,
0.0632, 0.0232 — GRU4Rec now leads on the next track, session-kNN still on the whole
continuation. That run early-stopped after 17 epochs (best 15) in 444 s, hence the 600 s budget:
cut at 300 s (7 epochs, curve still rising) the same model scored 0.0968, 0.4013, 0.0547, 0.0205.
On the validation part: cross-entropy with a learning rate of 0.1 and dropout
0.5/0.5 gave R-precision 0.0878 and HitRate 0.0517 in 240 s; dropout 0.1 with a rate of 0.15
overfitted (best epoch 5, R-precision 0.0605); 1,024 negatives instead of 2,048 lost (0.0853, 0.0412); a rate
of 0.2 diverged; BPR-max barely learnt in four epochs (validation HitRate 0.0025 against 0.035).
On 2,000 generated listeners (test part, 20,000 prefixes), the defaults are level with
session-kNN on HitRate@10 (0.2039 against 0.2037; MRR 0.1158 against 0.0895), and
``loss=bpr_max n_negatives=512 sample_alpha=0.75 dropout=0.1 embedding_dropout=0
learning_rate=0.05`` is ahead (0.2225, MRR 0.1499): the dense, 10,000-track generated catalog
suits BPR-max, the sparse real one needs the corrected softmax.

Inference needs no torch: the trained weights are plain arrays (saved in ``arrays.npz``), the GRU
is run in numpy float64 and the best tracks are found by :func:`~segue.models.topn.top_k_factors`
(exact float64 re-scoring). A query's state can differ alone and in a batch only by float64
rounding in BLAS (~1e-16 relative), far below any score gap the ranking depends on. Training is seeded; ``num_threads`` fixes torch's threads while
training (results are reproducible for a given thread count, unless ``budget_seconds`` cut training
short: then where it stopped depends on the machine, and the training log says so). It defaults to one: the
matrices are small, and on this 2-core machine two threads ran the planted contract data 18×
slower than one (68 s against 3.7 s, OpenMP threads contending with other processes). Explanations remove each seed from
the prefix in turn and report how much the track's score drops (occlusion).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.data import schema
from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.models.base import Explanation, Queries, Recommender, csr_arrays, csr_from_arrays
from segue.models.explain import from_seed_contributions, popularity_explanation
from segue.models.registry import register
from segue.models.topn import cpu_threads, top_k_factors, top_n_sparse

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
        lengths = (
            pq.read_table(data.path / schema.PLAYLISTS_FILE, columns=[schema.NUM_TRACKS])
            .column(schema.NUM_TRACKS)
            .to_numpy()
            .astype(np.int64)
        )
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
    position = np.arange(len(queries.seed_ids)) - queries.indptr[:-1][row]  # 0-based
    from_end = lengths[row] - position  # 1 = last
    use = from_end <= keep[row]
    weight = (keep[row] - from_end + 1) / np.maximum(keep[row], 1)
    row, ids, weight = row[use], queries.seed_ids[use].astype(np.int64), weight[use]
    # Latest occurrence wins: sort by (row, id, weight) and keep the last of each (row, id).
    order = np.lexsort((weight, ids, row))
    row, ids, weight = row[order], ids[order], weight[order]
    last = (
        np.r_[(row[1:] != row[:-1]) | (ids[1:] != ids[:-1]), True]
        if len(row)
        else np.zeros(0, bool)
    )
    n = int(ids.max(initial=-1)) + 1
    return sp.csr_matrix((weight[last], (row[last], ids[last])), shape=(len(queries), n))


# --------------------------------------------------------------------------------------------
# Session-kNN
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKNNConfig:
    n_neighbors: int = 100  # most similar training sessions that vote
    sample_size: int = 1000  # sessions each track looks at (the same random sample for all)
    max_prefix: int = 50  # latest query tracks used
    seed: int = 0  # seed of the random session priority that picks each track's sample

    def __post_init__(self):
        for name in ("n_neighbors", "sample_size", "max_prefix"):
            if getattr(self, name) < 1:
                raise SegueError(f"{name} must be at least 1, got {getattr(self, name)}")


@register
class SessionKNNRecommender(Recommender):
    name = "sknn"
    description = (
        "Session-kNN (V-SKNN): recent-weighted overlap with training sessions; next-track baseline."
    )
    Config = SessionKNNConfig
    batch_size = 256

    def _fit(self, data: PlaylistData) -> None:
        indptr, ids = training_sequences(data)
        n_rows = len(indptr) - 1
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        sessions = sp.csr_matrix(
            (np.ones(len(ids), np.float32), (rows, ids)), shape=(n_rows, data.n_tracks)
        )
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
        index = sp.csr_matrix(
            (1.0 / np.sqrt(size[by_item.indices[keep]]), (item[keep], by_item.indices[keep])),
            shape=by_item.shape,
        )
        index.sort_indices()
        self.item_sessions = index

    def _arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays("sessions", self.sessions, values=False)

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if "sessions_indptr" not in arrays:
            raise KeyError("sessions_indptr")
        self.sessions = csr_from_arrays("sessions", arrays)
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
        return sp.csr_matrix(
            (scores[keep].astype(np.float64), (rows, ids[keep])),
            shape=(weights.shape[0], self.sessions.shape[0]),
        )

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
            return [
                popularity_explanation(
                    self, int(t), "A popular track: the session has no tracks yet."
                )
                for t in track_ids
            ]
        neighbours = self._neighbours(weights)
        members = self.sessions[neighbours.indices]  # [k, n_tracks]
        norm = 1.0 / np.sqrt(np.maximum(np.diff(self.sessions.indptr)[neighbours.indices], 1))
        has_seed = members[:, seeds].toarray() * norm[:, None] * weights.data[None, :]  # [k, s]
        has_track = members[:, track_ids].toarray()  # [k, t]
        contributions = has_track.T @ has_seed  # [t, s]
        return from_seed_contributions(
            self, seeds, track_ids, contributions, "sessions with it often go on to this"
        )


# --------------------------------------------------------------------------------------------
# GRU4Rec
# --------------------------------------------------------------------------------------------

LOSSES = ("cross_entropy", "bpr_max")


@dataclass(frozen=True)
class GRUConfig:
    hidden_size: int = 128  # GRU state and track embedding width
    # 0: tied — a track's input is its output embedding (GRU4Rec's constrained embedding)
    embedding_dim: int = 0
    epochs: int = 20  # at most this many passes over the training windows
    budget_seconds: float = 600.0  # wall-clock cap on training (validation included); 0 = none
    patience: int = 2  # epochs without a better validation HitRate@10 before stopping (0 = never)
    validation_share: float = 0.1  # share of sequences carved out for early stopping (0 = none)
    validation_queries: int = 2000  # next-track positions of the carve scored after each epoch
    min_steps: int = 100  # at least this many optimiser steps, however small the data
    batch_size: int = 32  # windows per step
    max_length: int = 50  # window length (and the latest query tracks used)
    learning_rate: float = 0.1  # Adagrad
    loss: str = "cross_entropy"  # or "bpr_max"
    # popularity-sampled tracks per step (the whole catalog when it is smaller)
    n_negatives: int = 2048
    sample_alpha: float = 0.5  # negatives ∝ popularity^alpha
    logq: float = 1.0  # weight of the log-Q correction (cross_entropy)
    bpr_regularization: float = 1.0  # score regularisation of bpr_max
    dropout: float = 0.5  # on the GRU's output
    embedding_dropout: float = 0.5  # on the GRU's input
    seed: int = 0  # seed of the validation carve, initial weights and the sampling of batches
    num_threads: int = 1  # torch threads while training (0: all cores; see the docstring)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise SegueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in (
            "hidden_size",
            "batch_size",
            "max_length",
            "n_negatives",
            "validation_queries",
        ):
            if getattr(self, name) < 1:
                raise SegueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "embedding_dim",
            "epochs",
            "min_steps",
            "patience",
            "budget_seconds",
            "learning_rate",
        ):
            if getattr(self, name) < 0:
                raise SegueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("dropout", "embedding_dropout", "validation_share"):
            if not 0 <= getattr(self, name) < 1:
                raise SegueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def training_windows(
    indptr: np.ndarray, ids: np.ndarray, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences cut into windows of at most ``max_length + 1`` tracks that overlap by one, so
    each transition (track → next track) is in exactly one window. Returns ``starts`` int64 [w]
    (into ``ids``) and ``lengths`` int64 [w] (≥ 2); sequences shorter than 2 give none.

    >>> training_windows(np.array([0, 5, 6, 8]), np.arange(8), 2)
    (array([0, 2, 6]), array([3, 3, 2]))
    """
    lengths = np.diff(indptr)
    transitions = np.maximum(lengths - 1, 0)
    per = -(-transitions // max_length)  # windows per sequence (ceil)
    seq = np.repeat(np.arange(len(lengths)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    starts = indptr[:-1][seq] + k * max_length
    window = np.minimum(max_length, transitions[seq] - k * max_length) + 1
    return starts.astype(np.int64), window.astype(np.int64)


def validation_carve(indptr: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """bool [rows]: the sequences (with two tracks or more) held out to stop training early — a
    seeded ``share`` of them, none when fewer than 10 would be held out (too few to judge by)."""
    eligible = np.flatnonzero(np.diff(indptr) >= 2)
    take = round(share * len(eligible))
    held = np.zeros(len(indptr) - 1, dtype=bool)
    if take >= 10 and take < len(eligible):
        held[rng.choice(eligible, take, replace=False)] = True
    return held


def sequence_rows(
    indptr: np.ndarray, ids: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sequences ``rows`` (int [r]) of (``indptr``, ``ids``) as their own (indptr, ids).

    >>> sequence_rows(np.array([0, 2, 5, 6]), np.arange(6), np.array([1, 2]))
    (array([0, 3, 4]), array([2, 3, 4, 5]))
    """
    lengths = np.diff(indptr)[rows]
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.r_[0, np.cumsum(lengths)].astype(np.int64), ids[
        np.repeat(indptr[rows], lengths) + within
    ]


@register
class GRURecommender(Recommender):
    name = "gru4rec"
    needs = ("torch",)
    extra = "graph"
    description = "GRU4Rec: a GRU over the session so far; sampled softmax or BPR-max, early stopping (torch, CPU)."
    Config = GRUConfig
    batch_size = 512

    # --- training ------------------------------------------------------------------------------
    def _fit(self, data: PlaylistData) -> None:
        import torch

        cfg = self.config
        indptr, ids = training_sequences(data)
        n = data.n_tracks
        rng = np.random.default_rng(cfg.seed)
        held = validation_carve(indptr, cfg.validation_share, rng)
        train_indptr, train_ids = sequence_rows(indptr, ids, np.flatnonzero(~held))
        # Popularity of the training carve only: the sampler must not favour what validation holds.
        popularity = np.bincount(train_ids, minlength=n)
        valid = sequence_rows(indptr, ids, np.flatnonzero(held)) if held.any() else None
        starts, window_lengths = training_windows(train_indptr, train_ids, cfg.max_length)
        threads_before = torch.get_num_threads()
        torch.set_num_threads(cpu_threads(cfg.num_threads))
        try:
            torch.manual_seed(cfg.seed)
            from segue.models.nets import GRUNet

            net = GRUNet(n, cfg.embedding_dim, cfg.hidden_size, cfg.dropout, cfg.embedding_dropout)
            if len(starts):
                self.training_log = _train(
                    net, train_ids, starts, window_lengths, n, popularity, cfg, rng, valid
                )
            else:
                log.warning("gru4rec: no sequence has two tracks; the model only knows popularity")
                self.training_log = {}
            weights = net.numpy_weights()
        finally:
            torch.set_num_threads(threads_before)
        self._set_weights(*weights)

    def _set_weights(self, embedding, w_ih, w_hh, b_ih, b_hh, output, bias) -> None:
        self.embedding = np.asarray(embedding, dtype=np.float32)  # [n + 1, E] (last row: padding)
        self.w_ih, self.w_hh = (
            np.asarray(w_ih, np.float32),
            np.asarray(w_hh, np.float32),
        )  # [3H, E], [3H, H]
        self.b_ih, self.b_hh = np.asarray(b_ih, np.float32), np.asarray(b_hh, np.float32)  # [3H]
        self.output = np.asarray(output, dtype=np.float32)  # [n, H]
        self.output_bias = np.asarray(bias, dtype=np.float32)  # [n]
        self._items = np.ascontiguousarray(
            np.hstack((self.output, self.output_bias[:, None])), dtype=np.float32
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "embedding": self.embedding,
            "w_ih": self.w_ih,
            "w_hh": self.w_hh,
            "b_ih": self.b_ih,
            "b_hh": self.b_hh,
            "output": self.output,
            "output_bias": self.output_bias,
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n, h = len(self.popularity), self.config.hidden_size
        if arrays["output"].shape != (n, h) or arrays["embedding"].shape[0] != n + 1:
            raise SegueError("gru4rec arrays do not match the catalog size and hidden_size")
        self._set_weights(
            arrays["embedding"],
            arrays["w_ih"],
            arrays["w_hh"],
            arrays["b_ih"],
            arrays["b_hh"],
            arrays["output"],
            arrays["output_bias"],
        )

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
        within = np.arange(sorted_lengths.sum()) - np.repeat(
            np.cumsum(sorted_lengths) - sorted_lengths, sorted_lengths
        )
        first = (queries.indptr[1:] - lengths)[order]
        grid[row, steps - np.repeat(sorted_lengths, sorted_lengths) + within] = queries.seed_ids[
            np.repeat(first, sorted_lengths) + within
        ]
        distinct, local = np.unique(grid[grid >= 0], return_inverse=True)
        projected = (
            self.embedding[distinct].astype(np.float64) @ self.w_ih.T.astype(np.float64) + self.b_ih
        )  # [u, 3H]
        slot = np.full(grid.shape, -1, dtype=np.int64)
        slot[grid >= 0] = local.ravel()
        w_hh_t = self.w_hh.T.astype(np.float64)
        b_hh = self.b_hh.astype(np.float64)
        h = np.zeros((q, h_size))
        for t in range(steps):
            active = int(
                np.searchsorted(-sorted_lengths, -(steps - t), side="right")
            )  # rows with ≥ steps - t tracks
            gi = projected[slot[:active, t]]
            gh = h[:active] @ w_hh_t + b_hh
            r = _sigmoid(gi[:, :h_size] + gh[:, :h_size])
            z = _sigmoid(gi[:, h_size : 2 * h_size] + gh[:, h_size : 2 * h_size])
            cand = np.tanh(gi[:, 2 * h_size :] + r * gh[:, 2 * h_size :])
            h[:active] = (1 - z) * cand + z * h[:active]
        hidden[order] = h
        return hidden

    def _scores_of(self, queries: Queries, track_ids: np.ndarray) -> np.ndarray:
        """float64 [q, t]: score of each of ``track_ids`` after each query."""
        h = self.hidden_states(queries)
        return h @ self.output[track_ids].astype(np.float64).T + self.output_bias[track_ids].astype(
            np.float64
        )

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        h = self.hidden_states(queries)
        users = np.hstack((h, np.ones((len(queries), 1))))
        ids, scores = top_k_factors(self._items, users, n)
        ids[queries.lengths() == 0] = -1  # no session yet: the base back-fills by popularity
        return ids, scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Occlusion: each seed's share is how much a track's score drops without that seed."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        seeds = queries.seeds(row)[-self.config.max_length :]
        if len(seeds) == 0:
            return [
                popularity_explanation(
                    self, int(t), "A popular track: the session has no tracks yet."
                )
                for t in track_ids
            ]
        without = [np.delete(seeds, i).tolist() for i in range(len(seeds))]
        batch = Queries.from_lists([seeds.tolist(), *without])
        scores = self._scores_of(batch, track_ids)  # [1 + s, t]
        drops = (scores[0][None, :] - scores[1:]).T  # [t, s]
        # The same track may sit at several positions: name it once with its summed part.
        unique, first = np.unique(seeds, return_index=True)
        order = np.argsort(first)
        merged = np.zeros((len(track_ids), len(unique)))
        for j, track in enumerate(unique[order]):  # per distinct seed (≤ max_length), not per play
            merged[:, j] = np.clip(drops[:, seeds == track], 0, None).sum(axis=1)
        return from_seed_contributions(
            self, unique[order], track_ids, merged, "sessions like this one go on to it"
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _window_batch(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Inputs int64 [B, T], targets int64 [B, T] and mask bool [B, T] of a batch of windows
    (right-padded: padding repeats id 0 in the inputs and is masked out of the targets)."""
    import torch

    width = int(lengths.max())
    offsets = np.arange(width)[None, :]
    inside = offsets < lengths[:, None]
    grid = np.zeros((len(starts), width), dtype=np.int64)
    grid[inside] = ids[(starts[:, None] + offsets)[inside]]
    mask = inside[:, 1:]
    return torch.from_numpy(grid[:, :-1]), torch.from_numpy(grid[:, 1:]), torch.from_numpy(mask)


class _Validation:
    """Next-track HitRate@``k`` on held-out sequences: up to ``n_queries`` seeded positions of
    their windows, each scored against the whole catalog (as inference does, from a zero state
    at the window's start)."""

    def __init__(
        self,
        indptr: np.ndarray,
        ids: np.ndarray,
        max_length: int,
        n_queries: int,
        rng: np.random.Generator,
        k: int = 10,
    ):
        self.ids, self.k = ids, k
        self.starts, self.lengths = training_windows(indptr, ids, max_length)
        total = int((self.lengths - 1).sum())
        self.pick = (
            np.sort(rng.choice(total, min(n_queries, total), replace=False))
            if total
            else np.zeros(0, int)
        )

    def hit_rate(self, net, batch: int = 256) -> float:
        import torch

        if not len(self.pick):
            return float("nan")
        states, targets = [], []
        with torch.no_grad():
            for lo in range(0, len(self.starts), batch):
                x, y, mask = _window_batch(
                    self.ids, self.starts[lo : lo + batch], self.lengths[lo : lo + batch]
                )
                states.append(net(x)[mask])
                targets.append(y[mask])
            states, targets = torch.cat(states)[self.pick], torch.cat(targets)[self.pick]
            hits = 0
            for lo in range(0, len(targets), batch):
                scores = states[lo : lo + batch] @ net.items.weight.T + net.item_bias.weight[:, 0]
                target = targets[lo : lo + batch]
                own = scores.gather(1, target[:, None])
                hits += int(((scores > own).sum(1) < self.k).sum())
        return hits / len(targets)


def _train(
    net,
    ids: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    n_tracks: int,
    popularity: np.ndarray,
    cfg: GRUConfig,
    rng: np.random.Generator,
    valid: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """Adagrad over windows batched by similar length, one validation after each epoch; ends with
    the best epoch's weights loaded. Returns the training log (epochs, curve, why it stopped)."""
    import torch

    started = time.perf_counter()
    validation = (
        _Validation(*valid, cfg.max_length, cfg.validation_queries, rng)
        if valid is not None
        else None
    )
    optimiser = torch.optim.Adagrad(net.parameters(), lr=cfg.learning_rate)
    dense = [p for name, p in net.named_parameters() if name.startswith("gru.")]
    # Windows sorted by length, cut into batches (little padding); batch order shuffled per epoch.
    by_length = np.argsort(lengths, kind="stable")
    batches = [by_length[i : i + cfg.batch_size] for i in range(0, len(by_length), cfg.batch_size)]
    steps_per_epoch = max(len(batches), -(-cfg.min_steps // max(cfg.epochs, 1)))
    sampler = _NegativeSampler(popularity, cfg, rng)
    history: list[dict] = []
    best, best_state, bad_epochs, stopped, step = -1.0, None, 0, f"ran all {cfg.epochs} epochs", 0
    order = np.zeros(0, dtype=np.int64)
    for epoch in range(cfg.epochs):
        net.train()
        losses = []
        for _ in range(steps_per_epoch):
            if not len(order):
                order = rng.permutation(len(batches))
            window, order = batches[order[0]], order[1:]
            x, y, mask = _window_batch(ids, starts[window], lengths[window])
            loss = sampler.loss(net, net(x)[mask], y[mask])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(dense, 5.0)
            with warnings.catch_warnings():  # torch notes once that it skips sparse-tensor checks
                warnings.filterwarnings("ignore", message="Sparse invariant checks")
                optimiser.step()
            losses.append(loss.item())
            step += 1
            if cfg.budget_seconds and time.perf_counter() - started > cfg.budget_seconds:
                break
        net.eval()
        record = {"epoch": epoch + 1, "steps": len(losses), "loss": float(np.mean(losses))}
        if validation is not None:
            record["validation_hit_rate"] = validation.hit_rate(net)
        record["seconds"] = round(time.perf_counter() - started, 2)
        history.append(record)
        log.info(
            "gru4rec: epoch %d, loss %.4f%s, %.1f s",
            epoch + 1,
            record["loss"],
            f", validation HitRate@10 {record['validation_hit_rate']:.4f}" if validation else "",
            record["seconds"],
        )
        if validation is not None:
            if record["validation_hit_rate"] > best:
                best, bad_epochs = record["validation_hit_rate"], 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
        if cfg.budget_seconds and time.perf_counter() - started > cfg.budget_seconds:
            stopped = f"time budget of {cfg.budget_seconds:g} s reached in epoch {epoch + 1}"
            break
        if validation is not None and cfg.patience and bad_epochs >= cfg.patience:
            stopped = f"early stop: no better validation HitRate@10 for {cfg.patience} epochs"
            break
    best_epoch = len(history)
    if best_state is not None:
        net.load_state_dict(best_state)
        best_epoch = 1 + int(np.argmax([r["validation_hit_rate"] for r in history]))
    seconds = time.perf_counter() - started
    log.info(
        "gru4rec: %d epochs (%s), best epoch %d, %.1f s", len(history), stopped, best_epoch, seconds
    )
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "stopped": stopped,
        "early_stopped": stopped.startswith("early stop"),
        "steps": step,
        "windows": len(starts),
        "validation_sequences": 0 if valid is None else len(valid[0]) - 1,
        "seconds": round(seconds, 2),
        "history": history,
    }


class _NegativeSampler:
    """A step's loss against ``n_negatives`` tracks drawn by popularity^``sample_alpha`` and
    shared by the batch (the whole catalog, unsampled, when it is no larger)."""

    def __init__(self, popularity: np.ndarray, cfg: GRUConfig, rng: np.random.Generator):
        import torch

        self.cfg, self.rng, self.n = cfg, rng, len(popularity)
        self.full = self.n <= cfg.n_negatives
        weights = np.power(popularity.astype(np.float64) + 1.0, cfg.sample_alpha)
        probability = weights / weights.sum()
        self.cumulative = np.cumsum(probability)
        # log Q of Jean et al. (2015): a track's expected count in the sample, log-scaled.
        self.log_q = (
            torch.zeros(self.n)
            if self.full
            else torch.from_numpy(
                (cfg.logq * np.log(probability * cfg.n_negatives)).astype(np.float32)
            )
        )
        self.all_tracks = torch.arange(self.n)

    def sample(self):
        import torch

        if self.full:
            return self.all_tracks
        draw = np.searchsorted(self.cumulative, self.rng.random(self.cfg.n_negatives))
        return torch.from_numpy(np.minimum(draw, self.n - 1))

    def loss(self, net, states, target):
        """Mean loss of states float32 [N, H] whose next tracks are ``target`` int64 [N]."""
        import torch

        negatives = self.sample()
        positive = (states * net.items(target)).sum(1) + net.item_bias(target)[:, 0]
        negative = states @ net.items(negatives).T + net.item_bias(negatives)[:, 0]
        accidental = negatives[None, :] == target[:, None]
        if self.cfg.loss == "cross_entropy":
            logits = torch.cat(
                (
                    positive[:, None] - self.log_q[target][:, None],
                    (negative - self.log_q[negatives][None, :]).masked_fill(accidental, -1e9),
                ),
                1,
            )
            return torch.nn.functional.cross_entropy(
                logits, torch.zeros(len(target), dtype=torch.long)
            )
        # BPR-max (Hidasi & Karatzoglou 2018): softmax-weighted pairwise loss + score regularisation.
        negative = negative.masked_fill(accidental, -1e9)
        softmax = torch.softmax(negative, dim=1)
        pairwise = (softmax * torch.sigmoid(positive[:, None] - negative)).sum(1)
        return (
            -torch.log(pairwise + 1e-10)
            + self.cfg.bpr_regularization
            * (softmax * negative.masked_fill(accidental, 0) ** 2).sum(1)
        ).mean()
