"""Every playlist model on real MPD playlists: the table every quality claim in RESULTS.md points to.

    .venv/bin/python benchmarks/bench_real.py --work /work/scratch/real
    .venv/bin/python benchmarks/bench_real.py --work /work/scratch/real-s1 --seed 1   # a second split
    .venv/bin/python benchmarks/bench_real.py --work W --models als,itemknn --param als.factors=128

Steps, each the real CLI: ``segue ingest`` the real dev set (``../shared/data/real-mpd-dev`` beside
the checkout, or ``--mpd``), ``segue split`` it into the challenge's 10 categories (``--per-category``
test playlists each, as many again carved from the training part for validation), then for every
model ``segue train`` on the training part (a measured subprocess: wall time, peak RSS), its
answers to the test queries timed, and ``segue evaluate`` over all of them (95% bootstrap CIs,
paired tests). The test playlists are seen by nothing but the evaluation; models that tune
themselves (the hybrid, the ranker) carve their validation queries from the training part.

Writes ``<work>/results.md`` and prints it. When the real data is absent (a fresh clone without
``../shared``) it says so and exits 0: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_models import SEGUE, run_models, table_lines  # noqa: E402
from measure import machine  # noqa: E402

REAL_MPD = HERE.parent.parent / "shared" / "data" / "real-mpd-dev"


def default_models() -> str:
    """Every registered model that continues playlists, cheapest first."""
    return (
        "popular,title,itemknn,playlistknn,rp3beta,rules,svd,als,bpr,embed,sknn,gru4rec,"
        "lightgcn,playlistgat,hybrid,rerank"
    )


def reference_blend(split: Path, work: Path) -> Path:
    """The untuned three-line blend the real-data comparison was first made against: plain ALS
    (128 factors, confidence alpha 20), item-kNN and title, each model's top 1,000 scores min-max
    normalised per query, fused as 0.5·ALS + 0.4·item-kNN + 0.1·title. Written as a submission
    file for the split's test part, so ``segue evaluate`` scores it beside the models."""
    import numpy as np

    from segue.data.challenge import read_challenge
    from segue.data.dataset import PlaylistData
    from segue.evaluation.submission import write_submission
    from segue.models.base import Queries
    from segue.models.registry import get_model_class

    out = work / "reference_blend.csv.gz"
    if out.exists():
        return out
    data = PlaylistData.load(split / "train")
    als_cls = get_model_class("als")
    models = {
        "als": als_cls(als_cls.Config(factors=128, alpha=20.0)).fit(data),
        "itemknn": get_model_class("itemknn")().fit(data),
        "title": get_model_class("title")().fit(data),
    }
    uris = models["title"].catalog().column("track_uri").to_pylist()  # the training data's catalog
    entries = read_challenge(split / "test" / "challenge_set.json")
    queries, _ = Queries.from_challenge(entries, {u: i for i, u in enumerate(uris)})
    rankings = {name: models[name].recommend(queries, 1000) for name in models}
    top = []
    for start in range(0, len(queries), 100):  # 100 dense rows of the catalog at a time
        batch = queries.slice(start, min(start + 100, len(queries)))
        fused = np.zeros((len(batch), len(uris)), dtype=np.float64)
        for name, weight in (("als", 0.5), ("itemknn", 0.4), ("title", 0.1)):
            ids = rankings[name].ids[start : start + len(batch)]
            scores = np.nan_to_num(
                rankings[name].scores[start : start + len(batch)].astype(np.float64), nan=0.0
            )
            low, high = scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True)
            scaled = np.where(high > low, (scores - low) / np.where(high > low, high - low, 1), 0.0)
            np.add.at(
                fused,
                (np.repeat(np.arange(len(batch)), ids.shape[1]), ids.reshape(-1)),
                weight * scaled.reshape(-1),
            )
        fused[np.repeat(np.arange(len(batch)), batch.lengths()), batch.seed_ids] = -np.inf
        top.append(np.argsort(-fused, axis=1, kind="stable")[:, :500])
    top = np.concatenate(top)
    write_submission(
        out,
        queries.pids.tolist(),
        [[uris[i] for i in row] for row in top.tolist()],
        team="reference blend",
        email="bench@example.org",
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mpd", type=Path, default=REAL_MPD, help="the real MPD slices (default: %(default)s)"
    )
    parser.add_argument(
        "--work", type=Path, required=True, help="where data, split, models and results go"
    )
    parser.add_argument(
        "--per-category", type=int, default=100, help="test (and validation) playlists per category"
    )
    parser.add_argument("--seed", type=int, default=0, help="the split's seed")
    parser.add_argument("--models", default=default_models(), help="comma-separated model names")
    parser.add_argument("--param", action="append", default=[], help="MODEL.key=value, repeatable")
    parser.add_argument(
        "--reuse", action="store_true", help="keep models already trained under --work"
    )
    parser.add_argument(
        "--part",
        default="test",
        choices=("test", "validation"),
        help="score on the test part (default) or on the validation part (models trained "
        "on the validation training part): for choosing settings without the test set",
    )
    args = parser.parse_args()
    from segue.models.registry import available

    if not args.mpd.is_dir():
        print(f"bench_real: no real MPD playlists at {args.mpd}; skipped (pass --mpd DIR)")
        return 0
    known = {name for name, _ in available()}
    names = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() in known]
    skipped = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() not in known]
    work = args.work
    data, split = work / "data", work / "split"
    if not (data / "manifest.json").exists():
        subprocess.run(
            [*SEGUE, "ingest", str(args.mpd), "--out", str(data)], check=True, capture_output=True
        )
    if not (split / "split.json").exists():
        subprocess.run(
            [
                *SEGUE,
                "split",
                str(data),
                "--out",
                str(split),
                "--per-category",
                str(args.per_category),
                "--seed",
                str(args.seed),
            ],
            check=True,
        )
    submissions = (
        [reference_blend(split, work)]
        if args.part == "test" and {"itemknn", "title"} <= set(names)
        else []
    )
    rows, document = run_models(
        split, work, names, args.param, reuse=args.reuse, part=args.part, submissions=submissions
    )
    command = (
        f".venv/bin/python benchmarks/bench_real.py --work {work}"
        + (f" --seed {args.seed}" if args.seed else "")
        + (f" --per-category {args.per_category}" if args.per_category != 100 else "")
        + (f" --part {args.part}" if args.part != "test" else "")
        + (f" --models {args.models}" if args.models != default_models() else "")
        + "".join(f" --param {p}" for p in args.param)
    )
    settings = document.get("settings", {})
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Data: {args.mpd.name}, split seed {args.seed}, {settings.get('n_queries', '?')} {args.part} queries "
        f"({args.per_category} per category)  ",
    ]
    if skipped:
        lines.append(f"Not registered (skipped): {', '.join(skipped)}  ")
    text = "\n".join([*lines, "", *table_lines(rows, document)]) + "\n"
    (work / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
