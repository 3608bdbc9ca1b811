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

from segue.serve.app import DEFAULT_MAX_BODY, LOOPBACK_HOSTS, create_app
from segue.serve.connections import READ_TIMEOUT, guarded_protocol, raise_descriptor_limit
from segue.serve.service import Service

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) is this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _address_names(host: str) -> tuple[str, ...]:
    """How clients name ``host`` in a Host header: itself (IPv6 in brackets); nothing for the
    wildcard addresses, which name no host (give those names with ``--allow-host``)."""
    if host in ("0.0.0.0", "::", ""):
        return ()
    return (f"[{host}]",) if ":" in host else (host,)


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
    allow_hosts: tuple[str, ...] = (),
    token: str | None = None,
    read_timeout: float = READ_TIMEOUT,
    max_connections: int | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Load the models, print the address, serve until interrupted.

    The service answers to loopback names, the ``host`` address and ``allow_hosts``; writes
    need ``token`` when one is given, and are refused when it listens beyond loopback without
    one (anyone who can reach the port could otherwise teach the models). A client has
    ``read_timeout`` seconds to send each request; past ``max_connections`` open connections
    (default: the process's file descriptors less a reserve), the longest-stalled are closed
    (:mod:`segue.serve.connections`)."""
    import uvicorn

    service = Service.load(model_dirs, state_dir=state_dir, evaluation=evaluation)
    hosts = (*LOOPBACK_HOSTS, *_address_names(host), *allow_hosts)
    if token is None and not is_loopback(host):
        service.writes_refused = (
            f"this service listens on {host} without a token, so it takes no writes; restart it "
            "with --token (or SEGUE_TOKEN) and send Authorization: Bearer TOKEN"
        )
    app = create_app(service, max_body_bytes=max_body_bytes, allowed_hosts=hosts, token=token)
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
    raise_descriptor_limit()
    config = uvicorn.Config(
        app,
        http=guarded_protocol(read_timeout, max_connections),
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_keep_alive=int(max(1, read_timeout)),
        lifespan="off",
        server_header=False,
    )
    if workers <= 1:
        _limit_threads()
        _run(uvicorn.Server(config), sock)
        return
    _supervise(lambda: _fork_worker(config, sock), workers)


MAX_RESTARTS = 10  # worker deaths within RESTART_WINDOW seconds before the service gives up
RESTART_WINDOW = 60.0


def _fork_worker(config, sock: socket.socket) -> int:
    """A forked worker serving on ``sock`` until signalled (it never returns into the CLI, and
    it dies with the parent: a ``kill -9`` of the parent must not leave the port taken)."""
    import uvicorn

    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _die_with_parent(parent)
        _limit_threads()
        _run(uvicorn.Server(config), sock)
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def _supervise(start: Callable[[], int], workers: int) -> None:
    """Keep ``workers`` workers running until SIGINT/SIGTERM (passed on to them): a worker that
    dies is logged and replaced, unless workers die more than :data:`MAX_RESTARTS` times in
    :data:`RESTART_WINDOW` seconds (then the service stops, saying so)."""
    import time

    children = {start() for _ in range(workers)}
    stopping = False
    deaths: list[float] = []

    def forward(signum, frame):
        nonlocal stopping
        stopping = True
        for child in list(children):
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if stopping:
            continue
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
        how = (
            f"was killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exited with status {os.WEXITSTATUS(status)}"
        )
        if len(deaths) > MAX_RESTARTS:
            log.error("worker %d %s; too many worker deaths, stopping the service", pid, how)
            forward(signal.SIGTERM, None)
            continue
        child = start()
        children.add(child)
        log.warning("worker %d %s; started worker %d in its place", pid, how, child)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG);
    elsewhere nothing. If the parent is already gone, stop now."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(0)


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
