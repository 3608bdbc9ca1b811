"""Spark failures become one line naming the stage and the JVM's reason."""

from __future__ import annotations

import pytest

from segue.errors import SegueError
from segue.spark.session import spark_errors


class Py4JJavaError(Exception):
    """Stands for py4j's error (matched by name: py4j's class needs a live JVM to build)."""


def test_a_jvm_out_of_memory_names_the_stage_and_the_setting(monkeypatch):
    monkeypatch.setenv("SEGUE_SPARK_DRIVER_MEMORY", "6g")
    java = "An error occurred while calling o123.collect.\n: java.lang.OutOfMemoryError: Java heap space\n\tat ..."
    with pytest.raises(SegueError) as caught, spark_errors("itemknn"):
        raise Py4JJavaError(java)
    assert str(caught.value) == (
        "itemknn on Spark failed: java.lang.OutOfMemoryError: Java heap space; give the "
        "driver more memory (SEGUE_SPARK_DRIVER_MEMORY, now 6g)"
    )
    with pytest.raises(SegueError, match=r"rules on Spark failed: .*SEGUE_SPARK_DRIVER_MEMORY"):
        with spark_errors("rules"):  # the JVM died: py4j can no longer reach it
            raise ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(KeyError), spark_errors("als"):  # segue's own bugs are not hidden
        raise KeyError("x")
