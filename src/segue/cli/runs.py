"""`segue demo` and `segue pipeline`: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segue.cli.common import (
    Engine,
    Master,
    Track,
    TrackUri,
    Workers,
    app,
    echo,
    output_dir,
    tracking,
)
from segue.errors import SegueError

# The options `segue demo` and `segue pipeline` share.
Jobs = Annotated[
    int, typer.Option(help="Stages run side by side in phase 3 (1: one at a time).", min=1)
]
Force = Annotated[
    bool, typer.Option(help="Run every stage, even those whose inputs did not change.")
]


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=output_dir, help="Directory for everything the demo makes."
        ),
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
    jobs: Jobs = 2,
    force: Force = False,
    track: Track = False,
    track_uri: TrackUri = None,
) -> None:
    """The main job on generated data: every phase, the evaluation, the report (stages already done are skipped)."""
    from segue.pipeline import run_demo

    with tracking(track, track_uri, "demo") as tracked:
        result = run_demo(
            out,
            playlists=playlists,
            users=users,
            per_category=per_category,
            seed=seed,
            workers=workers,
            echo=echo,
            force=force,
            jobs=jobs,
            min_followers=min_followers,
        )
        _finish_message(result)
        if tracked is not None:
            from segue.tracking import log_pipeline

            settings = {"playlists": playlists, "min_followers": min_followers, "users": users}
            log_pipeline(tracked, result, {**settings, "per_category": per_category, "seed": seed})


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
    jobs: Jobs = 2,
    force: Force = False,
    engine: Engine = "local",
    master: Master = None,
    track: Track = False,
    track_uri: TrackUri = None,
) -> None:
    """Run the phases on real data (resumable; logs in OUT/logs; report in OUT/report)."""
    from segue.models.config import RunOptions
    from segue.pipeline import PHASES, Settings, run_pipeline

    RunOptions(engine=engine, master=master)  # checked before any stage runs
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
        engine=engine,
        master=master,
    )
    if not data.is_dir():
        raise SegueError(f"--data {data}: not a directory of MPD slices")
    with tracking(track, track_uri, f"pipeline {phase}") as tracked:
        result = run_pipeline(settings, phases, echo=echo, force=force)
        _finish_message(result)
        if tracked is not None:
            from segue.tracking import log_pipeline

            log_pipeline(
                tracked,
                result,
                {"phase": phase, "data": data, "per_category": per_category, "seed": seed},
            )


def _finish_message(result) -> None:
    out = result.settings.out
    runner = result.runner
    ran = [r for r in runner.results.values() if r.status == "ran"]
    echo("")
    echo(
        f"{len(runner.results)} stages: {len(ran)} ran ({sum(r.seconds for r in ran):.0f} s), "
        f"{len(runner.results) - len(ran)} unchanged and skipped; peak memory "
        f"{max((r.peak_rss_gib for r in runner.results.values()), default=0):.2f} GiB"
    )
    if result.evaluation is not None:
        echo("")
        echo(f"Held-out evaluation ({out}/evaluation/evaluation.md):")
        echo(result.evaluation.headline())
    echo("")
    echo(f"Report: {out}/report/index.html (and report.md); logs: {out}/logs/")
