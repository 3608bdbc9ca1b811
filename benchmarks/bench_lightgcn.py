"""LightGCN at scale: one full-graph training epoch, peak memory, and query speed.

    .venv/bin/python benchmarks/bench_lightgcn.py --data /work/scratch/m1m/data --epochs 1

Trains ``lightgcn`` on an ingested dataset (every playlist: no split, the figure is the cost of
an epoch, not a quality) for ``--epochs`` epochs (the time budget set far above them), then
times its answers at 500 tracks: ``--queries`` queries of 25 seeds (the first tracks of random
training playlists) in one batch, and one at a time over the first 100. Prints a Markdown table;
peak RSS is the process's own maximum resident set (``ru_maxrss``: training and inference run in
this one process, torch with one thread unless ``--threads``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="an ingested dataset (segue ingest)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--param", action="append", default=[], help="lightgcn key=value, repeatable"
    )
    args = parser.parse_args(argv)

    from segue.data.dataset import PlaylistData
    from segue.models.base import Queries
    from segue.models.config import RunOptions, config_from_pairs
    from segue.models.gnn.lightgcn import LightGCNRecommender

    def peak_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    start = time.perf_counter()
    data = PlaylistData.load(args.data)
    load_s = time.perf_counter() - start
    params = [
        f"trainer.epochs={args.epochs}",
        "trainer.budget_seconds=86400",
        "trainer.mode=full",
        *args.param,
    ]
    config = config_from_pairs(LightGCNRecommender.Config, params)
    start = time.perf_counter()
    model = LightGCNRecommender(config).fit(data, RunOptions(num_threads=args.threads))
    fit_s = time.perf_counter() - start
    train_peak = peak_gib()
    epochs = model.history.epochs

    rng = np.random.default_rng(0)
    rows = rng.choice(data.n_playlists, size=args.queries, replace=False)
    matrix = data.matrix
    seeds = [matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]][:25].tolist() for r in rows]
    queries = Queries.from_lists(seeds)
    start = time.perf_counter()
    model.recommend(queries, 500)
    batch_qps = len(seeds) / (time.perf_counter() - start)
    single = []
    for row in range(min(100, len(seeds))):
        began = time.perf_counter()
        model.recommend(queries.slice(row, row + 1), 500)
        single.append(1000 * (time.perf_counter() - began))

    print(
        f"data: {args.data} ({data.n_playlists:,} playlists, {data.n_tracks:,} tracks, "
        f"{matrix.nnz:,} edges; loaded in {load_s:.1f} s); config: {' '.join(params)}"
    )
    print("| epoch | wall | loss | complete |")
    print("|---|---|---|---|")
    for e in epochs:
        print(f"| {e['epoch'] + 1} | {e['seconds']:.1f} s | {e['loss']:.4f} | {e['complete']} |")
    print(
        f"\nfit (graph build, {len(epochs)} epoch(s), validation, final propagation): {fit_s:.1f} s; "
        f"peak RSS after training {train_peak:.2f} GiB; after inference {peak_gib():.2f} GiB"
    )
    print(
        f"inference at 500 tracks: {batch_qps:.0f} queries/s batched ({len(seeds):,} queries of 25 seeds); "
        f"single query median {np.median(single):.1f} ms, p95 {np.percentile(single, 95):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
