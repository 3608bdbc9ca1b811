"""Association rules against a brute-force count, hand-worked measures, the stage and its errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from segue.cli import main
from segue.data import schema
from segue.data.tables import Tables
from segue.errors import SegueError
from segue.mining.rules import RuleThresholds, find_rules, mine_rules


def as_matrix(transactions: list[list[int]], n_items: int) -> sp.csr_matrix:
    indptr = np.concatenate(([0], np.cumsum([len(t) for t in transactions])))
    indices = np.array([i for t in transactions for i in t], dtype=np.int32)
    return sp.csr_matrix(
        (np.ones(len(indices), np.float32), indices, indptr), shape=(len(transactions), n_items)
    )


def brute_force(transactions: list[list[int]], t: RuleThresholds) -> dict[tuple, tuple]:
    """(antecedent tuple, consequent) → (count, antecedent count, consequent count), by enumeration."""
    sets = [set(x) for x in transactions]
    n = len(sets)

    def count(items) -> int:
        return sum(1 for s in sets if s.issuperset(items))

    items = sorted(set().union(*sets))
    min_count = max(2, math.ceil(t.min_support * n - 1e-9))
    rules = {}
    for size in range(2, t.max_len + 1):
        for itemset in itertools.combinations(items, size):
            c = count(itemset)
            if c < min_count:
                continue
            for head in itemset:
                body = tuple(i for i in itemset if i != head)
                body_count, head_count = count(body), count((head,))
                confidence = c / body_count
                lift = confidence / (head_count / n)
                if confidence >= t.min_confidence and lift >= t.min_lift:
                    rules[(body, head)] = (c, body_count, head_count)
    return rules


def random_transactions(seed: int, n: int = 60, n_items: int = 14) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    # Two overlapping "genres" so there are strong and weak associations, plus empty playlists.
    out = []
    for _ in range(n):
        pool = np.arange(0, 9) if rng.random() < 0.5 else np.arange(5, n_items)
        size = rng.integers(0, 7)
        out.append(sorted(rng.choice(pool, size=min(size, len(pool)), replace=False).tolist()))
    return out


@pytest.mark.parametrize(
    ("seed", "thresholds"),
    [
        (0, RuleThresholds(min_support=0.05, min_confidence=0.1, min_lift=1.2, max_len=3)),
        (1, RuleThresholds(min_support=0.02, min_confidence=0.0, min_lift=0.0, max_len=3)),
        (2, RuleThresholds(min_support=0.03, min_confidence=0.5, min_lift=1.0, max_len=4)),
        (3, RuleThresholds(min_support=0.1, min_confidence=0.3, min_lift=2.0, max_len=2)),
    ],
)
def test_rules_equal_a_brute_force_count(seed, thresholds):
    transactions = random_transactions(seed)
    expected = brute_force(transactions, thresholds)
    assert len(expected) > 5  # the case is not vacuous
    rules = find_rules(as_matrix(transactions, 14), thresholds)
    got = {}
    for i in range(len(rules)):
        body = tuple(int(a) for a in rules.antecedents[i] if a >= 0)
        got[(body, int(rules.consequents[i]))] = (
            int(rules.count[i]),
            int(rules.antecedent_count[i]),
            int(rules.consequent_count[i]),
        )
    assert got == expected
    n = len(transactions)
    for i in range(len(rules)):
        c, body, head = got[
            (tuple(int(a) for a in rules.antecedents[i] if a >= 0), int(rules.consequents[i]))
        ]
        assert rules.support[i] == pytest.approx(c / n)
        assert rules.confidence[i] == pytest.approx(c / body)
        assert rules.lift[i] == pytest.approx((c / body) / (head / n))
    # Sorted by lift, best first; antecedents ascending and padded at the end.
    assert np.all(np.diff(rules.lift) <= 1e-12)
    padded = np.where(rules.antecedents < 0, np.iinfo(np.int32).max, rules.antecedents)
    assert np.array_equal(np.sort(padded, axis=1), padded)


def test_hand_worked_measures():
    # 8 playlists; {1,2} together in 3, 1 in 4, 2 in 4; two empty playlists count in N.
    transactions = [[1, 2, 3], [1, 2], [1, 3], [2, 3], [1, 2, 3, 4], [4], [], []]
    rules = find_rules(
        as_matrix(transactions, 5),
        RuleThresholds(min_support=0.25, min_confidence=0.7, min_lift=1.0, max_len=3),
    )
    found = {
        (tuple(a for a in rules.antecedents[i].tolist() if a >= 0), int(rules.consequents[i])): i
        for i in range(len(rules))
    }
    assert set(found) == {((1,), 2), ((2,), 1), ((1,), 3), ((3,), 1), ((2,), 3), ((3,), 2)}
    i = found[((1,), 2)]
    assert rules.support[i] == 3 / 8 and rules.confidence[i] == 0.75 and rules.lift[i] == 1.5
    assert rules.leverage[i] == pytest.approx(3 / 8 - 0.5 * 0.5)  # 0.125
    assert rules.conviction[i] == pytest.approx((1 - 0.5) / (1 - 0.75))  # 2.0
    # {1,2} → 3 has confidence 2/3 < 0.7: left out. At 0.6 it comes in, with lift (2/3)/(4/8).
    more = find_rules(as_matrix(transactions, 5), RuleThresholds(0.25, 0.6, 1.0, 3))
    pair = [
        i
        for i in range(len(more))
        if more.antecedents[i].tolist() == [1, 2] and more.consequents[i] == 3
    ]
    assert len(pair) == 1 and more.lift[pair[0]] == pytest.approx(4 / 3)


def test_a_rule_that_never_fails_has_infinite_conviction():
    rules = find_rules(as_matrix([[0, 1], [0, 1], [0], [2]], 3), RuleThresholds(0.5, 0.5, 1.0, 2))
    i = next(
        k for k in range(len(rules)) if rules.antecedents[k, 0] == 1 and rules.consequents[k] == 0
    )
    assert rules.confidence[i] == 1.0 and math.isinf(rules.conviction[i])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_support": 0}, "min_support must be a share of playlists in \\(0, 1\\], got 0"),
        ({"min_support": 1.5}, "min_support"),
        ({"min_confidence": 1.2}, "min_confidence must be in \\[0, 1\\], got 1.2"),
        ({"min_confidence": -0.1}, "min_confidence"),
        ({"min_lift": -1}, "min_lift must be a finite number ≥ 0"),
        ({"max_len": 1}, "max_len must be an integer from 2 to 10"),
    ],
)
def test_thresholds_out_of_range_are_refused(kwargs, message):
    with pytest.raises(SegueError, match=message):
        find_rules(as_matrix([[0, 1]], 2), RuleThresholds(**kwargs))


def test_no_playlists_is_an_error_and_no_frequent_pair_gives_no_rules():
    with pytest.raises(SegueError, match="no playlists"):
        find_rules(sp.csr_matrix((0, 5), dtype=np.float32))
    assert len(find_rules(as_matrix([[0], [1], [2]], 3), RuleThresholds(0.5, 0.1, 1.0, 3))) == 0


def test_mine_rules_writes_parquet_and_named_top_list(small_data, tmp_path, capsys):
    out = tmp_path / "rules"
    assert (
        main(
            [
                "rules",
                str(small_data),
                "--min-support",
                "0.005",
                "--min-confidence",
                "0.1",
                "--min-lift",
                "1.2",
                "--max-len",
                "3",
                "--top",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "rules over" in capsys.readouterr().out
    table = pq.read_table(out / "rules.parquet")
    from segue.data.dataset import PlaylistData

    data = PlaylistData.load(small_data)
    expected = find_rules(data.matrix, RuleThresholds(0.005, 0.1, 1.2, 3))
    assert table.num_rows == len(expected) > 0
    assert table.column("consequent_id").to_numpy().tolist() == expected.consequents.tolist()
    np.testing.assert_allclose(table.column("lift").to_numpy(), expected.lift)
    first = table.slice(0, 1).to_pylist()[0]
    uris = (
        pq.read_table(small_data / schema.TRACKS_FILE, columns=[schema.TRACK_URI])
        .column(0)
        .to_pylist()
    )
    assert first["consequent_uri"] == uris[first["consequent_id"]]
    assert first["antecedent_uris"] == [uris[i] for i in first["antecedent_ids"]]
    assert set(table.column_names) >= {"support", "confidence", "lift", "leverage", "conviction"}
    text = (out / "rules.md").read_text()
    names = pq.read_table(
        small_data / schema.TRACKS_FILE, columns=[schema.TRACK_NAME, schema.ARTIST_NAME]
    )
    top = first["consequent_id"]
    assert f"{names.column(0)[top].as_py()} — {names.column(1)[top].as_py()}" in text
    assert (
        "## Highest lift (top 5; ties: more playlists first)" in text
        and "## Most supported" in text
    )


def empty_dataset(path: Path) -> Path:
    Tables(
        pa.table(
            {f.name: pa.array([], f.type) for f in schema.PLAYLISTS_SCHEMA},
            schema=schema.PLAYLISTS_SCHEMA,
        ),
        pa.table(
            {f.name: pa.array([], f.type) for f in schema.TRACKS_SCHEMA},
            schema=schema.TRACKS_SCHEMA,
        ),
        pa.table(
            {f.name: pa.array([], f.type) for f in schema.PLAYLIST_TRACKS_SCHEMA},
            schema=schema.PLAYLIST_TRACKS_SCHEMA,
        ),
    ).write(path, source="test")
    return path


def test_cli_bad_input_is_one_line_and_leaves_nothing(small_data, tmp_path, capsys):
    out = tmp_path / "rules"
    assert main(["rules", str(small_data), "--min-confidence", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: min_confidence must be in [0, 1], got 2.0" and not out.exists()
    assert main(["rules", str(empty_dataset(tmp_path / "empty")), "--out", str(out)]) == 2
    assert "no playlists" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SegueError, match="top must be at least 1"):
        mine_rules(small_data, out, top=0)


def test_the_cli_and_the_pipeline_mine_with_the_library_defaults():
    """`segue rules` shows (and uses) RuleThresholds' defaults, and the pipeline's rules stage is
    keyed on them: one place for the thresholds."""
    import dataclasses
    import inspect

    from segue.cli import analysis
    from segue.pipeline.phases import Settings, _Stages

    defaults = dataclasses.asdict(RuleThresholds())
    params = inspect.signature(analysis.rules).parameters
    assert {name: params[name].default for name in defaults} == defaults
    stage = next(
        s for s in _Stages(Settings(out=Path("o"), mpd=Path("m"))).phase2() if s.name == "rules"
    )
    assert stage.params == defaults
