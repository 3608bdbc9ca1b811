"""What every command module shares: the ``segue`` Typer app, printing, common options."""

from __future__ import annotations

from typing import Annotated

import typer

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
