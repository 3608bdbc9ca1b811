"""Batch recommendation and evaluation on Spark: the queries answered and scored in partitions
give the local rankings, the local per-query metrics and so the same evaluation, figure for
figure; a challenge set answered there is the same submission."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from segue.cli import main
from segue.evaluation.rankings import evaluate_part
from segue.evaluation.runner import _per_query, _truth_csr, metric_names
from segue.evaluation.task import load_part
from tests.spark.conftest import MASTER


@pytest.fixture(scope="module")
def models(split, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    for model in ("popular", "itemknn"):
        assert main(["train", model, str(split / "train"), "--out", str(out / model), "-q"]) == 0
    return [out / "popular", out / "itemknn"]


def test_partitioned_answers_and_scores_equal_the_local_ones(spark, split, models):
    from segue.models.base import Queries, Recommender
    from segue.spark.batch import answer_partitioned

    loaded = load_part(split, "test")
    once, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    # The 100 held-out queries 25 times over: 2,500 queries, three of the model's batches of
    # 1,024, so the parts (whole batches) cross the data at 1,024 and 2,048.
    rows = np.tile(np.arange(len(once)), 25)
    queries = Queries.from_lists([once.seeds(i).tolist() for i in rows], None, once.pids[rows])
    task = loaded.task.take(rows)
    for model_dir in models:
        local = Recommender.load(model_dir).recommend(queries, 100)
        ranking, per_query = answer_partitioned(
            model_dir, queries, 100, task=task, master=MASTER, partitions=3
        )
        np.testing.assert_array_equal(ranking.ids, local.ids)
        np.testing.assert_array_equal(ranking.scores, local.scores)
        truth = _truth_csr(task.truth)
        expected = _per_query(task, truth, local.ids.astype(np.int64), (10, 100))
        assert set(per_query) == set(metric_names())
        for name in metric_names():
            np.testing.assert_array_equal(per_query[name], expected[name], name)
    assert per_query["r_precision"].mean() > 0  # real hits, not an empty comparison


def test_spark_evaluation_is_the_local_evaluation(spark, split, models):
    loaded = load_part(split, "test")
    local, local_rankings = evaluate_part(loaded, models, n_bootstrap=200)
    on_spark, rankings = evaluate_part(
        loaded, models, n_bootstrap=200, engine="spark", master=MASTER
    )
    assert on_spark.to_json() == local.to_json()
    for name, ranking in local_rankings.items():
        np.testing.assert_array_equal(rankings[name], ranking)


def test_a_challenge_set_answered_on_spark_is_the_same_submission(
    spark, small_mpd, split, models, tmp_path
):
    challenge = small_mpd / "challenge_set.json"
    args = ["recommend", str(models[1]), "--challenge", str(challenge), "-q"]
    assert main([*args, "--out", str(tmp_path / "local.csv.gz")]) == 0
    assert (
        main(
            [
                *args,
                "--out",
                str(tmp_path / "spark.csv.gz"),
                "--engine",
                "spark",
                "--master",
                MASTER,
            ]
        )
        == 0
    )
    local = gzip.decompress((tmp_path / "local.csv.gz").read_bytes())
    assert local.count(b"\n") > 100
    assert gzip.decompress((tmp_path / "spark.csv.gz").read_bytes()) == local
