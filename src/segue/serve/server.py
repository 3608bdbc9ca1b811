"""Run the service: load once, bind, then serve with uvicorn in one or more worker processes.

The socket is bound here, before uvicorn starts, so ``--port 0`` picks a free port and the
address can be printed (tests and the load benchmark read it from the first line of output).

With ``workers > 1`` the models are loaded once and the process forks: the workers share the
loaded arrays copy-on-write (a 1M-playlist item-kNN model is not held twice) and accept on the
same socket. Live additions reach every worker through the log (``live.py``). The parent only
waits, and passes SIGINT/SIGTERM on to the workers.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from segue.serve.app import DEFAULT_MAX_BODY, create_app
from segue.serve.service import Service

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from segue.errors import SegueError

        raise SegueError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    model_dirs: list[Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    state_dir: Path | None = None,
    evaluation: Path | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    access_log: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Load the models, print the address, serve until interrupted."""
    import uvicorn

    service = Service.load(model_dirs, state_dir=state_dir, evaluation=evaluation)
    app = create_app(service, max_body_bytes=max_body_bytes)
    # Everything loaded so far lives as long as the process: keep the garbage collector from
    # walking it on every full collection (that walk over millions of catalog objects showed up as
    # 80-100 ms stalls at p99), and from touching its pages in forked workers (copy-on-write).
    gc.collect()
    gc.freeze()
    sock = bind(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    url = f"http://{shown}:{address[1]}"
    echo(
        f"serving {', '.join(service.models)} on {url} (page: {url}/ , API docs: {url}/docs); "
        f"{workers} worker{'s' if workers > 1 else ''}; Ctrl-C stops"
    )
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_keep_alive=30,
        lifespan="off",
        server_header=False,
    )
    if workers <= 1:
        _limit_threads()
        _run(uvicorn.Server(config), sock)
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until signalled, never return into the CLI
            code = 0
            try:
                _limit_threads()
                _run(uvicorn.Server(config), sock)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()

    def forward(signum, frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue


def _run(server, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM, then return normally (a stop is not an error).

    uvicorn shuts down gracefully on either signal and then re-raises it with the handler that
    was in place before; these handlers make that a clean exit instead of death by signal.
    """

    def stop(signum, frame):
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _limit_threads() -> None:
    """One BLAS/OpenMP thread per worker: requests are small, and workers share the cores."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl is a dependency; a missing native library is not fatal
        pass
