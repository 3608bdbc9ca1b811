"""Implicit ALS on Spark (MLlib), exported to segue's ALS model: the same model directory, the
same query fold-in and explanations (:class:`segue.models.factor.ALSRecommender`); only the item
factors come from MLlib instead of ``implicit``.

The two libraries solve the same problem (Hu, Koren and Volinsky 2008) with different
conventions, mapped here so that one config means one model:

* confidence: ``implicit`` gives a positive entry ``α · r`` (segue's ``alpha``: ``α`` on a
  seed, 1 elsewhere); MLlib gives ``1 + α' · r``, so ``α' = α − 1``;
* regularisation: MLlib scales ``λ`` by each row's number of ratings (ALS-WR, Zhou et al.
  2008), ``implicit`` does not; segue passes its ``regularization`` through unchanged and says
  so: the two fits are alike, not equal (``tests/spark/test_als.py`` holds their quality within
  the local model's confidence interval on the same split);
* a track no playlist holds gets zero factors, as in the local fit.

The ratings are :func:`segue.spark.data.entries` (the dataset's files, read by Spark).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from segue.data.dataset import PlaylistData
from segue.spark.data import collect, entries

log = logging.getLogger("segue")


def als_item_factors(data: PlaylistData, config, master: str | None = None) -> np.ndarray:
    """float32 [n_tracks, factors]: MLlib ALS's item factors for ``data`` under an
    :class:`segue.models.factor.ALSConfig`."""
    from segue.models.factor import effective_factors
    from segue.spark.session import spark_session

    spark = spark_session(master)  # first: it names a missing extra or Java
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    start = time.perf_counter()
    ratings = (
        entries(spark, data).groupBy("user", "item").agg(F.count("*").cast("float").alias("r"))
    )
    factors = effective_factors(config.factors, data.matrix.shape)
    blocks = max(1, spark.sparkContext.defaultParallelism)
    als = ALS(
        rank=factors,
        maxIter=config.iterations,
        regParam=config.regularization,
        alpha=max(config.alpha - 1.0, 0.0),
        implicitPrefs=True,
        userCol="user",
        itemCol="item",
        ratingCol="r",
        seed=config.seed,
        # MLlib's default of 10 user and 10 item blocks makes 100 small tasks per half-step;
        # blocks as many as the cores run them with the least scheduling (on local[2], 1,000
        # playlists: 110 s with 10 × 10 blocks).
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    model = als.fit(ratings)
    table = collect(model.itemFactors)  # 1.2 GB at MPD scale: through files, not the driver
    ids = table.column("id").to_numpy()
    values = table.column("features").combine_chunks().values.to_numpy()
    items = np.zeros((data.n_tracks, factors), dtype=np.float32)
    items[ids] = values.reshape(len(ids), factors)
    log.info(
        "spark als: %d factors of %s tracks in %.1f s",
        factors,
        f"{len(ids):,}",
        time.perf_counter() - start,
    )
    return items
