"""The main job: ``segue demo`` (everything, on generated data) and ``segue pipeline`` (the phases,
on real data). :mod:`.runner` runs resumable, logged stages; :mod:`.phases` defines them;
:mod:`.report` writes the report; :mod:`.examples` the explained example continuations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from segue.pipeline.phases import PHASES, PipelineResult, Settings, run_pipeline

__all__ = [
    "DEMO_MIN_FOLLOWERS",
    "DEMO_PLAYLISTS",
    "PHASES",
    "PipelineResult",
    "Settings",
    "demo_settings",
    "run_demo",
    "run_pipeline",
]

# The demo generates the real dev set's population, playlists with ≥ 10 followers (longer and
# more curated than the MPD's average: see PlaylistConfig), so that its evaluation table ranks the
# classic models as real playlists rank them and at their magnitude (benchmarks/CALIBRATION.md:
# the MPD's average population ranks them with Spearman 0.71 at 42% of their real R-precision).
# 30,000 such playlists hold 2.9M track entries (50,000 average ones: 3.4M); at 35,000 the demo
# took 9 min 60 s, its richer co-occurrence making rule mining 12 times slower than before.
DEMO_PLAYLISTS = 30_000
DEMO_MIN_FOLLOWERS = 10
DEMO_USERS = 1_000
# Quick mode everywhere. The track-popularity model grows 50
# trees per forest, not 100, and BPR (the weakest factor model, not in the hybrid) runs 30 epochs,
# not 50: those stages took 97 s and 133 s of the demo's 10 minutes. The two-stage ranker trains
# its trees on 1,100 carved queries (100 per query group, one carve) instead of 3,300. ALS and BPR
# keep 64 factors (the ensembles' ALS too, so they reuse the trained one): 128, the default tuned
# on real playlists, gained 0.0007 R-precision on generated data (ALS) at 1.7–2× the fit time,
# and with it the demo ran 10 min 19 s.
DEMO_ALS = {"als": {"factors": 64}}
# The demo's training budgets (the quick mode's minute otherwise): LightGCN and PlaylistGAT 90 s
# each: an epoch over the demo's 30,000 playlists takes 35 s with the other stages beside it, and
# LightGCN's validation Recall@10 peaks after the first (0.048, then 0.044, 0.045; the same shape
# on the 50,000 average playlists of the earlier demo), so the first epoch must finish and more
# buys nothing. The
# listening GATs half a minute each
# (same budget for gat and genre_gat), GRU4Rec one minute (its default ten are for real data;
# on the demo's 2,000 users it early-stops after about 4.5 minutes).
DEMO_MODEL_PARAMS = {
    "popularity": {"n_estimators": 50},
    "gru4rec": {"budget_seconds": 60},
    "lightgcn": {"trainer": {"budget_seconds": 90}},
    "playlistgat": {"trainer": {"budget_seconds": 90}},
    "gat": {"trainer": {"budget_seconds": 30}},
    "bpr": {"iterations": 30, "factors": 64},
    "als": {"factors": 64},
    "hybrid": {"params": DEMO_ALS},
    "rerank": {"validation_per_group": 100, "max_folds": 1, "params": DEMO_ALS},
}


def demo_settings(
    out: Path,
    *,
    playlists: int = DEMO_PLAYLISTS,
    users: int = DEMO_USERS,
    per_category: int = 100,
    seed: int = 0,
    workers: int | None = None,
    min_followers: int = DEMO_MIN_FOLLOWERS,
) -> Settings:
    """The demo: generated playlists (MPD format, with a challenge set) and listening sessions."""
    out = Path(out)
    return Settings(
        out=out,
        mpd=out / "mpd",
        sessions=out / "sessions-raw" if users else None,
        per_category=per_category,
        seed=seed,
        workers=workers,
        generate_playlists=playlists,
        generate_min_followers=min_followers,
        generate_users=users,
        model_params=DEMO_MODEL_PARAMS,
    )


def run_demo(
    out: Path,
    *,
    playlists: int = DEMO_PLAYLISTS,
    users: int = DEMO_USERS,
    per_category: int = 100,
    seed: int = 0,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
    force: bool = False,
    jobs: int = 2,
    min_followers: int = DEMO_MIN_FOLLOWERS,
) -> PipelineResult:
    """Every phase on generated data, under ``out``; stages whose inputs did not change are skipped."""
    settings = dataclasses.replace(
        demo_settings(
            out,
            playlists=playlists,
            users=users,
            per_category=per_category,
            seed=seed,
            workers=workers,
            min_followers=min_followers,
        ),
        jobs=jobs,
    )
    return run_pipeline(settings, list(PHASES), echo=echo, force=force)
