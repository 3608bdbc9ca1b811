"""Tests for segue.evaluation.runner: known answers for means, CIs, paired tests and the report."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest
from scipy import special
from scipy.stats import binom

from segue.data.challenge import CATEGORY_BY_NUMBER
from segue.errors import SegueError
from segue.evaluation import metrics as M
from segue.evaluation.runner import (
    HEADLINE_METRICS,
    EvaluationResult,
    EvaluationTask,
    _sign_flip_p_values,
    evaluate,
    holm,
    write_report,
)

PAD = -1
N_ITEMS = 20
WIDTH = 12
TRUTH = [[0, 1], [2], [3, 4, 5], [6, 7], [8], [9, 10]]
MISSES = list(range(11, 20))  # catalog ids that are nobody's truth


def _row(ids: list[int]) -> list[int]:
    return ids + [PAD] * (WIDTH - len(ids))


def _task(categories=(1, 1, 1, 2, 2, 2), truth=TRUTH) -> EvaluationTask:
    n_truth_ids = max(max(t) for t in truth) + 1
    return EvaluationTask(
        pids=np.arange(100, 100 + len(truth)),
        categories=np.array(categories, dtype=np.int8),
        truth=[np.array(t, dtype=np.int64) for t in truth],
        track_artist=np.arange(max(N_ITEMS, n_truth_ids), dtype=np.int32),
        item_popularity=np.arange(1, N_ITEMS + 1, dtype=np.int64),
        n_playlists=50,
        n_items=N_ITEMS,
    )


PERFECT = np.array([_row(t) for t in TRUTH])
NOTHING = np.array([_row(MISSES) for _ in TRUTH])
# Hand-worked per query: r_precision, clicks
#   q0 G={0,1}:   [0, 11, 1]          -> 1/2, first hit rank 1  -> 0
#   q1 G={2}:     10 misses, then 2   -> 0,   first hit rank 11 -> 1
#   q2 G={3,4,5}: [3, 11, 12]         -> 1/3, rank 1            -> 0
#   q3 G={6,7}:   [6, 7]              -> 1,   rank 1            -> 0
#   q4 G={8}:     [8]                 -> 1,   rank 1            -> 0
#   q5 G={9,10}:  misses only         -> 0,   no hit            -> 51
PARTIAL = np.array(
    [
        _row([0, 11, 1]),
        _row([*MISSES, PAD, 2]),
        _row([3, 11, 12]),
        _row([6, 7]),
        _row([8]),
        _row(MISSES),
    ]
)
PARTIAL_RP = np.array([1 / 2, 0, 1 / 3, 1, 1, 0])
PARTIAL_CLICKS = np.array([0, 1, 0, 0, 0, 51.0])


@pytest.fixture(scope="module")
def tiny() -> EvaluationResult:
    rankings = {"perfect": PERFECT, "nothing": NOTHING, "partial": PARTIAL}
    return evaluate(_task(), rankings, n_bootstrap=200, seed=3)


# --------------------------------------------------------------------------------------------
# Table: means and CIs
# --------------------------------------------------------------------------------------------


def test_groups_and_metrics(tiny):
    assert tiny.models == ["perfect", "nothing", "partial"]
    assert tiny.groups == ["all", "1", "2"]  # only categories holding queries
    cells = tiny.table["partial"]["all"]
    assert set(cells) == set(tiny.metrics)
    for name in (
        "precision@10",
        "recall@100",
        "ndcg@10",
        "hit_rate@100",
        "mrr",
        "novelty",
        "artist_diversity",
        "popularity_bias",
        "long_tail_share",
        "catalog_coverage",
    ):
        assert name in cells
    assert {c["n"] for c in tiny.table["partial"]["1"].values()} == {3}
    assert cells["r_precision"]["n"] == 6


@pytest.mark.parametrize("group", ["all", "1", "2"])
def test_perfect_and_empty_models(tiny, group):
    perfect, nothing = tiny.table["perfect"][group], tiny.table["nothing"][group]
    for metric, value in [
        ("r_precision", 1.0),
        ("ndcg", 1.0),
        ("ndcg_common", 1.0),
        ("clicks", 0.0),
        ("mrr", 1.0),
    ]:
        assert perfect[metric] == {
            "mean": value,
            "ci_low": value,
            "ci_high": value,
            "n": perfect[metric]["n"],
        }
    for metric, value in [("r_precision", 0.0), ("ndcg", 0.0), ("clicks", 51.0)]:
        # clicks of a list without any hit is the challenge's 51 even for 12-track lists
        assert (nothing[metric]["mean"], nothing[metric]["ci_low"], nothing[metric]["ci_high"]) == (
            value,
            value,
            value,
        )


def test_means_match_hand_computation(tiny):
    t = tiny.table["partial"]
    assert t["1"]["r_precision"]["mean"] == pytest.approx(5 / 18)
    assert t["2"]["r_precision"]["mean"] == pytest.approx(2 / 3)
    assert t["all"]["r_precision"]["mean"] == pytest.approx(17 / 36)
    assert t["1"]["clicks"]["mean"] == pytest.approx(1 / 3)
    assert t["2"]["clicks"]["mean"] == pytest.approx(17.0)
    assert t["all"]["clicks"]["mean"] == pytest.approx(52 / 6)
    for g in ("1", "2"):  # bootstrap means lie between the smallest and largest query value
        idx = slice(0, 3) if g == "1" else slice(3, 6)
        for metric, vals in [("r_precision", PARTIAL_RP[idx]), ("clicks", PARTIAL_CLICKS[idx])]:
            c = t[g][metric]
            assert vals.min() - 1e-12 <= c["ci_low"] <= c["mean"] <= c["ci_high"]
            assert c["ci_high"] <= vals.max() + 1e-12
            assert c["ci_low"] < c["ci_high"]


def test_means_match_metrics_module(tiny):
    task = _task()
    ref = M.challenge_metrics(PARTIAL, task.truth, task.track_artist)
    for name, values in ref.items():
        if name == "clicks":
            continue  # the module's default no-hit value follows the list width (3 for 12)
        assert tiny.table["partial"]["all"][name]["mean"] == pytest.approx(values.mean())
        assert tiny.table["partial"]["2"][name]["mean"] == pytest.approx(values[3:].mean())
    assert tiny.table["partial"]["all"]["novelty"]["mean"] == pytest.approx(
        M.novelty(PARTIAL, task.item_popularity, task.n_playlists).mean()
    )


def test_catalog_coverage_per_group(tiny):
    cov = {g: tiny.table["perfect"][g]["catalog_coverage"] for g in tiny.groups}
    assert cov["all"]["mean"] == pytest.approx(11 / 20)  # ids 0..10
    assert cov["1"]["mean"] == pytest.approx(6 / 20)  # ids 0..5
    assert cov["2"]["mean"] == pytest.approx(5 / 20)  # ids 6..10
    assert cov["all"]["ci_low"] is None and cov["all"]["ci_high"] is None


def test_all_is_query_weighted_mean_of_categories():
    res = evaluate(_task(categories=(1, 1, 2, 2, 2, 2)), {"partial": PARTIAL}, n_bootstrap=50)
    t = res.table["partial"]
    assert t["1"]["r_precision"]["mean"] == pytest.approx(0.25)
    assert t["2"]["r_precision"]["mean"] == pytest.approx(7 / 12)
    for metric in res.metrics:
        if metric == "catalog_coverage":
            continue
        weighted = (2 * t["1"][metric]["mean"] + 4 * t["2"][metric]["mean"]) / 6
        assert t["all"][metric]["mean"] == pytest.approx(weighted), metric


def test_bootstrap_is_stratified():
    # Perfect on category 1, nothing on category 2: every stratified replicate of "all" keeps
    # 3 + 3 queries, so its mean is exactly 0.5 (an unstratified bootstrap would spread).
    half = np.concatenate([PERFECT[:3], NOTHING[3:]])
    c = evaluate(_task(), {"half": half}, n_bootstrap=300).table["half"]["all"]["r_precision"]
    assert (c["mean"], c["ci_low"], c["ci_high"]) == (0.5, 0.5, 0.5)


def test_unknown_truth_tracks_count_in_denominator():
    truth = [*TRUTH[:5], [9, 25]]  # track 25 is not in the 20-track catalog
    res = evaluate(_task(truth=truth), {"perfect": PERFECT}, n_bootstrap=20)
    assert res.table["perfect"]["2"]["r_precision"]["mean"] == pytest.approx((1 + 1 + 0.5) / 3)


def _bernoulli_task(q: int, p: float, rng: np.random.Generator):
    """One truth track per query, ranked first with probability p: r_precision ~ Bernoulli(p)."""
    categories = np.resize(np.arange(1, 11), q)
    truth = [np.array([i]) for i in range(q)]
    first = np.where(rng.random(q) < p, np.arange(q), q)  # id q is a miss for everyone
    ranking = np.column_stack([first, np.full(q, PAD)])
    task = EvaluationTask(
        pids=np.arange(q),
        categories=categories,
        truth=truth,
        track_artist=np.zeros(q + 1, dtype=np.int32),
        item_popularity=np.ones(q + 1, dtype=np.int64),
        n_playlists=10,
        n_items=q + 1,
    )
    return task, {"model": ranking}


def test_bootstrap_ci_covers_true_mean_and_shrinks():
    rng = np.random.default_rng(42)
    covered, widths = 0, {200: [], 2000: []}
    for rep in range(30):
        task, rankings = _bernoulli_task(200, 0.3, rng)
        c = evaluate(task, rankings, n_bootstrap=300, seed=rep).table["model"]["all"]
        c = c["r_precision"]
        covered += c["ci_low"] <= 0.3 <= c["ci_high"]
        widths[200].append(c["ci_high"] - c["ci_low"])
        assert c["ci_low"] <= c["mean"] <= c["ci_high"]
    assert covered >= 25  # nominal 95%: 28.5 of 30 expected
    for rep in range(3):
        task, rankings = _bernoulli_task(2000, 0.3, rng)
        c = evaluate(task, rankings, n_bootstrap=300, seed=rep).table["model"]["all"]
        widths[2000].append(c["r_precision"]["ci_high"] - c["r_precision"]["ci_low"])
        assert c["r_precision"]["ci_low"] <= 0.3 <= c["r_precision"]["ci_high"]
    # Standard error sqrt(p (1 - p) / q): width ≈ 3.92 * 0.0324 = 0.127 at q = 200, /sqrt(10).
    assert np.mean(widths[200]) == pytest.approx(3.92 * np.sqrt(0.21 / 200), rel=0.15)
    assert np.mean(widths[2000]) < 0.45 * np.mean(widths[200])


def test_deterministic_for_a_seed(tiny):
    rankings = {"perfect": PERFECT, "nothing": NOTHING, "partial": PARTIAL}
    again = evaluate(_task(), rankings, n_bootstrap=200, seed=3)
    assert again.to_json() == tiny.to_json()
    other = evaluate(_task(), rankings, n_bootstrap=200, seed=4)
    assert other.to_json() != tiny.to_json()


def test_cis_of_a_model_do_not_depend_on_the_others(tiny):
    alone = evaluate(_task(), {"partial": PARTIAL}, n_bootstrap=200, seed=3)
    assert alone.table["partial"] == tiny.table["partial"]


# --------------------------------------------------------------------------------------------
# Paired comparisons
# --------------------------------------------------------------------------------------------


def _dominance_task(q: int = 60):
    """Model A beats B on every query and every headline metric, by varying margins."""
    truth, a_rows, b_rows = [], [], []
    for i in range(q):
        g = [1000 + 4 * i + j for j in range(4)]
        misses = list(range(10 * (1 + i % 3)))  # ids 0..29 are nobody's truth
        truth.append(np.array(g))
        a_rows.append(g[: 2 + i % 3] + [PAD] * (40 - (2 + i % 3)))  # R-prec 0.5/0.75/1, clicks 0
        b_rows.append(misses + g + [PAD] * (36 - len(misses)))  # R-prec 0, clicks 1/2/3
    n_items = 1000 + 4 * q
    task = EvaluationTask(
        pids=np.arange(q),
        categories=np.resize(np.arange(1, 3), q),
        truth=truth,
        track_artist=np.arange(n_items, dtype=np.int32),
        item_popularity=np.ones(n_items, dtype=np.int64),
        n_playlists=5,
        n_items=n_items,
    )
    return task, np.array(a_rows), np.array(b_rows)


def _rows(result, group="all"):
    return {
        (c["model_a"], c["model_b"], c["metric"]): c
        for c in result.comparisons
        if c["group"] == group
    }


def test_strictly_better_model_is_significant():
    task, a, b = _dominance_task()
    res = evaluate(task, {"B": b, "A": a}, n_bootstrap=300)  # B first: diffs are B - A
    rows = _rows(res)
    assert set(rows) == {("B", "A", m) for m in HEADLINE_METRICS}
    for metric in ("r_precision", "ndcg"):
        c = rows[("B", "A", metric)]
        assert c["diff"] < 0 and c["ci_high"] < 0
    clicks = rows[("B", "A", "clicks")]
    assert clicks["diff"] == pytest.approx(2.0)  # B: 1, 2, 3 clicks; A: 0
    assert clicks["ci_low"] > 0
    # 60 queries, all of one sign: the exact p is 2 / 2**60, so no flip is as extreme and the
    # Monte Carlo p is its floor. 3 comparisons in the 'all' family: ceil(20 * 3 / 0.05) flips.
    assert res.settings["n_permutations"] == {"all": 1200, "category": 2400}
    for c in rows.values():
        assert c["better"] == "A"  # clicks: the lower value wins
        assert c["test"] == "permutation"  # 60 queries: below the normal approximation's 100
        assert c["p_value"] == pytest.approx(1 / 1201)
        assert c["p_adjusted"] == pytest.approx(3 / 1201)
        assert c["significant"] is True
    for c in _rows(res, "1").values():  # 30 queries per category: still clear
        assert c["family"] == "category" and c["significant"] and c["better"] == "A"


def test_identical_models_are_not_different(tiny):
    res = evaluate(_task(), {"x": PARTIAL, "y": PARTIAL.copy()}, n_bootstrap=100)
    for c in res.comparisons:
        assert (c["diff"], c["ci_low"], c["ci_high"]) == (0.0, 0.0, 0.0)
        assert c["p_value"] == 1.0 and c["p_adjusted"] == 1.0 and c["test"] == "none"
        assert c["significant"] is False and c["better"] is None


def test_comparison_rows_and_holm_families(tiny):
    # No model named popular: only the best (perfect) against each other model.
    pairs = {("perfect", "nothing"), ("perfect", "partial")}
    assert {(c["model_a"], c["model_b"]) for c in tiny.comparisons} == pairs
    assert len(tiny.comparisons) == 2 * 3 * 3  # pairs x headline metrics x groups
    assert tiny.settings["family_sizes"] == {"all": 6, "category": 12}
    for family, groups in [("all", {"all"}), ("category", {"1", "2"})]:
        rows = [c for c in tiny.comparisons if c["family"] == family]
        assert {c["group"] for c in rows} == groups
        expected = holm([c["p_value"] for c in rows])
        assert [c["p_adjusted"] for c in rows] == pytest.approx(expected.tolist())
    clicks = _rows(tiny)[("perfect", "nothing", "clicks")]
    assert clicks["diff"] == -51.0 and clicks["better"] == "perfect"
    # 6 queries: the smallest attainable sign-flip p is 2/64, too weak after Holm.
    assert clicks["p_value"] > 0.02 and clicks["significant"] is False


def _planted(q: int, hit_rates: dict[str, float], seed: int):
    """One truth track per query (id i), 10 categories; each model ranks it first with its own
    probability, independently per model and query, else ranks id q (nobody's truth) first.

    Per query, R-precision and NDCG are 1 (hit) or 0, clicks 0 or 51.
    """
    rng = np.random.default_rng(seed)
    task = EvaluationTask(
        pids=np.arange(q),
        categories=np.resize(np.arange(1, 11), q),
        truth=[np.array([i]) for i in range(q)],
        track_artist=np.zeros(q + 1, dtype=np.int32),
        item_popularity=np.ones(q + 1, dtype=np.int64),
        n_playlists=10,
        n_items=q + 1,
    )
    rankings = {}
    for name, rate in hit_rates.items():
        first = np.where(rng.random(q) < rate, np.arange(q), q)
        rankings[name] = np.column_stack([first, np.full(q, PAD)])
    return task, rankings


def test_planted_large_difference_is_significant_after_holm():
    task, rankings = _planted(1000, {"B": 0.30, "A": 0.45}, seed=5)
    res = evaluate(task, rankings, n_bootstrap=50)
    rows = _rows(res)
    assert set(rows) == {("B", "A", m) for m in HEADLINE_METRICS}
    d = (rankings["B"][:, 0] < 1000).astype(float) - (rankings["A"][:, 0] < 1000)
    assert d.mean() < -0.1  # the planted gap, as drawn
    # Differences are -1, 0 or 1 (clicks: -51, 0, 51); ~480 non-zero ones: the normal
    # approximation, continuity-corrected by one step, sum(d) over all 10 categories.
    expected = special.erfc((abs(d.sum()) - 1) / np.sqrt(2 * np.square(d).sum()))
    for metric in HEADLINE_METRICS:
        c = rows[("B", "A", metric)]
        assert c["test"] == "normal"
        assert c["p_value"] == pytest.approx(expected, rel=1e-9)
        assert c["family"] == "all" and c["p_adjusted"] < 0.01 and c["significant"] is True
        assert c["better"] == "A"
    assert res.settings["family_sizes"] == {"all": 3, "category": 30}
    assert res.settings["n_permutations"] == {"all": 1200, "category": 12000}


def test_identical_models_on_many_queries_have_p_one():
    task, rankings = _planted(1000, {"A": 0.4, "B": 0.2}, seed=6)
    rankings["A2"] = rankings["A"].copy()
    res = evaluate(task, rankings, n_bootstrap=20, comparisons="all_pairs")
    same = [c for c in res.comparisons if (c["model_a"], c["model_b"]) == ("A", "A2")]
    assert len(same) == 3 * 11  # headline metrics x (all + 10 categories)
    for c in same:
        assert (c["diff"], c["p_value"], c["p_adjusted"], c["test"]) == (0.0, 1.0, 1.0, "none")
        assert c["significant"] is False and c["better"] is None
    assert all(c["significant"] for c in _rows(res).values() if c["model_b"] == "B")


def test_models_differing_only_by_noise_are_not_significant():
    task, rankings = _planted(1000, {"A": 0.3, "B": 0.3}, seed=11)
    res = evaluate(task, rankings, n_bootstrap=20)
    assert len(res.comparisons) == 3 * 11
    for c in res.comparisons:
        assert c["p_adjusted"] >= 0.05 and c["significant"] is False


def test_sign_flip_p_values_are_calibrated():
    # Under the null (random signs on fixed sizes) P(p <= alpha) must be about alpha: both the
    # normal approximation (300 queries, integer sizes 1..10) and the Monte Carlo flips (30
    # queries, a few of them large, like clicks).
    rng = np.random.default_rng(0)
    for m, c, method in [(300, 4000, "normal"), (30, 1000, "permutation")]:
        if method == "normal":
            sizes = rng.integers(1, 11, (m, c)).astype(float)
        else:
            sizes = np.where(rng.random((m, c)) < 0.15, rng.integers(10, 52, (m, c)), 1.0)
        diffs = sizes * rng.choice([-1.0, 1.0], size=(m, c))
        p, methods = _sign_flip_p_values(diffs, 2000, np.random.default_rng(1))
        assert set(methods) == {method}
        for alpha in (0.05, 0.01):
            se = np.sqrt(alpha * (1 - alpha) / c)
            assert alpha - 4 * se < np.mean(p <= alpha) < alpha + 4 * se, (method, alpha)


def test_sign_flip_p_values_match_exact_answers():
    # 30 differences of +-1, 22 positive: T = 14; exact p = P(|Binomial(30, 1/2) - 15| >= 7).
    exact = 2 * binom.sf(21, 30, 0.5)
    d = np.array([1.0] * 22 + [-1.0] * 8)[:, None]
    p, methods = _sign_flip_p_values(d, 200_000, np.random.default_rng(2))
    assert methods == ["permutation"]
    assert exact / 1.6 < p[0] < exact * 1.6  # sequential: stops at 20 exceedances (~22% error)
    # 400 of them, 240 positive: T = 80, far in the normal regime; corrected z = 79 / 20.
    d = np.array([1.0] * 240 + [-1.0] * 160)[:, None]
    p, methods = _sign_flip_p_values(d, 10, np.random.default_rng(2))
    assert methods == ["normal"]
    assert p[0] == pytest.approx(special.erfc(79 / 20 / np.sqrt(2)))
    assert p[0] == pytest.approx(2 * binom.sf(239, 400, 0.5), rel=0.1)  # exact, to 10%
    p, methods = _sign_flip_p_values(np.zeros((50, 2)), 10, np.random.default_rng(2))
    assert p.tolist() == [1.0, 1.0] and methods == ["none", "none"]


@pytest.fixture(scope="module")
def four() -> EvaluationResult:
    rates = {"popular": 0.10, "B": 0.30, "A": 0.45, "C": 0.20}  # A best, B and C in between
    task, rankings = _planted(1000, rates, seed=8)
    return evaluate(task, rankings, n_bootstrap=20)


def test_default_comparisons_are_best_and_popular_against_each(four):
    assert four.settings["comparisons"] == "best_and_popular"
    assert four.settings["best_model"] == "A"
    assert four.settings["reference_models"] == ["A", "popular"]
    expected = {("popular", "B"), ("popular", "A"), ("popular", "C"), ("B", "A"), ("A", "C")}
    for g in four.groups:  # every pair once per metric and group (A vs popular not twice)
        rows = [
            (c["model_a"], c["model_b"], c["metric"]) for c in four.comparisons if c["group"] == g
        ]
        assert sorted(rows) == sorted((a, b, m) for a, b in expected for m in HEADLINE_METRICS)
    assert four.settings["family_sizes"] == {"all": 15, "category": 150}


def test_popular_best_and_single_model():
    task, rankings = _planted(200, {"x": 0.1, "popular": 0.5, "y": 0.2}, seed=9)
    res = evaluate(task, rankings, n_bootstrap=20)
    assert res.settings["reference_models"] == ["popular"]
    assert {(c["model_a"], c["model_b"]) for c in res.comparisons} == {
        ("x", "popular"),
        ("popular", "y"),
    }
    alone = evaluate(task, {"x": rankings["x"]}, n_bootstrap=20)
    assert alone.comparisons == []
    assert alone.settings["family_sizes"] == {"all": 0, "category": 0}


def test_all_pairs_compares_every_pair(four):
    task, rankings = _planted(1000, {"popular": 0.10, "B": 0.30, "A": 0.45, "C": 0.20}, seed=8)
    res = evaluate(task, rankings, n_bootstrap=20, comparisons="all_pairs")
    pairs = {(c["model_a"], c["model_b"]) for c in res.comparisons}
    assert pairs == {
        ("popular", "B"),
        ("popular", "A"),
        ("popular", "C"),
        ("B", "A"),
        ("B", "C"),
        ("A", "C"),
    }
    assert len(res.comparisons) == 6 * 3 * 11
    assert res.settings["comparisons"] == "all_pairs" and res.settings["reference_models"] is None
    # The rows both modes share are the same test; only Holm's family size differs.
    default = {(c["model_a"], c["model_b"], c["metric"], c["group"]): c for c in four.comparisons}
    for c in res.comparisons:
        key = (c["model_a"], c["model_b"], c["metric"], c["group"])
        if key in default and c["test"] == "normal":
            assert c["p_value"] == default[key]["p_value"]
            assert c["p_adjusted"] >= default[key]["p_adjusted"]


@pytest.mark.parametrize("value", ["all-pairs", "best", "", None])
def test_unknown_comparisons_value(value):
    with pytest.raises(ValueError, match="comparisons must be one of 'best_and_popular'"):
        evaluate(_task(), {"a": PARTIAL, "b": NOTHING}, n_bootstrap=10, comparisons=value)


def test_holm_hand_example():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.01, 0.6, 0.02]).tolist() == pytest.approx([1.0, 0.04, 1.0, 0.06])
    assert holm([]).size == 0
    assert holm([0.2]).tolist() == [0.2]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def test_write_report(tiny, tmp_path):
    out = tmp_path / "report"
    paths = write_report(tiny, out, title="Tiny run")
    names = [p.name for p in paths]
    assert names == [
        "evaluation.json",
        "evaluation.md",
        "fig_r_precision.png",
        "fig_ndcg.png",
        "fig_clicks.png",
        "fig_ranking.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temp files left behind
    for p in paths[2:]:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 5_000
    md = (out / "evaluation.md").read_text()
    assert md.startswith("# Tiny run")
    for model in tiny.models:
        assert f"`{model}`" in md
    for number in (1, 2):
        assert CATEGORY_BY_NUMBER[number].label in md
    assert "lower is better" in md.lower() and "ndcg_common" in md and "bootstrap" in md
    assert "1.0000 [1.0000, 1.0000]" in md  # perfect R-precision
    assert "each model against the best by R-precision (`perfect`)" in md
    # 6 queries: no normal approximation; 6 comparisons: ceil(20 * 6 / 0.05) flips at most.
    assert "6 by up to 2,400 Monte Carlo sign flips" in md
    loaded = orjson.loads((out / "evaluation.json").read_bytes())
    assert loaded == tiny.to_json()
    assert loaded["table"]["partial"]["all"]["r_precision"]["mean"] == pytest.approx(17 / 36)
    assert loaded["group_labels"]["1"].endswith("title only")


def test_report_says_how_each_p_was_computed(four, tmp_path):
    write_report(four, tmp_path, title="Planted")
    md = (tmp_path / "evaluation.md").read_text()
    assert "against the best by R-precision (`A`) and against `popular`" in md
    assert "15 comparisons" in md and "normal approximation" in md
    assert "< 0.0001" in md and "0.0000 |" not in md  # a p-value is never 0


def test_to_json_is_plain_python(tiny):
    def walk(obj):
        if isinstance(obj, dict):
            assert all(type(k) is str for k in obj)
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        else:
            assert obj is None or type(obj) in (str, int, float, bool), type(obj)

    walk(tiny.to_json())


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_empty_rankings():
    with pytest.raises(SegueError, match="no rankings"):
        evaluate(_task(), {})


@pytest.mark.parametrize(
    ("ranking", "match"),
    [
        (PARTIAL[:5], "'bad'.*5 rows but the task has 6"),
        (PARTIAL[0], "'bad'.*2-D integer"),
        (PARTIAL.astype(np.float64), "'bad'.*2-D integer"),
        (np.where(PARTIAL == PAD, -2, PARTIAL), "'bad'.*id -2"),
        (np.where(PARTIAL == PAD, N_ITEMS, PARTIAL), "'bad'.*outside the training catalog"),
    ],
)
def test_bad_ranking_names_the_model(ranking, match):
    with pytest.raises(ValueError, match=match):
        evaluate(_task(), {"good": PARTIAL, "bad": ranking}, n_bootstrap=10)


def test_bad_task():
    with pytest.raises(ValueError, match="category 11"):
        _task(categories=(1, 1, 1, 2, 2, 11))
    with pytest.raises(ValueError, match="inconsistent"):
        _task(categories=(1, 1, 2))


def test_per_query_values_do_not_depend_on_the_batch():
    """A query's metrics are the same scored alone, in any part, or with all the others (the
    Spark engine scores parts and hands the values to `evaluate(per_query=...)`); and values
    given that way give the evaluation computed here, exactly."""
    from segue.evaluation.runner import _per_query, _truth_csr, metric_names

    rng = np.random.default_rng(7)
    q, n, items = 3_000, 500, 1_000  # ~75 hits a query: long sums, where rounding shows
    truth = [rng.choice(items, rng.integers(1, 250), replace=False) for _ in range(q)]
    task = EvaluationTask(
        pids=np.arange(q),
        categories=rng.integers(1, 11, q).astype(np.int8),
        truth=truth,
        track_artist=rng.integers(0, 300, items).astype(np.int32),
        item_popularity=rng.integers(1, 1_000, items),
        n_playlists=10_000,
        n_items=items,
    )
    ranking = np.stack([rng.permutation(items)[:n] for _ in range(q)]).astype(np.int64)
    whole = _per_query(task, _truth_csr(task.truth), ranking, (10, 100))
    bounds = [0, 1, 2, 5, 7, 13, 1_000, 1_003, 2_222, q]
    for lo, hi in itertools.pairwise(bounds):
        part = task.take(np.arange(lo, hi))
        values = _per_query(part, _truth_csr(part.truth), ranking[lo:hi], (10, 100))
        for name in metric_names():
            np.testing.assert_array_equal(values[name], whole[name][lo:hi], name)
    local = evaluate(task, {"m": ranking}, n_bootstrap=100)
    given = evaluate(task, {"m": ranking}, n_bootstrap=100, per_query={"m": whole})
    assert given.to_json() == local.to_json()
    assert whole["ndcg"].mean() > 0  # hits, not an all-zero comparison
