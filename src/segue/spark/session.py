"""The SparkSession segue's Spark stages run in: one per process, built on first use.

``master``: ``local[*]`` (every core of this machine) when not given; any master Spark accepts
otherwise (``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://…``). Spark itself needs a
Java runtime (17 or newer for Spark 4); both missing pieces are named in one line.

Settings (each can be overridden the usual Spark way, e.g. ``SPARK_CONF_DIR`` or
``PYSPARK_SUBMIT_ARGS``): no web UI (a service nobody asked for), Arrow for the transfers
between the JVM and Python, shuffle partitions scaled to the master's cores rather than Spark's
fixed 200 (which on a 2-core machine spends more time scheduling empty tasks than working), and
``SEGUE_SPARK_DRIVER_MEMORY`` (default ``4g``) for the driver, where results are collected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import threading
from pathlib import Path

from segue.errors import SegueError

log = logging.getLogger("segue")

DEFAULT_MASTER = "local[*]"
_LOCK = threading.Lock()  # the pipeline's lanes are threads: one session for both
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
_SESSION = None


def check_master(master: str) -> str:
    """``master`` if Spark could accept it, else a :class:`SegueError` saying what is accepted.

    >>> check_master("local[2]"), check_master("spark://10.0.0.5:7077")
    ('local[2]', 'spark://10.0.0.5:7077')
    >>> check_master("local[two]")
    Traceback (most recent call last):
    ...
    segue.errors.SegueError: --master local[two]: not a Spark master (local, local[N], local[*], spark://HOST:PORT, yarn, k8s://URL, mesos://URL)
    """
    if re.fullmatch(r"local(\[(\*|\d+)(,\d+)?\])?|yarn|(spark|k8s|mesos)://\S+", master):
        return master
    raise SegueError(
        f"--master {master}: not a Spark master (local, local[N], local[*], spark://HOST:PORT, "
        "yarn, k8s://URL, mesos://URL)"
    )


def require_spark() -> None:
    """Refuse, in one line, a machine without PySpark (the extra) or a Java runtime: checked
    before any work by every command given ``--engine spark`` (through ``RunOptions``)."""
    from segue.models.registry import require_extra

    require_extra(("pyspark",), "spark", "--engine spark")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise SegueError(
            "--engine spark needs a Java runtime (17 or newer): install one (Debian: apt-get "
            "install openjdk-17-jre-headless) or set JAVA_HOME"
        )


def spark_session(master: str | None = None):
    """The process's SparkSession, started on the first call (later calls reuse it; a different
    ``master`` then is refused rather than silently ignored). Thread-safe."""
    with _LOCK:
        return _session(master)


def _session(master: str | None):
    global _SESSION

    master = check_master(master or DEFAULT_MASTER)
    if _SESSION is not None:
        running = _SESSION.sparkContext.master
        if running != master:
            raise SegueError(f"a Spark session on {running} is already running; not {master}")
        return _SESSION
    require_spark()
    import warnings

    # PySpark 4.x warns at import that it does not yet support pandas 3; segue's Spark stages
    # pass data through Arrow, never pandas.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    from pyspark.sql import SparkSession

    # Python tasks (ingest's parser) run this interpreter, which has segue, unless told
    # otherwise (on a cluster: a Python with segue on every executor, named by PYSPARK_PYTHON).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cores = _cores(master)
    log.info("starting Spark on %s", master)
    builder = (
        SparkSession.builder.master(master)
        .appName("segue")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
        .config("spark.driver.memory", os.environ.get("SEGUE_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{LOG_CONFIG}")
    )
    try:
        _SESSION = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: Java too old, no memory, a bad master
        lines = str(exc).strip().splitlines()
        raise SegueError(
            f"Spark did not start on {master}: {lines[0] if lines else type(exc).__name__}"
        ) from None
    _SESSION.sparkContext.setLogLevel("ERROR")
    return _SESSION


def stop() -> None:
    """Stop the process's session, if any (the next :func:`spark_session` starts a new one);
    a session whose JVM is already gone is just forgotten."""
    global _SESSION
    session, _SESSION = _SESSION, None
    if session is not None:
        with contextlib.suppress(Exception):
            session.stop()


def _cores(master: str) -> int:
    """Cores of a local master (``local[N]``; every core for ``local[*]``); 8 for a cluster,
    whose size Spark knows and segue does not (only the shuffle's partition count uses it).

    >>> _cores("local[3]"), _cores("local"), _cores("yarn")
    (3, 1, 8)
    """
    found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if found is None:
        return 8
    if found.group(1) is None:
        return 1
    return (os.cpu_count() or 1) if found.group(1) == "*" else int(found.group(1))


@contextlib.contextmanager
def spark_errors(stage: str):
    """Turn a Spark failure inside ``stage`` into one line: the JVM's own reason (an
    ``OutOfMemoryError``, an analysis error) rather than a Java stack or, once the JVM has died,
    "Connection refused"."""
    try:
        yield
    except SegueError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if not (
            name.startswith("Py4J")
            or "pyspark" in type(exc).__module__
            or isinstance(exc, ConnectionError)
        ):
            raise
        text = str(exc)
        reason = next(
            (
                line.strip().lstrip(": ")
                for line in text.splitlines()
                if "Error" in line or "Exception" in line
            ),
            text.strip().splitlines()[0] if text.strip() else name,
        )
        hint = (
            "; give the driver more memory (SEGUE_SPARK_DRIVER_MEMORY, now "
            f"{os.environ.get('SEGUE_SPARK_DRIVER_MEMORY', '4g')})"
            if "OutOfMemory" in text or isinstance(exc, ConnectionError)
            else ""
        )
        stop()
        raise SegueError(f"{stage} on Spark failed: {reason[:300]}{hint}") from None
