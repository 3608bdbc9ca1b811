"""Evaluation figures at full scale: split, recommend and score 10,000 challenge playlists × 500.

    .venv/bin/python benchmarks/bench_evaluation.py --data /tmp/segue-bench/data --work /tmp/segue-bench

``--data`` is an ingested dataset (e.g. the 1M one that bench_foundation.py leaves behind).
Stages run in this process (timed with perf_counter; peak RSS from the OS):

1. ``split`` with 1,000 playlists per category (test) and 1,000 (validation);
2. train ``popular`` on the training part and recommend 500 tracks for the 10,000 test playlists;
3. score: the challenge metrics alone, then the whole ``evaluate`` (all metrics, 1,000 stratified
   bootstrap resamples, paired tests) — the figure the Evaluation issue sets at ≤ 10 s.
"""

from __future__ import annotations

import argparse
import datetime
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segue-bench"))
    parser.add_argument("--per-category", type=int, default=1000)
    args = parser.parse_args()

    from segue.evaluation.metrics import challenge_metrics
    from segue.evaluation.runner import evaluate
    from segue.evaluation.split import split_dataset
    from segue.evaluation.task import load_part
    from segue.models.base import Queries
    from segue.models.popular import PopularRecommender

    split = args.work / "split"
    timings = []

    def timed(name, func):
        start = time.perf_counter()
        result = func()
        timings.append((name, time.perf_counter() - start, peak_gib()))
        return result

    timed(
        "split (test + validation)",
        lambda: split_dataset(args.data, split, per_category=args.per_category, seed=0),
    )
    loaded = timed("load test part (PlaylistData + truth)", lambda: load_part(split, "test"))
    model = timed("train popular", lambda: PopularRecommender().fit(loaded.train))
    queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    ranking = timed(f"recommend {len(queries):,} × 500", lambda: model.recommend(queries, 500))
    task = loaded.task
    timed(
        "challenge metrics (R-prec, NDCG×2, clicks, artist R-prec)",
        lambda: challenge_metrics(ranking.ids, task.truth, task.track_artist),
    )
    # Two rankings so the paired comparison is exercised too.
    second = ranking.ids.copy()
    second[:, :250] = ranking.ids[:, 250:]
    second[:, 250:] = ranking.ids[:, :250]
    result = timed(
        "evaluate: all metrics, 1,000 bootstrap, paired tests (2 models)",
        lambda: evaluate(
            task, {"popular": ranking.ids, "popular-shuffled": second}, n_bootstrap=1000
        ),
    )
    overall = result.table["popular"]["all"]
    lines = [
        f"### Evaluation at {loaded.train.n_playlists + len(queries):,} playlists ({len(queries):,} test playlists)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_evaluation.py --data {args.data} --work {args.work}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}",
        "",
        "| stage | wall time | peak RSS (this process) |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.2f} s | {gib:.2f} GiB |" for name, seconds, gib in timings],
        "",
        f"Popularity on the test part: R-precision {overall['r_precision']['mean']:.4f} "
        f"[{overall['r_precision']['ci_low']:.4f}, {overall['r_precision']['ci_high']:.4f}], "
        f"NDCG {overall['ndcg']['mean']:.4f}, clicks {overall['clicks']['mean']:.2f}.",
        "",
    ]
    text = "\n".join(lines)
    (args.work / "results_evaluation.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
