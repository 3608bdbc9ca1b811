"""Stalled connections against `segue serve`: does /healthz still answer, is memory bounded?

    .venv/bin/python benchmarks/bench_stalled.py --model /work/scratch/demo12/models/popular \\
        --connections 20000

A real server (`python -m segue serve MODEL --port 0`) is started; ``--holders`` processes of this
script (``hold`` mode) each open their share of ``--connections`` TCP connections to it and keep
them open: half send nothing, half send the headers of a POST whose body never comes
("slowloris"). While they are held, /healthz is asked ``--probes`` times on fresh connections
(latency of each, answered or not); the server's memory is sampled before and during. After the
read deadline, the server's open connections are counted. Prints a Markdown block for
RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from bench_serve import tree_memory  # RSS and PSS of a process tree, as the load benchmark measures

SLOW_HEAD = (
    b"POST /v1/playlists HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{"
)


def raise_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def hold(url: str, count: int, seconds: float) -> None:
    """Open ``count`` connections (every other one sends half a request), print READY, hold."""
    raise_limit()
    host, port = url.removeprefix("http://").split(":")
    held, failed = [], 0
    for i in range(count):
        try:
            sock = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                sock.sendall(SLOW_HEAD)
            held.append(sock)
        except OSError:
            failed += 1
    print(f"READY {len(held)} {failed}", flush=True)
    time.sleep(seconds)
    closed = 0
    for sock in held:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    print(f"CLOSED {closed}", flush=True)


def tree_connections(pid: int) -> int:
    """Open TCP connections of the server and its workers (the listening socket excluded)."""
    root = psutil.Process(pid)
    found = set()
    for p in (root, *root.children(recursive=True)):
        try:
            found |= {
                (c.laddr, c.raddr) for c in p.net_connections(kind="tcp") if c.status != "LISTEN"
            }
        except psutil.Error:
            pass
    return len(found)


def probe(url: str) -> float | None:
    began = time.perf_counter()
    try:
        response = httpx.get(f"{url}/healthz", timeout=5)
    except httpx.HTTPError:
        return None
    return time.perf_counter() - began if response.status_code == 200 else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    holder = sub.add_parser("hold")
    holder.add_argument("--url", required=True)
    holder.add_argument("--count", type=int, required=True)
    holder.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--holders", type=int, default=2)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--read-timeout", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    args = parser.parse_args()
    if args.mode == "hold":
        hold(args.url, args.count, args.seconds)
        return 0
    raise_limit()
    log = Path("/tmp/bench-stalled-server.log")
    server = subprocess.Popen(
        [sys.executable, "-m", "segue", "serve", str(args.model), "--port", "0",
         "--read-timeout", str(args.read_timeout), "--workers", str(args.workers)],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = None
        for _ in range(600):
            match = re.search(r"on (http://127\.0\.0\.1:\d+) ", log.read_text())
            if match and probe(match.group(1)) is not None:
                url = match.group(1)
                break
            time.sleep(0.1)
        assert url, log.read_text()
        rest = tree_memory(server.pid)[0]
        hold_s = 3 * args.read_timeout + 30
        share = args.connections // args.holders
        holders = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "hold",
                    "--url",
                    url,
                    "--count",
                    str(share),
                    "--seconds",
                    str(hold_s),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.holders)
        ]
        began = time.monotonic()
        opened = failed = 0
        for h in holders:
            _, ok, bad = h.stdout.readline().split()
            opened, failed = opened + int(ok), failed + int(bad)
        ready_s = time.monotonic() - began
        latencies = [probe(url) for _ in range(args.probes)]
        during = tree_memory(server.pid)[0]
        server_conns = tree_connections(server.pid)
        time.sleep(args.read_timeout + 5)
        after = tree_connections(server.pid)
        closed = sum(int(h.stdout.readline().split()[1]) for h in holders)
        for h in holders:
            h.wait(timeout=hold_s + 60)
        answered = [x for x in latencies if x is not None]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"### Stalled connections (`benchmarks/bench_stalled.py --connections {args.connections} "
        f"--workers {args.workers}`)\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| connections opened (half silent, half a POST whose body never comes) | {opened:,} "
        f"({failed:,} refused) in {ready_s:.1f} s |\n"
        f"| server connections while held | {server_conns:,} |\n"
        f"| /healthz answered | {len(answered)} of {len(latencies)} |\n"
        f"| /healthz latency: median, max | {statistics.median(answered) * 1000:.1f} ms, "
        f"{max(answered) * 1000:.1f} ms |\n"
        f"| server RSS at rest, while held | {rest:.2f} GiB, {during:.2f} GiB |\n"
        f"| server connections {args.read_timeout + 5:g} s later (read deadline "
        f"{args.read_timeout:g} s) | {after:,} |\n"
        f"| held connections found closed by the server | {closed:,} |\n"
        f"| server tracebacks | {log.read_text().count('Traceback')} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
