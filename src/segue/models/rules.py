"""``rules``: association rules fired by the seed tracks; consequents scored by confidence × lift.

Fitting mines the training playlists with :func:`segue.mining.rules.find_rules` (FP-growth in C,
thresholds as for ``segue rules``). A rule ``A → c`` *fires* for a query when every track of
``A`` is among the query's seeds; its weight is ``confidence × lift``: how often ``c`` follows
``A`` times how much more often than by chance, so a rule to a track that is everywhere anyway
counts for little. A track's score is the sum of the weights of the rules that fire for it
(``aggregate="sum"``: evidence from many seeds adds up) or the largest one (``"max"``: the
single best rule, the classic rule-based recommender). Queries no rule fires for get the
base's popularity back-fill.

Scoring is vectorised per batch: the rules are kept sorted by their first antecedent track with
a CSR-style index, each (query, seed) pair gathers the rules starting with that seed, the
remaining antecedent tracks are checked against the query's seeds with one ``searchsorted``,
and the weights are summed (or maxed) per (query, consequent) after one sort.

Explanations: each firing rule's weight (with ``"max"``, only the best rule's) is split evenly
among its antecedent tracks, so the seeds' shares sum to 1; the sentence quotes the strongest
rule's confidence and lift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.mining.rules import RuleThresholds, find_rules
from segue.models.base import Explanation, Queries, Recommender
from segue.models.explain import from_seed_contributions, join_names, popularity_explanation
from segue.models.registry import register

AGGREGATES = ("sum", "max")


@dataclass(frozen=True)
class RulesConfig(RuleThresholds):
    """The mining thresholds (``min_support``, ``min_confidence``, ``min_lift``, ``max_len``: a
    :class:`segue.mining.rules.RuleThresholds`, with its defaults and checks) and ``aggregate``:
    ``"sum"`` or ``"max"`` of the firing rules' confidence × lift per recommended track."""

    aggregate: str = "sum"  # "sum" or "max" of the firing rules' confidence × lift per track

    def __post_init__(self):
        self.check()
        if self.aggregate not in AGGREGATES:
            raise SegueError(
                f"rules: aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}"
            )


@register
class RulesRecommender(Recommender):
    name = "rules"
    description = (
        "Association rules (FP-growth) fired by the seeds; consequents scored by confidence × lift."
    )
    Config = RulesConfig
    batch_size = 256  # bounds the (query, seed, rule) expansion of one batch

    def _fit(self, data: PlaylistData) -> None:
        rules = find_rules(data.matrix, self.config)
        self._set(rules.antecedents, rules.consequents, rules.confidence, rules.lift)

    def _set(
        self,
        antecedents: np.ndarray,
        consequents: np.ndarray,
        confidence: np.ndarray,
        lift: np.ndarray,
    ) -> None:
        """Keep the rules sorted by first antecedent track (stable), with a per-track index."""
        order = (
            np.argsort(antecedents[:, 0], kind="stable")
            if len(consequents)
            else np.zeros(0, np.int64)
        )
        self.antecedents = np.ascontiguousarray(antecedents[order], dtype=np.int32)  # [r, w]
        self.consequents = consequents[order].astype(np.int32)  # [r]
        self.confidence = confidence[order].astype(np.float64)
        self.lift = lift[order].astype(np.float64)
        self.weight = self.confidence * self.lift
        counts = (
            np.bincount(self.antecedents[:, 0], minlength=self.n_tracks)
            if len(order)
            else np.zeros(self.n_tracks, np.int64)
        )
        self.first_ptr = np.concatenate(([0], np.cumsum(counts)))  # [n_tracks + 1]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "antecedents": self.antecedents,
            "consequents": self.consequents,
            "confidence": self.confidence,
            "lift": self.lift,
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set(
            arrays["antecedents"], arrays["consequents"], arrays["confidence"], arrays["lift"]
        )

    @property
    def n_rules(self) -> int:
        return len(self.consequents)

    def _fired(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        """Every (query row, rule index) pair where the rule fires: two int64 arrays [f]."""
        stride = np.int64(self.n_tracks + 1)
        rows = np.repeat(np.arange(len(queries), dtype=np.int64), queries.lengths())
        seed_keys = np.unique(rows * stride + queries.seed_ids)  # sorted, distinct seeds
        seed_rows, seeds = seed_keys // stride, seed_keys % stride
        starts, stops = self.first_ptr[seeds], self.first_ptr[seeds + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        offsets = np.arange(total, dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        rule = np.repeat(starts, lengths) + offsets
        row = np.repeat(seed_rows, lengths)
        ok = np.ones(total, dtype=bool)
        for j in range(1, self.antecedents.shape[1]):
            item = self.antecedents[rule, j].astype(np.int64)
            keys = row * stride + item
            pos = np.minimum(np.searchsorted(seed_keys, keys), len(seed_keys) - 1)
            ok &= (item < 0) | (seed_keys[pos] == keys)
        return row[ok], rule[ok]

    def _candidates(self, queries: Queries, n: int) -> tuple[np.ndarray, np.ndarray]:
        b = len(queries)
        ids = np.full((b, n), -1, dtype=np.int64)
        scores = np.zeros((b, n), dtype=np.float32)
        if self.n_rules == 0 or len(queries.seed_ids) == 0:
            return ids, scores
        row, rule = self._fired(queries)
        if len(rule) == 0:
            return ids, scores
        stride = np.int64(self.n_tracks + 1)
        keys = row * stride + self.consequents[rule]
        order = np.argsort(keys, kind="stable")
        keys, weights = keys[order], self.weight[rule][order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        reduce = np.add if self.config.aggregate == "sum" else np.maximum
        total = reduce.reduceat(weights, first)
        keys = keys[first]
        q, track = keys // stride, keys % stride
        # Per query: best score first, ties by track id; keep the first n.
        order = np.lexsort((track, -total, q))
        q, track, total = q[order], track[order], total[order]
        group_start = np.searchsorted(q, q, side="left")
        rank = np.arange(len(q)) - group_start
        keep = rank < n
        ids[q[keep], rank[keep]] = track[keep]
        scores[q[keep], rank[keep]] = total[keep]
        return ids, scores

    def explain(self, queries: Queries, row: int, track_ids) -> list[Explanation]:
        """Each seed's share of the firing rules' weight (split evenly within a rule)."""
        track_ids = np.asarray(track_ids, dtype=np.int64)
        seeds = queries.seeds(row)
        _, first = np.unique(seeds, return_index=True)
        seeds = seeds[np.sort(first)]
        one = queries.slice(row, row + 1)
        _, fired = (
            self._fired(one) if self.n_rules and len(seeds) else (None, np.zeros(0, np.int64))
        )
        seed_col = {int(s): i for i, s in enumerate(seeds.tolist())}
        contributions = np.zeros((len(track_ids), len(seeds)))
        best: dict[int, int] = {}
        for i, track in enumerate(track_ids.tolist()):
            rules = fired[self.consequents[fired] == track]
            if len(rules) == 0:
                continue
            strongest = int(rules[np.argmax(self.weight[rules])])
            best[i] = strongest
            if self.config.aggregate == "max":
                rules = np.array([strongest])
            for r in rules.tolist():
                body = self.antecedents[r][self.antecedents[r] >= 0]
                for s in body.tolist():
                    contributions[i, seed_col[s]] += self.weight[r] / len(body)
        out = (
            from_seed_contributions(self, seeds, track_ids, contributions)
            if len(seeds)
            else [
                popularity_explanation(
                    self, int(t), "A popular track: the playlist has no seed tracks."
                )
                for t in track_ids
            ]
        )
        for i, explanation in enumerate(out):
            r = best.get(i)
            if r is None:
                if explanation.evidence[0]["kind"] == "popularity" and len(seeds):
                    out[i] = popularity_explanation(
                        self,
                        int(track_ids[i]),
                        "A popular track: no association "
                        "rule of the model fires for this playlist's seeds.",
                    )
                continue
            body = self.antecedents[r][self.antecedents[r] >= 0]
            explanation.text = (
                f"Playlists with {join_names(self.track_labels(body))} also hold this track "
                f"{self.confidence[r]:.0%} of the time, {self.lift[r]:.1f}× more often than "
                "playlists in general."
            )
        return out
