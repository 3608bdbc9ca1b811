"""Mining and analysis figures at scale: `segue rules`, `segue cluster`, `segue popularity-model`,
and the frequent-itemset miners compared on the same transactions.

    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_mining.py \\
        --data /work/data1m/data --work /tmp/segue-bench-mining [--compare-miners]

Each stage runs as the real CLI command in a subprocess, measured by ``measure.py`` (wall time,
peak RSS of the process tree). ``--compare-miners`` cuts the dataset's playlists to their
frequent tracks (support ≥ 0.1% of the playlists used) for the first 100,000 and all playlists,
and runs each miner on them in its own subprocess (coreutils ``timeout`` bounds it): pyfim's
FP-growth (what segue uses), Eclat and Apriori, and mlxtend's FP-growth (pure Python over pandas;
skipped with a note if mlxtend is not importable — put it on ``--extra-path``, it is not a segue
dependency). Each miner mines rules with at most 3 tracks, confidence ≥ 0.1 and lift ≥ 1.2 (mlxtend:
itemsets, then ``association_rules``). Prints a Markdown block for RESULTS.md and writes it to
``<work>/results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]
MINERS = ("fim.fpgrowth", "fim.eclat", "fim.apriori", "mlxtend.fpgrowth")


def write_transactions(data: Path, out: Path, n_playlists: int) -> dict:
    """The first ``n_playlists`` playlists cut to tracks in ≥ 0.1% of them: flat + indptr (.npz)."""
    import math

    import numpy as np

    from segue.data.dataset import PlaylistData

    matrix = PlaylistData.load(data).matrix[:n_playlists]
    min_count = max(1, math.ceil(0.001 * matrix.shape[0]))
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
    frequent = np.flatnonzero(counts >= min_count)
    code = np.full(matrix.shape[1], -1)
    code[frequent] = np.arange(len(frequent))
    codes = code[matrix.indices]
    keep = codes >= 0
    indptr = np.concatenate(([0], np.cumsum(keep)))[matrix.indptr]
    np.savez(
        out,
        flat=codes[keep].astype(np.int32),
        indptr=indptr.astype(np.int64),
        meta=np.array([matrix.shape[0], min_count, len(frequent)]),
    )
    return {
        "playlists": matrix.shape[0],
        "min_count": min_count,
        "frequent_tracks": len(frequent),
        "entries": int(keep.sum()),
    }


def run_miner(name: str, path: Path) -> None:
    """Child process: mine ``path``'s transactions with ``name``; print a JSON line of results."""
    import numpy as np

    with np.load(path) as npz:
        flat, indptr, (n, min_count, n_items) = npz["flat"], npz["indptr"], npz["meta"]
    start = time.perf_counter()
    if name.startswith("fim."):
        import fim

        bounds = indptr.tolist()
        items = flat.tolist()
        transactions = [items[a:b] for a, b in itertools.pairwise(bounds)]
        miner = getattr(fim, name.split(".")[1])
        rules = miner(
            transactions,
            target="r",
            supp=-int(min_count),
            zmin=2,
            zmax=3,
            conf=10,
            report="abh",
            mode="o",
            eval="l",
            thresh=120,
        )
        n_rules = len(rules)
    else:
        import pandas as pd
        import scipy.sparse as sp
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        matrix = sp.csr_matrix(
            (np.ones(len(flat), dtype=bool), flat, indptr), shape=(int(n), int(n_items))
        )
        frame = pd.DataFrame.sparse.from_spmatrix(
            matrix, columns=[str(i) for i in range(int(n_items))]
        )
        itemsets = fpgrowth(frame, min_support=float(min_count) / float(n), max_len=3)
        rules = association_rules(itemsets, metric="confidence", min_threshold=0.1)
        # mlxtend also lists rules with 2-track consequents; count those with one, as segue keeps.
        rules = rules[(rules["lift"] >= 1.2) & (rules["consequents"].map(len) == 1)]
        n_rules = len(rules)
    print(json.dumps({"miner": name, "rules": n_rules, "seconds": time.perf_counter() - start}))


def compare_miners(
    data: Path,
    work: Path,
    sizes: list[int],
    timeout_s: int,
    extra_path: str | None,
    mlxtend_max: int,
) -> list[dict]:
    rows = []
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    for size in sizes:
        path = work / f"transactions-{size}.npz"
        info = write_transactions(data, path, size)
        for name in MINERS:
            if name.startswith("mlxtend") and size > mlxtend_max:
                rows.append(
                    {**info, "miner": name, "status": f"skipped (> {mlxtend_max:,} playlists)"}
                )
                continue
            if name.startswith("mlxtend"):
                probe = measure(
                    [
                        "env",
                        f"PYTHONPATH={env.get('PYTHONPATH', '')}",
                        sys.executable,
                        "-c",
                        "import mlxtend, pandas",
                    ]
                )
                if probe.returncode != 0:
                    rows.append({**info, "miner": name, "status": "not installed"})
                    continue
            m = measure(
                [
                    "timeout",
                    str(timeout_s),
                    "env",
                    f"PYTHONPATH={env.get('PYTHONPATH', '')}",
                    sys.executable,
                    __file__,
                    "--miner",
                    name,
                    "--transactions",
                    str(path),
                ]
            )
            result = {}
            for line in m.output.splitlines():
                if line.startswith("{"):
                    result = json.loads(line)
            status = (
                "ok"
                if m.returncode == 0
                else ("timed out" if m.returncode == 124 else f"failed ({m.returncode})")
            )
            rows.append(
                {
                    **info,
                    "miner": name,
                    "status": status,
                    "wall_s": m.wall_s,
                    "peak_rss_gib": m.peak_rss_gib,
                    **({"rules": result["rules"], "mine_s": result["seconds"]} if result else {}),
                }
            )
        path.unlink()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("/work/data1m/data"), help="an ingested dataset"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/segue-bench-mining"))
    parser.add_argument(
        "--stages", default="rules,cluster,popularity", help="comma-separated; '' for none"
    )
    parser.add_argument("--compare-miners", action="store_true")
    parser.add_argument(
        "--sizes", default="100000,1000000", help="playlists for the miner comparison"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per miner run")
    parser.add_argument(
        "--mlxtend-max", type=int, default=100_000, help="largest size given to mlxtend"
    )
    parser.add_argument(
        "--extra-path", default=None, help="PYTHONPATH entry holding mlxtend + pandas"
    )
    parser.add_argument("--miner", help=argparse.SUPPRESS)
    parser.add_argument("--transactions", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.miner:
        run_miner(args.miner, args.transactions)
        return 0
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    n = json.loads((data / "manifest.json").read_text())["counts"]["playlists"]
    commands = {
        "rules": [*SEGUE, "rules", str(data), "--out", str(work / "rules")],
        "cluster": [*SEGUE, "cluster", str(data), "--out", str(work / "clusters")],
        "popularity": [*SEGUE, "popularity-model", str(data), "--out", str(work / "popularity")],
    }
    rows = []
    for name in [s for s in args.stages.split(",") if s]:
        load = os.getloadavg()[0]
        m = measure(commands[name])
        if m.returncode != 0:
            print(f"stage {name} failed with status {m.returncode}", file=sys.stderr)
            return 1
        rows.append((name, m, load))
    lines = [
        f"### Mining and analysis at {n:,} playlists",
        "",
        f"Command: `flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_mining.py --data {data} "
        f"--work {work}{' --compare-miners' if args.compare_miners else ''}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
    ]
    if rows:
        lines += [
            "| stage (default settings) | wall time | peak RSS (process tree) | load average at start |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `segue {m.command[3]}` | {m.wall_s:.1f} s | {m.peak_rss_gib:.2f} GiB | {load:.1f} |"
            for _, m, load in rows
        ]
        lines.append("")
        for name, m, _ in rows:
            tail = [line for line in m.output.splitlines() if " INFO " not in line]
            lines += [f"`{name}` said:", "", "```", *tail[-6:], "```", ""]
    if args.compare_miners:
        table = compare_miners(
            data,
            work,
            [int(s) for s in args.sizes.split(",")],
            args.timeout,
            args.extra_path,
            args.mlxtend_max,
        )
        lines += [
            "Miners on the same transactions (playlists cut to tracks in ≥ 0.1% of them; rules with ≤ 3 "
            "tracks, confidence ≥ 0.1, lift ≥ 1.2; one process each, wall time includes building the "
            f"miner's input; timeout {args.timeout} s):",
            "",
            "| playlists | frequent tracks | miner | status | rules | mining | wall time | peak RSS |",
            "|---:|---:|---|---|---:|---:|---:|---:|",
        ]
        for r in table:

            def cell(key: str, fmt: str, r: dict = r) -> str:
                return format(r[key], fmt) if key in r else "–"

            lines.append(
                f"| {r['playlists']:,} | {r['frequent_tracks']:,} | {r['miner']} | {r['status']} | "
                f"{cell('rules', ',')} | {cell('mine_s', '.1f')} s | {cell('wall_s', '.1f')} s | "
                f"{cell('peak_rss_gib', '.2f')} GiB |"
            )
        lines.append("")
    text = "\n".join(lines)
    (work / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
