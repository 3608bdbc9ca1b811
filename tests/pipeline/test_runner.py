"""The stage runner on tiny synthetic stages: skipping, reruns on change, faults, interrupts, logs.

Three stages over one input file ``in.txt``: ``upper`` writes its text upper-cased (times a
parameter), ``count`` (after ``upper``) writes the length of that, and ``other`` (independent)
writes a constant. Each appends its name to ``calls`` when it really runs, so every test knows
exactly which stages ran.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from segue.errors import SegueError
from segue.io import atomic_dir, write_text
from segue.pipeline.runner import LOGS, RECORDS, Runner, Stage, StageError
from segue.progress import progress


class Plan:
    """The three stages under ``root``; ``fail``/``interrupt`` plant a fault in ``count``."""

    def __init__(self, root: Path):
        self.root = root
        self.source = root / "in.txt"
        self.source.write_text("abc")
        self.out = root / "out"
        self.calls: list[str] = []
        self.times = 1
        self.other_value = "x"
        self.fail: Exception | None = None
        self.interrupt = False

    def stages(self) -> list[Stage]:
        out = self.out

        def upper() -> dict:
            self.calls.append("upper")
            text = self.source.read_text().upper() * self.times
            write_text(out / "upper.txt", text)
            return {"chars": len(text)}

        def count() -> dict:
            self.calls.append("count")
            text = (out / "upper.txt").read_text()
            if self.fail is not None:
                raise self.fail
            with atomic_dir(out / "count") as tmp:
                (tmp / "part1.txt").write_text(str(len(text)))
                if self.interrupt:
                    raise KeyboardInterrupt  # Ctrl-C half-way through writing its outputs
                (tmp / "part2.txt").write_text(text.lower())
            return {"length": len(text)}

        def other() -> dict:
            self.calls.append("other")
            with progress("counting things", 3, "things") as bar:
                for _ in range(3):
                    bar.advance()
            write_text(out / "other.txt", self.other_value)
            return {"value": self.other_value}

        return [
            Stage(
                "upper",
                upper,
                inputs=[self.source],
                outputs=[out / "upper.txt"],
                params={"times": self.times},
            ),
            Stage(
                "count", count, inputs=[out / "upper.txt"], outputs=[out / "count"], after=["upper"]
            ),
            Stage(
                "other thing",
                other,
                outputs=[out / "other.txt"],
                params={"value": self.other_value},
            ),
        ]

    def run(
        self, stages: list[str] | None = None, force: bool = False
    ) -> tuple[dict[str, str], list[str]]:
        """Run (a subset of) the stages with a fresh Runner, as a new command would; returns
        ({stage: status}, echoed lines). Stops at the first failure, like the pipeline."""
        self.calls.clear()
        lines: list[str] = []
        runner = Runner(self.out, echo=lines.append, force=force)
        for stage in self.stages():
            if stages is None or stage.name in stages:
                runner.run(stage)
        return {name: r.status for name, r in runner.results.items()}, lines

    def record(self, slug: str) -> dict | None:
        path = self.out / RECORDS / f"{slug}.json"
        return orjson.loads(path.read_bytes()) if path.exists() else None


@pytest.fixture
def plan(tmp_path) -> Plan:
    return Plan(tmp_path)


ALL_RAN = {"upper": "ran", "count": "ran", "other thing": "ran"}


def test_a_second_run_skips_every_unchanged_stage(plan):
    statuses, _ = plan.run()
    assert statuses == ALL_RAN and plan.calls == ["upper", "count", "other"]
    assert (plan.out / "count" / "part2.txt").read_text() == "abc"
    record = plan.record("count")
    assert record["summary"] == {"length": 3} and record["status"] == "ran"
    assert record["outputs"] == [{"path": str(plan.out / "count"), "files": 2, "bytes": 4}]

    statuses, lines = plan.run()
    assert statuses == {"upper": "skipped", "count": "skipped", "other thing": "skipped"}
    assert plan.calls == []
    assert all("unchanged, skipped" in line for line in lines)
    # A record's file name is the stage's slug: no spaces.
    assert sorted(p.name for p in (plan.out / RECORDS).iterdir()) == [
        "count.json",
        "other-thing.json",
        "upper.json",
    ]


def test_force_runs_every_stage_again(plan):
    plan.run()
    statuses, _ = plan.run(force=True)
    assert statuses == ALL_RAN and plan.calls == ["upper", "count", "other"]


def test_a_changed_parameter_reruns_the_stage_and_the_stages_that_build_on_it(plan):
    plan.run()
    plan.times = 2
    statuses, _ = plan.run()
    assert statuses == {"upper": "ran", "count": "ran", "other thing": "skipped"}
    assert (plan.out / "count" / "part1.txt").read_text() == "6"

    plan.other_value = "y"  # a parameter of the independent stage: only that one reruns
    statuses, _ = plan.run()
    assert statuses == {"upper": "skipped", "count": "skipped", "other thing": "ran"}
    assert (plan.out / "other.txt").read_text() == "y"


def test_a_changed_input_file_reruns_the_stage_and_the_stages_after_it(plan):
    plan.run()
    plan.source.write_text("abcd")
    statuses, _ = plan.run()
    assert statuses == {"upper": "ran", "count": "ran", "other thing": "skipped"}
    assert (plan.out / "count" / "part1.txt").read_text() == "4"

    # Same size, only touched: the modification time is part of what the fingerprint sees.
    stat = plan.source.stat()
    os.utime(plan.source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    statuses, _ = plan.run()
    assert statuses == {"upper": "ran", "count": "ran", "other thing": "skipped"}


def test_a_missing_output_reruns_only_that_stage(plan):
    plan.run()
    (plan.out / "other.txt").unlink()
    statuses, _ = plan.run()
    assert statuses == {"upper": "skipped", "count": "skipped", "other thing": "ran"}


def test_a_stage_run_alone_keeps_the_fingerprint_of_the_stage_it_builds_on(plan):
    """``segue pipeline phase2`` after ``segue pipeline all``: the upstream stage is not part of
    this command, its record stands for it, and nothing reruns for that alone."""
    plan.run()
    statuses, _ = plan.run(stages=["count"])
    assert statuses == {"count": "skipped"} and plan.calls == []
    # ... and a change upstream (its record rewritten by another command) still reaches it.
    plan.times = 3
    plan.run(stages=["upper"])
    statuses, _ = plan.run(stages=["count"])
    assert statuses == {"count": "ran"}
    assert (plan.out / "count" / "part1.txt").read_text() == "9"


def test_a_failing_stage_stops_the_run_names_itself_and_the_next_run_resumes_there(plan):
    plan.fail = SegueError("in.txt, line 3: field 'name' is empty")
    with pytest.raises(StageError) as caught:
        plan.run()
    message = str(caught.value)
    assert "stage 'count' failed" in message
    assert "in.txt, line 3: field 'name' is empty" in message
    assert "resumes here" in message
    log_file = Path(message.split("(log: ")[1].split(")")[0])
    assert log_file.parent == plan.out / LOGS and log_file.name.startswith("count_")
    assert "stage count failed: in.txt, line 3" in log_file.read_text()
    assert plan.calls == ["upper", "count"]  # "other thing" never started
    assert plan.record("upper")["status"] == "ran"  # the stage before stays done
    assert plan.record("count") is None and plan.record("other-thing") is None
    assert not (plan.out / "count").exists()

    plan.fail = None
    statuses, _ = plan.run()
    assert statuses == {"upper": "skipped", "count": "ran", "other thing": "ran"}
    assert plan.calls == ["count", "other"]


def test_a_stage_whose_check_rejects_its_outputs_fails_and_keeps_no_record(plan):
    stages = plan.stages()

    def reject(summary: dict) -> None:
        raise SegueError(f"{plan.out / 'upper.txt'}: {summary['chars']} characters, expected 10")

    stages[0].check = reject
    with pytest.raises(
        StageError, match=r"stage 'upper' failed: .*upper.txt: 3 characters, expected 10"
    ):
        Runner(plan.out, echo=lambda line: None).run(stages[0])
    assert plan.record("upper") is None


def test_a_bug_in_a_stage_propagates_with_its_traceback_in_the_log(plan):
    plan.fail = ZeroDivisionError("division by zero")
    with pytest.raises(ZeroDivisionError):
        plan.run()
    assert plan.record("count") is None and plan.record("upper") is not None
    (log_file,) = (plan.out / LOGS).glob("count_*.log")
    text = log_file.read_text()
    assert "stage count failed" in text and "Traceback" in text and "ZeroDivisionError" in text


def test_an_interrupted_stage_leaves_no_half_written_output_and_no_record(plan):
    plan.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    assert plan.calls == ["upper", "count"]
    assert plan.record("upper") is not None and plan.record("count") is None
    assert sorted(p.name for p in plan.out.iterdir()) == [
        RECORDS,
        LOGS,
        "upper.txt",
    ]  # no temporary dir left
    (log_file,) = (plan.out / LOGS).glob("count_*.log")
    assert "interrupted; nothing of it was kept" in log_file.read_text()

    plan.interrupt = False
    statuses, _ = plan.run()
    assert statuses == {"upper": "skipped", "count": "ran", "other thing": "ran"}
    assert sorted(p.name for p in (plan.out / "count").iterdir()) == [
        ".segue-output",  # segue's mark: it may replace this directory
        "part1.txt",
        "part2.txt",
    ]


def test_an_interrupted_rerun_does_not_leave_the_old_record_standing(plan):
    """A stage that had succeeded, rerun with new parameters and interrupted: its outputs may be
    partly new, so the old record must not make the old parameters' run skip it later."""
    plan.run()
    plan.times = 2
    plan.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    assert plan.record("upper")["summary"] == {"chars": 6}
    assert plan.record("count") is None
    assert (plan.out / "count" / "part1.txt").read_text() == "3"  # the old output, whole
    plan.times, plan.interrupt = 1, False
    statuses, _ = plan.run()
    assert statuses == {"upper": "ran", "count": "ran", "other thing": "skipped"}


def test_each_stage_logs_progress_timing_memory_and_outputs(plan):
    # Even when the segue logger is quiet (``segue -q``, or a library caller that set nothing),
    # the stage's own log file gets the INFO lines; the terminal's handlers stay quiet.
    logger = logging.getLogger("segue")
    seen: list[str] = []

    class Terminal(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    terminal = Terminal()
    old_level = logger.level
    logger.addHandler(terminal)
    logger.setLevel(logging.WARNING)
    try:
        plan.run()
        # The logger's level and the terminal's threshold are given back after each stage.
        assert logger.level == logging.WARNING and terminal.level == logging.NOTSET
    finally:
        logger.removeHandler(terminal)
        logger.setLevel(old_level)
    assert seen == []

    logs = {p.name.split("_")[0]: p for p in (plan.out / LOGS).iterdir()}
    assert sorted(logs) == ["count", "other-thing", "upper"]
    text = logs["other-thing"].read_text()
    assert "stage other thing: start (inputs: none; parameters: {'value': 'x'})" in text
    progress_lines = [line for line in text.splitlines() if "counting things: 3/3 things" in line]
    assert progress_lines and "ETA" in progress_lines[0] and "RSS" in progress_lines[0]
    assert "stage other thing: done in" in text and "peak RSS" in text
    assert f"output {plan.out / 'other.txt'}: 1 file, 1.0 B" in text
    assert f"output {plan.out / 'count'}: 2 files, 4.0 B" in logs["count"].read_text()
    # The record keeps the timing, the peak memory of the process and the log's path.
    record = plan.record("other-thing")
    assert record["seconds"] >= 0 and record["peak_rss_gib"] > 0.01
    assert record["log"] == str(logs["other-thing"])
