"""Next-track models (``sknn``, ``gru4rec``) side by side: generated sessions and real playlists.

    # generated sessions: next-track HitRate@10 / MRR@10 of the split's validation or test part
    .venv/bin/python benchmarks/bench_sequence.py generated --users 2000 --work /tmp/bseq
    # real MPD playlists read as sequences: R-precision / NDCG of the challenge queries and
    # next-track HitRate@10 / MRR@10 at seeded cut points of the part's held-out playlists
    .venv/bin/python benchmarks/bench_sequence.py real --split /work/scratch/real-final/split --part test
    # any model parameters: MODEL.key=value, repeatable
    ... --models sknn,gru4rec --param gru4rec.hidden_size=200 --param gru4rec.budget_seconds=120

Both modes train in this process (torch with one thread: the machine is shared) and print one
Markdown row per model. ``--part validation`` scores the part models may be tuned on; ``test`` is
for reporting. Every number is deterministic for a given thread count unless a model's time
budget cut its training (gru4rec records that in its training log, printed under the table).

Real next-track queries: a held-out playlist is whole again once its seeds (with their positions)
and its held-out tracks (kept in position order by ``segue split``) are put back together; at up
to ``--cuts`` seeded positions per playlist the query is the tracks before the cut (the latest 50,
tracks unknown to training dropped, as challenge seeds are) and the answer is the track at the
cut (skipped when it already occurred before it, as the session split does). A track unknown to
training counts as a miss for every model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_model_params(pairs: list[str], models: list[str]) -> dict[str, dict]:
    params: dict[str, dict] = {m: {} for m in models}
    for pair in pairs:
        key, _, value = pair.partition("=")
        model, _, field = key.partition(".")
        params.setdefault(model, {})[field] = value
    return params


def fit(name: str, data, params: dict):
    from segue.models.config import config_from_pairs
    from segue.models.registry import get_model_class

    cls = get_model_class(name)
    config = config_from_pairs(cls.Config, [f"{k}={v}" for k, v in params.items()])
    start = time.perf_counter()
    model = cls(config).fit(data)
    return model, time.perf_counter() - start


def next_track_scores(ranking: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """HitRate@k and MRR@k of rankings [q, k] against one target each."""
    hit = ranking == target[:, None]
    found = hit.any(axis=1)
    rank = np.where(found, hit.argmax(axis=1) + 1, np.inf)
    return float(found.mean()), float((1.0 / rank).mean())


def real_next_track(loaded, cuts: int, seed: int, max_prefix: int = 50):
    """Queries (training ids) and targets (evaluation ids) cut from the part's whole playlists."""
    from segue.data import schema
    from segue.models.base import Queries

    rng = np.random.default_rng(seed)
    n_items = loaded.train.n_tracks
    prefixes, targets = [], []
    for entry, truth in zip(loaded.entries, loaded.task.truth, strict=True):
        length = int(entry["num_tracks"])
        playlist = np.full(length, -1, dtype=np.int64)
        seed_pos = np.array([t[schema.POS] for t in entry["tracks"]], dtype=np.int64)
        seed_ids = np.array(
            [loaded.eval_ids.get(t[schema.TRACK_URI], -1) for t in entry["tracks"]], dtype=np.int64
        )
        playlist[seed_pos] = seed_ids
        playlist[np.setdiff1d(np.arange(length), seed_pos)] = truth
        for cut in np.sort(rng.choice(np.arange(1, length), min(cuts, length - 1), replace=False)):
            before = playlist[:cut]
            if playlist[cut] in before:
                continue
            known = before[(before >= 0) & (before < n_items)][-max_prefix:]
            prefixes.append(known.tolist())
            targets.append(int(playlist[cut]))
    return Queries.from_lists(prefixes), np.array(targets, dtype=np.int64)


def real_stage(args) -> None:
    from segue.evaluation.task import load_part
    from segue.models.base import Queries
    from segue.tuning import score

    loaded = load_part(Path(args.split), args.part)
    queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
    nt_queries, nt_target = real_next_track(loaded, args.cuts, args.seed)
    print(
        f"real {args.part}: {loaded.train.n_playlists:,} training playlists, {loaded.train.n_tracks:,} tracks; "
        f"{len(queries):,} challenge queries; {len(nt_target):,} next-track queries "
        f"({(nt_target >= loaded.train.n_tracks).mean():.1%} of targets unknown to training)"
    )
    rows, logs = [], {}
    params = parse_model_params(args.param, args.models)
    for name in args.models:
        model, fit_s = fit(name, loaded.train, params.get(name, {}))
        start = time.perf_counter()
        ranking = model.recommend(queries, 500).ids
        top = model.recommend(nt_queries, 10).ids
        answer_s = time.perf_counter() - start
        hit, mrr = next_track_scores(top, nt_target)
        rows.append(
            f"| {name} | {fit_s:.1f} s | {answer_s:.1f} s | {score('r_precision', ranking, loaded.task.truth):.4f} "
            f"| {score('ndcg', ranking, loaded.task.truth):.4f} | {hit:.4f} | {mrr:.4f} |"
        )
        logs[name] = getattr(model, "training_log", None)
        print(rows[-1], flush=True)
    print(
        "\n| model | fit | answer | R-precision | NDCG | next-track HitRate@10 | MRR@10 |\n|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    print_logs(logs, params)


def generated_stage(args) -> None:
    from segue.data.listening_exports import ingest_sessions
    from segue.data.sessions import ListeningData
    from segue.data.synthetic.sessions import generate_sessions
    from segue.evaluation.sessions import recommend_next, split_listening

    work = Path(args.work)
    gen, data = work / f"gen-{args.users}-{args.seed}", work / f"data-{args.users}-{args.seed}"
    if not (data / "manifest.json").exists():
        generate_sessions(gen, args.users, seed=args.seed)
        ingest_sessions(gen, data)
    split = split_listening(
        ListeningData.load(data), seed=args.seed, max_next_track=args.next_queries
    )
    task = split.part(args.part)
    sessions = split.train.to_session_data()
    print(
        f"generated {args.users:,} users (seed {args.seed}), {args.part}: {len(task.next_track):,} next-track queries, "
        f"{len(sessions.sequence_ids):,} training plays"
    )
    rows, logs = [], {}
    params = parse_model_params(args.param, args.models)
    for name in args.models:
        model, fit_s = fit(name, sessions, params.get(name, {}))
        top = recommend_next(model, task, 10)
        hit, mrr = next_track_scores(top, task.next_track.target.astype(np.int64))
        rows.append(f"| {name} | {fit_s:.1f} s | {hit:.4f} | {mrr:.4f} |")
        logs[name] = getattr(model, "training_log", None)
        print(rows[-1], flush=True)
    print("\n| model | fit | next-track HitRate@10 | MRR@10 |\n|---|---|---|---|")
    print("\n".join(rows))
    print_logs(logs, params)


def print_logs(logs: dict, params: dict) -> None:
    for name, log in logs.items():
        if log:
            print(f"\n{name} {params.get(name) or ''}: {json.dumps(log)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=("generated", "real"))
    parser.add_argument("--models", type=lambda s: s.split(","), default=["sknn", "gru4rec"])
    parser.add_argument("--param", action="append", default=[], help="MODEL.key=value, repeatable.")
    parser.add_argument("--part", default="test", choices=("validation", "test"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split", default="/work/scratch/real-final/split", help="real: a `segue split` directory."
    )
    parser.add_argument(
        "--cuts", type=int, default=5, help="real: next-track cut points per held-out playlist."
    )
    parser.add_argument(
        "--work", default="/tmp/bench-sequence", help="generated: where the data is made."
    )
    parser.add_argument("--users", type=int, default=2000, help="generated: listeners.")
    parser.add_argument(
        "--next-queries", type=int, default=20_000, help="generated: next-track queries per part."
    )
    args = parser.parse_args(argv)
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    torch.set_num_threads(1)
    (real_stage if args.stage == "real" else generated_stage)(args)


if __name__ == "__main__":
    sys.exit(main())
