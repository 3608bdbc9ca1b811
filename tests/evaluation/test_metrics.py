"""Tests for segue.evaluation.metrics: hand-worked cases and a slow reference implementation.

The reference functions (``ref_*``) are written straight from the metric definitions with loops
and sets, one query at a time; the vectorized metrics must agree with them to 1e-12 on random
batches with repeated ids, padding, empty truths and short rankings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from segue.evaluation import metrics as M

PAD = -1


# --------------------------------------------------------------------------------------------
# Reference implementation: one query at a time, from the rules text
# --------------------------------------------------------------------------------------------


def ref_rel(row, truth):
    """Binary relevance per rank: relevant and the first occurrence of the id."""
    seen, rel = set(), []
    for x in row:
        rel.append(1 if (x != PAD and x in truth and x not in seen) else 0)
        seen.add(x)
    return rel


def ref_r_precision(row, truth):
    if not truth:
        return 0.0
    window = row[: len(truth)]
    return len({x for x in window if x in truth}) / len(truth)


def ref_r_precision_artist(row, truth, track_artist):
    if not truth:
        return 0.0
    window = row[: len(truth)]
    exact = {x for x in window if x in truth}
    truth_artists = {track_artist[g] for g in truth}
    exact_artists = {track_artist[t] for t in exact}
    other_artists = {track_artist[x] for x in window if x != PAD and x not in truth}
    credited = (other_artists & truth_artists) - exact_artists
    return (len(exact) + 0.25 * len(credited)) / len(truth)


def ref_ndcg_rules(row, truth):
    rel = ref_rel(row, truth)
    dcg = sum(r / (1.0 if i == 1 else math.log2(i)) for i, r in enumerate(rel, start=1))
    n_retrieved = len(truth & {x for x in row})
    if n_retrieved == 0:
        return 0.0
    idcg = 1.0 + sum(1.0 / math.log2(i) for i in range(2, n_retrieved + 1))
    return dcg / idcg


def ref_ndcg_common(row, truth):
    rel = ref_rel(row, truth)
    dcg = sum(r / (1.0 if i == 1 else math.log2(i)) for i, r in enumerate(rel, start=1))
    m = min(len(truth), len(row))
    if m == 0:
        return 0.0
    idcg = 1.0 + sum(1.0 / math.log2(i) for i in range(2, m + 1))
    return dcg / idcg


def ref_clicks(row, truth):
    for rank, x in enumerate(row, start=1):
        if x != PAD and x in truth:
            return float((rank - 1) // 10)
    return float(math.ceil(len(row) / 10) + 1)


def ref_precision_at_k(row, truth, k):
    return len({x for x in row[:k] if x in truth}) / k


def ref_recall_at_k(row, truth, k):
    return len({x for x in row[:k] if x in truth}) / len(truth) if truth else 0.0


def ref_ndcg_at_k(row, truth, k):
    rel = ref_rel(row[:k], truth)
    dcg = sum(r / math.log2(i + 1) for i, r in enumerate(rel, start=1))
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(truth), k) + 1))
    return dcg / idcg if idcg else 0.0


def ref_hit_rate_at_k(row, truth, k):
    return 1.0 if any(x in truth for x in row[:k]) else 0.0


def ref_mrr(row, truth, k=None):
    for rank, x in enumerate(row[:k] if k else row, start=1):
        if x in truth:
            return 1.0 / rank
    return 0.0


def ref_distinct(row, k=None):
    """Distinct non-padding tracks of the top k, in rank order."""
    return list(dict.fromkeys(x for x in (row[:k] if k else row) if x != PAD))


def ref_catalog_coverage(rows, n_items, k=None):
    return len({x for row in rows for x in ref_distinct(row, k)}) / n_items


def ref_artist_diversity(row, track_artist, k=None):
    tracks = ref_distinct(row, k)
    return len({track_artist[t] for t in tracks}) / len(tracks) if tracks else 0.0


def ref_novelty(row, pop, n_playlists, k=None):
    tracks = ref_distinct(row, k)
    if not tracks:
        return 0.0
    return sum(-math.log2(max(pop[t], 1) / n_playlists) for t in tracks) / len(tracks)


def ref_popularity_bias(row, pop, k=None):
    tracks = ref_distinct(row, k)
    return sum(pop[t] for t in tracks) / len(tracks) if tracks else 0.0


def ref_head(pop, head_share):
    total = sum(pop)
    if total == 0:
        return set()
    cumulative, threshold = 0, None
    for p in sorted(pop, reverse=True):
        cumulative += p
        if cumulative >= head_share * total:
            threshold = p
            break
    return {i for i, p in enumerate(pop) if p >= threshold and p > 0}


def ref_long_tail_share(row, pop, head_share, k=None):
    tracks = ref_distinct(row, k)
    head = ref_head(pop, head_share)
    return sum(t not in head for t in tracks) / len(tracks) if tracks else 0.0


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def as_csr(truth_lists, n_items, sum_duplicates=False):
    indptr = np.cumsum([0] + [len(t) for t in truth_lists])
    indices = np.concatenate([np.asarray(t, dtype=np.int64) for t in truth_lists] + [[]])
    m = sp.csr_matrix(
        (np.ones(indices.size), indices.astype(np.int32), indptr), shape=(len(truth_lists), n_items)
    )
    if sum_duplicates:
        m.sum_duplicates()
    return m


def random_case(rng):
    """A random batch: repeated ids, padding (trailing and interior), empty truth, odd lengths."""
    q = int(rng.integers(1, 9))
    n = int(rng.choice([1, 2, 3, 7, 10, 11, 12, 25, 40]))
    n_items = int(rng.integers(1, 40))
    ranking = rng.integers(0, n_items, size=(q, n))
    ranking[rng.random((q, n)) < 0.1] = PAD
    for i in range(q):
        if rng.random() < 0.3:
            ranking[i, rng.integers(0, n + 1) :] = PAD
    truth = []
    for _ in range(q):
        size = 0 if rng.random() < 0.15 else int(rng.integers(1, 20))
        truth.append(rng.integers(0, n_items, size=size))  # may repeat ids
    track_artist = rng.integers(0, max(1, n_items // 3), size=n_items)
    pop = rng.integers(0, 50, size=n_items) * (rng.random(n_items) < 0.8)
    dtype = np.int32 if rng.random() < 0.5 else np.int64
    return ranking.astype(dtype), truth, track_artist, pop, n_items


def ref_batch(fn, ranking, truth, *args):
    return np.array(
        [
            fn([int(x) for x in row], {int(g) for g in t}, *args)
            for row, t in zip(ranking, truth, strict=True)
        ]
    )


def check_close(got, want):
    assert got.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Agreement with the reference on random batches
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(200))
def test_matches_reference(seed):
    rng = np.random.default_rng(seed)
    ranking, truth, track_artist, pop, n_items = random_case(rng)
    forms = [truth, as_csr(truth, n_items), as_csr(truth, n_items, sum_duplicates=True)]
    t = forms[seed % 3]
    n = ranking.shape[1]
    k = int(rng.integers(1, n + 6))  # sometimes beyond the ranking length

    hits = M.hit_matrix(ranking, t)
    want_hits = np.array(
        [
            ref_rel([int(x) for x in r], {int(g) for g in tr})
            for r, tr in zip(ranking, truth, strict=True)
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(hits, want_hits.reshape(ranking.shape))

    check_close(M.r_precision(ranking, t), ref_batch(ref_r_precision, ranking, truth))
    check_close(
        M.r_precision_artist(ranking, t, track_artist),
        ref_batch(ref_r_precision_artist, ranking, truth, track_artist),
    )
    check_close(M.ndcg_rules(ranking, t), ref_batch(ref_ndcg_rules, ranking, truth))
    check_close(M.ndcg_common(ranking, t), ref_batch(ref_ndcg_common, ranking, truth))
    check_close(M.clicks(ranking, t), ref_batch(ref_clicks, ranking, truth))
    check_close(M.precision_at_k(ranking, t, k), ref_batch(ref_precision_at_k, ranking, truth, k))
    check_close(M.recall_at_k(ranking, t, k), ref_batch(ref_recall_at_k, ranking, truth, k))
    check_close(M.ndcg_at_k(ranking, t, k), ref_batch(ref_ndcg_at_k, ranking, truth, k))
    check_close(M.hit_rate_at_k(ranking, t, k), ref_batch(ref_hit_rate_at_k, ranking, truth, k))
    check_close(M.mrr(ranking, t), ref_batch(ref_mrr, ranking, truth))
    check_close(M.mrr(ranking, t, k), ref_batch(ref_mrr, ranking, truth, k))

    # The shared hit matrix gives the same answers.
    check_close(M.ndcg_at_k(ranking, t, k, hits=hits), M.ndcg_at_k(ranking, t, k))
    metrics = M.challenge_metrics(ranking, t, track_artist)
    check_close(metrics["r_precision"], M.r_precision(ranking, t))
    check_close(metrics["ndcg"], M.ndcg_rules(ranking, t))
    check_close(metrics["ndcg_common"], M.ndcg_common(ranking, t))
    check_close(metrics["clicks"], M.clicks(ranking, t))
    check_close(metrics["r_precision_artist"], M.r_precision_artist(ranking, t, track_artist))

    # Beyond accuracy (k=None and a k).
    rows = [[int(x) for x in r] for r in ranking]
    for kk in (None, k):
        assert M.catalog_coverage(ranking, n_items, kk) == pytest.approx(
            ref_catalog_coverage(rows, n_items, kk), abs=1e-12
        )
        check_close(
            M.artist_diversity(ranking, track_artist, kk),
            np.array([ref_artist_diversity(r, track_artist, kk) for r in rows]),
        )
        check_close(
            M.novelty(ranking, pop, 60, kk), np.array([ref_novelty(r, pop, 60, kk) for r in rows])
        )
        check_close(
            M.popularity_bias(ranking, pop, kk),
            np.array([ref_popularity_bias(r, pop, kk) for r in rows]),
        )
        share = float(rng.choice([0.2, 0.5, 0.8, 1.0]))
        check_close(
            M.long_tail_share(ranking, pop, share, kk),
            np.array([ref_long_tail_share(r, pop, share, kk) for r in rows]),
        )


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(st.lists(st.integers(-1, 12), min_size=6, max_size=6), min_size=1, max_size=5).flatmap(
        lambda rows: st.tuples(
            st.just(rows),
            st.lists(
                st.lists(st.integers(0, 12), max_size=8), min_size=len(rows), max_size=len(rows)
            ),
        )
    )
)
def test_challenge_metrics_match_reference_hypothesis(case):
    rows, truth = case
    ranking = np.array(rows)
    got = M.challenge_metrics(ranking, truth)
    check_close(got["r_precision"], ref_batch(ref_r_precision, ranking, truth))
    check_close(got["ndcg"], ref_batch(ref_ndcg_rules, ranking, truth))
    check_close(got["ndcg_common"], ref_batch(ref_ndcg_common, ranking, truth))
    check_close(got["clicks"], ref_batch(ref_clicks, ranking, truth))


@pytest.mark.parametrize("seed", range(50))
def test_artist_r_precision_bounds(seed):
    rng = np.random.default_rng(1000 + seed)
    ranking, truth, track_artist, _, n_items = random_case(rng)
    plain = M.r_precision(ranking, truth)
    with_artist = M.r_precision_artist(ranking, truth, track_artist)
    assert np.all(with_artist >= plain)
    assert np.all(with_artist <= 1.0 + 1e-12)
    # Every track its own artist: no artist-only match is possible, so no partial credit.
    check_close(M.r_precision_artist(ranking, truth, np.arange(n_items)), plain)


# --------------------------------------------------------------------------------------------
# Hand-worked cases
# --------------------------------------------------------------------------------------------


def full_ranking(first, n=500, start=1000):
    """A length-n ranking starting with ``first`` then filler ids from ``start`` upwards."""
    return list(first) + list(range(start, start + n - len(first)))


def test_empty_truth():
    ranking = np.array([full_ranking([1, 2, 3])])
    truth = [np.array([], dtype=np.int64)]
    for fn in (M.r_precision, M.ndcg_rules, M.ndcg_common, M.mrr):
        check_close(fn(ranking, truth), np.array([0.0]))
    check_close(M.r_precision_artist(ranking, truth, np.zeros(2000, dtype=int)), np.array([0.0]))
    for fn in (M.precision_at_k, M.recall_at_k, M.ndcg_at_k, M.hit_rate_at_k):
        check_close(fn(ranking, truth, 10), np.array([0.0]))
    check_close(M.clicks(ranking, truth), np.array([51.0]))
    assert not M.hit_matrix(ranking, truth).any()


def test_no_hits():
    ranking = np.array([full_ranking([])])
    truth = [[1, 2, 3]]
    m = M.challenge_metrics(ranking, truth)
    check_close(m["r_precision"], np.array([0.0]))
    check_close(m["ndcg"], np.array([0.0]))
    check_close(m["ndcg_common"], np.array([0.0]))
    check_close(m["clicks"], np.array([51.0]))  # the challenge's value when nothing is relevant
    check_close(M.mrr(ranking, truth), np.array([0.0]))


def test_hit_at_rank_one():
    ranking = np.array([full_ranking([7])])
    m = M.challenge_metrics(ranking, [[7]])
    for key, value in {"r_precision": 1.0, "ndcg": 1.0, "ndcg_common": 1.0, "clicks": 0.0}.items():
        check_close(m[key], np.array([value]))
    check_close(M.mrr(ranking, [[7]]), np.array([1.0]))
    check_close(M.ndcg_at_k(ranking, [[7]], 10), np.array([1.0]))
    check_close(M.precision_at_k(ranking, [[7]], 10), np.array([0.1]))


def test_rules_and_common_ndcg_differ_by_the_ideal():
    # G = {7, 8, 9}; only 7 is retrieved, at rank 1.
    ranking = np.array([full_ranking([7])])
    check_close(M.ndcg_rules(ranking, [[7, 8, 9]]), np.array([1.0]))
    check_close(
        M.ndcg_common(ranking, [[7, 8, 9]]), np.array([1.0 / (1.0 + 1.0 + 1.0 / math.log2(3))])
    )
    check_close(
        M.ndcg_at_k(ranking, [[7, 8, 9]], 500), np.array([1.0 / (1.0 + 1.0 / math.log2(3) + 0.5)])
    )


def test_duplicates_credited_once():
    ranking = np.array([[5, 5, 5, 6, 5, -1, -1]])
    truth = [[5, 6]]
    np.testing.assert_array_equal(
        M.hit_matrix(ranking, truth), [[True, False, False, True, False, False, False]]
    )
    check_close(M.r_precision(ranking, truth), np.array([0.5]))  # window [5, 5]: one track
    check_close(M.precision_at_k(ranking, truth, 3), np.array([1 / 3]))
    check_close(M.recall_at_k(ranking, truth, 3), np.array([0.5]))
    dcg = 1.0 + 1.0 / math.log2(4)
    check_close(M.ndcg_rules(ranking, truth), np.array([dcg / 2.0]))
    check_close(M.ndcg_common(ranking, truth), np.array([dcg / 2.0]))
    # A duplicate never earns artist credit either (its artist is the exact match's).
    check_close(M.r_precision_artist(ranking, truth, np.arange(10) // 10), np.array([0.5]))


def test_truth_duplicates_count_once():
    ranking = np.array([[1, 2, 3, 4]])
    check_close(M.r_precision(ranking, [[1, 1, 9]]), np.array([0.5]))  # G = {1, 9}


def test_short_rankings_and_padding():
    ranking = np.array([[3, -1, 4, -1, -1, -1, -1], [-1] * 7, [9, 8, 7, 6, 5, 4, 3]])
    truth = [[4, 11], [1], [20]]
    check_close(M.r_precision(ranking, truth), np.array([0.0, 0.0, 0.0]))  # 4 is at rank 3
    check_close(M.recall_at_k(ranking, truth, 7), np.array([0.5, 0.0, 0.0]))
    check_close(M.clicks(ranking, truth), np.array([0.0, 2.0, 2.0]))  # ceil(7 / 10) + 1 = 2
    check_close(M.clicks(ranking, truth, no_hit_value=51), np.array([0.0, 51.0, 51.0]))
    check_close(M.ndcg_rules(ranking, truth), np.array([1 / math.log2(3), 0.0, 0.0]))
    check_close(M.ndcg_common(ranking, truth), np.array([1 / math.log2(3) / 2.0, 0.0, 0.0]))
    check_close(M.precision_at_k(ranking, truth, 10), np.array([0.1, 0.0, 0.0]))
    check_close(M.mrr(ranking, truth), np.array([1 / 3, 0.0, 0.0]))
    # Padding never hits, even if someone put -1 in a truth-like list by mistake elsewhere.
    assert not M.hit_matrix(ranking, [[0], [0], [0]])[1].any()


def test_r_precision_when_truth_exceeds_ranking():
    check_close(M.r_precision([[1, 2, 3]], [[1, 2, 3, 4, 5, 6]]), np.array([0.5]))


@pytest.mark.parametrize(
    ("rank", "expected"),
    [(1, 0), (2, 0), (10, 0), (11, 1), (20, 1), (21, 2), (500, 49), (None, 51)],
)
def test_clicks(rank, expected):
    ranking = np.arange(1000, 1500)[None, :].copy()
    truth = [[1]]
    if rank is not None:
        ranking[0, rank - 1] = 1
    check_close(M.clicks(ranking, truth), np.array([float(expected)]))


def test_clicks_only_first_relevant_counts():
    ranking = np.array([full_ranking([], start=1000)])
    ranking[0, 14] = 1  # rank 15 -> 1 click
    ranking[0, 30] = 2  # a later hit does not matter
    check_close(M.clicks(ranking, [[2, 1]]), np.array([1.0]))


def test_r_precision_artist_hand_worked():
    track_artist = np.array([0, 0, 1, 1, 2, 3, 3, 4])
    # G = {0, 2, 4}, |G| = 3, artists of G = {0, 1, 2}; window = [0, 3, 1].
    # 0 exact (artist 0 used up); 3 -> artist 1 in G: +0.25; 1 -> artist 0 already used: 0.
    check_close(
        M.r_precision_artist([[0, 3, 1, 4]], [[0, 2, 4]], track_artist), np.array([(1 + 0.25) / 3])
    )
    # Two tracks of the same G artist in the window earn that artist once.
    check_close(
        M.r_precision_artist([[3, 3, 7, 6]], [[2, 5, 4]], track_artist), np.array([0.25 / 3])
    )
    # Two different G artists through non-matches: 0.5.
    check_close(M.r_precision_artist([[1, 3, 7]], [[0, 2, 5]], track_artist), np.array([0.5 / 3]))
    # Artist matches after the window do not count; padding in the window earns nothing.
    check_close(M.r_precision_artist([[-1, 7, 3]], [[2, 4]], track_artist), np.array([0.0]))
    # A window full of exact matches: equals plain R-precision.
    check_close(M.r_precision_artist([[2, 4, 3]], [[2, 4]], track_artist), np.array([1.0]))


def test_precision_recall_ndcg_at_k_hand_worked():
    ranking = [[5, 1, 2, 7, 9]]
    truth = [[1, 2, 9, 30]]
    check_close(M.precision_at_k(ranking, truth, 2), np.array([0.5]))
    check_close(M.recall_at_k(ranking, truth, 5), np.array([0.75]))
    check_close(M.hit_rate_at_k(ranking, truth, 1), np.array([0.0]))
    check_close(M.hit_rate_at_k(ranking, truth, 2), np.array([1.0]))
    dcg = 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(6)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, 5))
    check_close(M.ndcg_at_k(ranking, truth, 5), np.array([dcg / idcg]))
    check_close(M.mrr(ranking, truth), np.array([0.5]))
    check_close(M.mrr(ranking, truth, k=1), np.array([0.0]))


def test_beyond_accuracy_hand_worked():
    ranking = np.array([[0, 1, 1, 2, -1], [3, 3, -1, -1, -1], [-1, -1, -1, -1, -1]])
    track_artist = np.array([10, 10, 11, 12])
    pop = np.array([8, 4, 0, 1])
    assert M.catalog_coverage(ranking, n_items=8) == 0.5
    assert M.catalog_coverage(ranking, n_items=8, k=1) == 0.25
    check_close(M.artist_diversity(ranking, track_artist), np.array([2 / 3, 1.0, 0.0]))
    check_close(M.artist_diversity(ranking, track_artist, k=2), np.array([0.5, 1.0, 0.0]))
    # n_playlists = 8: informations 0, 1, 3 (pop 0 smoothed to 1), 3.
    check_close(M.novelty(ranking, pop, 8), np.array([4 / 3, 3.0, 0.0]))
    check_close(M.popularity_bias(ranking, pop), np.array([4.0, 1.0, 0.0]))
    # 13 interactions; 0.6 * 13 = 7.8 is reached by track 0 alone -> head = {0}.
    np.testing.assert_array_equal(M.head_mask(pop, 0.6), [True, False, False, False])
    check_close(M.long_tail_share(ranking, pop, 0.6), np.array([2 / 3, 1.0, 0.0]))
    # 0.8 * 13 = 10.4 needs 8 + 4 -> head = {0, 1}.
    check_close(M.long_tail_share(ranking, pop, 0.8), np.array([1 / 3, 1.0, 0.0]))


def test_head_mask_edge_cases():
    np.testing.assert_array_equal(M.head_mask([0, 0, 0]), [False, False, False])
    np.testing.assert_array_equal(M.head_mask([5, 5, 5, 0], 0.1), [True, True, True, False])
    np.testing.assert_array_equal(M.head_mask([3, 2, 1, 0], 1.0), [True, True, True, False])
    with pytest.raises(ValueError):
        M.head_mask([1, 2], 0.0)


def test_truth_forms_agree():
    ranking = np.array([[4, 2, 8, 2], [1, 5, 6, -1], [0, 0, 0, 0]])
    lists = [[2, 3, 2], [6], []]
    forms = [
        lists,
        [np.array(t, dtype=np.int32) for t in lists],
        as_csr(lists, 10),
        sp.csr_array(as_csr(lists, 10, sum_duplicates=True)),
        as_csr(lists, 10).tocoo(),
    ]
    expected = M.challenge_metrics(ranking, lists)
    for form in forms:
        got = M.challenge_metrics(ranking, form)
        for key, value in expected.items():
            check_close(got[key], value)
        assert [a.tolist() for a in M.as_truth_lists(form)] == [[2, 3], [6], []]


def test_hits_keyword_is_used():
    ranking = np.array([[1, 2, 3]])
    fake = np.array([[False, False, True]])
    check_close(M.mrr(ranking, [[1]], hits=fake), np.array([1 / 3]))
    with pytest.raises(ValueError):
        M.mrr(ranking, [[1]], hits=np.ones((1, 2), dtype=bool))


def test_degenerate_shapes():
    empty_q = np.zeros((0, 500), dtype=np.int64)
    for value in M.challenge_metrics(empty_q, []).values():
        assert value.shape == (0,)
    zero_n = np.zeros((2, 0), dtype=np.int64)
    m = M.challenge_metrics(zero_n, [[1], []])
    check_close(m["r_precision"], np.zeros(2))
    check_close(m["ndcg_common"], np.zeros(2))
    check_close(m["clicks"], np.ones(2))
    check_close(M.artist_diversity(zero_n, [0, 0]), np.zeros(2))


def test_input_validation():
    with pytest.raises(ValueError):
        M.r_precision([1, 2, 3], [[1]])  # not 2-D
    with pytest.raises(ValueError):
        M.r_precision([[1, -2]], [[1]])  # below the padding value
    with pytest.raises(ValueError):
        M.r_precision([[1, 2]], [[1], [2]])  # row count mismatch
    with pytest.raises(ValueError):
        M.r_precision([[1, 2]], [[-1]])  # negative truth id
    with pytest.raises(TypeError):
        M.r_precision([[1.5, 2.0]], [[1]])
    with pytest.raises(ValueError):
        M.precision_at_k([[1, 2]], [[1]], 0)
    with pytest.raises(ValueError):
        M.catalog_coverage([[1, 5]], n_items=5)
