"""What every front end does with trained models on a split or a challenge set, in one place.

* :func:`part_rankings` — the lists [q, n] of models (refused unless trained on the part's
  training data: a model's track ids are those of the data it was trained on, and one trained on
  the whole collection has seen the held-out playlists) and of submission files, for a split part;
  ``segue diversity`` calls it.
* :func:`evaluate_part` — those rankings scored (locally, or answered and scored in Spark tasks);
  ``segue evaluate``, :func:`segue.evaluate` and the pipeline's evaluation call it.
* :func:`answer_challenge` — a model's answer to a challenge set, written as a submission file;
  ``segue recommend --challenge`` and the pipeline's submission stage call it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segue.data import schema
from segue.errors import SegueError


def unique_name(name: str, taken: Collection[str]) -> str:
    """``name``, or ``name-2``, ``name-3`` … the first not in ``taken``.

    >>> unique_name("als", {"als", "als-2"})
    'als-3'
    """
    candidate, k = name, 2
    while candidate in taken:
        candidate, k = f"{name}-{k}", k + 1
    return candidate


def check_trained_on(model_dir: Path, train_dir: Path) -> None:
    """Refuse the model saved in ``model_dir`` unless it was trained on ``train_dir``'s data (the
    same manifest digest): its ids would be another dataset's, or it has seen held-out
    playlists. Reads only its ``params.json``."""
    from segue.models.base import read_params

    params = read_params(Path(model_dir))
    trained_on = params.get("trained_on") or {}
    if trained_on.get("manifest_sha256") != schema.manifest_digest(train_dir):
        raise SegueError(
            f"{model_dir}: this model was not trained on {train_dir} (trained on "
            f"{trained_on.get('path', 'unknown data')}): its track ids are not this split's, and "
            f"scoring it here could leak held-out playlists. Train it with `segue train "
            f"{params.get('model', 'MODEL')} {train_dir} --out ...`"
        )


def part_rankings(
    loaded,
    model_dirs: Sequence[Path] = (),
    submissions: Sequence[Path] = (),
    *,
    n: int = 500,
    reserved: Collection[str] = (),
) -> dict[str, np.ndarray]:
    """Rankings (int64 [q, n] track ids of the part's training data, in the challenge set's
    order) of each model directory and submission file on ``loaded``
    (:func:`segue.evaluation.task.load_part`), named after their directory or file (made unique,
    and never one of ``reserved``). Every model is checked (from its ``params.json``) before any
    is loaded; then they are loaded, asked and dropped one at a time, so memory holds one model
    and the rankings, not every model at once (14 demo models held together cost 4 GiB more)."""
    return _rankings(loaded, model_dirs, submissions, n=n, reserved=reserved)[0]


def _rankings(
    loaded,
    model_dirs: Sequence[Path] = (),
    submissions: Sequence[Path] = (),
    *,
    n: int = 500,
    reserved: Collection[str] = (),
    engine: str = "local",
    master: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """:func:`part_rankings`, and the per-query metric values of the models answered on Spark
    (``engine="spark"``: :func:`segue.spark.batch.answer_partitioned` scores each part where it
    is answered)."""
    from segue.evaluation.submission import read_submission
    from segue.evaluation.task import ranking_from_submission
    from segue.models.base import Queries, Recommender, read_params

    model_dirs = [Path(d) for d in model_dirs]
    for model_dir in model_dirs:
        check_trained_on(model_dir, loaded.train_dir)
    rankings: dict[str, np.ndarray] = {}
    per_query: dict[str, dict[str, np.ndarray]] = {}
    if model_dirs:
        queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
        for model_dir in model_dirs:
            if engine == "spark":
                from segue.spark.batch import answer_partitioned

                model_name = str(read_params(model_dir).get("model", "model"))
                name = unique_name(model_dir.name or model_name, {*rankings, *reserved})
                ranking, per_query[name] = answer_partitioned(
                    model_dir, queries, n, task=loaded.task, master=master
                )
                rankings[name] = ranking.ids.astype(np.int64)
                continue
            model = Recommender.load(model_dir)
            name = unique_name(model_dir.name or model.name, {*rankings, *reserved})
            rankings[name] = model.recommend(queries, n).ids.astype(np.int64)
            del model
    for path in submissions:
        rows = read_submission(Path(path), loaded.entries, n=n)
        name = unique_name(Path(path).name.split(".")[0], {*rankings, *reserved})
        rankings[name] = ranking_from_submission(rows, loaded.task.pids, loaded.eval_ids, n)
    return rankings, per_query


def evaluate_part(
    loaded,
    model_dirs: Sequence[Path] = (),
    submissions: Sequence[Path] = (),
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    comparisons: str = "best_and_popular",
    engine: str = "local",
    master: str | None = None,
):
    """Every model directory and submission of ``loaded`` (a split part) scored by
    :func:`segue.evaluation.runner.evaluate`: ``(result, rankings)``. With ``engine="spark"``
    the models answer and score the queries in Spark tasks (the statistics run here, on their
    per-query values: the same result as locally)."""
    from segue.evaluation.runner import evaluate

    rankings, per_query = _rankings(loaded, model_dirs, submissions, engine=engine, master=master)
    result = evaluate(
        loaded.task,
        rankings,
        n_bootstrap=n_bootstrap,
        seed=seed,
        comparisons=comparisons,
        per_query=per_query,
    )
    return result, rankings


@dataclass
class Answer:
    """What :func:`answer_challenge` wrote: the file, its playlists × n, the model's name, seed
    tracks its catalog does not hold, the seconds it took to recommend, and the queries and
    ranking themselves (for explanations)."""

    path: Path
    playlists: int
    n: int
    model: str
    unknown_seed_tracks: int
    seconds: float
    queries: object
    ranking: object


def answer_challenge(
    model,
    challenge: Path,
    out: Path,
    *,
    n: int = 500,
    team: str = "segue",
    email: str = "segue@example.org",
    check: bool = False,
    engine: str = "local",
    master: str | None = None,
) -> Answer:
    """Answer ``challenge`` (a challenge_set.json) with ``model`` (a loaded
    :class:`~segue.models.base.Recommender`): ``n`` track URIs per playlist written to ``out``
    as a submission (whole or not at all). ``check``: read the file back with the challenge's
    own checker and refuse it if it fails. ``engine="spark"``: the playlists are answered in
    Spark tasks on ``master``, each loading the model from the directory it was loaded from."""
    from segue.data.challenge import read_challenge
    from segue.evaluation.submission import check_submission, write_submission
    from segue.models.base import Queries

    entries = read_challenge(Path(challenge))
    uris = model.catalog().column(schema.TRACK_URI).to_pylist()
    queries, unknown = Queries.from_challenge(entries, {u: i for i, u in enumerate(uris)})
    start = time.perf_counter()
    if engine == "spark":
        from segue.spark.batch import answer_partitioned

        if model.saved_as is None:
            raise SegueError("--engine spark answers with a saved model; this one is not saved")
        ranking, _ = answer_partitioned(model.saved_as.parent, queries, n, master=master)
    else:
        ranking = model.recommend(queries, n)
    seconds = time.perf_counter() - start
    write_submission(
        Path(out),
        queries.pids.tolist(),
        [[uris[i] for i in row] for row in ranking.ids.tolist()],
        team=team,
        email=email,
        n=n,
    )
    if check:
        report = check_submission(Path(out), entries, n=n)
        if not report.ok:
            raise SegueError(f"{out}: the submission failed its own check:\n{report.format_text()}")
    return Answer(Path(out), len(entries), n, model.name, unknown, seconds, queries, ranking)
