"""ALS on Spark: MLlib's factors in segue's ALS model — the same directory, loaded and served
like the local one, of the same quality on the same split."""

from __future__ import annotations

import json

import numpy as np

from segue.cli import main
from segue.models.base import Recommender
from tests.spark.conftest import MASTER

SMALL = ["-p", "factors=16", "-p", "iterations=8"]


def test_als_on_spark_is_an_als_model_of_the_same_quality(spark, split, tmp_path):
    local, on_spark = tmp_path / "local", tmp_path / "spark"
    assert main(["train", "als", str(split / "train"), "--out", str(local), *SMALL, "-q"]) == 0
    args = ["train", "als", str(split / "train"), "--out", str(on_spark), *SMALL]
    assert main([*args, "--engine", "spark", "--master", MASTER, "-q"]) == 0

    model = Recommender.load(on_spark)
    assert model.name == "als" and model.item_factors.shape[1] == 16
    # Every track a training playlist holds has factors (and none other, as in the local fit).
    np.testing.assert_array_equal(model.item_factors.any(axis=1), model.popularity > 0)

    out = tmp_path / "ev"
    assert main(["evaluate", str(local), str(on_spark), "--split", str(split), "--out", str(out),
                 "--bootstrap", "300", "-q"]) == 0  # fmt: skip
    table = json.loads((out / "evaluation.json").read_text())["table"]
    ours, theirs = table["spark"]["all"]["r_precision"], table["local"]["all"]["r_precision"]
    assert theirs["mean"] > 0.02  # the local model learned something
    assert theirs["ci_low"] <= ours["mean"] <= theirs["ci_high"], (ours, theirs)


def test_models_that_cannot_train_on_spark_and_bad_masters_are_refused(split, tmp_path, capsys):
    args = ["train", "playlistknn", str(split / "train"), "--out", str(tmp_path / "m")]
    assert main([*args, "--engine", "spark", "--master", MASTER]) == 2
    assert "playlistknn trains locally only (on Spark: als, itemknn)" in capsys.readouterr().err
    args[1] = "als"
    assert main([*args, "--master", MASTER]) == 2
    assert "--master is for --engine spark" in capsys.readouterr().err
    assert main([*args, "--engine", "spark", "--master", "local[two]"]) == 2
    assert "--master local[two]: not a Spark master" in capsys.readouterr().err
    assert main([*args, "--engine", "sparkle"]) == 2
    assert "--engine must be local or spark, not 'sparkle'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
