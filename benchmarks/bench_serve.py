"""Service figures: latency, throughput, errors and memory of `segue serve` under load.

    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_serve.py \\
        --model /work/data1m/models/itemknn --queries /work/data1m/mpd/challenge_set.json

A real server (`python -m segue serve`, uvicorn on loopback) is started as a subprocess; the load
comes from a second process (this script's ``client`` mode): plain HTTP/1.1 keep-alive
connections on asyncio, each request a challenge-set playlist (its seed tracks and title, all ten
categories interleaved in a seeded order) asking for ``--n`` recommendations with explanations.
Every response is checked (status 200 and exactly ``n`` "because" lines; every tenth is parsed
whole: ``n`` items, each with its line and evidence), so "errors" counts wrong answers too, not
only failed connections.

Phases: (1) memory at rest after start; (2) latency: one client, requests one after another;
(3) load: ``--concurrency`` clients for ``--duration`` seconds, memory sampled every 0.25 s.
Memory is the server's process tree: RSS summed, and PSS (shared pages split between the
processes that share them: forked workers share the loaded model) — PSS is the memory the machine
actually provides. Prints a Markdown block for RESULTS.md and writes it, with the raw numbers as
JSON, to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine  # noqa: E402


# --- the client (a separate process) ------------------------------------------------------------
def request_bodies(queries: Path, n: int, count: int, seed: int) -> list[bytes]:
    """``count`` request bodies from a challenge set, categories interleaved (seeded order)."""
    entries = orjson.loads(queries.read_bytes())["playlists"]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(entries))
    bodies = []
    for i in order[:count]:
        e = entries[int(i)]
        bodies.append(
            orjson.dumps(
                {
                    "title": e.get("name") or "",
                    "tracks": [t["track_uri"] for t in e["tracks"]],
                    "n": n,
                    "explain": True,
                }
            )
        )
    return bodies


def http_request(host: str, port: int, body: bytes, path: str = "/v1/recommendations") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def write_request(host: str, port: int, body: bytes, k: int) -> bytes:
    """A new playlist (POST /v1/playlists) made of a query's title and seed tracks."""
    query = orjson.loads(body)
    playlist = {"title": f"bench {k} {query['title']}"[:200], "tracks": query["tracks"]}
    return http_request(host, port, orjson.dumps(playlist), "/v1/playlists")


async def one_connection(
    host: str,
    port: int,
    requests: list[bytes],
    n: int,
    deadline: float | None,
    latencies: list[float],
    errors: list[str],
    start_index: int,
    stride: int,
    writes: list[bytes] | None = None,
    write_every: int = 0,
    acknowledged: list[float] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = start_index
    try:
        while (deadline is None and i < len(requests)) or (
            deadline is not None and time.perf_counter() < deadline
        ):
            is_write = bool(write_every) and (i // stride) % write_every == write_every - 1
            payload = writes[i % len(writes)] if is_write else requests[i % len(requests)]
            i += stride
            started = time.perf_counter()
            try:
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = await reader.readexactly(length)
                elapsed = time.perf_counter() - started
                if is_write:  # a new playlist: 201, or an error
                    if status != 201:
                        errors.append(f"write status {status}: {body[:200]!r}")
                    else:
                        acknowledged.append(elapsed)
                    continue
                if status != 200:
                    errors.append(f"status {status}: {body[:200]!r}")
                    continue
                # Every answer: n "because" lines. Every 10th: parsed whole (n items, each explained).
                # Parsing all of them (~0.5 MB each) would take the client a core of its own.
                if body.count(b'"because":"') != n:
                    errors.append(f"{body.count(b'because')} 'because' lines for n = {n}")
                    continue
                if len(latencies) % 10 == 0:
                    items = orjson.loads(body)["items"]
                    if len(items) != n or not all(
                        item.get("because") and item.get("evidence") for item in items
                    ):
                        errors.append(
                            f"{len(items)} items, or an item without 'because' or evidence"
                        )
                        continue
                latencies.append(elapsed)
            except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def other_paths(args) -> dict:
    """Latency of the other endpoints, one request at a time: search while typing (a name's first
    word and the start of the next), search with a typo (fuzzy), similar tracks, /v1/models."""
    import urllib.error
    import urllib.parse
    import urllib.request

    entries = orjson.loads(args.queries.read_bytes())["playlists"]
    rng = np.random.default_rng(args.seed)
    tracks = [t for e in entries for t in e["tracks"] if t.get("track_name")]
    picks = [tracks[int(i)] for i in rng.permutation(len(tracks))[:200]]
    typed, typos = [], []
    for t in picks:
        words = t["track_name"].split()
        typed.append(words[0] + (" " + words[1][:2] if len(words) > 1 else ""))
        w = words[0]
        typos.append(w[:1] + w[2:3] + w[1:2] + w[3:] if len(w) > 3 else w + "x")  # swap two letters
    paths = {
        "search, as typed": [f"/v1/tracks?q={urllib.parse.quote(q)}&limit=20" for q in typed],
        "search, with a typo": [f"/v1/tracks?q={urllib.parse.quote(q)}&limit=20" for q in typos],
        "similar (n=10)": [
            f"/v1/tracks/{urllib.parse.quote(t['track_uri'])}/similar?n=10" for t in picks
        ],
        "models": ["/v1/models"] * 50,
    }
    out = {}
    for name, urls in paths.items():
        times, errors, not_found = [], 0, 0
        for url in urls[:5] + urls:  # the first five again as warm-up
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(args.url + url, timeout=30) as answer:
                    answer.read()
                    ok = answer.status == 200
            except urllib.error.HTTPError as exc:  # 404: a held-out track the training never saw
                exc.read()
                ok = exc.code == 404
                not_found += exc.code == 404
            except OSError:
                ok = False
            times.append(time.perf_counter() - started)
            errors += not ok
        ms = np.array(times[5:]) * 1000
        out[name] = {
            "requests": len(ms),
            "errors": errors,
            "not_found": not_found,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
        }
    return out


def client_main(args) -> None:
    """Run one phase against ``--url``; print a JSON summary."""
    if args.paths:
        print(json.dumps(other_paths(args)))
        return
    host, port = args.url.removeprefix("http://").split(":")
    port = int(port)
    bodies = request_bodies(args.queries, args.n, args.requests, args.seed)
    requests = [http_request(host, port, b) for b in bodies]
    # New playlists from the queries' seed tracks that the model knows (a title alone, or only
    # tracks outside its catalog, teach nothing: 404, a right answer but not a write).
    known = None
    if args.catalog:
        import pyarrow.parquet as pq

        known = set(pq.read_table(args.catalog, columns=["track_uri"])["track_uri"].to_pylist())
    writes = []
    for k, b in enumerate(bodies):
        query = orjson.loads(b)
        query["tracks"] = [t for t in query["tracks"] if known is None or t in known]
        if query["tracks"]:
            writes.append(write_request(host, port, orjson.dumps(query), k))
    latencies: list[float] = []
    errors: list[str] = []
    acknowledged: list[float] = []

    async def run() -> float:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        # Warm-up (not counted): each connection's first requests.
        await asyncio.gather(
            *(
                one_connection(
                    host,
                    port,
                    requests[: args.concurrency * 2],
                    args.n,
                    None,
                    [],
                    [],
                    c,
                    args.concurrency,
                )
                for c in range(args.concurrency)
            )
        )
        started = time.perf_counter()
        deadline = started + args.duration if args.duration else None
        await asyncio.gather(
            *(
                one_connection(
                    host,
                    port,
                    requests,
                    args.n,
                    deadline,
                    latencies,
                    errors,
                    c,
                    args.concurrency,
                    writes,
                    args.write_every,
                    acknowledged,
                )
                for c in range(args.concurrency)
            )
        )
        return time.perf_counter() - started

    asyncio.set_event_loop(asyncio.new_event_loop())
    wall = asyncio.get_event_loop().run_until_complete(run())
    ms = np.array(latencies) * 1000
    print(
        json.dumps(
            {
                "requests": len(latencies) + len(acknowledged) + len(errors),
                "ok": len(latencies),
                "writes_acknowledged": len(acknowledged),
                "write_p50_ms": float(np.percentile(acknowledged, 50) * 1000)
                if acknowledged
                else None,
                "errors": len(errors),
                "error_examples": errors[:5],
                "seconds": wall,
                "throughput": len(latencies) / wall,
                "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
                "p90_ms": float(np.percentile(ms, 90)) if len(ms) else None,
                "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
                "max_ms": float(ms.max()) if len(ms) else None,
                "mean_ms": float(ms.mean()) if len(ms) else None,
            }
        )
    )


# --- the driver ------------------------------------------------------------------------------------
def tree_memory(pid: int) -> tuple[float, float]:
    """(RSS summed, PSS summed) in GiB over a process and its children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    rss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += info.pss
        except psutil.Error:
            pass
    return rss / 2**30, pss / 2**30


class PeakMemory:
    """Samples ``tree_memory(pid)`` every 0.25 s in a thread while the block runs; keeps the peaks."""

    def __init__(self, pid: int):
        self.pid, self.rss, self.pss = pid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss, pss = tree_memory(self.pid)
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
            time.sleep(0.25)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def start_server(
    models: list[Path], workers: int, state: Path
) -> tuple[subprocess.Popen, str, float, Path]:
    log = state / "server.log"
    handle = open(log, "w")  # the child writes it
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segue",
            "serve",
            *map(str, models),
            "--port",
            "0",
            "--workers",
            str(workers),
            "--state",
            str(state / "live"),
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    handle.close()
    import urllib.request

    while True:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()}")
        match = re.search(r"on (http://127\.0\.0\.1:\d+) ", log.read_text())
        if match:
            try:
                with urllib.request.urlopen(match.group(1) + "/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return process, match.group(1), time.perf_counter() - started, log
            except OSError:
                pass
        time.sleep(0.2)


def run_client(
    url: str,
    args,
    *,
    concurrency: int = 1,
    duration: float = 0,
    requests: int = 0,
    paths: bool = False,
) -> dict:
    command = [
        sys.executable,
        __file__,
        "client",
        "--url",
        url,
        "--queries",
        str(args.queries),
        "--n",
        str(args.n),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--requests",
        str(requests),
        "--seed",
        str(args.seed),
        "--write-every",
        str(getattr(args, "write_every", 0) if concurrency > 1 else 0),
        "--catalog",
        str(args.model[0] / "catalog.parquet"),
        *(["--paths"] if paths else []),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    for p in (parser, client):
        p.add_argument("--queries", type=Path, default=Path("/work/data1m/mpd/challenge_set.json"))
        p.add_argument("--n", type=int, default=500)
        p.add_argument("--seed", type=int, default=0)
    client.add_argument("--concurrency", type=int, default=1)
    client.add_argument("--duration", type=float, default=0)
    client.add_argument("--requests", type=int, default=1000)
    client.add_argument("--paths", action="store_true", help="time the other endpoints instead")
    client.add_argument("--catalog", type=Path, help="the model's catalog.parquet (for writes)")
    for p in (parser, client):
        p.add_argument(
            "--write-every",
            type=int,
            default=0,
            help="under load, every K-th request of a client adds a playlist (0: reads only)",
        )
    parser.add_argument(
        "--model", type=Path, action="append", required=False, help="model directory (repeatable)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="server worker processes (repeatable: one run each)",
    )
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--out", type=Path, default=Path("/tmp/segue-bench-serve"))
    args = parser.parse_args()
    if args.mode == "client":
        client_main(args)
        return 0
    if not args.model:
        parser.error("--model is required")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for workers in args.workers or [1, 2]:
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            process, url, start_s, log = start_server(args.model, workers, Path(tmp))
            try:
                time.sleep(2)
                rest = tree_memory(process.pid)
                print(
                    f"[{workers} worker(s)] up in {start_s:.1f} s at {url}; at rest RSS {rest[0]:.2f} GiB, "
                    f"PSS {rest[1]:.2f} GiB",
                    file=sys.stderr,
                )
                latency = run_client(
                    url, args, concurrency=1, duration=0, requests=args.latency_requests
                )
                print(f"  latency (1 client): {latency}", file=sys.stderr)
                others = run_client(url, args, paths=True)
                print(f"  other endpoints (1 client): {others}", file=sys.stderr)
                with PeakMemory(process.pid) as peak:
                    load = run_client(
                        url,
                        args,
                        concurrency=args.concurrency,
                        duration=args.duration,
                        requests=10_000,
                    )
                print(
                    f"  load ({args.concurrency} clients, {args.duration:.0f} s): {load}",
                    file=sys.stderr,
                )
                persisted = sum(
                    len(f.read_bytes().splitlines())
                    for f in (Path(tmp) / "live").glob("*/playlists.jsonl")
                )
                load["writes_persisted"] = persisted
                print(f"  playlists in the live logs: {persisted}", file=sys.stderr)
            finally:
                process.terminate()
                process.wait(timeout=60)
            server_log = log.read_text()
            runs.append(
                {
                    "workers": workers,
                    "start_s": start_s,
                    "rest_rss_gib": rest[0],
                    "rest_pss_gib": rest[1],
                    "load_rss_gib": peak.rss,
                    "load_pss_gib": peak.pss,
                    "latency": latency,
                    "load": load,
                    "others": others,
                    "server_tracebacks": server_log.count("Traceback"),
                }
            )
    text = report(args, runs)
    print(text)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(runs, indent=2))
    return 0


def report(args, runs: list[dict]) -> str:
    params = [json.loads((m / "params.json").read_text()) for m in args.model]
    described = "; ".join(
        f"{p['model']} {p['config']} trained on {p['trained_on'].get('n_playlists', '?'):,} "
        f"playlists, {p['n_tracks']:,} tracks"
        for p in params
    )
    lines = [
        "### Service (`segue serve`) under load",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_serve.py {' '.join('--model ' + str(m) for m in args.model)} "
        f"--queries {args.queries}`  ",
        f"Machine: {machine()} (server, its workers and the load client share these cores)  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Model: {described}  ",
        f"Requests: `POST /v1/recommendations` with n = {args.n} and explain = true; challenge-set playlists "
        f"(0–100 seed tracks and/or a title, all 10 categories, seeded order); every answer checked "
        f"(status, n 'because' lines; every 10th parsed whole).",
        "",
        "| server workers | start (load + index) | memory at rest (PSS / RSS) | 1 client: p50 / p90 / p99 / max | "
        f"{args.concurrency} clients, {args.duration:.0f} s: requests/s | p50 / p99 under load | errors | "
        "memory under load, peak (PSS / RSS) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lat, load = r["latency"], r["load"]
        lines.append(
            f"| {r['workers']} | {r['start_s']:.0f} s | {r['rest_pss_gib']:.2f} / {r['rest_rss_gib']:.2f} GiB | "
            f"{lat['p50_ms']:.1f} / {lat['p90_ms']:.1f} / {lat['p99_ms']:.1f} / {lat['max_ms']:.0f} ms | "
            f"{load['throughput']:.0f} ({load['ok']:,} in {load['seconds']:.0f} s) | "
            f"{load['p50_ms']:.0f} / {load['p99_ms']:.0f} ms | {load['errors'] + lat['errors']} | "
            f"{r['load_pss_gib']:.2f} / {r['load_rss_gib']:.2f} GiB |"
        )
    for r in runs:
        load = r["load"]
        if load.get("writes_acknowledged"):
            lines.append(
                f"\nWrites mixed in ({r['workers']} worker(s)): every {args.write_every}th request of each "
                f"load client was `POST /v1/playlists` — {load['writes_acknowledged']:,} acknowledged "
                f"(201, p50 {load['write_p50_ms']:.0f} ms), {load['writes_persisted']:,} in the live "
                "logs after the run (counted as `requests/s` only when reads)."
            )
    lines += [
        "",
        "Other endpoints, one client, one request at a time (p50 / p99 / max; errors):",
        "",
    ]
    for r in runs:
        cells = [
            f"{name} {v['p50_ms']:.1f} / {v['p99_ms']:.1f} / {v['max_ms']:.0f} ms ({v['errors']}"
            + (f"; {v['not_found']} tracks not in the catalog: 404" if v["not_found"] else "")
            + ")"
            for name, v in r["others"].items()
        ]
        lines.append(f"- {r['workers']} worker(s): " + "; ".join(cells))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
