"""`segue generate`, `segue ingest`, `segue sessions`, `segue verify`, `segue eda`, `segue split`: data in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from segue.cli.common import Engine, Master, Workers, app, echo, output_dir
from segue.errors import InputFileError, SegueError

generate_app = typer.Typer(
    no_args_is_help=True, help="Generate calibrated synthetic data in real formats."
)
app.add_typer(generate_app, name="generate")


class _IngestGroup(TyperGroup):
    """``segue ingest DIR --out X`` without a subcommand is ``segue ingest mpd DIR --out X``;
    so is ``segue ingest mpd --out X`` when ``mpd`` is a folder here (a subcommand always
    needs its source before the options)."""

    def parse_args(self, ctx, args):
        folder = (
            bool(args)
            and args[0] in self.commands
            and Path(args[0]).is_dir()
            and (len(args) == 1 or args[1].startswith("-"))
        )
        if args and (folder or args[0] not in self.commands) and args[0] not in ("--help", "-h"):
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


@generate_app.command("mpd")
def generate_mpd_cmd(
    playlists: Annotated[
        int, typer.Option("--playlists", "-n", help="Number of playlists.", min=1)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", callback=output_dir, help="Output directory for the slices."),
    ],
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
        bool,
        typer.Option(
            hidden=True,
            help="No longer needed: --out is replaced when segue wrote it (kept for old scripts).",
        ),
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
    del overwrite  # accepted so that old scripts still run
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
    )
    echo(
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
        echo(
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
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Output directory for the CSV files."
        ),
    ],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    tracks: Annotated[
        int | None, typer.Option(help="Catalog size (default: 5 per user, 5,000–500,000).", min=1)
    ] = None,
    artists: Annotated[
        int | None, typer.Option(help="Artists (default: one per 10 tracks).", min=1)
    ] = None,
    genres: Annotated[int, typer.Option(help="Genres (Zipf popularity).", min=3)] = 35,
    overwrite: Annotated[
        bool,
        typer.Option(
            hidden=True,
            help="No longer needed: --out is replaced when segue wrote it (kept for old scripts).",
        ),
    ] = False,
) -> None:
    """Write listening sessions (casual/regular/power users, genres, skips) as the source design's CSVs."""
    del overwrite  # accepted so that old scripts still run
    from segue.data.synthetic.sessions import generate_sessions

    start = time.perf_counter()
    s = generate_sessions(
        out,
        users,
        seed=seed,
        n_tracks=tracks,
        n_artists=artists,
        n_genres=genres,
    )
    echo(
        f"wrote {s.n_events:,} plays in {s.n_sessions:,} sessions of {s.n_users:,} users "
        f"({', '.join(f'{n:,} {t}' for t, n in s.user_types.items())}) over {s.n_tracks:,} tracks to {s.out} "
        f"[{time.perf_counter() - start:.1f} s]"
    )


@ingest_app.command("mpd")
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="Directory with mpd.slice.*.json files (with --engine spark also any URI Spark "
            "reads: hdfs://…, s3a://…)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", callback=output_dir, help="Output dataset directory.")
    ],
    workers: Workers = None,
    skip_bad: Annotated[
        bool,
        typer.Option(help="Skip unreadable or inconsistent slices (listed) instead of stopping."),
    ] = False,
    engine: Engine = "local",
    master: Master = None,
) -> None:
    """Load MPD slices into Parquet tables (playlists, tracks, playlist_tracks) and a manifest."""
    from segue.models.config import RunOptions

    RunOptions(engine=engine, master=master)  # checks both before any work
    start = time.perf_counter()
    if engine == "spark":
        from segue.spark.ingest import ingest_mpd_spark

        if workers is not None:
            raise SegueError("--workers is for the local engine; on Spark, --master sets it")

        s = ingest_mpd_spark(source, out, skip_bad=skip_bad, master=master)
    else:
        from segue.data.ingest import ingest_mpd

        if "://" in source:
            raise InputFileError(
                source, "a URI is read by --engine spark; locally, give a directory"
            )
        s = ingest_mpd(Path(source), out, workers=workers, skip_bad=skip_bad)
    echo(
        f"ingested {s.n_playlists:,} playlists, {s.n_tracks:,} tracks, {s.n_entries:,} entries into {s.out} "
        f"[{time.perf_counter() - start:.1f} s]"
    )
    absent = [k for k, v in s.missing_fields.items() if k != "playlist.description"]
    if absent:
        echo(
            "fields missing in the source (reduced copy?): "
            + ", ".join(f"{k} ({s.missing_fields[k]:,} records)" for k in sorted(absent))
        )
    if s.skipped:
        echo(f"skipped {len(s.skipped)} slice{'s' if len(s.skipped) > 1 else ''}:")
        for line in s.skipped:
            echo(f"  - {line}")
    if s.warnings:
        echo(
            f"{len(s.warnings)} warning{'s' if len(s.warnings) > 1 else ''} (see manifest.json); first ones:"
        )
        for line in s.warnings[:5]:
            echo(f"  - {line}")
        echo(
            "ingest keeps these playlists (their tracks are the truth: a count, a length or a "
            "pid out of the MPD's rules does not stop a model from learning them; only a repeated "
            "pid, which breaks the keys, refuses a slice); `segue verify` holds the files to the "
            "MPD's own rules and rejects them"
        )


@ingest_app.command("sessions")
def ingest_sessions_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="Generated sessions dir, Spotify export (dir or .json), "
            "Last.fm .tsv (file or dir), or a .csv/.parquet table."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Output listening dataset directory."
        ),
    ],
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
    echo(
        f"ingested {s.n_events:,} plays ({s.format}) of {s.n_users:,} users and {s.n_tracks:,} tracks: "
        f"{s.n_sessions:,} sessions, {s.n_edges:,} user–track edges into {s.out} [{time.perf_counter() - start:.1f} s]"
    )
    if genres is not None:
        echo(f"{s.n_genres:,} genres from {genres}")
    if not s.has_durations:
        echo(
            "no track durations in this source: completion is unknown and edge weights use play counts alone"
        )
    if s.skipped_rows:
        echo(f"skipped {s.skipped_rows:,} rows (see manifest.json); first ones:")
        for line in s.warnings[:5]:
            echo(f"  - {line}")
        echo(
            "ingest keeps these playlists (their tracks are the truth: a count, a length or a "
            "pid out of the MPD's rules does not stop a model from learning them; only a repeated "
            "pid, which breaks the keys, refuses a slice); `segue verify` holds the files to the "
            "MPD's own rules and rejects them"
        )


@ingest_app.command("kaggle")
def ingest_kaggle_cmd(
    csv: Annotated[
        Path,
        typer.Argument(
            help="The Kaggle playlist CSV (user_id, artistname, trackname, playlistname)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Output dataset directory (playlist tables)."
        ),
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
    echo(
        f"ingested {s.n_playlists:,} playlists of {s.n_users:,} users, {s.n_tracks:,} tracks, {s.n_entries:,} "
        f"entries into {s.out} [{time.perf_counter() - start:.1f} s]"
    )
    if s.features_matched is not None:
        echo(f"audio features for {s.features_matched:,} of {s.n_tracks:,} tracks")
    if s.skipped_rows:
        echo(f"skipped {s.skipped_rows:,} malformed rows (see manifest.json); first ones:")
        for line in s.warnings[:5]:
            echo(f"  - {line}")
        echo(
            "ingest keeps these playlists (their tracks are the truth: a count, a length or a "
            "pid out of the MPD's rules does not stop a model from learning them; only a repeated "
            "pid, which breaks the keys, refuses a slice); `segue verify` holds the files to the "
            "MPD's own rules and rejects them"
        )


sessions_app = typer.Typer(
    no_args_is_help=True,
    help="Listening data: split by time, next-track models, evaluation.",
)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("split")
def sessions_split_cmd(
    data: Annotated[
        Path, typer.Argument(help="Listening dataset written by `segue ingest sessions`.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", callback=output_dir, help="Split directory to write.")
    ],
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
    echo(
        f"wrote {out}: {c['held_out_users']:,} of {c['users']:,} users with held-out tracks; "
        f"{c['train_events']:,} training plays; test {c['test_edges']:,} tracks, "
        f"{c['test_next_track']:,} next-track queries"
    )


@sessions_app.command("evaluate")
def sessions_evaluate_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split directory from `segue sessions split`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            callback=output_dir,
            help="Directory for evaluation.md and evaluation.json.",
        ),
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
    echo(evaluation.to_markdown())
    echo("fit: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings["fit_s"].items()))


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
    echo(report.format_text())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def eda(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Directory for eda.md, eda.json and eda.png."
        ),
    ],
) -> None:
    """Descriptive statistics of a dataset (Markdown, JSON) and the four-panel figure (PNG)."""
    from segue.analysis.eda import run_eda

    start = time.perf_counter()
    stats = run_eda(data, out)
    length = stats.get("playlist_length", {})
    echo(f"wrote {out}/eda.md, eda.json, eda.png [{time.perf_counter() - start:.1f} s]")
    if length:
        echo(
            f"playlists: mean length {length.get('mean', float('nan')):.1f}, median {length.get('median')}, "
            f"mode {length.get('mode')}"
        )


@app.command()
def split(
    data: Annotated[Path, typer.Argument(help="Dataset directory written by `segue ingest`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", callback=output_dir, help="Split directory to write.")
    ],
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
    echo(
        f"wrote {out}: train {c['train_playlists']:,} playlists; test {c['test_playlists']:,} "
        f"(10 categories); validation {c['validation_playlists']:,} carved from train "
        f"({c['validation_train_playlists']:,} left to train on while tuning)"
    )
