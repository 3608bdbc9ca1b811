"""`segue models`, `train`, `tune`, `recommend`, `similar`, `check-submission`, `evaluate`: models and their scores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from segue.cli.common import app, echo, output_dir, output_file
from segue.errors import SegueError


@app.command()
def models() -> None:
    """List the available models, by what they are trained on."""
    from segue.models.registry import available

    for data in ("playlists", "listening"):
        echo(f"trained on {data} data:" if data == "listening" else "trained on playlists:")
        for name, description in available(data):
            echo(f"  {name:<14} {description}")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model name (see `segue models`).")],
    data: Annotated[
        Path,
        typer.Argument(
            help="Training data: a playlist dataset (e.g. SPLIT/train); for gat and genre_gat, "
            "listening data or a listening split."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", callback=output_dir, help="Model directory to write.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="key=value, repeatable; dotted for nested parameters (trainer.learning_rate=0.005, "
            "als.factors=64 in a hybrid).",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A JSON object of parameters (e.g. best.json of `segue tune`); --param wins.",
        ),
    ] = None,
    components_from: Annotated[
        Path | None,
        typer.Option(
            help="hybrid and rerank: a directory holding the components already trained on DATA "
            "(DIR/<name>), so only the tuning runs."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Graph models: auto (CUDA when available), cpu or cuda[:N].")
    ] = "auto",
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(help="Graph models: write best.pt/last.pt here (resumable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Graph models: continue from --checkpoint-dir/last.pt.")
    ] = False,
) -> None:
    """Train a model and save it (params.json + arrays.npz, no pickle)."""
    from segue.models.config import RunOptions
    from segue.models.registry import get_model_class
    from segue.tuning import read_config

    cls = get_model_class(model)
    config = read_config(cls.Config, config_file, param or [])
    run = RunOptions(device, str(checkpoint_dir) if checkpoint_dir else "", resume)
    start = time.perf_counter()
    fitted = _fit(cls, config, data, run, components_from)
    fitted.save(out)
    echo(f"trained {model} on {data} in {time.perf_counter() - start:.1f} s; saved to {out}")
    _print_training(getattr(fitted, "training_log", None) or {})
    if hasattr(fitted, "describe_weights"):
        from segue.evaluation.split import group_label
        from segue.models.hybrid import MIN_GROUP_QUERIES

        echo("weights per query group (validation playlists tuned on):")
        for label, weights, tuned in fitted.describe_weights():
            echo(
                f"  {label:<20} "
                + "  ".join(f"{k} {v:.2f}" for k, v in weights.items())
                + (
                    f"  ({tuned})"
                    if tuned >= MIN_GROUP_QUERIES
                    else "  (no title and no seed: popular tracks answer)"
                    if label == group_label(0)
                    else f"  ({tuned}: too few to tune, the weights tuned on all queries)"
                )
            )
    if hasattr(fitted, "candidate_recall"):
        echo(
            f"ranker: {len(fitted.curve)} trees run, best {int(np.argmax(fitted.curve)) + 1} kept "
            f"(validation NDCG@100 {fitted.curve.max():.4f}); recall of held-out tracks among the candidates: "
            + ", ".join(
                f"{r:.3f} at {n:,}"
                for n, r in zip((500, 1000, 2000), fitted.candidate_recall, strict=True)
            )
        )


def _fit(cls, config, data: Path, run, components_from: Path | None):
    """``cls(config)`` fitted on ``data`` as its kind of model is (listening split, playlists,
    or an ensemble over components already trained)."""
    from segue.models.gnn.runs import is_listening_dir

    if is_listening_dir(data) != (cls.data == "listening"):
        kind = "listening data" if is_listening_dir(data) else "not listening data"
        raise SegueError(
            f"{data} is {kind}; {cls.name} trains on "
            f"{'listening data' if cls.data == 'listening' else 'playlists'} "
            "(gat and genre_gat on listening data from `segue ingest sessions`, every other "
            "model on playlists from `segue ingest`)"
        )
    if cls.data == "listening":
        from segue.models.gnn.runs import load_listening_split

        if components_from is not None:
            raise SegueError(f"--components-from: {cls.name} has no components")
        split = load_listening_split(data, config.trainer.seed)
        return cls(config).fit(split.train, split.validation, run)
    from segue.data.dataset import PlaylistData

    if components_from is None:
        return cls(config).fit(PlaylistData.load(data), run)
    if not hasattr(cls, "fit_from"):
        raise SegueError(
            f"--components-from: {cls.name} has no components (only hybrid and rerank do)"
        )
    fitted = cls(config)
    try:
        return fitted.fit_from_directory(PlaylistData.load(data), components_from)
    except SegueError as exc:
        raise SegueError(f"--components-from: {exc}") from None


def _print_training(training: dict) -> None:
    """Epochs run, why training stopped, and the validation curve of a model that keeps one."""
    if not training.get("epochs_run"):
        return
    records = training["history"]
    metric = next(
        (k for k in ("validation_recall", "validation_hit_rate") if any(k in r for r in records)),
        None,
    )
    label = {"validation_recall": "Recall@10", "validation_hit_rate": "HitRate@10"}.get(metric)
    curve = [r[metric] for r in records if metric in r] if metric else []
    best = training["best_epoch"]
    echo(
        f"{training['epochs_run']} epochs ({training['stopped']}); best epoch {best}"
        + (
            f"; validation {label} by epoch: {', '.join(f'{v:.4f}' for v in curve)}"
            if curve
            else ""
        )
    )


@app.command()
def tune(
    model: Annotated[str, typer.Argument(help="Model name (see `segue models`).")],
    split_dir: Annotated[
        Path,
        typer.Argument(
            help="Split directory from `segue split` (its validation part is used); "
            "for gat and genre_gat, listening data or a listening split."
        ),
    ],
    trials: Annotated[
        int, typer.Option(help="New trials to run (added to the study in --out if any).")
    ] = 20,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Playlist models: r_precision (default), ndcg, or clicks "
            "(minimised); listening models: recall (default) or ndcg, at 10."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Start no new trial after this many seconds.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Output directory (default: tuning/MODEL)."
        ),
    ] = None,
    space: Annotated[
        Path | None,
        typer.Option(help="Search space JSON file (default: the model's built-in one)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value fixed in every trial, repeatable."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Sampler seed: the same seed gives the same trials.")
    ] = 0,
) -> None:
    """Tune a model's parameters with Optuna on the split's validation part (never the test part)."""
    from segue.models.gnn.runs import is_listening_dir
    from segue.tuning import config_class, params_from_pairs
    from segue.tuning import tune as run_tuning

    out = out if out is not None else Path("tuning") / model
    fixed = params_from_pairs(config_class(model), param or [])
    result = run_tuning(
        model,
        split_dir,
        out,
        trials=trials,
        metric=metric,
        timeout=timeout,
        seed=seed,
        space=space,
        fixed_params=fixed,
    )
    echo(
        f"best {result['metric']} {result['best_value']:.4f} (trial {result['best_trial']} of {result['n_trials']}; "
        f"{result['new_trials']} run now, {result['n_skipped']} skipped in all)"
    )
    echo("  " + "  ".join(f"{k}={v}" for k, v in result["best_params"].items()))
    if result["importances"]:
        echo("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    paths = result["paths"]
    echo(
        f"wrote {paths['best.json']}, {paths['trials.csv']}, {paths['history.png']}, {paths['importance.png']}; "
        f"study in {paths['study.db']} (run again to add trials)"
    )
    data = split_dir if is_listening_dir(split_dir) else Path(split_dir) / "train"
    echo(f"train it: segue train {model} {data} --config {paths['best.json']} --out ...")


@app.command()
def recommend(
    model_dir: Annotated[Path, typer.Argument(help="A trained model directory.")],
    challenge: Annotated[
        Path | None, typer.Option(help="challenge_set.json to answer (writes a submission).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", callback=output_file, help="Submission file (.csv.gz or .csv)."
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(help="Continue one playlist with this title (instead of --challenge)."),
    ] = None,
    track: Annotated[
        list[str] | None,
        typer.Option("--track", "-t", help="A seed track URI of that playlist, repeatable."),
    ] = None,
    team: Annotated[str, typer.Option(help="Team name for the team_info line.")] = "segue",
    email: Annotated[
        str, typer.Option(help="Contact e-mail for the team_info line.")
    ] = "segue@example.org",
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            help="Recommendations per playlist (default: 500 for a challenge set, 10 for one playlist).",
            min=1,
        ),
    ] = None,
    explain: Annotated[bool, typer.Option(help="Print why each track is recommended.")] = False,
    explain_playlists: Annotated[
        int, typer.Option(help="With --challenge --explain: how many playlists to explain.", min=1)
    ] = 3,
    explain_tracks: Annotated[
        int, typer.Option(help="With --challenge --explain: tracks explained per playlist.", min=1)
    ] = 5,
) -> None:
    """Answer a challenge set (a submission file), or continue one playlist given by --title/--track."""
    from segue.evaluation.rankings import answer_challenge
    from segue.models.base import Queries, Recommender

    single = title is not None or bool(track)
    if single == (challenge is not None):
        raise SegueError(
            "give either --challenge (with --out) or one playlist by --title and/or --track"
        )
    if challenge is not None and out is None:
        raise SegueError("--challenge needs --out, the submission file to write")
    model = Recommender.load(model_dir)
    if single:
        lookup = {u: i for i, u in enumerate(model.catalog().column("track_uri").to_pylist())}
        unknown = [u for u in track or [] if u not in lookup]
        if unknown:
            raise SegueError(
                f"--track: {len(unknown)} URI{'s are' if len(unknown) > 1 else ' is'} not in the "
                f"model's catalog: {', '.join(unknown[:3])}{' …' if len(unknown) > 3 else ''}"
            )
        queries = Queries.from_lists([[lookup[u] for u in track or []]], [title or ""])
        ranking = model.recommend(queries, n or 10)
        _print_ranking(model, queries, 0, ranking, explain, len(ranking.ids[0]))
        return
    answer = answer_challenge(model, challenge, out, n=n or 500, team=team, email=email)
    queries, ranking = answer.queries, answer.ranking
    echo(
        f"wrote {out}: {answer.playlists:,} playlists × {answer.n} tracks with {model.name} "
        f"[{answer.seconds:.1f} s]"
        + (
            f"; {answer.unknown_seed_tracks:,} seed tracks were unknown to the model"
            if answer.unknown_seed_tracks
            else ""
        )
    )
    if explain:
        for row in range(min(explain_playlists, len(queries))):
            seeds = ", ".join(model.track_labels(queries.seeds(row)[:3]))
            echo(
                f"\npid {queries.pids[row]} — title '{queries.titles[row]}', {len(queries.seeds(row))} seed tracks"
                + (f" ({seeds}{' …' if len(queries.seeds(row)) > 3 else ''})" if seeds else "")
            )
            _print_ranking(model, queries, row, ranking, True, explain_tracks)


def _print_ranking(model, queries, row: int, ranking, explain: bool, count: int) -> None:
    """Print the first ``count`` tracks of ``ranking`` row ``row``, with explanations if asked."""
    ids = ranking.ids[row, :count]
    labels = model.track_labels(ids)
    explanations = model.explain(queries, row, ids) if explain else [None] * len(ids)
    for rank, (label, score, e) in enumerate(
        zip(labels, ranking.scores[row, :count], explanations, strict=True), 1
    ):
        shown = "popular back-fill" if np.isnan(score) else f"{score:.4g}"
        echo(f"{rank:>4}. {label}  [{shown}]")
        if e is not None:
            echo(f"      {e.text}")


@app.command()
def similar(
    model_dir: Annotated[Path, typer.Argument(help="A trained model directory.")],
    track_uri: Annotated[
        str, typer.Argument(help="The track to find companions for (a URI from the catalog).")
    ],
    n: Annotated[int, typer.Option("-n", help="How many tracks.", min=1)] = 10,
    explain: Annotated[bool, typer.Option(help="Print why each track is similar.")] = False,
) -> None:
    """Tracks that go with one track: the model's continuation of a one-track playlist."""
    from segue.models.base import Queries, Recommender

    model = Recommender.load(model_dir)
    uris = model.catalog().column("track_uri").to_pylist()
    try:
        track_id = uris.index(track_uri)
    except ValueError:
        raise SegueError(f"{track_uri!r} is not in the catalog of {model_dir}") from None
    ranking = model.similar([track_id], n)
    echo(f"tracks to play with {model.track_labels([track_id])[0]} ({model.name}):")
    _print_ranking(model, Queries.from_lists([[track_id]]), 0, ranking, explain, n)


@app.command("check-submission")
def check_submission_cmd(
    submission: Annotated[Path, typer.Argument(help="Submission file (.csv.gz or .csv).")],
    challenge: Annotated[Path, typer.Option(help="The challenge_set.json it answers.")],
    n: Annotated[int, typer.Option("-n", help="Tracks required per playlist.", min=1)] = 500,
) -> None:
    """Validate a submission as the challenge did (exit 1 if it would be rejected)."""
    from segue.data.challenge import read_challenge
    from segue.evaluation.submission import check_submission

    report = check_submission(submission, read_challenge(challenge), n=n)
    echo(report.format_text())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def evaluate(
    model_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Trained model directories.")
    ] = None,
    split_dir: Annotated[
        Path, typer.Option("--split", help="Split directory from `segue split`.")
    ] = Path("split"),
    submission: Annotated[
        list[Path] | None, typer.Option(help="Submission files to score, repeatable.")
    ] = None,
    part: Annotated[str, typer.Option(help="test, or validation (for tuning).")] = "test",
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            callback=output_dir,
            help="Directory for evaluation.md/.json and figures.",
        ),
    ] = Path("evaluation"),
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the confidence intervals.", min=100)
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and permutation tests.")] = 0,
    comparisons: Annotated[
        str,
        typer.Option(
            help="Pairs to test: best-and-popular (each model against the best and against popular) "
            "or all-pairs."
        ),
    ] = "best-and-popular",
) -> None:
    """Score models and submissions on a split: every metric per category, 95% CIs, paired tests."""
    from segue.evaluation.rankings import part_rankings
    from segue.evaluation.runner import evaluate as run_evaluation
    from segue.evaluation.runner import write_report
    from segue.evaluation.task import load_part

    if not model_dirs and not submission:
        raise SegueError("nothing to evaluate: give model directories and/or --submission files")
    if comparisons not in ("best-and-popular", "all-pairs"):
        raise SegueError(
            f"--comparisons must be best-and-popular or all-pairs, not {comparisons!r}"
        )
    loaded = load_part(split_dir, part)
    rankings = part_rankings(loaded, model_dirs or [], submission or [])
    start = time.perf_counter()
    result = run_evaluation(
        loaded.task,
        rankings,
        n_bootstrap=bootstrap,
        seed=seed,
        comparisons=comparisons.replace("-", "_"),
    )
    write_report(result, out, title=f"Evaluation on {split_dir} ({part})")
    echo(
        f"scored {len(rankings)} ranking{'s' if len(rankings) > 1 else ''} on {len(loaded.entries):,} "
        f"playlists in {time.perf_counter() - start:.1f} s; report in {out}/evaluation.md"
    )
    echo(result.headline())
