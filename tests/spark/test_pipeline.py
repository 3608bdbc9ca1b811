"""``segue pipeline phase1/phase2 --engine spark``: ingest, the rules, item-kNN (and in phase 3
ALS) and the evaluation's answering run on Spark and write what the local engine writes; the
rest of the run is unchanged."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from segue.cli import main
from tests.spark.conftest import MASTER


@pytest.mark.slow
def test_phase2_on_spark_writes_the_local_engines_outputs(spark, tmp_path):
    mpd, out = tmp_path / "mpd", tmp_path / "run"
    generate = ["generate", "mpd", "-n", "1000", "--challenge-per-category", "5", "--out", str(mpd)]
    assert main([*generate, "-q"]) == 0
    args = ["--data", str(mpd), "--out", str(out), "--per-category", "5", "-q"]
    spark = ["--engine", "spark", "--master", MASTER]
    assert main(["pipeline", "phase1", *args, *spark]) == 0
    assert main(["pipeline", "phase2", *args, *spark]) == 0

    assert main(["ingest", str(mpd), "--out", str(tmp_path / "local-data"), "-q"]) == 0
    for table in ("playlists", "tracks", "playlist_tracks"):
        local = pq.read_table(tmp_path / "local-data" / f"{table}.parquet")
        assert local.equals(pq.read_table(out / "data" / f"{table}.parquet")), table

    rules = json.loads((out / "rules" / "summary.json").read_text())
    assert rules["miner"].startswith("MLlib PrefixSpan")
    assert main(["rules", str(out / "data"), "--out", str(tmp_path / "local-rules"), "-q"]) == 0
    local = pq.read_table(tmp_path / "local-rules" / "rules.parquet")
    assert local.num_rows > 100 and local.equals(pq.read_table(out / "rules" / "rules.parquet"))

    # Each stage's log says where it ran.
    record = json.loads((out / ".pipeline" / "train-itemknn.json").read_text())
    assert "spark itemknn:" in (out / record["log"]).read_text()
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert {"itemknn", "rules", "playlistknn"} <= set(evaluation["models"])
    # The finish answered the held-out queries on Spark: the figures are the local evaluation's.
    models = [str(out / "models" / name) for name in evaluation["models"]]
    local_eval = tmp_path / "local-evaluation"
    assert (
        main(["evaluate", *models, "--split", str(out / "split"), "--out", str(local_eval), "-q"])
        == 0
    )
    local = json.loads((local_eval / "evaluation.json").read_text())
    assert local["table"] == evaluation["table"]
