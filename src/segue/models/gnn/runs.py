"""Library entry points for training and evaluating the graph models (used by ``segue graph`` and
by the main pipeline).

* :func:`fit_playlist_model` — ``lightgcn`` / ``playlistgat`` (registered Recommenders) in a mode.
* :func:`train_playlist_models` — train them on a playlist split's training part and save them,
  so ``segue evaluate`` / the pipeline scores them with the Evaluation harness beside ALS.
* :func:`evaluate_playlist_split` — train graph models and baselines on a split and score them.
* :func:`evaluate_listening_models` — on a listening split (:mod:`segue.evaluation.sessions`):
  the listening GATs, LightGCN and PlaylistGAT (users as playlists, asked with their training
  tracks, like the baselines), popularity, item-kNN and ALS, all by the same harness, by user
  type, plus the genre-aware model's genre influence and each model's inference time per user.
  A model that cannot run on the data (``genre_gat`` without genres, or one whose training
  refuses the data) is skipped with its reason, named in the log and the report; the rest are
  evaluated.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from segue.data import schema
from segue.errors import SegueError
from segue.io import write_json, write_text

log = logging.getLogger("segue")

PLAYLIST_GRAPH_MODELS = ("lightgcn", "playlistgat")
LISTENING_GRAPH_MODELS = ("gat", "genre_gat")
GRAPH_MODELS = (*LISTENING_GRAPH_MODELS, *PLAYLIST_GRAPH_MODELS)
BASELINES = ("popular", "itemknn", "als")


def is_listening_dir(path: Path) -> bool:
    """Whether ``path`` is a listening dataset (``segue ingest sessions``) or a listening split."""
    path = Path(path)
    manifest = (
        path / "train" / schema.MANIFEST_FILE
        if (path / "split.json").exists()
        else path / schema.MANIFEST_FILE
    )
    if not manifest.exists():
        return False
    try:
        return orjson.loads(manifest.read_bytes()).get("kind") == "listening"
    except orjson.JSONDecodeError:
        return False


def load_listening_split(path: Path, seed: int = 0):
    """A listening split: read from a split directory, or made (by time, 70/15/15) from an
    ingested listening directory."""
    from segue.data.sessions import ListeningData
    from segue.evaluation import sessions as harness

    path = Path(path)
    if (path / harness.SPLIT_FILE).exists():
        return harness.load_listening_split(path)
    return harness.split_listening(ListeningData.load(path), seed=seed)


def fit_playlist_model(
    name: str,
    data,
    *,
    mode: str = "quick",
    seed: int = 0,
    params: dict | None = None,
    budget_seconds: float = 0.0,
):
    """A fitted ``lightgcn`` / ``playlistgat`` (or any registered playlist model): ``mode``,
    ``seed`` and ``budget_seconds`` (0: the mode's) go to the trainer of the models that have one
    (``seed`` to the others that take one), under ``params``."""
    from segue.models.registry import get_model_class

    cls = get_model_class(name)
    return cls(budgeted_config(cls, mode, seed, budget_seconds, params)).fit(data)


def budgeted_config(cls: type, mode: str, seed: int, budget_seconds: float, params: dict | None):
    """``cls``'s config with the run-wide mode, seed and budget set where it takes them — its
    ``trainer``'s when it has one, else those of its own fields that exist (``seed``,
    ``budget_seconds``) — and ``params`` over them."""
    from segue.models.config import config_from_dict, merge_params

    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if "trainer" in fields:
        run_wide = {"trainer": {"mode": mode, "seed": seed, "budget_seconds": budget_seconds}}
    else:
        run_wide = {
            k: v for k, v in (("seed", seed), ("budget_seconds", budget_seconds)) if k in fields
        }
    values = merge_params(run_wide, params or {})
    return config_from_dict(cls.Config, values, where=f"{cls.name} parameters")


def train_playlist_models(
    train_dir: Path,
    out_dir: Path,
    *,
    models=PLAYLIST_GRAPH_MODELS,
    mode: str = "quick",
    seed: int = 0,
    params: dict | None = None,
) -> dict[str, dict]:
    """Train each of ``models`` on the playlist dataset ``train_dir`` (e.g. ``SPLIT/train``) and
    save it to ``out_dir/<name>``; returns ``{name: {"path", "seconds"}}``. What the main pipeline
    calls to put the graph models in the demo's evaluation table. ``params``: config values for
    every model (e.g. ``{"epochs": 1}``)."""
    from segue.data.dataset import PlaylistData

    data = PlaylistData.load(train_dir)
    out = {}
    for name in models:
        start = time.perf_counter()
        model = fit_playlist_model(name, data, mode=mode, seed=seed, params=params)
        seconds = time.perf_counter() - start
        model.save(Path(out_dir) / name)
        out[name] = {"path": str(Path(out_dir) / name), "seconds": seconds}
        log.info("trained %s (%s mode) in %.1f s", name, mode, seconds)
    return out


def evaluate_playlist_split(
    split: Path,
    out: Path | None = None,
    *,
    models=PLAYLIST_GRAPH_MODELS,
    baselines=("als",),
    mode: str = "quick",
    part: str = "test",
    seed: int = 0,
    bootstrap: int = 1000,
    budget_seconds: float = 0.0,
):
    """Train graph models and baselines on ``split/train`` and score them on ``part`` with the
    Evaluation harness (CIs, paired tests); write the report under ``out`` when given. Returns
    ``(EvaluationResult, timings {name: {train_s, ms_per_query_batch, ms_single_query}})``
    (500 tracks per query; single queries timed over the first 50)."""
    from segue.evaluation.runner import evaluate, write_report
    from segue.evaluation.task import load_part
    from segue.models.base import Queries

    loaded = load_part(Path(split), part)
    queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    rankings, timings = {}, {}
    for name in (*baselines, *models):
        start = time.perf_counter()
        model = fit_playlist_model(
            name, loaded.train, mode=mode, seed=seed, budget_seconds=budget_seconds
        )
        timings[name] = {"train_s": time.perf_counter() - start}
        if getattr(model, "history", None) is not None:
            timings[name]["training"] = model.history.to_dict()
        start = time.perf_counter()
        rankings[name] = model.recommend(queries, 500).ids
        timings[name]["ms_per_query_batch"] = (
            1000 * (time.perf_counter() - start) / max(len(queries), 1)
        )
        picked = range(min(50, len(queries)))
        start = time.perf_counter()
        for row in picked:
            model.recommend(queries.slice(row, row + 1), 500)
        timings[name]["ms_single_query"] = (
            1000 * (time.perf_counter() - start) / max(len(picked), 1)
        )
    result = evaluate(loaded.task, rankings, n_bootstrap=bootstrap, seed=seed)
    if out is not None:
        write_report(result, Path(out), title=f"Graph models on {split} ({part}), {mode} mode")
        write_json(Path(out) / "timings.json", timings)
    return result, timings


# ------------------------------------------------------------------------------------------------
# Listening
# ------------------------------------------------------------------------------------------------


@dataclass
class ListeningReport:
    """The harness's evaluation, plus training seconds, inference ms per user, and the genre
    figures of the genre-aware model (``genre``: influence, genre share of the score)."""

    evaluation: object
    train_seconds: dict = field(default_factory=dict)
    inference_ms_per_user: dict = field(default_factory=dict)
    single_user_ms: dict = field(default_factory=dict)
    genre: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # model name → why it could not run on the data

    def to_markdown(self) -> str:
        from segue.evaluation.sessions import cell

        lines = [
            self.evaluation.to_markdown(),
            "| model | training s | inference ms/user (batch) | inference ms (one user) |",
            "|---|---|---|---|",
        ]
        for name, seconds in self.train_seconds.items():
            lines.append(
                f"| {name} | {cell(seconds, 1)} | {cell(self.inference_ms_per_user.get(name), 3)} | "
                f"{cell(self.single_user_ms.get(name), 2)} |"
            )
        if self.skipped:
            lines += ["", "Skipped (cannot run on this data):", ""]
            lines += [f"- {name}: {why}" for name, why in self.skipped.items()]
        if self.genre:
            lines += ["", "Genre term of the genre-aware model (α = 0.8):", ""]
            for key, value in self.genre.items():
                lines.append(
                    f"- {key}: {cell(value)}" if isinstance(value, float) else f"- {key}: {value}"
                )
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> None:
        out = Path(out)
        self.evaluation.write(out)
        write_json(
            out / "graph_report.json",
            {
                "evaluation": self.evaluation.to_dict(),
                "train_seconds": self.train_seconds,
                "inference_ms_per_user": self.inference_ms_per_user,
                "single_user_ms": self.single_user_ms,
                "genre": self.genre,
                "histories": self.histories,
                "skipped": self.skipped,
            },
        )
        write_text(out / "graph_report.md", self.to_markdown())


def train_listening_model(
    name: str,
    split,
    *,
    mode: str = "quick",
    seed: int = 0,
    overrides: dict | None = None,
    budget_seconds: float = 0.0,
    run=None,
):
    """A fitted ``gat`` / ``genre_gat`` on the split's training part, early-stopped on its
    validation part, within ``budget_seconds`` (0: the mode's); ``overrides`` over that."""
    from segue.models.registry import get_model_class

    cls = get_model_class(name)
    if cls.data != "listening":
        raise SegueError(
            f"{name} is trained on playlists, not listening data; listening models: "
            f"{', '.join(LISTENING_GRAPH_MODELS)}"
        )
    config = budgeted_config(cls, mode, seed, budget_seconds, overrides)
    return cls(config).fit(split.train, split.validation, run)


def genre_influence(model, users: np.ndarray, k: int = 10) -> dict:
    """How much the genre term moves the genre-aware ranking, over ``users``: the share of the
    top-``k`` that changes when the term is dropped (α = 1), the mean rank shift of the tracks
    that stay, and the genre term's mean share of the top-``k`` scores."""
    full = model.recommend_users(users, k)
    collab = model.recommend_users(users, k, collaborative_only=True)
    changed = np.mean(
        [1 - len(set(a) & set(b)) / k for a, b in zip(full.tolist(), collab.tolist(), strict=True)]
    )
    shifts, genre_share = [], []
    for row, user in enumerate(np.asarray(users).tolist()):
        position = {t: i for i, t in enumerate(collab[row].tolist())}
        shifts += [abs(i - position[t]) for i, t in enumerate(full[row].tolist()) if t in position]
        parts = model.scores(user, full[row])
        total = np.abs(parts["collaborative"]) + np.abs(parts["genre"])
        genre_share.append(
            float(
                np.mean(
                    np.divide(
                        np.abs(parts["genre"]), total, out=np.zeros_like(total), where=total > 0
                    )
                )
            )
        )
    return {
        "top_k_changed_share": float(changed),
        "mean_rank_shift_of_kept": float(np.mean(shifts)) if shifts else np.nan,
        "genre_share_of_score": float(np.mean(genre_share)),
    }


def _timed_single(recommend, users: np.ndarray, repeats: int = 50) -> float:
    """Mean ms to answer one user at a time (over up to ``repeats`` users)."""
    picked = users[:repeats]
    start = time.perf_counter()
    for u in picked.tolist():
        recommend(np.array([u]))
    return 1000 * (time.perf_counter() - start) / max(len(picked), 1)


def evaluate_listening_models(
    split,
    *,
    models=GRAPH_MODELS,
    baselines=BASELINES,
    mode: str = "quick",
    seed: int = 0,
    k: int = 10,
    n: int = 100,
    part: str = "test",
    budget_seconds: float = 0.0,
) -> ListeningReport:
    """Train and score every model on a listening split's ``part`` (see the module docstring)."""
    from segue.evaluation.sessions import evaluate_listening
    from segue.models.registry import get_model_class

    task = split.part(part)
    n = ranking_depth(task, k, n)
    for name in (*baselines, *models):  # a misspelt name is the user's, not the data's: refuse it
        if name not in LISTENING_GRAPH_MODELS:
            get_model_class(name)
    playlists = split.train.to_playlist_data()
    rankings, report = {}, ListeningReport(None)
    for name in (*baselines, *models):
        why = cannot_run(name, split)
        start = time.perf_counter()
        if why is None:
            try:
                model = (
                    train_listening_model(
                        name, split, mode=mode, seed=seed, budget_seconds=budget_seconds
                    )
                    if name in LISTENING_GRAPH_MODELS
                    else fit_playlist_model(
                        name, playlists, mode=mode, seed=seed, budget_seconds=budget_seconds
                    )
                )
            except SegueError as exc:  # the model refuses this data; the others may still run
                why = str(exc)
        if why is not None:
            report.skipped[name] = why
            log.warning("skipped %s: %s", name, why)
            continue
        if name in LISTENING_GRAPH_MODELS:
            report.histories[name] = model.history.to_dict()

            def recommend(users, model=model):
                return model.recommend_users(users, n)
        else:
            if getattr(model, "history", None) is not None:
                report.histories[name] = model.history.to_dict()

            def recommend(users, model=model):
                rows = np.searchsorted(task.users, users)
                return (
                    model.recommend(task.seeds.slice(int(rows[0]), int(rows[-1]) + 1), n).ids
                    if len(users) == 1
                    else model.recommend(task.seeds, n).ids
                )

        report.train_seconds[name] = time.perf_counter() - start
        start = time.perf_counter()
        rankings[name] = recommend(task.users)
        report.inference_ms_per_user[name] = (
            1000 * (time.perf_counter() - start) / max(len(task), 1)
        )
        report.single_user_ms[name] = _timed_single(recommend, task.users)
        if name == "genre_gat":
            report.genre = genre_influence(model, task.users, k)
        log.info("%s: trained in %.1f s", name, report.train_seconds[name])
    if not rankings:
        raise SegueError(
            "no model could run on this data: "
            + "; ".join(f"{name}: {why}" for name, why in report.skipped.items())
        )
    report.evaluation = evaluate_listening(task, rankings, k=k)
    return report


def ranking_depth(task, k: int, n: int = 100) -> int:
    """How many tracks to ask per user of a listening ``task``: the harness drops training (and,
    for test, validation) tracks before cutting at ``k``, so a margin up to ``n``, within what a
    small catalog can give besides a user's seeds."""
    return max(k, min(n, task.n_tracks - int(task.seeds.lengths().max(initial=0))))


def cannot_run(name: str, split) -> str | None:
    """Why model ``name`` cannot run on the listening split, or ``None`` when it can. Checked
    before training so the reason says what the data lacks rather than where training stopped;
    an unknown name is not a property of the data and is left to fail loudly."""
    train = split.train
    if name == "genre_gat" and (
        not train.genre_names or (train.track_genres.nnz == 0 and train.artist_genres.nnz == 0)
    ):
        return (
            "the data has no genres (give the items genres at ingest: `segue ingest sessions … "
            "--genres FILE --genre-col COL`)"
        )
    return None
