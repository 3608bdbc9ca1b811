"""The Spark engine beside the local one, stage by stage, on the same data: time, peak memory of
the whole process tree (the JVM included) and whether the outputs agree.

    .venv/bin/python benchmarks/bench_spark.py --data demo/split/train --stages rules,itemknn \\
        --master local[2] --work /tmp/segue-spark

Each stage runs as its own `segue` command (a fresh process, a fresh JVM for Spark), local then
Spark; memory is sampled by measure.py. Stages: ingest (`segue ingest`, of the slices in --mpd),
rules (`segue rules`), itemknn and als (`segue train`), evaluate (`segue evaluate` of --models on
--split: the answering and per-query scoring in Spark tasks). ALS is compared by the factor count and sweeps asked with --als-factors and
--als-iterations (MLlib solves each track's normal equations exactly: at 128 factors it is the
slow one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from measure import machine, measure


def segue(*args) -> list[str]:
    return [sys.executable, "-m", "segue", *map(str, args), "-q"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an ingested dataset (or SPLIT/train)")
    parser.add_argument("--mpd", type=Path, help="MPD slices, for the ingest stage")
    parser.add_argument("--split", type=Path, help="a split, for the evaluate stage")
    parser.add_argument(
        "--models", default="", help="model directories trained on SPLIT/train (comma-separated)"
    )
    parser.add_argument("--stages", default="rules,itemknn,als")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--als-factors", type=int, default=32)
    parser.add_argument("--als-iterations", type=int, default=15)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    print(f"machine: {machine()}; data {args.data}; master {args.master}", flush=True)
    spark = ["--engine", "spark", "--master", args.master]
    for stage in args.stages.split(","):
        runs = {}
        for engine in ("local", "spark"):
            out = args.work / f"{stage}-{engine}"
            extra = spark if engine == "spark" else []
            if stage == "ingest":
                command = segue("ingest", args.mpd, "--out", out, *extra)
            elif stage == "evaluate":
                models = args.models.split(",")
                command = segue("evaluate", *models, "--split", args.split, "--out", out, *extra)
            elif stage == "rules":
                command = segue("rules", args.data, "--out", out, *extra)
            elif stage == "als":
                command = segue("train", "als", args.data, "--out", out,
                                "-p", f"factors={args.als_factors}",
                                "-p", f"iterations={args.als_iterations}", *extra)  # fmt: skip
            else:
                command = segue("train", stage, args.data, "--out", out, *extra)
            r = runs[engine] = measure(command)
            if r.returncode != 0:
                sys.exit(f"{' '.join(command)} failed:\n{r.output[-3000:]}")
            print(
                f"{stage:8} {engine:6} {r.wall_s:8.1f} s  peak {r.peak_rss_gib:.2f} GiB", flush=True
            )
        ratio = runs["spark"].wall_s / runs["local"].wall_s
        print(f"{stage:8} spark / local time: {ratio:.2f}×  agreement: {agreement(stage, args.work)}",
              flush=True)  # fmt: skip


def agreement(stage: str, work: Path) -> str:
    if stage == "ingest":
        import json

        import pyarrow.parquet as pq

        local, spark = work / "ingest-local", work / "ingest-spark"
        same = [
            name
            for name in ("playlists", "tracks", "playlist_tracks")
            if pq.read_table(local / f"{name}.parquet").equals(
                pq.read_table(spark / f"{name}.parquet")
            )
        ]
        manifest = json.loads((local / "manifest.json").read_text()) == json.loads(
            (spark / "manifest.json").read_text()
        )
        return f"tables equal: {', '.join(same) or 'none'}; manifests equal: {manifest}"
    if stage == "evaluate":
        import json

        local, spark = (
            json.loads((work / f"evaluate-{e}" / "evaluation.json").read_text())
            for e in ("local", "spark")
        )
        queries = local["settings"]["n_queries"]
        same = local["table"] == spark["table"] and local["comparisons"] == spark["comparisons"]
        return f"{queries:,} queries; evaluation tables and comparisons equal: {same}"
    if stage == "rules":
        import pyarrow.parquet as pq

        a = pq.read_table(work / "rules-local" / "rules.parquet")
        b = pq.read_table(work / "rules-spark" / "rules.parquet")
        return f"{a.num_rows:,} rules, tables equal: {a.equals(b)}"
    from segue.models.base import Recommender

    a, b = Recommender.load(work / f"{stage}-local"), Recommender.load(work / f"{stage}-spark")
    if stage == "itemknn":
        same = a.similarity.multiply(b.similarity != 0).nnz
        return f"{same / a.similarity.nnz:.4%} of {a.similarity.nnz:,} neighbour pairs shared"
    from segue.models.base import Queries

    rng = np.random.default_rng(0)
    seeds = [
        rng.choice(np.flatnonzero(a.popularity), 10, replace=False).tolist() for _ in range(200)
    ]
    q = Queries.from_lists(seeds)
    x, y = a.recommend(q, 100).ids, b.recommend(q, 100).ids
    overlap = np.mean([len(set(u) & set(v)) / 100 for u, v in zip(x, y, strict=True)])
    return f"top-100 overlap on 200 random 10-track queries {overlap:.3f} (quality: segue evaluate)"


if __name__ == "__main__":
    main()
