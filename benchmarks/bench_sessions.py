"""Listening-data figures: generation and ETL speed, and the session-side model table.

    # generate + ingest at a realistic size (speed, peak memory)
    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_sessions.py data --users 100000 --work /tmp/segue-sessions
    # models on generated sessions: Recall/NDCG@10 of popular, itemknn, als (users' held-out tracks)
    # and next-track HitRate@10 of popular, sknn, gru4rec; overall and by user type
    flock /tmp/segue-heavy.lock .venv/bin/python benchmarks/bench_sessions.py models --users 10000 --work /tmp/segue-sessions

Every stage and every model runs in its own subprocess measured by ``measure.py`` (wall time,
peak RSS of the process tree); a model's process loads the split, trains, and answers the test
part, so its peak includes the split (the ``load only`` row gives that floor). The figures come
from the test part of ``split_listening`` (per user by time, 70/15/15), training tracks excluded.
Prints Markdown for RESULTS.md and writes it to ``<work>/sessions-<stage>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import machine, measure  # noqa: E402

SEGUE = [sys.executable, "-m", "segue"]
USER_MODELS = ("popular", "itemknn", "als")  # trained on train.to_playlist_data()
NEXT_MODELS = ("popular", "sknn", "gru4rec")  # trained on train.to_session_data()


def data_stage(args) -> str:
    work: Path = args.work
    gen, data = work / f"gen-{args.users}", work / f"data-{args.users}"
    rows = []
    for name, command in (
        (
            "generate sessions",
            [
                *SEGUE,
                "generate",
                "sessions",
                "--users",
                str(args.users),
                "--out",
                str(gen),
                "--seed",
                str(args.seed),
                "--overwrite",
            ],
        ),
        ("ingest sessions", [*SEGUE, "ingest", "sessions", str(gen), "--out", str(data)]),
        (
            "ListeningData.load",
            [
                sys.executable,
                "-c",
                f"from segue.data.sessions import ListeningData; "
                f"d = ListeningData.load({str(data)!r}); print(d.counts())",
            ],
        ),
    ):
        m = measure(command)
        if m.returncode != 0:
            raise SystemExit(f"{name} failed:\n{m.output[-2000:]}")
        rows.append((name, m))
    manifest = json.loads((data / "manifest.json").read_text())
    counts = manifest["counts"]
    csv_gb = (gen / "raw_sessions.csv").stat().st_size / 1e9
    parquet_gb = sum(p.stat().st_size for p in data.iterdir()) / 1e9
    lines = [
        f"### Listening data at {args.users:,} generated users",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sessions.py data --users {args.users} --work {work}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Size: {counts['events']:,} plays in {counts['sessions']:,} sessions, {counts['edges']:,} user–track edges, "
        f"{counts['tracks']:,} tracks; raw_sessions.csv {csv_gb:.2f} GB → {parquet_gb:.2f} GB of Parquet",
        "",
        "| stage | wall time | plays/s | peak RSS (process tree) |",
        "|---|---|---|---|",
        *[
            f"| {name} | {m.wall_s:.1f} s | {counts['events'] / m.wall_s:,.0f} | {m.peak_rss_gib:.2f} GiB |"
            for name, m in rows
        ],
        "",
    ]
    if not args.keep:
        shutil.rmtree(gen, ignore_errors=True)
    return "\n".join(lines)


def worker(args) -> None:
    """One model in this process: load the split, train, answer the test part, save rankings."""
    from segue.evaluation.sessions import load_listening_split, recommend_next, recommend_users
    from segue.models.config import config_from_pairs
    from segue.models.registry import get_model_class

    split = load_listening_split(args.split)
    out = Path(args.result)
    if args.model == "load":
        np.save(out.with_suffix(".npy"), np.zeros((0, 0), np.int32))
        out.write_text(json.dumps({"fit_s": 0.0}))
        return
    cls = get_model_class(args.model)
    config = config_from_pairs(cls.Config, args.param or [])
    data = split.train.to_session_data() if args.task == "next" else split.train.to_playlist_data()
    start = time.perf_counter()
    model = cls(config).fit(data)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    ids = (
        recommend_next(model, split.test, 10)
        if args.task == "next"
        else recommend_users(model, split.test, 50)
    )
    answer_s = time.perf_counter() - start
    np.save(out.with_suffix(".npy"), ids)
    out.write_text(
        json.dumps(
            {
                "fit_s": fit_s,
                "answer_s": answer_s,
                "queries": len(ids),
                "training_log": getattr(model, "training_log", None),
            }
        )
    )


def models_stage(args) -> str:
    from segue.data.sessions import ListeningData
    from segue.evaluation.sessions import (
        evaluate_listening,
        load_listening_split,
        split_listening,
        write_listening_split,
    )

    work: Path = args.work
    gen, data, split_dir = (
        work / f"gen-{args.users}",
        work / f"data-{args.users}",
        work / f"split-{args.users}",
    )
    if not (data / "manifest.json").exists():
        for command in (
            [
                *SEGUE,
                "generate",
                "sessions",
                "--users",
                str(args.users),
                "--out",
                str(gen),
                "--seed",
                str(args.seed),
                "--overwrite",
            ],
            [*SEGUE, "ingest", "sessions", str(gen), "--out", str(data)],
        ):
            m = measure(command)
            if m.returncode != 0:
                raise SystemExit(m.output[-2000:])
    start = time.perf_counter()
    split = split_listening(
        ListeningData.load(data), seed=args.seed, max_next_track=args.next_queries
    )
    write_listening_split(split, split_dir, catalog_from=data)
    split_s = time.perf_counter() - start
    split = load_listening_split(split_dir)
    runs = (
        [("next", "load", [])]
        + [("users", m, []) for m in USER_MODELS]
        + [("next", m, []) for m in NEXT_MODELS]
    )
    runs += [("next", "gru4rec", p.split(",")) for p in args.gru_variant]
    results, user_rankings, next_rankings = [], {}, {}
    for task, model, params in runs:
        result = work / f"result-{task}-{model}-{len(results)}.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "worker",
            "--split",
            str(split_dir),
            "--task",
            task,
            "--model",
            model,
            "--result",
            str(result),
            *[a for p in params for a in ("--param", p)],
        ]
        m = measure(command)
        if m.returncode != 0:
            raise SystemExit(f"{model} failed:\n{m.output[-3000:]}")
        info = json.loads(result.read_text())
        label = model + (f" ({', '.join(params)})" if params else "")
        results.append((task, label, m, info))
        if model != "load":
            ids = np.load(result.with_suffix(".npy"))
            (next_rankings if task == "next" else user_rankings)[label] = ids
    evaluation = evaluate_listening(split.test, user_rankings, next_track=next_rankings, k=10)
    evaluation.write(work / f"evaluation-{args.users}")
    c = split.info["counts"]
    lines = [
        f"### Session-side models at {args.users:,} generated users",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_sessions.py models --users {args.users} --work {work}`"
        + "".join(f" --gru-variant {v}" for v in args.gru_variant)
        + "  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Split (seed {args.seed}, {split_s:.1f} s): {c['held_out_users']:,} of {c['users']:,} users with held-out "
        f"tracks; {c['train_events']:,} training plays, {c['train_edges']:,} training edges; test "
        f"{c['test_edges']:,} held-out edges, {c['test_next_track']:,} next-track queries (sampled, seeded).",
        "",
        evaluation.to_markdown(),
        "Training and answering (each model in its own process: peak RSS includes loading the split):",
        "",
        "| task | model | fit | answer | peak RSS |",
        "|---|---|---|---|---|",
        *[
            f"| {task} | {label} | {info['fit_s']:.1f} s | {info.get('answer_s', 0):.1f} s for "
            f"{info.get('queries', 0):,} | {m.peak_rss_gib:.2f} GiB |"
            for task, label, m, info in results
        ],
        "",
    ]
    for _, label, _, info in results:
        if info.get("training_log"):
            lines.append(f"{label}: {info['training_log']}  ")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="stage", required=True)
    for name in ("data", "models"):
        p = sub.add_parser(name)
        p.add_argument("--users", type=int, default=100_000 if name == "data" else 10_000)
        p.add_argument("--work", type=Path, default=Path("/tmp/segue-sessions"))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--keep", action="store_true", help="keep the generated CSV files")
        if name == "models":
            p.add_argument("--next-queries", type=int, default=20_000)
            p.add_argument(
                "--gru-variant",
                action="append",
                default=[],
                help="extra gru4rec run, comma-separated key=value params (repeatable)",
            )
    w = sub.add_parser("worker")
    w.add_argument("--split", type=Path, required=True)
    w.add_argument("--task", choices=("users", "next"), required=True)
    w.add_argument("--model", required=True)
    w.add_argument("--param", action="append")
    w.add_argument("--result", required=True)
    args = parser.parse_args()
    if args.stage == "worker":
        worker(args)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    text = data_stage(args) if args.stage == "data" else models_stage(args)
    (args.work / f"sessions-{args.stage}-{args.users}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
