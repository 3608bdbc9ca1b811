"""A playlist dataset as Spark sees it: ``(user, item)`` rows, one per playlist entry.

From the dataset's ``playlist_tracks.parquet`` read by Spark when the data was loaded from a
directory (so a cluster reads it where it lies: any file system Spark reads), else from the
in-memory matrix handed over through Arrow (a validation carve made in memory). ``user`` is the
playlist (its pid, or its row for data built in memory), ``item`` the dense track id.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import numpy as np

from segue.data import schema
from segue.data.dataset import PlaylistData


def entries(spark, data: PlaylistData):
    """A DataFrame of (user int, item int), one row per entry (a track twice in a playlist: two
    rows, as in the files)."""
    if data.path is not None and (data.path / schema.PLAYLIST_TRACKS_FILE).exists():
        return (
            spark.read.parquet(str(data.path / schema.PLAYLIST_TRACKS_FILE))
            .withColumnRenamed(schema.PID, "user")
            .withColumnRenamed(schema.TRACK_ID, "item")
            .select("user", "item")
        )
    import pyarrow as pa

    coo = data.matrix.tocoo()
    repeat = coo.data.astype(np.int64)  # a count of 2: the entry twice
    table = pa.table(
        {
            "user": np.repeat(coo.row.astype(np.int32), repeat),
            "item": np.repeat(coo.col.astype(np.int32), repeat),
        }
    )
    return spark.createDataFrame(table)


def exchange_path(what: str) -> str:
    """A fresh path under ``SEGUE_SPARK_EXCHANGE`` (a directory or URI the executors and this
    process both reach: on a cluster, a shared path such as ``hdfs://…``; default: this
    machine's temporary directory) for files passed between Spark and this process."""
    base = os.environ.get("SEGUE_SPARK_EXCHANGE") or tempfile.gettempdir()
    return f"{base.rstrip('/')}/segue-{what}-{uuid.uuid4().hex}"


def exchange_fs(where: str):
    """``(pyarrow FileSystem, path)`` for an exchange path from :func:`exchange_path`."""
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(where if "://" in where else os.path.abspath(where))


def collect(df):
    """The DataFrame ``df`` as an Arrow table in this process, through Parquet files rather than
    the driver's heap: ``toArrow`` gathers every task's result in the driver JVM first, and the
    demo's 146M item-kNN neighbours ran a 4 GB driver out of memory that way. The files go
    through :func:`exchange_path` and are removed once read."""
    import pyarrow.dataset as ds

    where = exchange_path("exchange")
    df.write.parquet(where)
    filesystem, path = exchange_fs(where)
    try:
        return ds.dataset(path, filesystem=filesystem, format="parquet").to_table()
    finally:
        filesystem.delete_dir(path)
