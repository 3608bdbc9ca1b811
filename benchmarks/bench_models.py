"""Recommender figures on a split: training time and peak memory, recommendation speed, quality.

    .venv/bin/python benchmarks/bench_models.py --split demo/split --work /tmp/segue-models
    .venv/bin/python benchmarks/bench_models.py --split /work/data1m/split --work /tmp/m1m --models itemknn,als

For each model: ``segue train MODEL SPLIT/train`` as a subprocess measured by ``measure.py`` (wall
time, peak RSS of the process tree); then, in a fresh subprocess (also measured), the model is
loaded and answers every challenge playlist of the split's test part with 500 tracks, batched as
``Recommender.recommend`` batches them — queries per second, after one warm-up batch; finally
``segue evaluate`` scores all the trained models on the test part (every metric per category,
bootstrap CIs). Prints a Markdown block for RESULTS.md and writes it to ``<work>/results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]
DEFAULT_MODELS = "popular,title,itemknn,playlistknn,svd,als,bpr,embed,hybrid"


def speed(model_dir: Path, split: Path, n: int = 500) -> None:
    """Load a model, answer the split's test challenge set, print one JSON line of timings."""
    from segue.data.challenge import read_challenge
    from segue.models.base import Queries, Recommender

    start = time.perf_counter()
    model = Recommender.load(model_dir)
    uris = model.catalog().column("track_uri").to_pylist()
    load_s = time.perf_counter() - start
    entries = read_challenge(split / "test" / "challenge_set.json")
    queries, _ = Queries.from_challenge(entries, {u: i for i, u in enumerate(uris)})
    model.recommend(queries.slice(0, min(len(queries), model.batch_size)), n)   # warm-up
    start = time.perf_counter()
    model.recommend(queries, n)
    seconds = time.perf_counter() - start
    print(json.dumps({"load_s": load_s, "queries": len(queries), "seconds": seconds,
                      "queries_per_s": len(queries) / seconds}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, required=True, help="a split directory (segue split)")
    parser.add_argument("--work", type=Path, required=True, help="where models and the report go")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names")
    parser.add_argument("--param", action="append", default=[], help="MODEL.key=value, repeatable")
    parser.add_argument("--reuse", action="store_true", help="keep models already trained under --work")
    parser.add_argument("--speed", type=Path, help=argparse.SUPPRESS)   # internal: the speed subprocess
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, args.split)
        return 0
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    work = args.work
    (work / "models").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        out = work / "models" / name
        params = [p.split(".", 1)[1] for p in args.param if p.startswith(name + ".")]
        row = {"model": name}
        if args.reuse and (out / "params.json").exists():
            row["train_s"], row["train_gib"] = None, None
        else:
            cmd = [*SEGUE, "train", name, str(args.split / "train"), "--out", str(out)]
            for p in params:
                cmd += ["--param", p]
            m = measure(cmd)
            if m.returncode != 0:
                print(f"{name}: training failed ({m.returncode})", file=sys.stderr)
                row["error"] = f"training failed (exit {m.returncode})"
                rows.append(row)
                continue
            row["train_s"], row["train_gib"] = m.wall_s, m.peak_rss_gib
        m = measure([sys.executable, str(Path(__file__).resolve()), "--split", str(args.split),
                     "--work", str(work), "--speed", str(out)])
        timing = json.loads([line for line in m.output.splitlines() if line.startswith("{")][-1])
        row.update(serve_gib=m.peak_rss_gib, queries_per_s=timing["queries_per_s"], load_s=timing["load_s"],
                   queries=timing["queries"])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    trained = [work / "models" / r["model"] for r in rows if "error" not in r]
    m = measure([*SEGUE, "evaluate", *map(str, trained), "--split", str(args.split), "--out",
                 str(work / "evaluation"), "--bootstrap", "1000"])
    table = json.loads((work / "evaluation" / "evaluation.json").read_text())["table"] if m.returncode == 0 else {}

    def cell(model: str, group: str, metric: str) -> str:
        c = table.get(model, {}).get(group, {}).get(metric)
        return f"{c['mean']:.4f}" if c else "—"

    lines = [f"Command: `.venv/bin/python benchmarks/bench_models.py --split {args.split} --work {work}"
             + (f" --models {args.models}" if args.models != DEFAULT_MODELS else "") + "`  ",
             f"Machine: {machine()}  ",
             f"Date: {datetime.date.today().isoformat()}  ",
             "", "| model | train wall | train peak RSS | recommend (500 each) | serving peak RSS | "
             "R-precision | NDCG | clicks |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | |")
            continue
        train = f"{r['train_s']:.1f} s" if r["train_s"] is not None else "(reused)"
        peak = f"{r['train_gib']:.2f} GiB" if r["train_gib"] is not None else ""
        lines.append(f"| {r['model']} | {train} | {peak} | {r['queries_per_s']:.0f} queries/s "
                     f"({r['queries']:,}) | {r['serve_gib']:.2f} GiB | {cell(r['model'], 'all', 'r_precision')} | "
                     f"{cell(r['model'], 'all', 'ndcg')} | {cell(r['model'], 'all', 'clicks')} |")
    if table:
        lines += ["", "R-precision per challenge category (1 title only … 10 title + random 100):", "",
                  "| model | " + " | ".join(str(c) for c in range(1, 11)) + " |", "|---" * 11 + "|"]
        for r in rows:
            if "error" not in r:
                lines.append(f"| {r['model']} | " + " | ".join(cell(r["model"], str(c), "r_precision")
                                                           for c in range(1, 11)) + " |")
    text = "\n".join(lines) + "\n"
    (work / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
