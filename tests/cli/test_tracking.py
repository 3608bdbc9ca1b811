"""``--track``: train, tune and evaluate log to a real local MLflow store (SQLite), read back
with MLflow's own client; a missing extra or an unusable store stops the command first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segue.cli import main
from tests.blocked import without

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def split(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("track") / "split"
    assert main(["split", str(small_data), "--out", str(out), "--per-category", "5", "-q"]) == 0
    return out


def runs(store: Path) -> dict[str, object]:
    """Every run of the store's ``segue`` experiment by name (one run per name here)."""
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segue")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def artifacts(store: Path, run, folder: str = "") -> list[str]:
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    return sorted(a.path for a in client.list_artifacts(run.info.run_id, folder or None))


def test_train_and_evaluate_log_parameters_metrics_and_outputs(split, tmp_path):
    store = tmp_path / "runs"
    model = tmp_path / "itemknn"
    args = ["train", "itemknn", split / "train", "--out", model, "-p", "n_neighbors=40"]
    assert main([*map(str, args), "--track-uri", str(store), "-q"]) == 0
    assert main(["train", "popular", str(split / "train"), "--out", str(tmp_path / "popular")]) == 0
    evaluation = tmp_path / "ev"
    args = ["evaluate", model, tmp_path / "popular", "--split", split, "--out", evaluation]
    assert main([*map(str, args), "--track-uri", str(store), "--bootstrap", "200", "-q"]) == 0

    found = runs(store)
    assert set(found) == {"train itemknn", "evaluate", "itemknn", "popular"}
    trained = found["train itemknn"]
    assert trained.info.status == "FINISHED"
    saved = json.loads((model / "params.json").read_text())
    assert trained.data.params["model"] == "itemknn"
    assert trained.data.params["n_neighbors"] == "40" == str(saved["config"]["n_neighbors"])
    assert trained.data.params["data"] == str(split / "train")
    assert trained.data.metrics["train_seconds"] > 0
    assert artifacts(store, trained, "model") == [
        f"model/{p.name}" for p in sorted(model.iterdir())
    ]

    # The evaluation: the settings and the report on the parent, one nested run per model whose
    # metrics are evaluation.json's, overall with the CI and per category.
    parent = found["evaluate"]
    assert parent.data.params["bootstrap"] == "200"
    assert "evaluation/evaluation.json" in artifacts(store, parent, "evaluation")
    document = json.loads((evaluation / "evaluation.json").read_text())
    for name in ("itemknn", "popular"):
        child = found[name]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        cell = document["table"][name]["all"]["r_precision"]
        metrics = child.data.metrics
        assert metrics["r_precision"] == pytest.approx(cell["mean"])
        assert metrics["r_precision.ci_low"] == pytest.approx(cell["ci_low"])
        per_category = {k: v for k, v in metrics.items() if k.startswith("r_precision/")}
        assert len(per_category) == len(document["groups"]) - 1 == 10
        title_only = next(k for k in per_category if k.endswith("title_only"))
        group = next(g for g, label in document["group_labels"].items() if "title only" in label)
        assert per_category[title_only] == pytest.approx(
            document["table"][name][group]["r_precision"]["mean"]
        )
    assert found["itemknn"].data.params["n_neighbors"] == "40"

    # A second run goes into the same experiment beside the first: runs are compared there.
    assert main(["evaluate", str(model), "--split", str(split), "--out", str(tmp_path / "e2"),
                 "--track-uri", str(store), "--bootstrap", "200", "-q"]) == 0  # fmt: skip
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segue")
    names = [r.info.run_name for r in client.search_runs([experiment.experiment_id])]
    assert names.count("evaluate") == 2 and names.count("itemknn") == 2


def test_tune_logs_each_trial_as_a_nested_run(split, tmp_path):
    store = tmp_path / "runs"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"n_neighbors": {"type": "int", "low": 5, "high": 100}}))
    args = [
        "tune",
        "playlistknn",
        split,
        "--trials",
        "3",
        "--space",
        space,
        "--out",
        tmp_path / "t",
    ]
    assert main([*map(str, args), "--track-uri", str(store), "-q"]) == 0
    found = runs(store)
    parent = found["tune playlistknn"]
    best = json.loads((tmp_path / "t" / "best.json").read_text())
    assert parent.data.params["best.n_neighbors"] == str(best["n_neighbors"])
    trials = [r for name, r in found.items() if name.startswith("trial ")]
    assert len(trials) == 3
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials)
    assert max(t.data.metrics["r_precision"] for t in trials) == pytest.approx(
        parent.data.metrics["best_r_precision"]
    )
    assert {"tuning/best.json", "tuning/trials.csv"} <= set(artifacts(store, parent, "tuning"))


def segue(*args: str, cwd: Path, prelude: str = "") -> subprocess.CompletedProcess:
    code = prelude or "import sys\nfrom segue.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


NO_MLFLOW = without("mlflow")


def test_a_missing_extra_or_an_unusable_store_stops_before_any_work(split, tmp_path):
    train = ["train", "popular", str(split / "train"), "--out", "m"]
    run = segue(*train, "--track", cwd=tmp_path, prelude=NO_MLFLOW)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == (
        "error: --track needs MLflow: pip install 'segue[track]' (or: pip install mlflow-skinny)"
    )
    assert not (tmp_path / "m").exists()  # nothing trained, nothing written

    (tmp_path / "a-file").write_text("x")
    run = segue(*train, "--track-uri", "a-file", cwd=tmp_path)
    assert run.returncode == 2
    assert "--track-uri a-file: not a directory" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "m").exists()

    under_a_file = f"sqlite:///{tmp_path}/a-file/mlflow.db"
    run = segue(*train, "--track-uri", under_a_file, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith(f"error: --track: cannot use the store {under_a_file}: ")
    assert "Traceback" not in run.stderr and not (tmp_path / "m").exists()

    # --track alone: MLFLOW_TRACKING_URI if set, else ./mlruns in the working directory.
    run = segue(*train, "--track", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert set(runs(tmp_path / "mlruns")) == {"train popular"}
