"""The ``rules`` recommender: scores equal a brute-force sum over the firing rules."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.mining.rules import RuleThresholds, find_rules
from segue.models.base import Queries, Recommender
from segue.models.rules import RulesConfig, RulesRecommender


def dataset(seed: int = 0, n: int = 400, n_tracks: int = 40) -> PlaylistData:
    """Two blocks of 20 tracks (0-19, 20-39); each playlist draws 3-9 tracks mostly from one block."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        block = (p % 2) * 20
        own = block + rng.choice(
            20,
            size=rng.integers(3, 10),
            replace=False,
            p=np.r_[np.full(5, 0.12), np.full(15, 0.4 / 15)],
        )
        other = rng.choice(n_tracks, size=rng.integers(0, 2))
        rows.append(np.unique(np.concatenate((own, other))))
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(rows), indptr), shape=(n, n_tracks)
    )
    return PlaylistData(
        matrix,
        np.arange(n, dtype=np.int32),
        [""] * n,
        np.arange(n_tracks, dtype=np.int32) // 4,
        np.arange(n_tracks, dtype=np.int32) // 2,
    )


def reference_scores(rules, seeds: set[int], aggregate: str) -> dict[int, float]:
    scores: dict[int, float] = {}
    for i in range(len(rules)):
        body = {int(a) for a in rules.antecedents[i] if a >= 0}
        if body <= seeds:
            w = rules.confidence[i] * rules.lift[i]
            c = int(rules.consequents[i])
            scores[c] = scores.get(c, 0.0) + w if aggregate == "sum" else max(scores.get(c, 0.0), w)
    return scores


@pytest.mark.parametrize("aggregate", ["sum", "max"])
def test_scores_are_the_firing_rules_confidence_times_lift(aggregate):
    data = dataset()
    config = RulesConfig(
        min_support=0.02, min_confidence=0.1, min_lift=1.1, max_len=3, aggregate=aggregate
    )
    model = RulesRecommender(config).fit(data)
    rules = find_rules(data.matrix, RuleThresholds(0.02, 0.1, 1.1, 3))
    assert model.n_rules == len(rules) > 50 and (rules.antecedent_sizes == 2).sum() > 10
    queries = Queries.from_lists([[0, 1], [0, 1, 2, 25], [21], [3, 3, 7], []])
    ranking = model.recommend(queries, n=30)
    for row in range(len(queries)):
        seeds = set(queries.seeds(row).tolist())
        expected = {
            t: s for t, s in reference_scores(rules, seeds, aggregate).items() if t not in seeds
        }
        scored = [
            (t, s)
            for t, s in zip(ranking.ids[row].tolist(), ranking.scores[row].tolist(), strict=True)
            if not np.isnan(s)
        ]
        assert len(scored) == min(30, len(expected))
        for t, s in scored:
            assert s == pytest.approx(expected[t], rel=1e-6)
        # Best first; whatever was left out scores no higher than what was kept.
        values = [s for _, s in scored]
        assert values == sorted(values, reverse=True)
        shown = {t for t, _ in scored}
        assert all(v <= values[-1] * (1 + 1e-6) for t, v in expected.items() if t not in shown)
    assert np.isnan(ranking.scores[4]).all()  # no seeds: popularity back-fill only


def test_a_pair_rule_fires_only_when_both_tracks_are_seeds():
    # 0 and 1 together predict 2; either alone does not (2 never comes without both).
    transactions = [[0, 1, 2]] * 10 + [[0, 3]] * 10 + [[1, 4]] * 10 + [[5]] * 10
    indptr = np.concatenate(([0], np.cumsum([len(t) for t in transactions])))
    matrix = sp.csr_matrix(
        (np.ones(indptr[-1], np.float32), np.concatenate(transactions), indptr), shape=(40, 6)
    )
    data = PlaylistData(
        matrix,
        np.arange(40, dtype=np.int32),
        [""] * 40,
        np.zeros(6, np.int32),
        np.zeros(6, np.int32),
    )
    model = RulesRecommender(
        RulesConfig(min_support=0.2, min_confidence=0.9, min_lift=1.0, max_len=3)
    ).fit(data)
    both = model.recommend(Queries.from_lists([[0, 1]]), n=3)
    assert both.ids[0, 0] == 2 and both.scores[0, 0] == pytest.approx(
        1.0 * 4.0
    )  # conf 1, lift 40/10
    alone = model.recommend(Queries.from_lists([[0], [1]]), n=3)
    assert np.isnan(alone.scores).all()
    [explanation] = model.explain(Queries.from_lists([[0, 1]]), 0, [2])
    shares = {e["track_id"]: e["share"] for e in explanation.evidence}
    assert shares == {0: pytest.approx(0.5), 1: pytest.approx(0.5)}
    assert "100% of the time" in explanation.text and "4.0×" in explanation.text


def test_explanations_split_each_rule_among_its_seeds(tmp_path):
    data = dataset(1)
    model = RulesRecommender(RulesConfig(min_support=0.02, min_confidence=0.1, min_lift=1.1)).fit(
        data
    )
    queries = Queries.from_lists([[0, 1, 2]])
    top = model.recommend(queries, n=5).ids[0]
    rules = find_rules(data.matrix, RuleThresholds(0.02, 0.1, 1.1, 3))
    for explanation in model.explain(queries, 0, top):
        expected = {0: 0.0, 1: 0.0, 2: 0.0}
        for i in range(len(rules)):
            body = [int(a) for a in rules.antecedents[i] if a >= 0]
            if rules.consequents[i] == explanation.track_id and set(body) <= {0, 1, 2}:
                for s in body:
                    expected[s] += rules.confidence[i] * rules.lift[i] / len(body)
        total = sum(expected.values())
        got = {e["track_id"]: e["share"] for e in explanation.evidence if e["kind"] == "seed"}
        assert got == {s: pytest.approx(v / total) for s, v in expected.items() if v > 0}
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.n_rules == model.n_rules
    assert [e.evidence for e in loaded.explain(queries, 0, top)] == [
        e.evidence for e in model.explain(queries, 0, top)
    ]


def test_bad_configuration_is_refused():
    with pytest.raises(SegueError, match="aggregate must be one of sum, max"):
        RulesRecommender(RulesConfig(aggregate="mean")).fit(dataset())
    with pytest.raises(SegueError, match="min_confidence"):
        RulesRecommender(RulesConfig(min_confidence=3.0)).fit(dataset())
