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


def speed(model_dir: Path, split: Path, n: int = 500, part: str = "test") -> None:
    """Load a model, answer the split's ``part`` challenge set, print one JSON line of timings."""
    from segue.data.challenge import read_challenge
    from segue.models.base import Queries, Recommender

    start = time.perf_counter()
    model = Recommender.load(model_dir)
    uris = model.catalog().column("track_uri").to_pylist()
    load_s = time.perf_counter() - start
    entries = read_challenge(split / part / "challenge_set.json")
    queries, _ = Queries.from_challenge(entries, {u: i for i, u in enumerate(uris)})
    model.recommend(queries.slice(0, min(len(queries), model.batch_size)), n)  # warm-up
    start = time.perf_counter()
    model.recommend(queries, n)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "load_s": load_s,
                "queries": len(queries),
                "seconds": seconds,
                "queries_per_s": len(queries) / seconds,
            }
        )
    )


def run_models(
    split: Path,
    work: Path,
    names: list[str],
    params: list[str],
    *,
    reuse: bool = False,
    part: str = "test",
    submissions: list[Path] = (),
) -> tuple[list[dict], dict]:
    """Train ``names`` on the split's training part of ``part`` (each a measured subprocess),
    time their answers, evaluate them all on ``part`` (with ``submissions``, files answering it);
    (rows, evaluation.json document)."""
    train_dir = split / "train" if part == "test" else split / "validation" / "train"
    (work / "models").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        out = work / "models" / name
        row = {"model": name}
        if reuse and (out / "params.json").exists():
            row["train_s"], row["train_gib"] = None, None
        else:
            cmd = [*SEGUE, "train", name, str(train_dir), "--out", str(out)]
            for p in params:
                if p.startswith(name + "."):
                    cmd += ["--param", p.split(".", 1)[1]]
            m = measure(cmd)
            if m.returncode != 0:
                print(
                    f"{name}: training failed ({m.returncode})\n{m.output[-2000:]}", file=sys.stderr
                )
                row["error"] = f"training failed (exit {m.returncode})"
                rows.append(row)
                continue
            row["train_s"], row["train_gib"] = m.wall_s, m.peak_rss_gib
        m = measure(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--split",
                str(split),
                "--work",
                str(work),
                "--speed",
                str(out),
                "--part",
                part,
            ]
        )
        timing = json.loads([line for line in m.output.splitlines() if line.startswith("{")][-1])
        row.update(
            serve_gib=m.peak_rss_gib,
            queries_per_s=timing["queries_per_s"],
            load_s=timing["load_s"],
            queries=timing["queries"],
        )
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    trained = [work / "models" / r["model"] for r in rows if "error" not in r]
    extra = [arg for path in submissions for arg in ("--submission", str(path))]
    m = measure(
        [
            *SEGUE,
            "evaluate",
            *map(str, trained),
            *extra,
            "--split",
            str(split),
            "--part",
            part,
            "--out",
            str(work / "evaluation"),
            "--bootstrap",
            "1000",
        ]
    )
    rows += [{"model": Path(path).name.split(".")[0], "submission": True} for path in submissions]
    if m.returncode != 0:
        print(f"evaluation failed ({m.returncode})\n{m.output[-2000:]}", file=sys.stderr)
    document = (
        json.loads((work / "evaluation" / "evaluation.json").read_text())
        if m.returncode == 0
        else {}
    )
    return rows, document


def table_lines(rows: list[dict], document: dict) -> list[str]:
    """The Markdown table of ``run_models``: overall figures with 95% CIs, then per category."""
    table = document.get("table", {})

    def cell(model: str, group: str, metric: str, ci: bool = False) -> str:
        c = table.get(model, {}).get(group, {}).get(metric)
        if not c:
            return "—"
        return (
            f"{c['mean']:.4f} [{c['ci_low']:.4f}, {c['ci_high']:.4f}]" if ci else f"{c['mean']:.4f}"
        )

    lines = [
        "| model | train wall | train peak RSS | recommend (500 each) | serving peak RSS | "
        "R-precision [95% CI] | NDCG | clicks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | |")
            continue
        if r.get("submission"):
            lines.append(
                f"| {r['model']} (reference) | | | | | {cell(r['model'], 'all', 'r_precision', True)} | "
                f"{cell(r['model'], 'all', 'ndcg')} | {cell(r['model'], 'all', 'clicks')} |"
            )
            continue
        train = f"{r['train_s']:.1f} s" if r["train_s"] is not None else "(reused)"
        peak = f"{r['train_gib']:.2f} GiB" if r["train_gib"] is not None else ""
        lines.append(
            f"| {r['model']} | {train} | {peak} | {r['queries_per_s']:.0f} queries/s "
            f"({r['queries']:,}) | {r['serve_gib']:.2f} GiB | {cell(r['model'], 'all', 'r_precision', True)} | "
            f"{cell(r['model'], 'all', 'ndcg')} | {cell(r['model'], 'all', 'clicks')} |"
        )
    if table:
        lines += [
            "",
            "R-precision per challenge category (1 title only … 10 title + random 100):",
            "",
            "| model | " + " | ".join(str(c) for c in range(1, 11)) + " |",
            "|---" * 11 + "|",
        ]
        for r in rows:
            if "error" not in r:
                lines.append(
                    f"| {r['model']} | "
                    + " | ".join(cell(r["model"], str(c), "r_precision") for c in range(1, 11))
                    + " |"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", type=Path, required=True, help="a split directory (segue split)")
    parser.add_argument("--work", type=Path, required=True, help="where models and the report go")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names")
    parser.add_argument("--param", action="append", default=[], help="MODEL.key=value, repeatable")
    parser.add_argument(
        "--reuse", action="store_true", help="keep models already trained under --work"
    )
    parser.add_argument(
        "--part", default="test", choices=("test", "validation"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--speed", type=Path, help=argparse.SUPPRESS
    )  # internal: the speed subprocess
    args = parser.parse_args()
    if args.speed:
        speed(args.speed, args.split, part=args.part)
        return 0
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    rows, document = run_models(args.split, args.work, names, args.param, reuse=args.reuse)
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_models.py --split {args.split} --work {args.work}"
        + (f" --models {args.models}" if args.models != DEFAULT_MODELS else "")
        + "`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        "",
        *table_lines(rows, document),
    ]
    text = "\n".join(lines) + "\n"
    (args.work / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
