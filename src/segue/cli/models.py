"""`segue models`, `train`, `tune`, `recommend`, `similar`, `check-submission`, `evaluate`: models and their scores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from segue.cli.common import (
    Engine,
    Master,
    Track,
    TrackUri,
    app,
    echo,
    output_dir,
    output_file,
    tracking,
)
from segue.errors import SegueError


@app.command()
def models(
    name: Annotated[
        str | None, typer.Argument(help="A model: print its parameters (type, default, meaning).")
    ] = None,
) -> None:
    """List the available models by what they are trained on, or one model's parameters."""
    from segue.models.registry import available

    if name is None:
        for data in ("playlists", "listening"):
            echo(f"trained on {data} data:" if data == "listening" else "trained on playlists:")
            for model, description in available(data):
                echo(f"  {model:<14} {description}")
        return
    echo(describe_model(name))


def describe_model(name: str) -> str:
    """A model's description and a table of its parameters (from its config dataclass)."""
    from segue.models.config import describe_params
    from segue.models.registry import get_model_class

    cls = get_model_class(name)
    docs = describe_params(cls.Config)
    import textwrap

    what = "playlists" if cls.data == "playlists" else f"{cls.data} data"
    lines = [f"{name}: {cls.description}", f"trained on {what}", ""]
    if not docs:
        return "\n".join([*lines, "no parameters"])
    lines.append("parameters (--param NAME=VALUE, or a --config .json/.toml file; defaults shown):")
    width = max(len(d.name) for d in docs)
    kinds = max(len(d.type) for d in docs)
    for d in docs:
        default = repr(d.default) if isinstance(d.default, str) else str(d.default)
        lines.append(f"  {d.name:<{width}}  {d.type:<{kinds}}  = {default}")
        if d.meaning:
            indent = " " * (width + 4)
            lines += textwrap.wrap(d.meaning, 100, initial_indent=indent, subsequent_indent=indent)
    return "\n".join(lines)


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
            help="Parameters as a JSON object (e.g. best.json of `segue tune`) or a .toml file "
            "([trainer] for a nested group); --param wins.",
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
    engine: Engine = "local",
    master: Master = None,
    track: Track = False,
    track_uri: TrackUri = None,
) -> None:
    """Train a model and save it (params.json + arrays.npz, no pickle)."""
    from segue.io import check_output_dir
    from segue.models.config import RunOptions
    from segue.models.registry import available_classes, usable_model_class
    from segue.tuning import read_config

    cls = usable_model_class(model)
    config = read_config(cls.Config, config_file, param or [])
    check_output_dir(out, replace=True)  # before training, not after
    run = RunOptions(
        device,
        str(checkpoint_dir) if checkpoint_dir else "",
        resume,
        engine=engine,
        master=master,
    )
    if engine not in getattr(cls, "engines", ("local",)):
        spark = sorted(n for n, c in available_classes() if "spark" in getattr(c, "engines", ()))
        raise SegueError(
            f"--engine {engine}: {model} trains locally only (on Spark: {', '.join(spark)})"
        )
    with tracking(track, track_uri, f"train {model}") as tracked:
        start = time.perf_counter()
        fitted = _fit(cls, config, data, run, components_from)
        fitted.save(out)
        seconds = time.perf_counter() - start
        if tracked is not None:
            from segue.tracking import log_trained

            log_trained(tracked, out, seconds=seconds, data=data)
    echo(f"trained {model} on {data} in {seconds:.1f} s; saved to {out}")
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
    track: Track = False,
    track_uri: TrackUri = None,
) -> None:
    """Tune a model's parameters with Optuna on the split's validation part (never the test part)."""
    from segue.models.gnn.runs import is_listening_dir
    from segue.tuning import config_class, params_from_pairs
    from segue.tuning import tune as run_tuning

    out = out if out is not None else Path("tuning") / model
    fixed = params_from_pairs(config_class(model), param or [])
    with tracking(track, track_uri, f"tune {model}") as tracked:
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
        if tracked is not None:
            from segue.tracking import log_tuning

            settings = {"model": model, "split": split_dir, "metric": result["metric"]}
            log_tuning(tracked, result, {**settings, "trials": trials, "seed": seed})
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
    output_format: Annotated[
        str, typer.Option("--format", help="One playlist: text or json (records with URIs).")
    ] = "text",
    engine: Engine = "local",
    master: Master = None,
) -> None:
    """Answer a challenge set (a submission file), or continue one playlist given by --title/--track."""
    from segue.evaluation.rankings import answer_challenge
    from segue.models.base import Recommender
    from segue.models.config import RunOptions

    RunOptions(engine=engine, master=master)  # checks both before any work

    single = title is not None or bool(track)
    if single == (challenge is not None):
        raise SegueError(
            "give either --challenge (with --out) or one playlist by --title and/or --track"
        )
    if challenge is not None and out is None:
        raise SegueError("--challenge needs --out, the submission file to write")
    _check_format(output_format)
    if single and engine == "spark":
        raise SegueError("--engine spark is for answering a --challenge set, not one playlist")
    if single:
        import segue

        recs = segue.load(model_dir).recommend(track or [], title, n or 10, explain=explain)
        _print_records(recs, output_format)
        return
    model = Recommender.load(model_dir)
    answer = answer_challenge(
        model, challenge, out, n=n or 500, team=team, email=email, engine=engine, master=master
    )
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


def _check_format(output_format: str) -> None:
    if output_format not in ("text", "json"):
        raise SegueError(f"--format must be text or json, not {output_format!r}")


def _print_records(recs, output_format: str, header: str | None = None) -> None:
    """Recommendations as text (rank, name — artist, score, URI; the reason below) or JSON."""
    if output_format == "json":
        import orjson

        echo(orjson.dumps(recs.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    if header:
        echo(header)
    for r in recs:
        shown = "popular back-fill" if r.score is None else f"{r.score:.4g}"
        echo(f"{r.rank:>4}. {r.name} — {r.artist}  [{shown}]  {r.uri}")
        if r.because:
            echo(f"      {r.because}")


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
    output_format: Annotated[
        str, typer.Option("--format", help="text or json (records with URIs).")
    ] = "text",
) -> None:
    """Tracks that go with one track: the model's continuation of a one-track playlist."""
    import segue

    _check_format(output_format)
    model = segue.load(model_dir)
    recs = model.similar(track_uri, n, explain=explain)
    (row,) = model.catalog.rows(model.ids([track_uri])[0])
    header = f"tracks to play with {row['track_name']} — {row['artist_name']} ({model.name}):"
    _print_records(recs, output_format, header)


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
    track: Track = False,
    track_uri: TrackUri = None,
    engine: Engine = "local",
    master: Master = None,
) -> None:
    """Score models and submissions on a split: every metric per category, 95% CIs, paired tests."""
    from segue.evaluation.rankings import evaluate_part
    from segue.evaluation.runner import write_report
    from segue.evaluation.task import load_part
    from segue.models.config import RunOptions

    RunOptions(engine=engine, master=master)  # checks both before any work

    if not model_dirs and not submission:
        raise SegueError("nothing to evaluate: give model directories and/or --submission files")
    if comparisons not in ("best-and-popular", "all-pairs"):
        raise SegueError(
            f"--comparisons must be best-and-popular or all-pairs, not {comparisons!r}"
        )
    with tracking(track, track_uri, "evaluate") as tracked:
        loaded = load_part(split_dir, part)
        start = time.perf_counter()
        result, rankings = evaluate_part(
            loaded,
            model_dirs or [],
            submission or [],
            n_bootstrap=bootstrap,
            seed=seed,
            comparisons=comparisons.replace("-", "_"),
            engine=engine,
            master=master,
        )
        write_report(result, out, title=f"Evaluation on {split_dir} ({part})")
        if tracked is not None:
            from segue.tracking import log_evaluation

            settings = {"split": split_dir, "part": part, "bootstrap": bootstrap, "seed": seed}
            dirs = {Path(p).name: Path(p) for p in model_dirs or []}
            log_evaluation(tracked, result.to_json(), out, dirs, settings)
    echo(
        f"scored {len(rankings)} ranking{'s' if len(rankings) > 1 else ''} on {len(loaded.entries):,} "
        f"playlists in {time.perf_counter() - start:.1f} s; report in {out}/evaluation.md"
    )
    echo(result.headline())


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words of a track or artist name (typos are fine).")],
    source: Annotated[
        Path, typer.Argument(help="A trained model directory, or a dataset from `segue ingest`.")
    ],
    n: Annotated[int, typer.Option("-n", help="How many tracks.", min=1)] = 10,
    offset: Annotated[int, typer.Option(help="Skip this many (the next page).", min=0)] = 0,
    output_format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Find tracks by name or artist, most popular first: the URIs to give `recommend`."""
    from segue.api import search_catalog
    from segue.catalog import dataset_catalog

    _check_format(output_format)
    if (source / "params.json").exists():
        import segue

        model = segue.load(source)
        hits = search_catalog(model.catalog, model.recommender.popularity, query, n, offset)
    else:
        catalog, popularity = dataset_catalog(source)
        hits = search_catalog(catalog, popularity, query, n, offset)
    if output_format == "json":
        import orjson

        document = {"query": query, "total": hits.total, "corrections": hits.corrections}
        echo(orjson.dumps({**document, "items": hits.items}, option=orjson.OPT_INDENT_2).decode())
        return
    for word, instead in hits.corrections.items():
        echo(
            f"no track has {word!r}; searched {', '.join(map(repr, instead)) or 'nothing'} instead"
        )
    echo(f"{hits.total:,} tracks match {query!r}" + (f"; from {offset + 1}:" if offset else ":"))
    for k, item in enumerate(hits.items, start=offset + 1):
        echo(
            f"{k:>4}. {item['name']} — {item['artist']}  ({item['playlists']:,} playlists)  {item['uri']}"
        )
