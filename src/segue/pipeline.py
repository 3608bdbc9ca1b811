"""``segue demo``: the main job on generated data, stage by stage.

generate → verify → ingest → EDA → split → train (popular) → recommend → check the submission →
evaluate, plus a submission for the generated challenge set from a model trained on all the data
(the real challenge's workflow). Every stage reads what the previous one wrote, under ``out``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segue.errors import SegueError


@dataclass
class DemoResult:
    out: Path
    timings: list[tuple[str, float]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    evaluation: object = None


def run_demo(out: Path, *, playlists: int = 20_000, per_category: int = 100, seed: int = 0,
             workers: int | None = None, echo: Callable[[str], None] = print) -> DemoResult:
    from segue.analysis.eda import run_eda
    from segue.data.challenge import read_challenge
    from segue.data.dataset import PlaylistData
    from segue.data.ingest import ingest_mpd
    from segue.data.synthetic.mpd import generate_mpd
    from segue.data.verify import verify_mpd
    from segue.evaluation.runner import evaluate, write_report
    from segue.evaluation.split import split_dataset
    from segue.evaluation.submission import check_submission, read_submission, write_submission
    from segue.evaluation.task import load_part, ranking_from_submission
    from segue.models.base import Queries, Recommender
    from segue.models.popular import PopularRecommender

    out = Path(out)
    result = DemoResult(out)
    mpd, data, split = out / "mpd", out / "data", out / "split"

    def stage(name: str, func):
        echo(f"[{len(result.timings) + 1}] {name} …")
        start = time.perf_counter()
        value = func()
        result.timings.append((name, time.perf_counter() - start))
        return value

    def submit(model: Recommender, entries: list[dict], path: Path) -> None:
        uris = model.catalog().column("track_uri").to_pylist()
        queries, _ = Queries.from_challenge(entries, {u: i for i, u in enumerate(uris)})
        ranking = model.recommend(queries, 500)
        write_submission(path, queries.pids.tolist(), [[uris[i] for i in row] for row in ranking.ids.tolist()],
                         team="segue demo", email="demo@example.org")
        report = check_submission(path, entries)
        if not report.ok:
            raise SegueError(f"{path}: the demo's own submission failed its check:\n{report.format_text()}")

    stage("generate", lambda: generate_mpd(mpd, playlists, seed=seed, challenge_per_category=per_category,
                                           workers=workers, overwrite=True))
    report = stage("verify", lambda: verify_mpd(mpd, workers=workers))
    if not report.ok:
        raise SegueError(f"verification of the generated data failed:\n{report.format_text()}")
    ingested = stage("ingest", lambda: ingest_mpd(mpd, data, workers=workers))
    stats = stage("eda", lambda: run_eda(data, out / "eda"))
    stage("split", lambda: split_dataset(data, split, per_category=per_category, seed=seed))
    models = out / "models"
    model = stage("train popular", lambda: PopularRecommender().fit(PlaylistData.load(split / "train")))
    model.save(models / "popular")
    test_entries = read_challenge(split / "test" / "challenge_set.json")
    stage("recommend + check (split test set)",
          lambda: submit(Recommender.load(models / "popular"), test_entries, out / "submissions" / "popular-test.csv.gz"))

    def score():
        loaded = load_part(split, "test")
        queries, _ = Queries.from_challenge(loaded.entries, loaded.train.uri_to_id)
        rankings = {"popular": Recommender.load(models / "popular").recommend(queries, 500).ids}
        rows = read_submission(out / "submissions" / "popular-test.csv.gz", loaded.entries)
        rankings["popular (submission file)"] = ranking_from_submission(rows, loaded.task.pids, loaded.eval_ids)
        evaluation = evaluate(loaded.task, rankings, n_bootstrap=1000, seed=seed)
        write_report(evaluation, out / "evaluation", title="segue demo: evaluation on the held-out test split")
        return evaluation

    result.evaluation = stage("evaluate", score)

    def challenge_submission():
        full = PopularRecommender().fit(PlaylistData.load(data))
        full.save(models / "popular-full")
        submit(Recommender.load(models / "popular-full"), read_challenge(mpd / "challenge_set.json"),
               out / "submissions" / "challenge.csv.gz")

    stage("submission for the generated challenge set", challenge_submission)
    result.summary = {
        "playlists": ingested.n_playlists, "tracks": ingested.n_tracks, "entries": ingested.n_entries,
        "length": stats.get("playlist_length", {}),
    }
    return result
