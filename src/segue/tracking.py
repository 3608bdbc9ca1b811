"""Experiment tracking with MLflow (the optional extra ``segue[track]``): what ``--track`` logs.

Every command that trains or scores (``train``, ``tune``, ``evaluate``, ``pipeline``, ``demo``)
takes ``--track``: one MLflow run per command in the experiment ``segue``, with

* **parameters**: the model's configuration, flattened (``trainer.learning_rate``), or the
  command's settings;
* **metrics**: every evaluation metric overall (``r_precision``, with ``r_precision.ci_low`` and
  ``.ci_high``) and per challenge category (``r_precision/title_1_seed``); training time; a
  validation curve by epoch (``validation_recall``, step = epoch);
* **artifacts**: the written directory (a trained model, an evaluation, a study's files, the run
  report) — and for a pipeline, one nested run per evaluated model with its ``params.json``.

Where runs go: ``--track-uri`` when given, else ``MLFLOW_TRACKING_URI`` (MLflow's own
variable), else a local store in ``./mlruns``: an SQLite database ``mlruns/mlflow.db`` with the
artifacts beside it in ``mlruns/artifacts``. MLflow 3 refuses its old plain-file store by default
and recommends SQLite for a local one; ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``
(the full ``mlflow`` package) browses it.

The client is :class:`mlflow.MlflowClient` (explicit run ids, no global active run), so the
pipeline's nested runs and the parent can be written in any order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segue.errors import SegueError

EXPERIMENT = "segue"
DEFAULT_DIR = "mlruns"
# MLflow's limits (mlflow.utils.validation): a parameter value of at most 6,000 characters, and
# at most 100 parameters / 1,000 metrics in one batch call.
MAX_PARAM_VALUE = 6000
PARAM_BATCH = 100
METRIC_BATCH = 1000
_KEY_ALLOWED = re.compile(r"[^0-9A-Za-z_\-. :/]")


def _mlflow():
    """The mlflow module, or a one-line error saying which extra installs it."""
    try:
        import mlflow
    except ImportError:
        raise SegueError(
            "--track needs MLflow: pip install 'segue[track]' (or: pip install mlflow-skinny)"
        ) from None
    # MLflow and its database migrations log at INFO on every new store ("Creating initial
    # MLflow database tables…"): segue's own lines say where the run went.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def resolve_uri(uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact root for a new experiment or None for the store's default).

    ``uri``: a URI (``http://host:5000``, ``sqlite:///path.db``, ``databricks``…), a directory
    (a local store in it: ``DIR/mlflow.db`` and ``DIR/artifacts``), or None for
    ``MLFLOW_TRACKING_URI`` and else ``./mlruns``.

    >>> resolve_uri("http://127.0.0.1:5000")
    ('http://127.0.0.1:5000', None)
    >>> u, a = resolve_uri("/tmp/runs"); u, a
    ('sqlite:////tmp/runs/mlflow.db', '/tmp/runs/artifacts')
    """
    if uri is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_DIR
    if "://" in uri or uri in ("databricks", "databricks-uc"):
        return uri, None
    directory = Path(uri).expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise SegueError(f"--track-uri {uri}: not a directory (a tracking URI or a directory)")
    return f"sqlite:///{directory / 'mlflow.db'}", str(directory / "artifacts")


def metric_key(name: str) -> str:
    """``name`` in the characters MLflow accepts in a metric or parameter key.

    >>> metric_key("r_precision/title, 5 seeds")
    'r_precision/title_5_seeds'
    """
    return re.sub(r"_+", "_", _KEY_ALLOWED.sub("_", name.replace(", ", "_").replace(" ", "_")))


def evaluation_metrics(document: dict[str, Any], model: str) -> dict[str, float]:
    """One model's metrics of an ``evaluation.json`` document as MLflow metrics: each metric
    overall with its 95% CI, and per challenge category (by its label).

    >>> doc = {"groups": ["all", "1"], "group_labels": {"all": "all", "1": "title, 0 seeds"},
    ...        "table": {"m": {"all": {"ndcg": {"mean": 0.2, "ci_low": 0.1, "ci_high": 0.3}},
    ...                        "1": {"ndcg": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}}}}}
    >>> evaluation_metrics(doc, "m")
    {'ndcg': 0.2, 'ndcg.ci_low': 0.1, 'ndcg.ci_high': 0.3, 'ndcg/title_0_seeds': 0.5}
    """
    labels = document.get("group_labels", {})
    out: dict[str, float] = {}
    for group, cells in document["table"][model].items():
        for metric, cell in cells.items():
            if cell.get("mean") is None:
                continue
            if group == "all":
                out[metric] = float(cell["mean"])
                for bound in ("ci_low", "ci_high"):
                    if cell.get(bound) is not None:
                        out[f"{metric}.{bound}"] = float(cell[bound])
            else:
                out[metric_key(f"{metric}/{labels.get(group, group)}")] = float(cell["mean"])
    return out


def model_params(model_dir: Path) -> dict[str, str]:
    """A trained model's parameters (``params.json``'s model and config, flattened) as MLflow
    parameters."""
    from segue.models.base import read_params
    from segue.models.config import flatten

    params = read_params(Path(model_dir))
    return {"model": str(params.get("model")), **flatten(params.get("config") or {})}


def training_curve(model_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """A trained model's validation curve(s) by epoch, from its ``params.json`` ``training``
    log (empty for models trained in one pass)."""
    from segue.models.base import read_params

    history = (read_params(Path(model_dir)).get("training") or {}).get("history") or []
    curves: dict[str, list[tuple[int, float]]] = {}
    for i, record in enumerate(history):
        epoch = int(record.get("epoch", i + 1))
        for key, value in record.items():
            if key.startswith("validation_") and isinstance(value, int | float):
                curves.setdefault(key, []).append((epoch, float(value)))
    return curves


class Run:
    """One MLflow run being written (see :func:`tracked`)."""

    def __init__(self, client, run_id: str, experiment_id: str):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self._log_batches(
            "params",
            [
                Param(metric_key(str(k)), str(v)[:MAX_PARAM_VALUE])
                for k, v in params.items()
                if v is not None
            ],
        )

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        self._log_batches(
            "metrics",
            [
                Metric(metric_key(k), float(v), stamp, step)
                for k, v in metrics.items()
                if v is not None and math.isfinite(float(v))
            ],
        )

    def log_curves(self, curves: dict[str, list[tuple[int, float]]]) -> None:
        """Each curve's points as one metric's history (step = epoch)."""
        from mlflow.entities import Metric

        stamp = _now_ms()
        self._log_batches(
            "metrics",
            [Metric(metric_key(k), v, stamp, step) for k, pts in curves.items() for step, v in pts],
        )

    def _log_batches(self, kind: str, items: list) -> None:
        """``items`` (Params or Metrics) in batches of MLflow's largest size for their kind."""
        size = PARAM_BATCH if kind == "params" else METRIC_BATCH
        for i in range(0, len(items), size):
            self.client.log_batch(self.run_id, **{kind: items[i : i + size]})

    def log_artifacts(self, path: Path, under: str | None = None) -> None:
        """A file or a directory (recursively) as artifacts (``under``: a folder in the run)."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), under)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path), under)

    def log_evaluation(self, document: dict[str, Any], model: str) -> None:
        self.log_metrics(evaluation_metrics(document, model))

    @contextlib.contextmanager
    def child(self, name: str) -> Iterator[Run]:
        """A nested run (MLflow shows it under this one)."""
        with _run(self.client, self.experiment_id, name, parent=self.run_id) as run:
            yield run


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@contextlib.contextmanager
def _run(client, experiment_id: str, name: str, parent: str | None = None) -> Iterator[Run]:
    tags = {"mlflow.source.name": "segue", "mlflow.source.type": "LOCAL"}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    info = client.create_run(experiment_id, run_name=name, tags=tags).info
    status = "FAILED"
    try:
        yield Run(client, info.run_id, experiment_id)
        status = "FINISHED"
    finally:
        client.set_terminated(info.run_id, status)


@contextlib.contextmanager
def tracked(uri: str | None, name: str, *, echo=None) -> Iterator[Run]:
    """A run named ``name`` in the experiment ``segue`` of the store ``uri`` (see
    :func:`resolve_uri`), finished when the block ends (``FAILED`` if it raised). A store that
    cannot be reached or written is a :class:`SegueError` naming it, raised before any work."""
    mlflow = _mlflow()
    tracking_uri, artifact_root = resolve_uri(uri)
    # A tracking server that does not answer: MLflow's default is 7 retries with exponential
    # back-off (minutes); a command waits at most about a minute unless the user set these.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        if artifact_root is not None:
            Path(artifact_root).mkdir(parents=True, exist_ok=True)
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(EXPERIMENT, artifact_location=artifact_root)
        )
    except Exception as exc:  # the store's own errors: MLflow, SQLAlchemy, requests, OSError
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise SegueError(f"--track: cannot use the store {tracking_uri}: {first[:300]}") from None
    with _run(client, experiment_id, name) as run:
        yield run
    if echo is not None:
        echo(f"tracked: run {run.run_id} in experiment {EXPERIMENT!r} of {tracking_uri}")


# --- what each command logs ------------------------------------------------------------------------
def log_trained(run: Run, model_dir: Path, *, seconds: float, data: Path) -> None:
    """``segue train``: the model's parameters, training time, validation curve and directory."""
    run.log_params({**model_params(model_dir), "data": str(data)})
    run.log_metrics({"train_seconds": seconds})
    run.log_curves(training_curve(model_dir))
    run.log_artifacts(model_dir, "model")


def log_evaluation(
    run: Run, document: dict[str, Any], out: Path, model_dirs: dict[str, Path], settings: dict
) -> None:
    """``segue evaluate``: the settings and the report on the run, one nested run per scored
    model (or submission) with its metrics and, for a model, its parameters."""
    run.log_params(settings)
    run.log_artifacts(out, "evaluation")
    for name in document["models"]:
        with run.child(name) as child:
            if name in model_dirs:
                child.log_params(model_params(model_dirs[name]))
            child.log_evaluation(document, name)


def log_tuning(run: Run, result: dict[str, Any], settings: dict) -> None:
    """``segue tune``: the study's settings, the best value and parameters on the run, one
    nested run per trial (its parameters, value and state), the study's files as artifacts."""
    import csv

    run.log_params({**settings, **{f"best.{k}": v for k, v in result["best_params"].items()}})
    run.log_metrics({f"best_{result['metric']}": result["best_value"]})
    paths = result["paths"]
    with open(paths["trials.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    fixed = {"number", "state", "value", "duration_s", "fit_s", "recommend_s", "error"}
    for row in rows:
        with run.child(f"trial {row['number']}") as child:
            child.log_params({k: v for k, v in row.items() if k not in fixed and v != ""})
            child.log_params({"state": row["state"]})
            child.log_metrics(
                {
                    (result["metric"] if k == "value" else k): float(row[k])
                    for k in ("value", "duration_s", "fit_s", "recommend_s")
                    if row.get(k) not in (None, "")
                }
            )
    for name in ("best.json", "trials.csv", "history.png", "importance.png"):
        if name in paths:
            run.log_artifacts(paths[name], "tuning")


def log_pipeline(run: Run, result, settings: dict) -> None:
    """``segue pipeline`` / ``segue demo``: the settings, the report and the evaluation as
    artifacts, and one nested run per evaluated model: its parameters, training time and curve,
    its metrics overall and per category, its ``params.json``."""
    import orjson

    layout = result.settings.layout
    run.log_params(settings)
    seconds = {
        name.removeprefix("train "): r.seconds
        for name, r in result.runner.results.items()
        if name.startswith("train ")
    }
    run.log_metrics({"stage_seconds": sum(r.seconds for r in result.runner.results.values())})
    for folder, under in ((layout.report, "report"), (layout.evaluation, "evaluation")):
        run.log_artifacts(folder, under)
    evaluation = layout.evaluation / "evaluation.json"
    if not evaluation.exists():
        return
    document = orjson.loads(evaluation.read_bytes())
    for name in document["models"]:
        model_dir = layout.models / name
        with run.child(name) as child:
            if (model_dir / "params.json").exists():
                child.log_params(model_params(model_dir))
                child.log_curves(training_curve(model_dir))
                child.log_artifacts(model_dir / "params.json", "model")
            if name in seconds:
                child.log_metrics({"train_seconds": seconds[name]})
            child.log_evaluation(document, name)
