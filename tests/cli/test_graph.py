"""``segue graph`` (and ``segue train`` of the listening GATs) through ``main(argv)``: build, train,
explain, evaluate, and one-line errors."""

from __future__ import annotations

import orjson
import pytest

from segue.cli import main
from segue.models.gnn.listening import ListeningGATRecommender
from tests.models.gnn.test_listening import planted_listening


@pytest.fixture(scope="module")
def listening_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("listening") / "data"
    planted_listening().write(path, source="planted test data")
    return path


def test_build_train_explain_on_listening_data(listening_dir, tmp_path, capsys):
    assert main(["graph", "build", str(listening_dir), "--out", str(tmp_path / "graph")]) == 0
    info = orjson.loads((tmp_path / "graph" / "graph.json").read_bytes())
    assert info["kind"] == "listening" and info["counts"]["user_genre_edges"] == 0
    assert (
        main(
            [
                "train",
                "genre_gat",
                str(listening_dir),
                "--out",
                str(tmp_path / "model"),
                "-p",
                "trainer.mode=mini",
                "-p",
                "trainer.epochs=2",
                "--device",
                "cpu",
                "--checkpoint-dir",
                str(tmp_path / "ckpt"),
            ]
        )
        == 0
    )
    assert (tmp_path / "ckpt" / "best.pt").exists() and (tmp_path / "ckpt" / "last.pt").exists()
    model = ListeningGATRecommender.load(tmp_path / "model")
    assert model.name == "genre_gat" and model.config.trainer.epochs == 2
    assert model.config.alpha == 0.8  # the genre-aware model's own default
    printed = capsys.readouterr().out
    assert "2 epochs (finished 2 epochs)" in printed and "validation Recall@10 by epoch" in printed
    assert (
        main(
            [
                "graph",
                "explain",
                str(tmp_path / "model"),
                "--user",
                "3",
                "-n",
                "2",
                "--heatmap",
                str(tmp_path / "heat.png"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.count("Recommending") == 2 and "Similar listening patterns" in printed
    assert (tmp_path / "heat.png").stat().st_size > 1000


def test_evaluate_listening_reports_graph_models_and_baselines(listening_dir, tmp_path, capsys):
    assert (
        main(
            [
                "graph",
                "evaluate",
                str(listening_dir),
                "--out",
                str(tmp_path / "eval"),
                "--models",
                "gat",
                "--baselines",
                "popular",
                "--mode",
                "mini",
            ]
        )
        == 0
    )
    report = orjson.loads((tmp_path / "eval" / "graph_report.json").read_bytes())
    table = report["evaluation"]["users"]["table"]
    assert set(table) == {"popular", "gat"} and {"all", "casual", "regular", "power"} <= set(
        table["gat"]
    )
    assert report["inference_ms_per_user"]["gat"] > 0
    assert "| gat | all |" in (tmp_path / "eval" / "graph_report.md").read_text()


def test_bad_input_is_one_line_and_exit_2(listening_dir, tmp_path, capsys):
    assert main(["train", "nope", str(listening_dir), "--out", str(tmp_path / "m")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["train", "lightgcn", str(listening_dir), "--out", str(tmp_path / "m")]) == 2
    assert "is listening data; lightgcn trains on playlists" in capsys.readouterr().err
    assert main(["train", "gat", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "is not listening data; gat trains on listening data" in capsys.readouterr().err
    argv = ["train", "gat", str(listening_dir), "--out", str(tmp_path / "m")]
    assert main([*argv, "--components-from", str(tmp_path)]) == 2
    assert "--components-from: gat has no components" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 2
    assert "resume needs a checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert (
        main(
            [
                "train",
                "gat",
                str(listening_dir),
                "--out",
                str(tmp_path / "m"),
                "-p",
                "alpha=x",
            ]
        )
        == 2
    )
    assert "'x' is not a valid float" in capsys.readouterr().err
    assert main(["graph", "explain", str(tmp_path / "missing"), "--user", "1"]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "gat",
                str(listening_dir),
                "--out",
                str(tmp_path / "m"),
                "-p",
                "trainer.mode=x",
            ]
        )
        == 2
    )
    assert "--param: trainer: mode must be one of mini" in capsys.readouterr().err
    assert (
        main(
            [
                "graph",
                "build",
                str(listening_dir),
                "--out",
                str(tmp_path / "g"),
                "--user-genres",
                "latent",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "user_genres must be one of" in err


def test_pipeline_trains_graph_models_that_segue_evaluate_accepts(small_data, tmp_path, capsys):
    """What the main pipeline calls: graph models trained on a split's training part, then scored
    by `segue evaluate` (which refuses models trained on other data) beside the baselines."""
    from segue.evaluation.split import split_dataset
    from segue.models.gnn.runs import train_playlist_models

    split = tmp_path / "split"
    split_dataset(small_data, split, per_category=5, seed=0)
    trained = train_playlist_models(
        split / "train",
        tmp_path / "models",
        models=("lightgcn",),
        mode="mini",
        params={"trainer": {"epochs": 1}, "validation_playlists": 50},
    )
    assert set(trained) == {"lightgcn"} and trained["lightgcn"]["seconds"] > 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                trained["lightgcn"]["path"],
                "--split",
                str(split),
                "--out",
                str(tmp_path / "eval"),
                "--bootstrap",
                "100",
            ]
        )
        == 0
    )
    assert "lightgcn" in capsys.readouterr().out


def test_graph_evaluate_on_a_playlist_split_prints_the_headline_table(small_data, tmp_path, capsys):
    """`segue graph evaluate SPLIT`: graph models and baselines trained on the split's training
    part, scored by the evaluation harness, its headline table printed (R-precision, NDCG, clicks
    with CIs per model)."""
    from segue.evaluation.split import split_dataset

    split = tmp_path / "split"
    split_dataset(small_data, split, per_category=5, seed=0)
    capsys.readouterr()
    argv = [
        "graph",
        "evaluate",
        str(split),
        "--out",
        str(tmp_path / "eval"),
        "--models",
        "lightgcn",
    ]
    assert main([*argv, "--baselines", "popular", "--mode", "mini", "--budget", "5s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(
        i
        for i, line in enumerate(lines)
        if line.split()[:4] == ["model", "R-precision", "NDCG", "clicks"]
    )
    rows = {line.split()[0] for line in lines[header + 1 : header + 3]}
    assert rows == {"lightgcn", "popular"}
    assert (tmp_path / "eval" / "evaluation.json").exists()
