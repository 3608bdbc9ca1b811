"""--engine spark without its extra, or without Java: one line saying what to install, exit 2,
nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.blocked import without

NO_PYSPARK = without("pyspark")


def segue(
    *args,
    cwd,
    env=None,
    code="import sys\nfrom segue.cli import main\nsys.exit(main(sys.argv[1:]))",
):
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_spark_without_its_extra_or_java_says_what_to_install(small_data, tmp_path):
    rules = ["rules", small_data, "--out", "r", "--engine", "spark"]
    run = segue(*rules, cwd=tmp_path, code=NO_PYSPARK)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: --engine spark needs pyspark, which is not installed: pip install 'segue[spark]'"
    )
    # No Java: PATH without a java, no JAVA_HOME (pyspark itself may be there or not).
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = os.path.dirname(sys.executable)
    run = segue(*rules, cwd=tmp_path, env=env)
    assert run.returncode == 2
    assert "needs" in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_every_spark_command_names_the_missing_extra(small_mpd, tmp_path):
    """Ingest, evaluation and batch recommendation on Spark, without pyspark: the same line,
    before any work (nothing written)."""
    commands = [
        ["ingest", small_mpd, "--out", "d", "--engine", "spark"],
        ["evaluate", "m", "--split", "s", "--out", "e", "--engine", "spark"],
    ]
    for command in commands:
        run = segue(*command, cwd=tmp_path, code=NO_PYSPARK)
        assert run.returncode == 2, command
        assert "needs pyspark" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not any(tmp_path.iterdir())
