"""PlaylistGAT's attention against LightGCN's fixed seed weights, on a split's validation part.

    .venv/bin/python benchmarks/bench_attention.py --split /work/scratch/real-final/split \
        --param trainer.mode=full --param trainer.budget_seconds=300

Trains ``lightgcn`` and ``playlistgat`` with the same parameters on the split's validation
training data (``segue split`` writes it: the training part without the validation playlists),
answers the validation queries (500 tracks, seeds excluded) and prints R-precision overall and
by number of seeds, for LightGCN, for PlaylistGAT, and for the same PlaylistGAT with its
attention reset to its starting point (``a = 0``, ``c = −½``: exactly LightGCN's weights on
PlaylistGAT's track vectors) — what the attention itself changes. The test part is not read.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

BUCKETS = (("0", 0, 0), ("1", 1, 1), ("2-9", 2, 9), ("10-49", 10, 49), ("50+", 50, 10**9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True, help="a split directory (segue split)")
    parser.add_argument(
        "--param", action="append", default=[], help="key=value for both models, repeatable"
    )
    args = parser.parse_args(argv)

    from segue.evaluation import metrics
    from segue.models.config import config_from_pairs
    from segue.models.registry import get_model_class
    from segue.tuning import _load_validation

    validation = _load_validation(args.split)
    queries, truth = validation.queries, validation.truth
    seeds = np.diff(queries.indptr)
    rows = []

    def score(label: str, model, fit: float) -> None:
        r = metrics.r_precision(model.recommend(queries, 500).ids, truth)
        parts = [
            f"{r[(seeds >= lo) & (seeds <= hi)].mean():.4f}"
            if ((seeds >= lo) & (seeds <= hi)).any()
            else "–"
            for _, lo, hi in BUCKETS
        ]
        rows.append(f"| {label} | {fit:.0f} s | {r.mean():.4f} | " + " | ".join(parts) + " |")

    for name in ("lightgcn", "playlistgat"):
        cls = get_model_class(name)
        start = time.perf_counter()
        model = cls(config_from_pairs(cls.Config, args.param)).fit(validation.train)
        fit = time.perf_counter() - start
        score(f"{name} ({len(model.history.epochs)} epochs, {model.history.stopped})", model, fit)
        if name == "playlistgat":
            heads, d = model.config.heads, model.config.factors
            reset = copy.copy(model)
            reset._set_inference(
                {
                    **model._arrays(),
                    "attention.att_src": np.zeros((heads, d), np.float32),
                    "attention.att_dst": np.zeros((heads, d), np.float32),
                    "attention.degree": np.full(heads, -0.5, np.float32),
                }
            )
            score("playlistgat, attention reset to LightGCN's weights", reset, fit)
    counts = " | ".join(
        f"{label} ({int(((seeds >= lo) & (seeds <= hi)).sum())})" for label, lo, hi in BUCKETS
    )
    print(f"| model | fit | R-precision | seeds: {counts} |")
    print("|---|---|---|" + "---|" * len(BUCKETS))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
