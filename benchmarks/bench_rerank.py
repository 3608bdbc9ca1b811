"""The two-stage ranker at scale: its components, its own training, its speed and its quality.

    .venv/bin/python benchmarks/bench_rerank.py --split /work/scratch/m1m/split --work /work/scratch/m1m/rerank \
        --param itemknn.n_neighbors=200 --param als.factors=64 --param rp3beta.n_neighbors=100 \
        --param rerank.cooccurrence_k=100

Each step is the real CLI in a subprocess measured by ``measure.py`` (wall time, peak RSS of the
process tree): ``segue train`` of every component of the ranker on the split's training part
(with the ``--param COMPONENT.key=value`` given), then ``segue train rerank --components-from``
(the ranker's own work: its carve, the components refitted on the carve's rest, the features and
the trees; this is the pipeline's ``train rerank`` stage), then, with ``--scratch``, ``segue train
rerank`` from nothing (the components fitted twice). Then the answers to every test query (500
tracks each, batched as ``Recommender.recommend`` batches them) in a fresh measured process, and
``segue evaluate`` of the ranker beside its components on the test part.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_models import SEGUE  # noqa: E402
from measure import machine, measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", type=Path, required=True, help="a split directory (segue split)")
    parser.add_argument("--work", type=Path, required=True, help="where the models and results go")
    parser.add_argument(
        "--param", action="append", default=[], help="MODEL.key=value (components or rerank)"
    )
    parser.add_argument(
        "--scratch", action="store_true", help="also time `segue train rerank` from nothing"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep components already trained under --work"
    )
    args = parser.parse_args()
    from segue.models.registry import get_model_class

    models = args.work / "models"
    models.mkdir(parents=True, exist_ok=True)
    own = [p.split(".", 1)[1] for p in args.param if p.startswith("rerank.")]
    config = get_model_class("rerank").Config()
    components = [c.strip() for c in config.components.split(",")]
    # A component's parameters reach the rerank's own config as they are: --param als.factors=64.
    rerank_params = [*own, *(p for p in args.param if p.split(".", 1)[0] in components)]
    rows = []

    def train(name: str, params: list[str], out: Path, extra: list[str] = ()) -> None:
        cmd = [*SEGUE, "train", name, str(args.split / "train"), "--out", str(out), *extra]
        for p in params:
            cmd += ["--param", p]
        m = measure(cmd)
        rows.append(
            {
                "step": " ".join(["segue train", name, *extra[:1]]),
                "wall_s": m.wall_s,
                "peak_gib": m.peak_rss_gib,
                "status": m.returncode,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if m.returncode:
            raise SystemExit(f"{name} failed:\n{m.output[-3000:]}")

    for name in components:
        if args.reuse and (models / name / "params.json").exists():
            continue
        train(
            name,
            [p.split(".", 1)[1] for p in args.param if p.startswith(name + ".")],
            models / name,
        )
    train("rerank", rerank_params, models / "rerank", ["--components-from", str(models)])
    if args.scratch:
        train("rerank", rerank_params, args.work / "rerank-scratch")
    m = measure(
        [
            sys.executable,
            str(HERE / "bench_models.py"),
            "--split",
            str(args.split),
            "--work",
            str(args.work),
            "--speed",
            str(models / "rerank"),
        ]
    )
    speed = json.loads([line for line in m.output.splitlines() if line.startswith("{")][-1])
    m_eval = measure(
        [
            *SEGUE,
            "evaluate",
            *(str(models / n) for n in [*components, "rerank"]),
            "--split",
            str(args.split),
            "--out",
            str(args.work / "evaluation"),
            "--bootstrap",
            "200",
        ]
    )
    table = (
        json.loads((args.work / "evaluation" / "evaluation.json").read_text())["table"]
        if not m_eval.returncode
        else {}
    )
    params = " ".join(f"--param {p}" for p in args.param)
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_rerank.py --split {args.split} --work {args.work} {params}"
        + (" --scratch" if args.scratch else "")
        + (" --reuse" if args.reuse else "")
        + "`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        "",
        "| step | wall | peak RSS |",
        "|---|---|---|",
    ]
    lines += [f"| `{r['step']}` | {r['wall_s']:.0f} s | {r['peak_gib']:.2f} GiB |" for r in rows]
    lines += [
        f"| answers: {speed['queries']:,} test queries × 500 | {speed['seconds']:.1f} s "
        f"({speed['queries_per_s']:.0f} queries/s; load {speed['load_s']:.1f} s) | {m.peak_rss_gib:.2f} GiB |",
        "",
        "| model | R-precision | NDCG | clicks |",
        "|---|---|---|---|",
    ]
    for name in [*components, "rerank"]:
        cells = table.get(name, {}).get("all", {})
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{cells[k]['mean']:.4f}" if k in cells else "—"
                for k in ("r_precision", "ndcg", "clicks")
            )
            + " |"
        )
    text = "\n".join(lines) + "\n"
    (args.work / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
