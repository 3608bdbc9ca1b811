"""The scale run of the main job: `segue pipeline phase1` then `phase2` on MPD slices.

    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_pipeline.py \\
        --mpd /work/data1m/mpd --work /tmp/segue-bench-pipeline

Each phase runs as the real CLI command in its own subprocess, measured by ``measure.py`` (wall
time and peak RSS of the process tree). Per stage, the figures are the pipeline's own records
(``<work>/.pipeline/<stage>.json``: seconds and the peak RSS sampled during the stage). Every
phase also runs the finish (evaluation of the models trained so far, diversity, examples, the
submission and the report), as ``segue pipeline`` always does; it is timed with the phase that
ran it. ``--fresh`` deletes ``--work`` first (otherwise unchanged stages are skipped, which is what
a rerun is for, not what a benchmark measures). Prints a Markdown block for RESULTS.md and writes
it to ``<work>-results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mpd", type=Path, required=True, help="directory of MPD slices (+ challenge_set.json)"
    )
    parser.add_argument("--work", type=Path, required=True, help="the pipeline's --out")
    parser.add_argument(
        "--phases", default="phase1,phase2", help="comma-separated phases, run in order"
    )
    parser.add_argument("--per-category", type=int, default=1000)
    parser.add_argument("--fresh", action="store_true", help="delete --work first")
    args = parser.parse_args()
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    runs = []
    for phase in args.phases.split(","):
        command = [
            *SEGUE,
            "pipeline",
            phase,
            "--data",
            str(args.mpd),
            "--out",
            str(args.work),
            "--per-category",
            str(args.per_category),
        ]
        m = measure(command)
        if m.returncode != 0:
            print(f"{phase} failed with exit status {m.returncode}", file=sys.stderr)
            return 1
        runs.append((phase, m))
    records = [json.loads(p.read_text()) for p in (args.work / ".pipeline").glob("*.json")]
    records.sort(key=lambda r: r["finished_at"])
    lines = [
        f"Command: `flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_pipeline.py --mpd {args.mpd} "
        f"--work {args.work} --phases {args.phases} --per-category {args.per_category}"
        f"{' --fresh' if args.fresh else ''}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        "| phase (CLI process) | wall time | peak RSS (process tree) |",
        "|---|---|---|",
        *(
            f"| {phase} | {m.wall_s:.0f} s ({m.wall_s / 60:.1f} min) | {m.peak_rss_gib:.2f} GiB |"
            for phase, m in runs
        ),
        f"| **total** | **{sum(m.wall_s for _, m in runs) / 60:.1f} min** | "
        f"**{max(m.peak_rss_gib for _, m in runs):.2f} GiB** |",
        "",
        "| stage | phase | status | seconds | peak RSS |",
        "|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['phase']} | {r['status']} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} GiB |"
            for r in records
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.work.with_name(args.work.name + "-results.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
