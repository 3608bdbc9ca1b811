"""Stages in lanes side by side (``Runner.run_lanes``): they really overlap, each stage's log
holds only its own messages, a failing lane stops alone, and the logger is given back."""

from __future__ import annotations

import logging
import threading

import orjson
import pytest

from segue.errors import SegueError
from segue.io import write_text
from segue.pipeline.runner import LOGS, RECORDS, Runner, Stage, StageError

log = logging.getLogger("segue")


def lane_stages(
    out, barrier: threading.Barrier | None, calls: list[str], fail: str = ""
) -> list[Stage]:
    """Lane A: a1 → a2; lane B: b1 → b2. a1 and b1 meet at ``barrier`` (both must be running at
    once, or the barrier times out). ``fail``: the stage that raises a SegueError."""

    def make(name: str, meet: bool):
        def run() -> dict:
            calls.append(name)
            log.info("message from %s", name)
            if meet and barrier is not None:
                barrier.wait()
            if name == fail:
                raise SegueError(f"{name}: planted failure")
            log.info("%s after the barrier", name)
            write_text(out / f"{name}.txt", name)
            return {"name": name}

        return run

    return [
        Stage(
            name,
            make(name, name.endswith("1")),
            outputs=[out / f"{name}.txt"],
            lane=name[0].upper(),
            after=[f"{name[0]}1"] if name.endswith("2") else [],
        )
        for name in ("a1", "a2", "b1", "b2")
    ]


def test_lanes_overlap_and_each_log_holds_only_its_own_stage(tmp_path):
    calls: list[str] = []
    barrier = threading.Barrier(2, timeout=10)
    runner = Runner(tmp_path, echo=lambda line: None)
    runner.run_lanes(lane_stages(tmp_path, barrier, calls), jobs=2)
    assert sorted(calls) == ["a1", "a2", "b1", "b2"]
    assert calls.index("a1") < calls.index("a2") and calls.index("b1") < calls.index("b2")
    for name in ("a1", "a2", "b1", "b2"):
        (path,) = (tmp_path / LOGS).glob(f"{name}_*.log")
        text = path.read_text()
        assert f"message from {name}" in text and f"{name} after the barrier" in text
        others = {"a1", "a2", "b1", "b2"} - {name}
        assert not any(f"message from {o}" in text for o in others), (name, text)
        assert orjson.loads((tmp_path / RECORDS / f"{name}.json").read_bytes())["status"] == "ran"

    calls.clear()
    again = Runner(tmp_path, echo=lambda line: None)
    again.run_lanes(lane_stages(tmp_path, None, calls), jobs=2)
    assert calls == [] and {r.status for r in again.results.values()} == {"skipped"}


def test_a_failing_lane_stops_alone_and_the_failure_is_raised_after_the_others_finish(tmp_path):
    calls: list[str] = []
    barrier = threading.Barrier(2, timeout=10)
    logger_level = log.level
    with pytest.raises(StageError, match=r"stage 'a1' failed: a1: planted failure"):
        Runner(tmp_path, echo=lambda line: None).run_lanes(
            lane_stages(tmp_path, barrier, calls, fail="a1"), jobs=2
        )
    assert sorted(calls) == ["a1", "b1", "b2"]  # a2 never started; lane B finished
    assert not (tmp_path / RECORDS / "a1.json").exists()
    assert (tmp_path / RECORDS / "b2.json").exists()
    assert log.level == logger_level  # the logger is given back

    calls.clear()
    Runner(tmp_path, echo=lambda line: None).run_lanes(lane_stages(tmp_path, None, calls), jobs=2)
    assert sorted(calls) == ["a1", "a2"]  # the rerun resumes at the failed lane


def test_phase2_runs_the_mining_beside_the_split_and_its_models(tmp_path):
    from segue.pipeline.phases import Settings, _Stages

    stages = _Stages(Settings(out=tmp_path, mpd=tmp_path / "mpd")).phase2()
    lanes = {}
    for stage in stages:
        lanes.setdefault(stage.lane, []).append(stage.name)
    assert lanes == {
        "models": [
            "split",
            "train popular",
            "train title",
            "train itemknn",
            "train playlistknn",
            "train rp3beta",
            "train rules",
        ],
        "mining": ["rules", "clusters"],
    }
    # Every stage builds only on its own lane (run_lanes' rule).
    for stage in stages:
        assert all(dep in lanes[stage.lane] for dep in stage.after)


def test_phase3_balances_the_ensembles_against_the_graph_and_session_models(tmp_path):
    from segue.pipeline import demo_settings
    from segue.pipeline.phases import _Stages

    stages = _Stages(demo_settings(tmp_path)).phase3()
    lanes = {}
    for stage in stages:
        lanes.setdefault(stage.lane, []).append(stage.name)
    assert lanes == {
        "factors": [
            "train svd",
            "train als",
            "train hybrid",
            "train rerank",
            "train embed",
            "popularity model",
        ],
        "graphs": [
            "train bpr",
            "train lightgcn",
            "train playlistgat",
            "generate sessions",
            "ingest sessions",
            "split sessions",
            "session models",
        ],
    }
    here = {stage.name for stage in stages}
    for stage in stages:  # a stage builds on its own lane or on what earlier phases ran
        assert all(dep in lanes[stage.lane] or dep not in here for dep in stage.after), stage.name


def test_the_demo_settings_reach_the_stages_that_use_them(tmp_path):
    from segue.pipeline import demo_settings
    from segue.pipeline.phases import _Stages

    stages = {s.name: s for s in _Stages(demo_settings(tmp_path)).phase3()}
    assert stages["popularity model"].params == {"seed": 0, "n_estimators": 50}
    assert stages["train bpr"].params == {"iterations": 30, "factors": 64}
    # The graph models train within a budget, not an epoch count.
    assert stages["train lightgcn"].params["trainer"] == {"budget_seconds": 90}
    assert stages["train playlistgat"].params["trainer"] == {"budget_seconds": 90}
    assert stages["session models"].params["gat"] == {"trainer": {"budget_seconds": 30}}
    assert stages["session models"].params["gru4rec"] == {"budget_seconds": 60}
    assert stages["train als"].params == {"factors": 64}
    # The ensembles ask for the ALS the demo trains, so they reuse it instead of fitting their own.
    for name in ("hybrid", "rerank"):
        assert stages[f"train {name}"].params["params"] == {"als": {"factors": 64}}
    assert stages["train svd"].params == {}
