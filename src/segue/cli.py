"""The ``segue`` command: one subcommand per stage. Thin: parse, call the library, print.

``main(argv)`` returns the exit status (tests call it directly): 0 success, 1 a check that found
problems (``verify``), 2 bad input or usage — printed as one clear message, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from typer.core import TyperGroup

from segue import __version__
from segue.errors import InputFileError, SegueError

app = typer.Typer(
    name="segue",
    add_completion=False,
    pretty_exceptions_enable=False,
    help="segue: continue playlists and predict next tracks — data, models, honest evaluation.",
)
generate_app = typer.Typer(
    no_args_is_help=True, help="Generate calibrated synthetic data in real formats."
)
app.add_typer(generate_app, name="generate")


class _IngestGroup(TyperGroup):
    """``segue ingest DIR --out X`` without a subcommand is ``segue ingest mpd DIR --out X``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["mpd", *args]
        return super().parse_args(ctx, args)


ingest_app = typer.Typer(
    cls=_IngestGroup,
    no_args_is_help=True,
    help=(
        "Load data into Parquet tables: MPD slices (the default: `segue ingest DIR --out X`), "
        "listening logs (`segue ingest sessions`) or the Kaggle playlist CSV (`segue ingest kaggle`)."
    ),
)
app.add_typer(ingest_app, name="ingest")

from segue.models.gnn.cli import graph_app  # noqa: E402  (typer only; torch loads in its commands)

app.add_typer(graph_app, name="graph")

Workers = Annotated[
    int | None, typer.Option(help="Worker processes (default: one per core).", min=1)
]


def _echo(text: str) -> None:
    typer.echo(text)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        _echo(f"segue {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        _echo(ctx.get_help())
        raise typer.Exit(0)
    logging.getLogger("segue").setLevel(logging.WARNING if quiet else logging.INFO)


@generate_app.command("mpd")
def generate_mpd_cmd(
    playlists: Annotated[
        int, typer.Option("--playlists", "-n", help="Number of playlists.", min=1)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for the slices.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    challenge_per_category: Annotated[
        int,
        typer.Option(
            help="Also write challenge_set.json (+ challenge_truth.json) with this many playlists per category.",
            min=0,
        ),
    ] = 0,
    workers: Workers = None,
    min_followers: Annotated[
        int,
        typer.Option(
            help="Only playlists with at least this many followers (10: the population of the real dev set, "
            "whose playlists are longer and more curated than the MPD's average).",
            min=1,
        ),
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace --out if it already holds files.")
    ] = False,
    report: Annotated[
        bool,
        typer.Option(
            help="Also measure the slices against the MPD's published figures and on "
            "structure (co-occurrence, rules, artist runs, titles): "
            "generation_report.md/.json in --out."
        ),
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            help="With --report: real playlists to put beside them "
            "(MPD slices or a `segue ingest` directory)."
        ),
    ] = None,
) -> None:
    """Write MPD-format slices (1,000 playlists per file) calibrated to the real dataset."""
    from segue.data.synthetic.mpd import generate_mpd

    if compare is not None and not report:
        raise SegueError("--compare goes with --report")
    if compare is not None and not compare.is_dir():
        raise InputFileError(compare, "not a directory of MPD slices or of `segue ingest` tables")
    start = time.perf_counter()
    s = generate_mpd(
        out,
        playlists,
        seed=seed,
        challenge_per_category=challenge_per_category,
        workers=workers,
        min_followers=min_followers,
        overwrite=overwrite,
    )
    _echo(
        f"wrote {s.n_playlists:,} playlists ({s.n_entries:,} track entries, {s.n_unique_tracks:,} unique tracks) "
        f"in {s.n_slices:,} slices to {s.out}"
        + (f", and a challenge set of {s.n_challenge:,} playlists" if s.n_challenge else "")
        + f" [{time.perf_counter() - start:.1f} s]"
    )
    if report:
        from segue.data.synthetic.calibration import REPORT_FILE, generation_report

        doc = generation_report(s.out, compare_with=compare, workers=workers)
        off = [
            r["figure"]
            for r in doc["published"]
            if r["reference"] is not None and abs(r["generated"] / r["reference"] - 1) > 0.15
        ]
        _echo(
            f"report: {s.out / REPORT_FILE}"
            + (
                f"; outside ±15% of the MPD: {', '.join(off)}"
                if off
                else "; published figures within ±15%"
            )
        )


@generate_app.command("sessions")
def generate_sessions_cmd(
    users: Annotated[int, typer.Option("--users", "-n", help="Number of listeners.", min=1)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for the CSV files.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    tracks: Annotated[
        int | None, typer.Option(help="Catalog size (default: 5 per user, 5,000–500,000).", min=1)
    ] = None,
    artists: Annotated[
        int | None, typer.Option(help="Artists (default: one per 10 tracks).", min=1)
    ] = None,
    genres: Annotated[int, typer.Option(help="Genres (Zipf popularity).", min=3)] = 35,
    overwrite: Annotated[
        bool, typer.Option(help="Replace --out if it already holds files.")
    ] = False,
) -> None:
    """Write listening sessions (casual/regular/power users, genres, skips) as the source design's CSVs."""
    from segue.data.synthetic.sessions import generate_sessions

    start = time.perf_counter()
    s = generate_sessions(
        out,
        users,
        seed=seed,
        n_tracks=tracks,
        n_artists=artists,
        n_genres=genres,
        overwrite=overwrite,
    )
    _echo(
        f"wrote {s.n_events:,} plays in {s.n_sessions:,} sessions of {s.n_users:,} users "
        f"({', '.join(f'{n:,} {t}' for t, n in s.user_types.items())}) over {s.n_tracks:,} tracks to {s.out} "
        f"[{time.perf_counter() - start:.1f} s]"
    )


@ingest_app.command("mpd")
def ingest(
    source: Annotated[Path, typer.Argument(help="Directory with mpd.slice.*.json files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")],
    workers: Workers = None,
    skip_bad: Annotated[
        bool,
        typer.Option(help="Skip unreadable or inconsistent slices (listed) instead of stopping."),
    ] = False,
) -> None:
    """Load MPD slices into Parquet tables (playlists, tracks, playlist_tracks) and a manifest."""
    from segue.data.ingest import ingest_mpd

    start = time.perf_counter()
    s = ingest_mpd(source, out, workers=workers, skip_bad=skip_bad)
    _echo(
        f"ingested {s.n_playlists:,} playlists, {s.n_tracks:,} tracks, {s.n_entries:,} entries into {s.out} "
        f"[{time.perf_counter() - start:.1f} s]"
    )
    absent = [k for k, v in s.missing_fields.items() if k != "playlist.description"]
    if absent:
        _echo(
            "fields missing in the source (reduced copy?): "
            + ", ".join(f"{k} ({s.missing_fields[k]:,} records)" for k in sorted(absent))
        )
    if s.skipped:
        _echo(f"skipped {len(s.skipped)} slice{'s' if len(s.skipped) > 1 else ''}:")
        for line in s.skipped:
            _echo(f"  - {line}")
    if s.warnings:
        _echo(
            f"{len(s.warnings)} warning{'s' if len(s.warnings) > 1 else ''} (see manifest.json); first ones:"
        )
        for line in s.warnings[:5]:
            _echo(f"  - {line}")


@ingest_app.command("sessions")
def ingest_sessions_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="Generated sessions dir, Spotify export (dir or .json), "
            "Last.fm .tsv (file or dir), or a .csv/.parquet table."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output listening dataset directory.")],
    format: Annotated[
        str, typer.Option(help="auto, generated, spotify, lastfm or table.")
    ] = "auto",
    user: Annotated[
        str | None,
        typer.Option(help="Spotify account export: the user's name (default: the folder's)."),
    ] = None,
    user_col: Annotated[
        str | None, typer.Option(help="Table: user column (default user_id).")
    ] = None,
    item_col: Annotated[
        str | None, typer.Option(help="Table: track/item column (default item_id).")
    ] = None,
    timestamp_col: Annotated[
        str | None, typer.Option(help="Table: time of each play (one play per row).")
    ] = None,
    count_col: Annotated[
        str | None, typer.Option(help="Table: play counts (no times, no sessions).")
    ] = None,
    ms_played_col: Annotated[str | None, typer.Option(help="Table: milliseconds played.")] = None,
    duration_col: Annotated[str | None, typer.Option(help="Table: track duration in ms.")] = None,
    artist_col: Annotated[str | None, typer.Option(help="Table: artist column.")] = None,
    name_col: Annotated[str | None, typer.Option(help="Table: track name column.")] = None,
    time_format: Annotated[
        str | None, typer.Option(help="Table: strftime format of the times (default: inferred).")
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            help="Table: the text tables' delimiter: one character, or tab, "
            "comma, semicolon, pipe (default: sniffed per file)."
        ),
    ] = None,
    genres: Annotated[
        Path | None,
        typer.Option(
            help="Table: a second table giving items genres or tags, one row "
            "per (item, genre) application, e.g. user_taggedartists.dat."
        ),
    ] = None,
    genre_item_col: Annotated[
        str | None, typer.Option(help="Genres table: item column (default: --item-col).")
    ] = None,
    genre_col: Annotated[
        str | None, typer.Option(help="Genres table: genre/tag column (default genre).")
    ] = None,
    genre_names: Annotated[
        Path | None,
        typer.Option(
            help="Genres table: id → name table when --genre-col holds "
            "ids (e.g. tags.dat: tagID, tagValue)."
        ),
    ] = None,
    genre_top: Annotated[
        int | None,
        typer.Option(help="Genres kept per item, most applied first (default 3).", min=1),
    ] = None,
    genre_min_count: Annotated[
        int | None, typer.Option(help="Drop genres applied fewer times overall (default 3).", min=1)
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip malformed lines/records (counted) instead of stopping.")
    ] = False,
) -> None:
    """Load listening logs: plays, 30-minute sessions, user–track edges (play count, completion, weight)."""
    from segue.data.delimited import parse_delimiter
    from segue.data.listening_exports import ingest_sessions

    start = time.perf_counter()
    s = ingest_sessions(
        source,
        out,
        format=format,
        user=user,
        skip_bad=skip_bad,
        user_col=user_col,
        item_col=item_col,
        timestamp_col=timestamp_col,
        count_col=count_col,
        ms_played_col=ms_played_col,
        duration_col=duration_col,
        artist_col=artist_col,
        name_col=name_col,
        time_format=time_format,
        delimiter=parse_delimiter(delimiter) if delimiter is not None else None,
        genres=genres,
        genre_item_col=genre_item_col,
        genre_col=genre_col,
        genre_names=genre_names,
        genre_top=genre_top,
        genre_min_count=genre_min_count,
    )
    _echo(
        f"ingested {s.n_events:,} plays ({s.format}) of {s.n_users:,} users and {s.n_tracks:,} tracks: "
        f"{s.n_sessions:,} sessions, {s.n_edges:,} user–track edges into {s.out} [{time.perf_counter() - start:.1f} s]"
    )
    if genres is not None:
        _echo(f"{s.n_genres:,} genres from {genres}")
    if not s.has_durations:
        _echo(
            "no track durations in this source: completion is unknown and edge weights use play counts alone"
        )
    if s.skipped_rows:
        _echo(f"skipped {s.skipped_rows:,} rows (see manifest.json); first ones:")
        for line in s.warnings[:5]:
            _echo(f"  - {line}")


@ingest_app.command("kaggle")
def ingest_kaggle_cmd(
    csv: Annotated[
        Path,
        typer.Argument(
            help="The Kaggle playlist CSV (user_id, artistname, trackname, playlistname)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output dataset directory (playlist tables).")
    ],
    features: Annotated[
        Path | None, typer.Option(help="Audio-features CSV to join by artist and track name.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Stop at the first malformed line instead of skipping it.")
    ] = False,
) -> None:
    """Load the Kaggle playlist CSV into the same tables as MPD ingest (plus playlist owners)."""
    from segue.data.kaggle import ingest_kaggle

    start = time.perf_counter()
    s = ingest_kaggle(csv, out, features=features, strict=strict)
    _echo(
        f"ingested {s.n_playlists:,} playlists of {s.n_users:,} users, {s.n_tracks:,} tracks, {s.n_entries:,} "
        f"entries into {s.out} [{time.perf_counter() - start:.1f} s]"
    )
    if s.features_matched is not None:
        _echo(f"audio features for {s.features_matched:,} of {s.n_tracks:,} tracks")
    if s.skipped_rows:
        _echo(f"skipped {s.skipped_rows:,} malformed rows (see manifest.json); first ones:")
        for line in s.warnings[:5]:
            _echo(f"  - {line}")


sessions_app = typer.Typer(
    no_args_is_help=True, help="Listening data: split by time, next-track models, evaluation."
)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("split")
def sessions_split_cmd(
    data: Annotated[
        Path, typer.Argument(help="Listening dataset written by `segue ingest sessions`.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Split directory to write.")],
    seed: Annotated[
        int, typer.Option(help="Seed (next-track query sample; shuffle of untimed data).")
    ] = 0,
    min_user_tracks: Annotated[
        int, typer.Option(help="Users with fewer distinct tracks stay in training only.", min=2)
    ] = 5,
    next_track_queries: Annotated[
        int, typer.Option(help="Next-track queries drawn per held-out part.", min=1)
    ] = 20_000,
) -> None:
    """Per user by time: first 70% of distinct tracks train, next 15% validation, last 15% test."""
    from segue.evaluation.sessions import split_sessions

    info = split_sessions(
        data, out, seed=seed, min_user_tracks=min_user_tracks, max_next_track=next_track_queries
    )
    c = info["counts"]
    _echo(
        f"wrote {out}: {c['held_out_users']:,} of {c['users']:,} users with held-out tracks; "
        f"{c['train_events']:,} training plays; test {c['test_edges']:,} tracks, "
        f"{c['test_next_track']:,} next-track queries"
    )


@sessions_app.command("evaluate")
def sessions_evaluate_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split directory from `segue sessions split`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for evaluation.md and evaluation.json.")
    ],
    user_model: Annotated[
        list[str] | None,
        typer.Option(
            help="Playlist models asked with each user's training "
            "tracks (default: popular, itemknn, als)."
        ),
    ] = None,
    next_model: Annotated[
        list[str] | None, typer.Option(help="Next-track models (default: popular, sknn, gru4rec).")
    ] = None,
    part: Annotated[str, typer.Option(help="test, or validation (for tuning).")] = "test",
) -> None:
    """Train and score: Recall/NDCG@10 of user recommendations, next-track HitRate@10, by user type."""
    from segue.evaluation.sessions import (
        NEXT_TRACK_MODELS,
        USER_BASELINES,
        evaluate_sessions,
        load_listening_split,
    )

    split = load_listening_split(split_dir)
    evaluation, timings = evaluate_sessions(
        split,
        user_models=user_model or USER_BASELINES,
        next_models=next_model or NEXT_TRACK_MODELS,
        part=part,
    )
    evaluation.write(out)
    _echo(evaluation.to_markdown())
    _echo("fit: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings["fit_s"].items()))


@app.command()
def verify(
    source: Annotated[Path, typer.Argument(help="Directory with mpd.slice.*.json files.")],
    challenge: Annotated[
        Path | None, typer.Option(help="Challenge set to check (default: look beside the slices).")
    ] = None,
    workers: Workers = None,
) -> None:
    """Check that an MPD directory is complete, parseable and consistent (exit 1 if not)."""
    from segue.data.verify import verify_mpd

    report = verify_mpd(source, challenge=challenge, workers=workers)
    _echo(report.format_text())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def eda(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for eda.md, eda.json and eda.png.")
    ],
) -> None:
    """Descriptive statistics of a dataset (Markdown, JSON) and the four-panel figure (PNG)."""
    from segue.analysis.eda import run_eda

    start = time.perf_counter()
    stats = run_eda(data, out)
    length = stats.get("playlist_length", {})
    _echo(f"wrote {out}/eda.md, eda.json, eda.png [{time.perf_counter() - start:.1f} s]")
    if length:
        _echo(
            f"playlists: mean length {length.get('mean', float('nan')):.1f}, median {length.get('median')}, "
            f"mode {length.get('mode')}"
        )


@app.command()
def split(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Split directory to write.")],
    per_category: Annotated[
        int, typer.Option(help="Test playlists per challenge category.", min=1)
    ] = 1000,
    validation_per_category: Annotated[
        int | None,
        typer.Option(
            help="Validation playlists per category, carved from the training part (default: --per-category).",
            min=1,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same split.")] = 0,
) -> None:
    """Hold out a challenge-style test set (10 categories) and a validation set for tuning."""
    from segue.evaluation.split import split_dataset

    info = split_dataset(
        data,
        out,
        per_category=per_category,
        validation_per_category=validation_per_category,
        seed=seed,
    )
    c = info["counts"]
    _echo(
        f"wrote {out}: train {c['train_playlists']:,} playlists; test {c['test_playlists']:,} "
        f"(10 categories); validation {c['validation_playlists']:,} carved from train "
        f"({c['validation_train_playlists']:,} left to train on while tuning)"
    )


@app.command()
def models() -> None:
    """List the available models."""
    from segue.models.registry import available

    for name, description in available():
        _echo(f"{name:<14} {description}")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model name (see `segue models`).")],
    data: Annotated[Path, typer.Argument(help="Training dataset directory (e.g. SPLIT/train).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value, repeatable.")
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
            help="hybrid only: a directory holding the components already trained on DATA (DIR/<name>), "
            "so only the tuning runs."
        ),
    ] = None,
) -> None:
    """Train a model and save it (params.json + arrays.npz, no pickle)."""
    from segue.data.dataset import PlaylistData
    from segue.models.registry import get_model_class
    from segue.tuning import read_config

    cls = get_model_class(model)
    config = read_config(cls.Config, config_file, param or [])
    start = time.perf_counter()
    if components_from is None:
        fitted = cls(config).fit(PlaylistData.load(data))
    elif not hasattr(cls, "fit_from"):
        raise SegueError(
            f"--components-from: {model} has no components (only hybrid and rerank do)"
        )
    else:
        fitted = cls(config)
        try:
            fitted.fit_from_directory(PlaylistData.load(data), components_from)
        except SegueError as exc:
            raise SegueError(f"--components-from: {exc}") from None
    fitted.save(out)
    _echo(f"trained {model} on {data} in {time.perf_counter() - start:.1f} s; saved to {out}")
    training = getattr(fitted, "training_log", None) or {}
    if training.get("epochs_run"):
        curve = [
            r["validation_hit_rate"] for r in training["history"] if "validation_hit_rate" in r
        ]
        _echo(
            f"{training['epochs_run']} epochs ({training['stopped']}); best epoch {training['best_epoch']}"
            + (
                f"; validation HitRate@10 by epoch: {', '.join(f'{v:.4f}' for v in curve)}"
                if curve
                else ""
            )
        )
    if hasattr(fitted, "describe_weights"):
        from segue.evaluation.split import group_label
        from segue.models.hybrid import MIN_GROUP_QUERIES

        _echo("weights per query group (validation playlists tuned on):")
        for label, weights, tuned in fitted.describe_weights():
            _echo(
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
        _echo(
            f"ranker: {len(fitted.curve)} trees run, best {int(np.argmax(fitted.curve)) + 1} kept "
            f"(validation NDCG@100 {fitted.curve.max():.4f}); recall of held-out tracks among the candidates: "
            + ", ".join(
                f"{r:.3f} at {n:,}"
                for n, r in zip((500, 1000, 2000), fitted.candidate_recall, strict=True)
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
        Path | None, typer.Option("--out", "-o", help="Output directory (default: tuning/MODEL).")
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
    from segue.tuning import LISTENING_MODELS, config_class, params_from_pairs
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
    _echo(
        f"best {result['metric']} {result['best_value']:.4f} (trial {result['best_trial']} of {result['n_trials']}; "
        f"{result['new_trials']} run now, {result['n_skipped']} skipped in all)"
    )
    _echo("  " + "  ".join(f"{k}={v}" for k, v in result["best_params"].items()))
    if result["importances"]:
        _echo("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    paths = result["paths"]
    _echo(
        f"wrote {paths['best.json']}, {paths['trials.csv']}, {paths['history.png']}, {paths['importance.png']}; "
        f"study in {paths['study.db']} (run again to add trials)"
    )
    if model in LISTENING_MODELS:
        _echo(
            f"train it: segue graph train {model} {split_dir} --config {paths['best.json']} --out ..."
        )
    else:
        _echo(
            f"train it: segue train {model} {Path(split_dir) / 'train'} --config {paths['best.json']} --out ..."
        )


@app.command()
def recommend(
    model_dir: Annotated[Path, typer.Argument(help="A trained model directory.")],
    challenge: Annotated[
        Path | None, typer.Option(help="challenge_set.json to answer (writes a submission).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Submission file (.csv.gz or .csv).")
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
    _echo(
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
            _echo(
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
        _echo(f"{rank:>4}. {label}  [{shown}]")
        if e is not None:
            _echo(f"      {e.text}")


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
    _echo(f"tracks to play with {model.track_labels([track_id])[0]} ({model.name}):")
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
    _echo(report.format_text())
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
        Path, typer.Option("--out", "-o", help="Directory for evaluation.md/.json and figures.")
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
    _echo(
        f"scored {len(rankings)} ranking{'s' if len(rankings) > 1 else ''} on {len(loaded.entries):,} "
        f"playlists in {time.perf_counter() - start:.1f} s; report in {out}/evaluation.md"
    )
    _echo(result.headline())


@app.command()
def rules(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for rules.parquet, rules.md, summary.json."),
    ],
    min_support: Annotated[
        float, typer.Option(help="Least share of playlists holding a whole rule, in (0, 1].")
    ] = 0.001,
    min_confidence: Annotated[float, typer.Option(help="Least confidence, in [0, 1].")] = 0.1,
    min_lift: Annotated[float, typer.Option(help="Least lift (1 = independent).")] = 1.2,
    max_len: Annotated[
        int, typer.Option(help="Most tracks in a rule, antecedent and consequent together.")
    ] = 3,
    top: Annotated[int, typer.Option(help="Rules listed per table of rules.md.")] = 50,
) -> None:
    """Association rules between tracks (FP-growth): support, confidence, lift, leverage, conviction."""
    from segue.mining.rules import RuleThresholds, mine_rules

    s = mine_rules(
        data, out, RuleThresholds(min_support, min_confidence, min_lift, max_len), top=top
    )
    _echo(
        f"wrote {s['n_rules']:,} rules over {s['n_frequent_tracks']:,} frequent tracks "
        f"(≥ {s['min_count']:,} of {s['n_playlists']:,} playlists) to {out}/rules.parquet and rules.md "
        f"[{s['seconds']:.1f} s]"
    )


@app.command()
def serve(
    model_dirs: Annotated[
        list[Path], typer.Argument(help="Trained model directories (the first is the default).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port (0: any free one; the address is printed).", min=0, max=65535)
    ] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes sharing the loaded models.", min=1)
    ] = 1,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the logs of live additions (default: each model's live/ folder)."
        ),
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            help="evaluation.json from `segue evaluate`: metrics shown by GET /v1/models."
        ),
    ] = None,
    max_body_kb: Annotated[
        int, typer.Option(help="Largest request body in KiB (larger: 413).", min=1)
    ] = 256,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve models over HTTP: continuation with explanations, search, live updates, and a web page."""
    from segue.serve.server import serve as run_server

    run_server(
        model_dirs,
        host=host,
        port=port,
        workers=workers,
        state_dir=state,
        evaluation=evaluation,
        max_body_bytes=max_body_kb * 1024,
        access_log=access_log,
        echo=_echo,
    )


@app.command()
def cluster(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for assignments, profiles, report and figures."
        ),
    ],
    k: Annotated[
        str, typer.Option(help="Number of clusters, or 'auto' to choose by silhouette.")
    ] = "auto",
    k_min: Annotated[int, typer.Option(help="Smallest k tried by --k auto.")] = 5,
    k_max: Annotated[int, typer.Option(help="Largest k tried by --k auto.")] = 30,
    max_features: Annotated[int, typer.Option(help="TF-IDF vocabulary size.")] = 5000,
    min_df: Annotated[int, typer.Option(help="Least playlists a term must be in.")] = 10,
    svd_components: Annotated[
        int, typer.Option(help="Dimensions after truncated SVD (0: cluster TF-IDF rows).")
    ] = 100,
    sample_size: Annotated[int, typer.Option(help="Playlists in the silhouette sample.")] = 5000,
    plot_sample: Annotated[
        int, typer.Option(help="Playlists in the PCA and t-SNE figures.")
    ] = 2000,
    themes: Annotated[
        Path | None,
        typer.Option(
            help="latent_themes.parquet to compare with (default: beside the source slices)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same clusters.")
    ] = 0,
) -> None:
    """Cluster playlists by TF-IDF of titles, track and artist names (MiniBatchKMeans; k by silhouette)."""
    from segue.mining.clusters import ClusterSettings, cluster_playlists

    if k != "auto" and not k.isdigit():
        raise SegueError(f"--k must be 'auto' or a whole number, got {k!r}")
    settings = ClusterSettings(
        k=None if k == "auto" else int(k),
        k_min=k_min,
        k_max=k_max,
        max_features=max_features,
        min_df=min_df,
        svd_components=svd_components,
        sample_size=sample_size,
        plot_sample=plot_sample,
        seed=seed,
    )
    s = cluster_playlists(data, out, settings=settings, themes=themes)
    _echo(
        f"clustered {s['n_playlists']:,} playlists into k = {s['k']} ({s['k_chosen_by']}); "
        f"report in {out}/clusters.md [{s['seconds']:.1f} s]"
    )
    if s["themes"]:
        t = s["themes"]
        _echo(
            f"agreement with the generator's themes (AMI): genre {t['ami_genre']:.3f}, "
            f"context {t['ami_context']:.3f}, genre × context {t['ami_genre_context']:.3f}"
        )


@app.command()
def diversity(
    model_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Model directories trained on the split.")
    ] = None,
    split_dir: Annotated[
        Path, typer.Option("--split", help="Split directory from `segue split`.")
    ] = Path("split"),
    submission: Annotated[
        list[Path] | None, typer.Option(help="Submission files to analyse, repeatable.")
    ] = None,
    part: Annotated[str, typer.Option(help="test, or validation.")] = "test",
    cutoff: Annotated[
        list[int] | None, typer.Option(help="List cut-offs k, repeatable (default 10 and 500).")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for diversity.md/.csv/.json and figures.")
    ] = Path("diversity"),
) -> None:
    """Coverage, artist diversity, novelty, popularity bias and long-tail share per challenge category."""
    from segue.analysis.diversity import analyse_diversity

    doc = analyse_diversity(
        split_dir,
        out,
        model_dirs=model_dirs or [],
        submissions=submission or [],
        part=part,
        cutoffs=cutoff or (10, 500),
    )
    _echo(
        f"analysed {len(doc['models'])} list set{'s' if len(doc['models']) > 1 else ''} on {doc['n_queries']:,} "
        f"playlists at k = {', '.join(map(str, doc['cutoffs']))}; report in {out}/diversity.md "
        f"[{doc['seconds']:.1f} s]"
    )


@app.command("popularity-model")
def popularity_model_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for popularity.md/.json, figures, predictions."
        ),
    ],
    cut: Annotated[
        str | None,
        typer.Option(help="Cut date (YYYY-MM-DD, UTC) or unix seconds; default: --cut-quantile."),
    ] = None,
    cut_quantile: Annotated[
        float, typer.Option(help="Cut at this quantile of modified_at when --cut is not given.")
    ] = 0.75,
    test_share: Annotated[
        float, typer.Option(help="Share of tracks held out to score the models.")
    ] = 0.2,
    max_train_tracks: Annotated[
        int, typer.Option(help="Training tracks the random forest sees (a sample).")
    ] = 100_000,
    n_estimators: Annotated[
        int, typer.Option(help="Trees per model (LightGBM gets twice as many rounds).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Predict tracks' later popularity from earlier playlists (random forest, LightGBM) vs baselines."""
    from datetime import UTC, datetime

    from segue.analysis.predictive import PopularitySettings, popularity_model

    cut_s = None
    if cut is not None:
        try:
            cut_s = (
                int(cut)
                if cut.isdigit()
                else int(datetime.strptime(cut, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
            )
        except ValueError:
            raise SegueError(
                f"--cut must be a date YYYY-MM-DD or unix seconds, got {cut!r}"
            ) from None
    settings = PopularitySettings(
        cut=cut_s,
        cut_quantile=cut_quantile,
        test_share=test_share,
        max_train_tracks=max_train_tracks,
        n_estimators=n_estimators,
        seed=seed,
    )
    s = popularity_model(data, out, settings=settings)
    _echo(
        f"cut {s['cut_date']}: {s['n_before']:,} earlier / {s['n_after']:,} later playlists; "
        f"{s['test_tracks']:,} test tracks; report in {out}/popularity.md [{s['seconds']:.1f} s]"
    )
    for name, v in s["scores"].items():
        _echo(
            f"  {name:<40} R² {v['r2']:7.4f}   Spearman {v['spearman']:7.4f}   top-1% precision {v['top_precision']:.3f}"
        )


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for everything the demo makes.")
    ] = Path("demo"),
    playlists: Annotated[int, typer.Option(help="Generated playlists.", min=1000)] = 30_000,
    min_followers: Annotated[
        int,
        typer.Option(
            help="Generate only playlists with this many followers or more (10: the real dev set's population; "
            "1: the MPD's average playlist).",
            min=1,
        ),
    ] = 10,
    users: Annotated[
        int, typer.Option(help="Generated listeners for the session models (0: none).", min=0)
    ] = 1_000,
    per_category: Annotated[
        int, typer.Option(help="Challenge and test playlists per category.", min=1)
    ] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Workers = None,
    jobs: Annotated[
        int, typer.Option(help="Stages run side by side in phase 3 (1: one at a time).", min=1)
    ] = 2,
    force: Annotated[
        bool, typer.Option(help="Run every stage, even those whose inputs did not change.")
    ] = False,
) -> None:
    """The main job on generated data: every phase, the evaluation, the report (stages already done are skipped)."""
    from segue.pipeline import run_demo

    result = run_demo(
        out,
        playlists=playlists,
        users=users,
        per_category=per_category,
        seed=seed,
        workers=workers,
        echo=_echo,
        force=force,
        jobs=jobs,
        min_followers=min_followers,
    )
    _finish_message(result)


@app.command()
def pipeline(
    phase: Annotated[
        str,
        typer.Argument(
            help="phase1 (data), phase2 (mining, neighbourhood models), "
            "phase3 (factors, hybrid, graphs, sessions), or all."
        ),
    ],
    data: Annotated[Path, typer.Option(help="Directory of MPD slices (mpd.slice.*.json).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Directory for every stage's output, logs and the report."
        ),
    ],
    challenge: Annotated[
        Path | None, typer.Option(help="challenge_set.json to answer (default: beside the slices).")
    ] = None,
    sessions: Annotated[
        Path | None,
        typer.Option(
            help="Listening data for the session models (a Spotify export, "
            "Last.fm TSV or a table; see `segue ingest sessions`)."
        ),
    ] = None,
    sessions_format: Annotated[
        str, typer.Option(help="Format of --sessions (auto, generated, spotify, lastfm, table).")
    ] = "auto",
    per_category: Annotated[
        int, typer.Option(help="Test (and validation) playlists per challenge category.", min=1)
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Workers = None,
    jobs: Annotated[
        int, typer.Option(help="Stages run side by side in phase 3 (1: one at a time).", min=1)
    ] = 2,
    force: Annotated[
        bool, typer.Option(help="Run every stage, even those whose inputs did not change.")
    ] = False,
) -> None:
    """Run the phases on real data (resumable; logs in OUT/logs; report in OUT/report)."""
    from segue.pipeline import PHASES, Settings, run_pipeline

    phases = list(PHASES) if phase == "all" else [phase]
    settings = Settings(
        out=out,
        mpd=data,
        challenge=challenge,
        sessions=sessions,
        sessions_format=sessions_format,
        per_category=per_category,
        seed=seed,
        workers=workers,
        jobs=jobs,
    )
    if not data.is_dir():
        raise SegueError(f"--data {data}: not a directory of MPD slices")
    _finish_message(run_pipeline(settings, phases, echo=_echo, force=force))


def _finish_message(result) -> None:
    out = result.settings.out
    runner = result.runner
    ran = [r for r in runner.results.values() if r.status == "ran"]
    _echo("")
    _echo(
        f"{len(runner.results)} stages: {len(ran)} ran ({sum(r.seconds for r in ran):.0f} s), "
        f"{len(runner.results) - len(ran)} unchanged and skipped; peak memory "
        f"{max((r.peak_rss_gib for r in runner.results.values()), default=0):.2f} GiB"
    )
    if result.evaluation is not None:
        _echo("")
        _echo(f"Held-out evaluation ({out}/evaluation/evaluation.md):")
        _echo(result.evaluation.headline())
    _echo("")
    _echo(f"Report: {out}/report/index.html (and report.md); logs: {out}/logs/")


def _not_a_bar_line(record: logging.LogRecord) -> bool:
    """The terminal handler's filter: drop progress lines a rich bar already shows."""
    return not getattr(record, "segue_bar", False)


def _configure_logging() -> None:
    logger = logging.getLogger("segue")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        # Progress lines a rich bar already shows on the terminal (they still reach log files).
        handler.addFilter(_not_a_bar_line)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    _configure_logging()
    try:
        # Standalone mode: typer prints usage errors itself and exits 2 through SystemExit.
        app(args=argv, prog_name="segue")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SegueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
