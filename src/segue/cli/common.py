"""What every command module shares: the ``segue`` Typer app, printing, common options."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
import typer.rich_utils

if typer.rich_utils.MAX_WIDTH is None:  # TERMINAL_WIDTH not set
    # Rich's option table cuts long option names to fit 80 columns ("--challenge-pe…"): give
    # help at least 120, so that every option shows whole.
    typer.rich_utils.MAX_WIDTH = max(120, shutil.get_terminal_size((120, 24)).columns)

app = typer.Typer(
    name="segue",
    add_completion=False,
    pretty_exceptions_enable=False,
    help="segue: continue playlists and predict next tracks — data, models, honest evaluation.",
)

Workers = Annotated[
    int | None, typer.Option(help="Worker processes (default: one per core).", min=1)
]


def echo(text: str) -> None:
    """Print one line of a command's output (stdout)."""
    typer.echo(text)


def output_dir(value: Path | None) -> Path | None:
    """``--out`` of a command that writes a directory: checked before any work is done (an
    existing file, a device or a path under a file is refused with one line)."""
    from segue.io import check_output_dir

    return None if value is None else check_output_dir(value)


def output_file(value: Path | None) -> Path | None:
    """``--out`` of a command that writes one file: absent or a regular file to replace."""
    from segue.io import check_output_file

    return None if value is None else check_output_file(value)


Track = Annotated[
    bool,
    typer.Option(
        "--track",
        help="Log parameters, metrics and outputs to MLflow (needs segue[track]; where: --track-uri).",
    ),
]
TrackUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI or a directory for a local store (implies --track; default: "
        "$MLFLOW_TRACKING_URI, else ./mlruns).",
    ),
]


def tracking(track: bool, track_uri: str | None, name: str):
    """The MLflow run of a command given ``--track``/``--track-uri`` (a context manager yielding
    a :class:`segue.tracking.Run`, or None when the command is not tracked). Entered before the
    command's work, so a missing extra or an unusable store stops it first."""
    import contextlib

    if not track and track_uri is None:
        return contextlib.nullcontext(None)
    from segue.tracking import tracked

    return tracked(track_uri, name, echo=echo)


Engine = Annotated[
    str,
    typer.Option(
        help="Where the stage runs: local (this process and its workers) or spark "
        "(needs segue[spark] and Java; see --master).",
    ),
]
Master = Annotated[
    str | None,
    typer.Option(
        help="Spark master with --engine spark: local[*] by default, or local[N], "
        "spark://HOST:PORT, yarn, k8s://URL.",
    ),
]
