"""Graph-model figures: quality on generated sessions and on the playlist challenge split, training
time and peak memory per mode, inference time per user.

    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_graph.py --work /tmp/segue-graph-bench \\
        --playlist-split demo/split --sessions-users 1000 --modes mini,quick

Sections (each skippable):

``sessions``  ``segue generate sessions`` (``--sessions-users``, seed 0) → ``segue ingest sessions`` →
              a 70/15/15 split by time → gat, genre_gat, lightgcn, playlistgat against popular,
              itemknn and ALS with the shared harness (Recall@10 / NDCG@10, all tracks ranked,
              training tracks excluded; by user type), the genre-aware model's genre diversity,
              coverage and influence, and inference time per user — in ``--quality-mode``.
``playlists`` PlaylistGAT and LightGCN against ALS on ``--playlist-split`` (from ``segue split``)
              with the Evaluation harness (challenge metrics, CIs, paired tests).
``modes``     each of ``--modes`` for each graph model, as a separate ``segue train``
              process measured by ``measure.py`` (wall time, peak RSS of the process tree), once per
              ``--seeds`` seed; with ``--evaluate``, each playlist model is then scored on the split's
              test part (``segue evaluate``); with ``--scale-data``, lightgcn and playlistgat in mini
              mode on that (1M-playlist) dataset.

Writes ``results.json`` and ``results.md`` under ``--work``.
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


def run(command: list[str]) -> None:
    result = measure(command)
    if result.returncode != 0:
        raise SystemExit(
            f"failed ({result.returncode}): {' '.join(command)}\n{result.output[-3000:]}"
        )


def sessions_section(args, results: dict, lines: list[str]) -> Path:
    from segue.models.gnn.runs import evaluate_listening_models, load_listening_split

    raw, data = args.work / "sessions-raw", args.work / "sessions"
    run(
        [
            *SEGUE,
            "generate",
            "sessions",
            "--users",
            str(args.sessions_users),
            "--out",
            str(raw),
            "--seed",
            "0",
            "--overwrite",
        ]
    )
    run([*SEGUE, "ingest", "sessions", str(raw), "--out", str(data)])
    split = load_listening_split(data, seed=0)
    start = time.perf_counter()
    report = evaluate_listening_models(split, mode=args.quality_mode, seed=0)
    report.write(args.work / "sessions-eval")
    results["sessions"] = {
        "users": args.sessions_users,
        "mode": args.quality_mode,
        "seconds": time.perf_counter() - start,
        "table": report.evaluation.table,
        "counts": report.evaluation.counts,
        "train_seconds": report.train_seconds,
        "inference_ms_per_user": report.inference_ms_per_user,
        "single_user_ms": report.single_user_ms,
        "genre": report.genre,
        "histories": report.histories,
    }
    lines += [
        f"### Generated sessions ({args.sessions_users:,} users, {args.quality_mode} mode)",
        "",
        report.to_markdown(),
        "",
    ]
    return data


def playlists_section(args, results: dict, lines: list[str]) -> None:
    from segue.models.gnn.runs import evaluate_playlist_split

    start = time.perf_counter()
    result, timings = evaluate_playlist_split(
        args.playlist_split, args.work / "playlist-eval", mode=args.quality_mode, baselines=("als",)
    )
    table = {
        m: {
            metric: result.table[m]["all"][metric]["mean"]
            for metric in ("r_precision", "ndcg", "clicks")
        }
        for m in result.models
    }
    results["playlists"] = {
        "split": str(args.playlist_split),
        "mode": args.quality_mode,
        "table": table,
        "train_seconds": timings,
        "seconds": time.perf_counter() - start,
    }
    lines += [
        f"### Playlist challenge split ({args.playlist_split}, {args.quality_mode} mode)",
        "",
        "```",
        result.headline(),
        "```",
        "",
        "| model | training s | ms per query (batch) | ms per single query |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['train_s']:.1f} | {v['ms_per_query_batch']:.2f} | {v['ms_single_query']:.1f} |"
        for k, v in timings.items()
    ]
    lines.append("")


def held_out_r_precision(model_dir: Path, split: Path, out: Path) -> dict:
    """``segue evaluate`` of one playlist model on the split's test part: R-precision over all
    queries (mean, ci_low, ci_high, n)."""
    run([*SEGUE, "evaluate", str(model_dir), "--split", str(split), "--out", str(out)])
    table = json.loads((out / "evaluation.json").read_text())["table"]
    return next(iter(table.values()))["all"]["r_precision"]


def measured_training(model: str, data: Path, out: Path, mode: str, seed: int = 0) -> dict:
    """One ``segue train`` process, measured: its row of the modes table."""
    result = measure(
        [
            *SEGUE,
            "train",
            model,
            str(data),
            "--out",
            str(out),
            "-p",
            f"trainer.mode={mode}",
            "-p",
            f"trainer.seed={seed}",
        ]
    )
    if result.returncode != 0:
        raise SystemExit(f"{model} {mode} on {data} failed:\n{result.output[-3000:]}")
    return {
        "model": model,
        "mode": mode,
        "seed": seed,
        "data": str(data),
        "wall_s": result.wall_s,
        "peak_rss_gib": result.peak_rss_gib,
        "summary": [line for line in result.output.splitlines() if "epochs" in line][-1:],
    }


def modes_section(args, results: dict, lines: list[str], sessions: Path | None) -> None:
    rows = []
    jobs = []
    if args.playlist_split is not None:
        jobs += [(m, args.playlist_split / "train") for m in ("lightgcn", "playlistgat")]
    if sessions is not None:
        jobs += [(m, sessions) for m in ("gat", "genre_gat")]
    seeds = [int(x) for x in args.seeds.split(",")]
    for mode in args.modes.split(","):
        for model, data in jobs:
            for seed in seeds:
                name = f"{model}-{mode}" if seed == 0 else f"{model}-{mode}-seed{seed}"
                out = args.work / "models" / name
                row = measured_training(model, data, out, mode, seed)
                if args.evaluate and model in ("lightgcn", "playlistgat"):
                    row["r_precision"] = held_out_r_precision(
                        out, args.playlist_split, args.work / "evaluations" / name
                    )
                rows.append(row)
    if args.scale_data is not None:  # real scale: the memory bound, in the smallest budget
        rows += [
            measured_training(
                model, args.scale_data, args.work / "models" / f"{model}-scale", "mini"
            )
            for model in ("lightgcn", "playlistgat")
        ]
    results["modes"] = rows
    lines += [
        "### Training time and peak memory per mode (separate `segue train` processes)",
        "",
        "| model | mode | seed | data | wall time | peak RSS | epochs | R-precision (test, 95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rp = r.get("r_precision")
        rp_text = f"{rp['mean']:.4f} [{rp['ci_low']:.4f}, {rp['ci_high']:.4f}]" if rp else "—"
        lines.append(
            f"| {r['model']} | {r['mode']} | {r.get('seed', 0)} "
            f"| {Path(r['data']).name if r['model'] in ('gat', 'genre_gat') else r['data']} "
            f"| {r['wall_s']:.1f} s | {r['peak_rss_gib']:.2f} GiB | {' '.join(r['summary']).strip()} | {rp_text} |"
        )
    lines.append("")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/segue-graph-bench"))
    parser.add_argument(
        "--playlist-split", type=Path, default=None, help="A `segue split` directory."
    )
    parser.add_argument("--sessions-users", type=int, default=1000)
    parser.add_argument("--quality-mode", default="quick")
    parser.add_argument("--modes", default="mini,quick")
    parser.add_argument(
        "--scale-data",
        type=Path,
        default=None,
        help="A large playlist dataset (e.g. the 1M one) to train lightgcn/playlistgat on in mini mode.",
    )
    parser.add_argument(
        "--skip", default="", help="Comma-separated sections to skip: sessions, playlists, modes."
    )
    parser.add_argument(
        "--seeds",
        default="0",
        help="Comma-separated seeds: each model of the modes section is "
        "trained once per seed (seed variance).",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="modes: score each LightGCN/PlaylistGAT on the split's test part (`segue evaluate`).",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    results = {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(sys.argv),
    }
    lines = [
        f"Machine: {results['machine']}  ",
        f"Date: {results['date']}  ",
        f"Command: `{results['command']}`",
        "",
    ]
    sessions = None
    if "sessions" not in skip:
        sessions = sessions_section(args, results, lines)
    elif (args.work / "sessions").exists():
        sessions = args.work / "sessions"
    if "playlists" not in skip and args.playlist_split is not None:
        playlists_section(args, results, lines)
    if "modes" not in skip:
        modes_section(args, results, lines, sessions)
    (args.work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.work / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
