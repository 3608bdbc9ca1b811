"""The Spark tests share one local[2] session (a JVM start is ~10 s) and skip where PySpark or
Java is missing (`make test` installs both)."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pyspark")
if not shutil.which("java"):
    pytest.skip("no Java runtime", allow_module_level=True)

MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark():
    from segue.spark.session import spark_session, stop

    session = spark_session(MASTER)
    yield session
    stop()


@pytest.fixture(scope="module")
def split(small_data, tmp_path_factory):
    from segue.cli import main

    out = tmp_path_factory.mktemp("spark") / "split"
    assert main(["split", str(small_data), "--out", str(out), "--per-category", "10", "-q"]) == 0
    return out
