"""Item-kNN neighbours on Spark: every track's ``n_neighbors`` best companions by the local
``itemknn``'s asymmetric cosine, as the same sparse matrix (so the model directory is the local
one's, loaded and served unchanged).

For tracks ``i`` and ``j`` seen together in ``co(i, j)`` playlists, with ``pop`` the playlists
holding each: ``sim(i, j) = co(i, j) / (pop(i)^α · pop(j)^(1−α))`` (see
:mod:`segue.models.itemknn`). The co-occurrence counts come from a self-join of the distinct
entries on the playlist — every pair of tracks within each playlist, ``Σ L²`` rows for playlists
of ``L`` tracks, the stage's shuffle — counted by pair; each track's best ``n_neighbors`` are
kept by a window ranked by similarity (ties: the smaller track id first) and brought back as
CSR arrays through Parquet files (:func:`segue.spark.data.collect`), not the driver's heap. Only the cosine similarity runs here (BM25 re-weights each playlist's
entries by its length before the dot products: not yet on Spark).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from segue.data.dataset import PlaylistData
from segue.errors import SegueError
from segue.spark.data import collect, entries

log = logging.getLogger("segue")


def itemknn_neighbours(data: PlaylistData, config, master: str | None = None) -> sp.csr_matrix:
    """[n_tracks, n_tracks] float32 CSR: what :func:`segue.models.itemknn.neighbours` gives
    (before row normalisation), computed on Spark."""
    from segue.spark.session import spark_session

    if config.similarity != "cosine":
        raise SegueError(
            f"itemknn on Spark: similarity={config.similarity} is not available there "
            "(cosine is); train it with --engine local"
        )
    spark = spark_session(master)  # first: it names a missing extra or Java
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    start = time.perf_counter()
    alpha = float(config.alpha)
    pairs = entries(spark, data).distinct().cache()
    popularity = pairs.groupBy("item").agg(F.count("*").cast("double").alias("pop"))
    left, right = pairs.alias("a"), pairs.alias("b")
    co = (
        left.join(right, F.col("a.user") == F.col("b.user"))
        .where(F.col("a.item") != F.col("b.item"))
        .groupBy(F.col("a.item").alias("i"), F.col("b.item").alias("j"))
        .agg(F.count("*").cast("double").alias("co"))
    )
    pop_i = popularity.select(F.col("item").alias("i"), F.col("pop").alias("pop_i"))
    pop_j = popularity.select(F.col("item").alias("j"), F.col("pop").alias("pop_j"))
    scored = (
        co.join(F.broadcast(pop_i), "i")
        .join(F.broadcast(pop_j), "j")
        .select(
            "i",
            "j",
            (F.col("co") / (F.pow("pop_i", alpha) * F.pow("pop_j", 1 - alpha))).alias("sim"),
        )
    )
    best = Window.partitionBy("i").orderBy(F.col("sim").desc(), F.col("j").asc())
    top = collect(
        scored.withColumn("rank", F.row_number().over(best))
        .where(F.col("rank") <= config.n_neighbors)
        .select("i", "j", F.col("sim").cast("float").alias("sim"))
    )
    pairs.unpersist()
    rows = top.column("i").to_numpy().astype(np.int64)
    cols = top.column("j").to_numpy().astype(np.int32)
    values = top.column("sim").to_numpy().astype(np.float32)
    n = data.n_tracks
    order = np.lexsort((cols, rows))
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n)))).astype(np.int64)
    matrix = sp.csr_matrix((values[order], cols[order], indptr), shape=(n, n))
    log.info(
        "spark itemknn: %s neighbours of %s tracks in %.1f s",
        f"{matrix.nnz:,}",
        f"{n:,}",
        time.perf_counter() - start,
    )
    return matrix
