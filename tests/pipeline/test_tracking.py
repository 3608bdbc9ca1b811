"""``segue pipeline --track``: the run's settings, report and evaluation, and one nested run per
evaluated model, in a real local MLflow store."""

from __future__ import annotations

import json

import pytest

from tests.pipeline.conftest import MODELS, run_cli

mlflow = pytest.importorskip("mlflow")


def test_a_tracked_pipeline_logs_every_evaluated_model(demo_run, tmp_path):
    store = tmp_path / "runs"
    code, _ = run_cli([*demo_run.pipeline_args("phase2"), "--track-uri", store, "-q"])
    assert code == 0
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segue")
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent = found.pop("pipeline phase2")
    assert parent.data.params["per_category"] == "5"
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert logged == {"report", "evaluation"}
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/index.html" in report

    document = json.loads((demo_run.out / "evaluation" / "evaluation.json").read_text())
    assert set(found) == set(document["models"]) >= set(MODELS)
    for name, run in found.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["model"] == name
        assert run.data.metrics["ndcg"] == pytest.approx(
            document["table"][name]["all"]["ndcg"]["mean"]
        )
        model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert model_files == {"model/params.json"}
    # The graph model's validation curve, one point per epoch.
    curve = client.get_metric_history(found["playlistgat"].info.run_id, "validation_recall")
    history = json.loads((demo_run.out / "models/playlistgat/params.json").read_text())
    assert len(curve) == len(history["training"]["history"]) > 0
