"""One small run of the main job, built once per test session through the CLI and shared by the
end-to-end, browser and notebook tests.

``segue demo`` itself runs every phase (the hybrid's tuning, the graph models, the listening
models, the popularity model: minutes even at 2,000 playlists), too long for the test suite; so
the fixture runs the same stages the way a user with real data would, through the CLI:

1. ``segue generate mpd`` (2,000 playlists, a 10×5 challenge set),
2. ``segue pipeline phase1`` and ``segue pipeline phase2`` (verify, ingest, EDA, co-occurrence,
   split, rules, clusters, six neighbourhood models, then the finish: evaluation, diversity,
   examples, submission, report),
3. ``segue train playlistgat`` in the ``mini`` mode into the run's ``models/`` (the notebook's
   attention heatmap needs a graph model), and ``segue pipeline phase2`` once more: the finish
   sees the new model and evaluates it; every other stage is skipped.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from segue.cli import main

PLAYLISTS = 2_000
PER_CATEGORY = 5
GRAPH_PARAMS = ["trainer.mode=mini", "factors=16", "heads=2", "validation_playlists=50"]
MODELS = ("popular", "title", "itemknn", "playlistknn", "rp3beta", "rules", "playlistgat")


@dataclass
class DemoRun:
    """Where the run is and what its commands printed (``outputs[command] = stdout``)."""

    mpd: Path
    out: Path
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def pipeline_args(self, phase: str) -> list[str]:
        return [
            "pipeline",
            phase,
            "--data",
            str(self.mpd),
            "--out",
            str(self.out),
            "--per-category",
            str(PER_CATEGORY),
            "--workers",
            "1",
        ]


def run_cli(args: list[str]) -> tuple[int, str]:
    """``segue.cli.main(args)`` with its standard output captured: (exit status, stdout)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([str(a) for a in args])
    return code, buffer.getvalue()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    root = tmp_path_factory.mktemp("demo")
    run = DemoRun(mpd=root / "mpd", out=root / "run")
    steps = {
        "generate": [
            "generate",
            "mpd",
            "--playlists",
            PLAYLISTS,
            "--out",
            run.mpd,
            "--challenge-per-category",
            PER_CATEGORY,
            "--workers",
            "1",
        ],
        "phase1": run.pipeline_args("phase1"),
        "phase2": run.pipeline_args("phase2"),
        "train playlistgat": [
            "train",
            "playlistgat",
            run.out / "split" / "train",
            "--out",
            run.out / "models" / "playlistgat",
            *(a for p in GRAPH_PARAMS for a in ("-p", p)),
        ],
        "finish again": run.pipeline_args("phase2"),
    }
    for name, args in steps.items():
        start = time.perf_counter()
        code, output = run_cli(args)
        run.seconds[name] = time.perf_counter() - start
        run.outputs[name] = output
        assert code == 0, f"{name} exited {code}:\n{output}"
    return run
