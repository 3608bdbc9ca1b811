"""``segue tune``: hyper-parameter search for any registered model on a split's validation part.

Tuning never sees the test set: it trains on ``SPLIT/validation/train`` and scores the
``validation`` challenge set, which ``segue split`` carved out of the training part. The
validation data, queries and truth are loaded once; each trial builds the model's config from
the trial's parameters, fits, recommends 500 tracks per query and scores one metric (the mean
over queries of ``r_precision``, ``ndcg`` or ``clicks``, as :mod:`segue.evaluation.metrics`
computes them for ``segue evaluate``; clicks is minimised).

The listening-data graph models (``gat``, ``genre_gat``) are tuned the same way on a listening
split (``segue graph evaluate``'s, or one made from an ingested listening directory, by time,
70/15/15): each trial trains on the training part, early-stopped on the validation part, and is
scored on that validation part by the listening harness (:mod:`segue.evaluation.sessions`:
``recall`` or ``ndcg`` at 10 over every user with held-out tracks, training tracks excluded);
the test part is never read. Their ``best.json`` is read by ``segue graph train … --config``.

The search is Optuna's TPE sampler, seeded: the same command on the same split gives the same
trials. A **search space** maps parameter names of the model's config to distributions, in the
same JSON form whether built in (:data:`SPACES`) or given as ``--space FILE.json``::

    {"factors": {"type": "int", "low": 16, "high": 256, "log": true},
     "alpha": {"type": "float", "low": 1, "high": 100, "log": true},
     "weighting": {"type": "categorical", "choices": ["none", "tfidf", "bm25"]}}

(``step`` is also accepted for int and float, without ``log``.) Fixed parameters
(``--param key=value``) apply to every trial and leave the space.

Outputs in ``OUT`` (every file but the study written whole or not at all):

* ``study.db`` — the Optuna study in SQLite, named after the model. **Resumable**: running the
  same command again adds ``--trials`` new trials to it (the sampler is then seeded with
  ``seed + trials already in the study``, so new trials do not repeat the first ones and a
  resumed study is as reproducible as a fresh one). A study is only resumed with the metric,
  space and fixed parameters it was started with; change any of them with a new ``OUT``.
* ``best.json`` — the best parameters (fixed ones included) as a JSON object that
  ``segue train MODEL DATA --config OUT/best.json`` reads.
* ``trials.csv`` — every trial: number, state, value, seconds, its parameters, and the error of a
  trial whose configuration the model refused (such a trial is pruned, the study goes on).
* ``history.png`` — each trial's value and the best so far; ``importance.png`` — fANOVA
  parameter importances (a note instead when fewer than two trials completed).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import sys
import time
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from segue.errors import InputFileError, SegueError
from segue.io import atomic_file, write_json

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"
BEST_FILE = "best.json"
TRIALS_FILE = "trials.csv"
HISTORY_FIGURE = "history.png"
IMPORTANCE_FIGURE = "importance.png"
RECOMMENDATIONS = 500  # per query, as in the challenge and `segue evaluate`

METRICS = ("r_precision", "ndcg", "clicks")
"""Metrics a study of a playlist model can optimise (the challenge's three; ``clicks`` is minimised)."""
LISTENING_METRICS = ("recall", "ndcg")
"""Metrics a study of a listening graph model can optimise (at :data:`LISTENING_K`)."""
LISTENING_K = 10

SPACES: dict[str, dict[str, dict[str, Any]]] = {
    # Ranges around the defaults each Config documents as measured on the 100k validation split.
    "als": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "regularization": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
        "alpha": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
        "iterations": {"type": "int", "low": 5, "high": 30},
    },
    "svd": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "weighting": {"type": "categorical", "choices": ["none", "tfidf", "bm25"]},
        "bm25_k1": {"type": "float", "low": 0.5, "high": 3.0},
        "bm25_b": {"type": "float", "low": 0.0, "high": 1.0},
    },
    "bpr": {
        "factors": {"type": "int", "low": 16, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
        "regularization": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "iterations": {"type": "int", "low": 20, "high": 200, "log": True},
        "fold_in_regularization": {"type": "float", "low": 1.0, "high": 1000.0, "log": True},
    },
    "itemknn": {
        "n_neighbors": {"type": "int", "low": 20, "high": 1000, "log": True},
        "similarity": {"type": "categorical", "choices": ["cosine", "bm25"]},
        "alpha": {"type": "float", "low": 0.5, "high": 1.0},
        "normalize_rows": {"type": "categorical", "choices": [True, False]},
    },
    "playlistknn": {
        "n_neighbors": {"type": "int", "low": 10, "high": 1000, "log": True},
        "power": {"type": "float", "low": 0.5, "high": 5.0},
    },
    "title": {
        "n_neighbors": {"type": "int", "low": 0, "high": 50},
        "min_similarity": {"type": "float", "low": 0.1, "high": 0.9},
        "neighbor_weight": {"type": "float", "low": 0.0, "high": 2.0},
        "similarity_power": {"type": "float", "low": 0.5, "high": 5.0},
        "shrinkage": {"type": "float", "low": 0.0, "high": 100.0},
    },
    "embed": {
        "vocabulary_size": {"type": "int", "low": 1000, "high": 50000, "log": True},
        "n_components": {"type": "int", "low": 16, "high": 256, "log": True},
    },
    # The graph models train within their mode's time budget: tune with --param trainer.mode=full
    # (or a fixed trainer.epochs=) so that every trial gets the same training, not whatever a busy
    # machine allows.
    "lightgcn": {
        "factors": {"type": "int", "low": 32, "high": 256, "log": True},
        "trainer.learning_rate": {"type": "float", "low": 1e-3, "high": 0.05, "log": True},
        "regularization": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "max_context": {"type": "int", "low": 10, "high": 100, "log": True},
    },
    "playlistgat": {
        "factors": {"type": "categorical", "choices": [32, 64, 128]},
        "heads": {"type": "categorical", "choices": [1, 2, 4]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "trainer.learning_rate": {"type": "float", "low": 1e-3, "high": 0.05, "log": True},
        "regularization": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
    # The listening GATs (tuple fields take "a,b" choices: one entry per layer).
    "gat": {
        "factors": {"type": "int", "low": 16, "high": 128, "log": True},
        "heads": {"type": "categorical", "choices": ["1", "2", "4", "8"]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "temperature": {"type": "float", "low": 0.03, "high": 1.0, "log": True},
        "trainer.learning_rate": {"type": "float", "low": 1e-3, "high": 0.05, "log": True},
        "regularization": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
    "genre_gat": {
        "factors": {"type": "int", "low": 16, "high": 128, "log": True},
        "heads": {"type": "categorical", "choices": ["2,1", "4,2", "8,4"]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "alpha": {"type": "float", "low": 0.5, "high": 1.0},
        "temperature": {"type": "float", "low": 0.03, "high": 1.0, "log": True},
        "trainer.learning_rate": {"type": "float", "low": 1e-3, "high": 0.05, "log": True},
        "regularization": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    },
}
"""Built-in search spaces by model name, in the ``--space`` file's form."""

_KINDS = ("int", "float", "categorical")


# ------------------------------------------------------------------------------------------------
# Search spaces and parameter files
# ------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fits(field_type: Any, value: Any) -> bool:
    """Whether a JSON value can be a config field of ``field_type`` (int also fits float)."""
    if field_type is bool:
        return isinstance(value, bool)
    if field_type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type is float:
        return _is_number(value)
    if field_type is str:
        return isinstance(value, str)
    if typing.get_origin(field_type) is tuple:  # "8,4" or [8, 4]: converted by config_from_dict
        return isinstance(value, str | list)
    return True  # a type this check does not know: the config's own validation decides


def _type_name(field_type: Any) -> str:
    if typing.get_origin(field_type) is tuple:
        return 'a list, one entry per layer ("8,4" or [8, 4])'
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        field_type, getattr(field_type, "__name__", str(field_type))
    )


def _check_distribution(spec: Any, field_type: Any, fail) -> dict[str, Any]:
    """One space entry, checked and normalised; ``fail(problem)`` raises naming file and key."""
    if not isinstance(spec, dict):
        fail('expected an object such as {"type": "float", "low": 0.1, "high": 1}')
    kind = spec.get("type")
    if kind not in _KINDS:
        fail(f"type must be one of {', '.join(_KINDS)}, got {kind!r}")
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    )
    extra = sorted(set(spec) - allowed)
    if extra:
        fail(
            f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(extra)} for type {kind} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            fail("choices must be a non-empty list")
        for choice in choices:
            if not (choice is None or isinstance(choice, bool | int | float | str)):
                fail(f"choice {choice!r} is not a number, string, boolean or null")
            if not _fits(field_type, choice):
                fail(f"choice {choice!r} is not {_type_name(field_type)}")
        if len({orjson.dumps(c) for c in choices}) != len(choices):
            fail("choices repeat a value")
        return {"type": kind, "choices": list(choices)}
    if kind == "float" and field_type is int:
        fail('the parameter is an integer: use "type": "int"')
    if kind == "int" and field_type not in (int, float):
        fail(f"the parameter is {_type_name(field_type)}, not a number: use a categorical")
    if kind == "float" and field_type not in (int, float):
        fail(f"the parameter is {_type_name(field_type)}, not a number: use a categorical")
    out: dict[str, Any] = {"type": kind}
    for bound in ("low", "high"):
        value = spec.get(bound)
        if value is None:
            fail(f"{bound} is missing")
        if kind == "int" and not _fits(int, value):
            fail(f"{bound} must be an integer, got {value!r}")
        if not _is_number(value):
            fail(f"{bound} must be a number, got {value!r}")
        out[bound] = int(value) if kind == "int" else float(value)
    if out["low"] > out["high"]:
        fail(f"low ({out['low']}) is greater than high ({out['high']})")
    log_scale = spec.get("log", False)
    if not isinstance(log_scale, bool):
        fail(f"log must be true or false, got {log_scale!r}")
    if log_scale and out["low"] <= 0:
        fail(f"a log scale needs low > 0, got {out['low']}")
    out["log"] = log_scale
    if "step" in spec:
        step = spec["step"]
        if log_scale:
            fail("step cannot be combined with a log scale")
        if not _is_number(step) or step <= 0 or (kind == "int" and not _fits(int, step)):
            fail(
                f"step must be a positive {'integer' if kind == 'int' else 'number'}, got {step!r}"
            )
        out["step"] = step
    return out


def check_space(config_cls: type, space: Any, *, where: str) -> dict[str, dict[str, Any]]:
    """A search space checked against ``config_cls``'s fields, normalised (see module doc).

    Raises :class:`SegueError` naming ``where`` (the file) and the offending key.

    >>> from segue.models.itemknn import ItemKNNConfig
    >>> check_space(ItemKNNConfig, {"n_neighbors": {"type": "int", "low": 5, "high": 50}}, where="s.json")
    {'n_neighbors': {'type': 'int', 'low': 5, 'high': 50, 'log': False}}
    >>> check_space(ItemKNNConfig, {"k": {"type": "int", "low": 5, "high": 50}}, where="s.json")
    Traceback (most recent call last):
    ...
    segue.errors.SegueError: s.json: unknown parameter 'k' (this model takes: alpha, bm25_b, bm25_k1, n_neighbors, normalize_rows, num_threads, similarity)
    """
    if not isinstance(space, dict):
        raise SegueError(
            f"{where}: expected a JSON object mapping parameter names to distributions"
        )
    if not space:
        raise SegueError(f"{where}: the search space is empty")
    from segue.models.config import field_type

    out = {}
    for key, spec in space.items():
        try:
            kind = field_type(config_cls, key)
        except SegueError as exc:
            raise SegueError(f"{where}: {exc}") from None

        def fail(problem: str, key: str = key) -> typing.NoReturn:
            raise SegueError(f"{where}: {key}: {problem}")

        out[key] = _check_distribution(spec, kind, fail)
    return out


def read_space(path: Path, config_cls: type) -> dict[str, dict[str, Any]]:
    """A ``--space`` JSON file, checked against the model's config (errors name file and key)."""
    return check_space(config_cls, _read_json(Path(path), "a search space"), where=str(path))


def space_for(
    model_name: str, config_cls: type, space: Path | dict | None = None
) -> dict[str, dict[str, Any]]:
    """The search space of a model: ``space`` (a file or a dict) or the built-in one."""
    if isinstance(space, str | Path):
        return read_space(Path(space), config_cls)
    if space is not None:
        return check_space(config_cls, space, where="search space")
    if not dataclasses.fields(config_cls):
        raise SegueError(f"{model_name} has no parameters to tune")
    if model_name not in SPACES:
        raise SegueError(
            f"{model_name} has no built-in search space (built in for: "
            f"{', '.join(sorted(SPACES))}); give one with --space FILE.json"
        )
    return check_space(config_cls, SPACES[model_name], where=f"built-in space of {model_name}")


def _read_json(path: Path, what: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what} ({exc.strerror or exc})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None


def _read_toml(path: Path) -> dict:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read parameters ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"not valid TOML ({exc})") from None


def read_params_file(path: Path, config_cls: type) -> dict[str, Any]:
    """A JSON object of parameters (``best.json``, or written by hand; nested objects or dotted
    keys for nested configs: ``{"trainer": {"epochs": 3}}`` or ``{"trainer.epochs": 3}``), or
    a ``.toml`` file of the same (a ``[trainer]`` table for a nested config).

    Unknown keys and values of the wrong type raise :class:`InputFileError` naming the file and
    the key; an integer is accepted for a float field (and converted).
    """
    from segue.models.config import config_from_dict, given_values, unflatten

    path = Path(path)
    values = _read_toml(path) if path.suffix.lower() == ".toml" else _read_json(path, "parameters")
    if not isinstance(values, dict):
        raise InputFileError(path, 'expected a JSON object of parameters, e.g. {"factors": 64}')
    try:
        values = unflatten(values)
        return given_values(config_from_dict(config_cls, values, where="parameters"), values)
    except SegueError as exc:
        raise InputFileError(path, str(exc).removeprefix("parameters: ")) from None


def params_from_pairs(config_cls: type, pairs: list[str]) -> dict[str, Any]:
    """``--param key=value`` pairs as a (nested) dict of converted field values, only the keys
    given."""
    from segue.models.config import config_from_dict, given_values, parse_params

    values = parse_params(pairs)
    return given_values(config_from_dict(config_cls, values, where="--param"), values)


def read_params(
    config_cls: type, config_file: Path | None, pairs: list[str] | None
) -> dict[str, Any]:
    """Only the fields the user set: ``--config FILE`` values, then ``--param`` pairs (which
    win), checked against ``config_cls``; the rest keep whatever defaults the caller applies."""
    from segue.models.config import config_from_dict, merge_params

    values = merge_params(
        read_params_file(config_file, config_cls) if config_file is not None else {},
        params_from_pairs(config_cls, pairs or []),
    )
    config_from_dict(config_cls, values, where=str(config_file) if config_file else "--param")
    return values


def read_config(config_cls: type, config_file: Path | None, pairs: list[str]):
    """The config of ``segue train``: :func:`read_params` over ``config_cls``'s defaults."""
    from segue.models.config import config_from_dict

    values = read_params(config_cls, config_file, pairs)
    return config_from_dict(
        config_cls, values, where=str(config_file) if config_file else "--param"
    )


# ------------------------------------------------------------------------------------------------
# The study
# ------------------------------------------------------------------------------------------------


@dataclass
class _Validation:
    """What every trial reuses: the validation training data, its queries and their truth."""

    train: Any  # PlaylistData
    queries: Any  # Queries
    truth: list[np.ndarray]


def _load_validation(split_dir: Path) -> _Validation:
    from segue.evaluation.task import load_part
    from segue.models.base import Queries

    loaded = load_part(Path(split_dir), "validation")
    queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    return _Validation(loaded.train, queries, loaded.task.truth)


def score(metric: str, ranking: np.ndarray, truth: list[np.ndarray]) -> float:
    """Mean of a headline metric over the queries, computed as ``segue evaluate`` does.

    >>> score("r_precision", np.array([[1, 2], [3, 4]]), [np.array([1]), np.array([9])])
    0.5
    """
    from segue.evaluation import metrics
    from segue.evaluation.runner import CHALLENGE_NO_HIT_CLICKS

    hits = metrics.hit_matrix(ranking, truth)
    if metric == "r_precision":
        values = metrics.r_precision(ranking, truth, hits=hits)
    elif metric == "ndcg":
        values = metrics.ndcg_rules(ranking, truth, hits=hits)
    elif metric == "clicks":
        values = metrics.clicks(ranking, truth, hits=hits, no_hit_value=CHALLENGE_NO_HIT_CLICKS)
    else:
        raise SegueError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return float(values.mean())


def _suggest(trial, name: str, spec: dict[str, Any]) -> Any:
    if spec["type"] == "categorical":
        return trial.suggest_categorical(name, spec["choices"])
    suggest = trial.suggest_int if spec["type"] == "int" else trial.suggest_float
    step = {"step": spec["step"]} if "step" in spec else {}
    return suggest(name, spec["low"], spec["high"], log=spec["log"], **step)


def _check_arguments(trials: int, metric: str, timeout: float | None, allowed=METRICS) -> None:
    if trials < 1:
        raise SegueError(f"--trials must be at least 1, got {trials}")
    if metric not in allowed:
        raise SegueError(f"--metric must be one of {', '.join(allowed)}, got {metric!r}")
    if timeout is not None and not timeout > 0:
        raise SegueError(f"--timeout must be a positive number of seconds, got {timeout}")


def _head(path: Path, size: int = 16) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _open_study(model_name: str, out_dir: Path, metric: str, space: dict, fixed: dict):
    """Create or resume the study in ``out_dir/study.db``; refuse one started differently."""
    import optuna

    db = out_dir / STUDY_FILE
    if db.exists() and _head(db) != b"SQLite format 3\x00":
        raise InputFileError(db, "not an SQLite database (an Optuna study); use another --out")
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve().as_posix()}")
    others = [name for name in optuna.get_all_study_names(storage) if name != model_name]
    if others:
        storage.engine.dispose()
        raise InputFileError(
            db, f"holds the study of {', '.join(others)}; tune {model_name} into another --out"
        )
    direction = "minimize" if metric == "clicks" else "maximize"
    study = optuna.create_study(
        storage=storage, study_name=model_name, direction=direction, load_if_exists=True
    )
    started = {"metric": metric, "space": space, "fixed": fixed}
    if not study.user_attrs:
        for key, value in started.items():
            study.set_user_attr(key, value)
    else:
        for key, value in started.items():
            same = orjson.OPT_SORT_KEYS
            if orjson.dumps(study.user_attrs.get(key), option=same) != orjson.dumps(
                value, option=same
            ):
                storage.engine.dispose()
                raise InputFileError(
                    db,
                    f"this study was started with another {key} "
                    f"({orjson.dumps(study.user_attrs.get(key)).decode()}); "
                    "resume it with the same settings or tune into another --out",
                )
    return study, storage


def config_class(model_name: str) -> type:
    """The config dataclass of the registered model ``model_name``."""
    from segue.models.registry import get_model_class

    return get_model_class(model_name).Config


@dataclass
class _Target:
    """What a study trains and scores: ``fit_score(params, metric)`` → (value, fit s, recommend s)."""

    config_cls: type
    metrics: tuple[str, ...]
    describe: str
    fit_score: Any


def _playlist_target(model_name: str, split_dir: Path) -> _Target:
    from segue.models.config import config_from_dict
    from segue.models.gnn.runs import LISTENING_GRAPH_MODELS, is_listening_dir
    from segue.models.registry import get_model_class

    model_cls = get_model_class(model_name)
    if is_listening_dir(split_dir):
        raise SegueError(
            f"{split_dir} is listening data; {model_name} is tuned on a playlist split "
            f"(`segue split`); on listening data tune {' or '.join(LISTENING_GRAPH_MODELS)}"
        )
    data = _load_validation(Path(split_dir))

    def fit_score(params: dict, metric: str) -> tuple[float, float, float]:
        start = time.perf_counter()
        model = model_cls(config_from_dict(model_cls.Config, params, where="trial")).fit(data.train)
        fitted = time.perf_counter()
        ranking = model.recommend(data.queries, RECOMMENDATIONS).ids
        return score(metric, ranking, data.truth), fitted - start, time.perf_counter() - fitted

    return _Target(
        model_cls.Config,
        METRICS,
        f"validation: {data.train.n_playlists} playlists to train on, {len(data.queries)} queries",
        fit_score,
    )


def _listening_target(model_name: str, split_dir: Path, seed: int) -> _Target:
    from segue.evaluation.sessions import evaluate_listening
    from segue.models.config import config_from_dict
    from segue.models.gnn.runs import is_listening_dir, load_listening_split, ranking_depth
    from segue.models.registry import get_model_class

    model_cls = get_model_class(model_name)
    if not is_listening_dir(split_dir):
        raise SegueError(
            f"{model_name} is tuned on listening data (`segue ingest sessions`, or a listening "
            f"split); {split_dir} is not"
        )
    split = load_listening_split(Path(split_dir), seed)
    task = split.validation
    if len(task) == 0:
        raise SegueError(f"{split_dir}: the validation part has no user with held-out tracks")
    n = ranking_depth(task, LISTENING_K)

    def fit_score(params: dict, metric: str) -> tuple[float, float, float]:
        config = config_from_dict(model_cls.Config, params, where="trial")
        start = time.perf_counter()
        model = model_cls(config).fit(split.train, split.validation)
        fitted = time.perf_counter()
        ranking = model.recommend_users(task.users, n)
        table = evaluate_listening(task, {model_name: ranking}, k=LISTENING_K).table[model_name]
        return table["all"][metric], fitted - start, time.perf_counter() - fitted

    return _Target(
        model_cls.Config,
        LISTENING_METRICS,
        f"listening validation: {split.train.n_users} users to train on, {len(task)} users scored",
        fit_score,
    )


def tune(
    model_name: str,
    split_dir: Path,
    out_dir: Path,
    *,
    trials: int,
    metric: str | None = None,
    timeout: float | None = None,
    seed: int = 0,
    space: Path | dict | None = None,
    fixed_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tune ``model_name`` on the validation part of ``split_dir``; write the outputs to ``out_dir``.

    Runs ``trials`` new trials (fewer if ``timeout`` seconds pass first: the running trial is
    finished, no new one starts), adding to the study already in ``out_dir`` if any. ``metric``
    defaults to ``r_precision`` (playlist models) or ``recall`` (listening models). Returns a
    summary: best value, params and trial, trial counts, importances and the output paths.
    """
    import optuna

    from segue.models.config import config_from_dict, flatten
    from segue.models.registry import get_model_class
    from segue.progress import progress

    listening = get_model_class(model_name).data == "listening"
    metric = metric or ("recall" if listening else "r_precision")
    _check_arguments(trials, metric, timeout, LISTENING_METRICS if listening else METRICS)
    config_cls = config_class(model_name)
    fixed = flatten(dict(fixed_params or {}))  # dotted keys, as the search space names them
    config_from_dict(config_cls, fixed, where="--param")  # unknown keys, invalid values
    full_space = space_for(model_name, config_cls, space)
    search = {name: spec for name, spec in full_space.items() if name not in fixed}
    if not search:
        raise SegueError(
            f"nothing left to tune: --param fixes every parameter of the search space "
            f"({', '.join(full_space)})"
        )
    target = (
        _listening_target(model_name, Path(split_dir), seed)
        if listening
        else _playlist_target(model_name, Path(split_dir))
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # segue's log says what happens
    study, storage = _open_study(model_name, out_dir, metric, search, fixed)
    try:
        done_before = len(study.trials)
        # Seeded past the trials already run, so a resumed study does not replay its first draws.
        study.sampler = optuna.samplers.TPESampler(seed=seed + done_before)

        def objective(trial) -> float:
            params = {
                **fixed,
                **{name: _suggest(trial, name, spec) for name, spec in search.items()},
            }
            try:
                value, fit_s, recommend_s = target.fit_score(params, metric)
            except SegueError as exc:  # a combination the model refuses: skip it, go on
                trial.set_user_attr("error", str(exc))
                raise optuna.TrialPruned(str(exc)) from None
            trial.set_user_attr("fit_s", round(fit_s, 3))
            trial.set_user_attr("recommend_s", round(recommend_s, 3))
            return value

        log.info(
            "tuning %s on %s (%s): %d trials%s, %s, study %s",
            model_name,
            split_dir,
            target.describe,
            trials,
            f" or {timeout:g} s" if timeout else "",
            metric,
            out_dir / STUDY_FILE,
        )
        with progress(f"tuning {model_name}", trials, unit="trials") as bar:

            def report(study, trial) -> None:
                bar.advance()
                _log_trial(study, trial, metric)

            study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[report])
        return _write_outputs(
            study,
            model_name,
            config_cls,
            Path(split_dir),
            out_dir,
            metric,
            fixed,
            seed,
            len(study.trials) - done_before,
        )
    finally:
        storage.engine.dispose()


def _log_trial(study, trial, metric: str) -> None:
    seconds = trial.duration.total_seconds() if trial.duration else float("nan")
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.value is None:
        log.warning(
            "trial %d skipped (%s) in %.1f s: %s",
            trial.number,
            trial.user_attrs.get("error", trial.state.name.lower()),
            seconds,
            params,
        )
        return
    best = _best_trial(study)
    log.info(
        "trial %d: %s %.4f in %.1f s (best %.4f, trial %d): %s",
        trial.number,
        metric,
        trial.value,
        seconds,
        best.value,
        best.number,
        params,
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _best_trial(study):
    try:
        return study.best_trial
    except ValueError:
        return None


def _write_outputs(
    study,
    model_name: str,
    config_cls: type,
    split_dir: Path,
    out_dir: Path,
    metric: str,
    fixed: dict,
    seed: int,
    new_trials: int,
) -> dict[str, Any]:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    _write_trials(study, out_dir / TRIALS_FILE)
    _history_figure(study, model_name, metric, out_dir / HISTORY_FIGURE)
    importances, note = _importances(study, complete, seed)
    _importance_figure(importances, note, model_name, metric, out_dir / IMPORTANCE_FIGURE)
    best = _best_trial(study)
    if best is None:
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        raise SegueError(
            f"no trial of {model_name} completed"
            + (f"; the model refused every configuration, e.g. {errors[0]}" if errors else "")
        )
    field_order = {f.name: i for i, f in enumerate(dataclasses.fields(config_cls))}
    best_params = dict(
        sorted({**fixed, **best.params}.items(), key=lambda kv: field_order.get(kv[0], 0))
    )
    write_json(out_dir / BEST_FILE, best_params)
    return {
        "model": model_name,
        "split": str(split_dir),
        "metric": metric,
        "direction": study.direction.name.lower(),
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": best_params,
        "n_trials": len(study.trials),
        "new_trials": new_trials,
        "n_complete": len(complete),
        "n_skipped": len(study.trials) - len(complete),
        "importances": importances,
        "paths": {
            name: out_dir / name
            for name in (STUDY_FILE, BEST_FILE, TRIALS_FILE, HISTORY_FIGURE, IMPORTANCE_FIGURE)
        },
    }


def _write_trials(study, dest: Path) -> None:
    names = list(dict.fromkeys(name for t in study.trials for name in t.params))
    with atomic_file(dest, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["number", "state", "value", "duration_s", "fit_s", "recommend_s", *names, "error"]
        )
        for t in study.trials:
            seconds = round(t.duration.total_seconds(), 3) if t.duration else ""
            writer.writerow(
                [
                    t.number,
                    t.state.name.lower(),
                    "" if t.value is None else repr(t.value),
                    seconds,
                    t.user_attrs.get("fit_s", ""),
                    t.user_attrs.get("recommend_s", ""),
                    *(t.params.get(name, "") for name in names),
                    t.user_attrs.get("error", ""),
                ]
            )


def _importances(study, complete: list, seed: int) -> tuple[dict[str, float], str | None]:
    """fANOVA importances (seeded), or ``({}, why not)``."""
    import optuna

    names = list(dict.fromkeys(name for t in complete for name in t.params))
    if len(complete) < 2:
        return {}, f"importances need at least 2 completed trials ({len(complete)} so far)"
    if len(names) == 1:
        return {names[0]: 1.0}, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and small-sample notes
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError) as exc:
            return {}, f"importances could not be computed: {exc}"
    return {name: float(value) for name, value in found.items()}, None


def _figure(width: float, height: float):
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # never switch (and close) a live pyplot session
        matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure registry to leak into

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, dest: Path) -> None:
    with atomic_file(dest, "wb") as handle:
        fig.savefig(handle, format="png")


def _history_figure(study, model_name: str, metric: str, dest: Path) -> None:
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    done = [t for t in study.trials if t.value is not None]
    lower = metric == "clicks"
    if done:
        numbers = np.array([t.number for t in done])
        values = np.array([t.value for t in done])
        best = np.minimum.accumulate(values) if lower else np.maximum.accumulate(values)
        ax.scatter(numbers, values, s=18, color="C0", label="trial")
        ax.step(numbers, best, where="post", color="C3", label="best so far")
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no trial completed", ha="center", va="center", transform=ax.transAxes)
    skipped = len(study.trials) - len(done)
    ax.set_xlabel("trial" + (f" ({skipped} skipped)" if skipped else ""))
    ax.set_ylabel(metric + (" (lower is better)" if lower else ""))
    ax.set_title(f"Tuning {model_name}: {metric} on the validation part")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    _save(fig, dest)


def _importance_figure(
    importances: dict[str, float], note: str | None, model_name: str, metric: str, dest: Path
) -> None:
    fig = _figure(7, 0.6 + 0.45 * max(len(importances), 3))
    ax = fig.subplots()
    if importances:
        names = sorted(importances, key=importances.get)
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set_xlabel("importance (fANOVA, share of the variance explained)")
    else:
        ax.text(
            0.5,
            0.5,
            note or "no importances",
            ha="center",
            va="center",
            wrap=True,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    ax.set_title(f"Tuning {model_name}: what moves {metric}")
    _save(fig, dest)
