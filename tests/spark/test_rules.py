"""Association rules on Spark equal the local miner's, rule for rule and count for count."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from segue.cli import main
from segue.data.dataset import PlaylistData
from segue.mining.rules import RuleThresholds, find_rules
from tests.spark.conftest import MASTER

FIELDS = ("antecedents", "consequents", "count", "antecedent_count", "consequent_count")


@pytest.mark.parametrize(
    "thresholds",
    [
        RuleThresholds(min_support=0.005, min_confidence=0.1, min_lift=1.2, max_len=3),
        RuleThresholds(min_support=0.007, min_confidence=0.0, min_lift=0.0, max_len=2),
        RuleThresholds(min_support=0.004, min_confidence=0.3, min_lift=2.0, max_len=4),
        # A small count (4 of 4,000 playlists): the subsets of a few overlapping playlists are
        # frequent, and only a cap on the set size keeps the mining finite.
        RuleThresholds(min_support=0.001, min_confidence=0.5, min_lift=5.0, max_len=3),
    ],
)
def test_spark_finds_the_same_rules_as_the_local_miner(spark, small_data, thresholds):
    from segue.spark.rules import find_rules_spark

    local = find_rules(PlaylistData.load(small_data).matrix, thresholds)
    on_spark = find_rules_spark(small_data, thresholds, MASTER)
    assert len(local) > 20  # a real comparison, not two empty sets
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(on_spark, field), getattr(local, field), field)
    assert (on_spark.n_transactions, on_spark.n_frequent_items, on_spark.min_count) == (
        local.n_transactions,
        local.n_frequent_items,
        local.min_count,
    )


def test_segue_rules_on_spark_writes_the_same_table(spark, small_data, tmp_path):
    args = ["rules", str(small_data), "--min-support", "0.005", "-q"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert (
        main([*args, "--out", str(tmp_path / "spark"), "--engine", "spark", "--master", MASTER])
        == 0
    )
    local = pq.read_table(tmp_path / "local" / "rules.parquet")
    assert local.num_rows > 20 and local.equals(pq.read_table(tmp_path / "spark" / "rules.parquet"))
    summary = (tmp_path / "spark" / "summary.json").read_text()
    assert "MLlib PrefixSpan" in summary


def test_a_dataset_with_nothing_frequent_gives_no_rules(spark, small_data):
    from segue.spark.rules import find_rules_spark

    rules = find_rules_spark(small_data, RuleThresholds(min_support=0.9), MASTER)
    assert len(rules) == 0 and rules.n_frequent_items == 0
