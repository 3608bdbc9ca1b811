"""`segue serve`: the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segue.cli.common import app, echo


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
        echo=echo,
    )
