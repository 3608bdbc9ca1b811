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
            help="Folder for the logs of live additions (default: MODEL.live beside each model "
            "directory, so a retrain in place keeps them)."
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Another Host name the service answers to (repeatable; '*': any). Loopback "
            "names and the --host address always are."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SEGUE_TOKEN",
            help="Writes (POST /v1/playlists) need 'Authorization: Bearer TOKEN'. Without one, "
            "a service listening beyond loopback refuses writes.",
        ),
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            help="evaluation.json from `segue evaluate`: metrics shown by GET /v1/models."
        ),
    ] = None,
    read_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send each request (headers and body); slower "
            "connections are closed.",
            min=0.1,
        ),
    ] = 10.0,
    max_connections: Annotated[
        int | None,
        typer.Option(
            help="Open connections per worker before the longest-stalled are closed (default: "
            "the open-file limit less a reserve).",
            min=16,
        ),
    ] = None,
    max_body_kb: Annotated[
        int, typer.Option(help="Largest request body in KiB (larger: 413).", min=1)
    ] = 256,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve models over HTTP: continuation with explanations, search, live updates, and a web page."""
    from segue.models.registry import require_extra

    require_extra(("fastapi", "uvicorn", "fastapi_offline"), "serve", "segue serve")
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
        allow_hosts=tuple(allow_host or ()),
        token=token,
        read_timeout=read_timeout,
        max_connections=max_connections,
        echo=echo,
    )
