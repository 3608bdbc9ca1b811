"""Association rules on Spark: MLlib mines the frequent track sets, segue derives the rules from
their counts.

The result is the :class:`segue.mining.rules.RuleSet` the local miner gives for the same data
and thresholds (``tests/spark/test_rules.py`` checks it equal): the same ``min_count``
(``ceil(min_support · N)``, at least 2, N = every playlist of the dataset), the same
single-track consequents, the five measures recomputed by segue from three exact counts.

How it runs, for a dataset on any file system Spark reads: the entries are read from
``playlist_tracks.parquet`` (pid, track_id; repeats within a playlist dropped), each track's
playlists are counted, tracks below ``min_count`` are dropped (a superset of an infrequent set
is infrequent: the same cut the local miner makes), and the frequent sets of at most
``max_len`` tracks are mined. MLlib's ``FPGrowth`` cannot be told a largest set size, and mines
every frequent set: on 1,000 playlists at the smallest count (2) it ran 15 minutes without
finishing, where the local miner (capped at 3) took 1.2 s. So the miner is MLlib's
``PrefixSpan`` (Pei et al. 2004), which takes ``maxPatternLength``: each playlist is a sequence
of one element, its set of tracks, and a sequential pattern within one element is exactly a
frequent item set (6.2 s for that case). The frequent sets are collected to the driver (they are
the result's size, not the data's), and each rule ``S∖{c} → c`` takes its counts from them:
``count(S)``, ``count(S∖{c})`` and ``count({c})``.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import numpy as np

from segue.data import schema
from segue.errors import SegueError
from segue.mining.rules import RuleSet, RuleThresholds, rule_set
from segue.spark.data import collect

log = logging.getLogger("segue")


def find_rules_spark(
    data_dir: Path, thresholds: RuleThresholds = RuleThresholds(), master: str | None = None
) -> RuleSet:
    """Every rule of the dataset in ``data_dir`` (written by ``segue ingest`` or ``segue
    split``) reaching ``thresholds``, mined on Spark (``master``: see
    :func:`segue.spark.session.spark_session`)."""
    from segue.spark.session import spark_session

    thresholds.check()
    spark = spark_session(master)  # first: it names a missing extra or Java
    from pyspark.ml.fpm import PrefixSpan
    from pyspark.sql import functions as F

    data_dir = str(data_dir)
    start = time.perf_counter()
    n = spark.read.parquet(f"{data_dir}/{schema.PLAYLISTS_FILE}").count()
    if n == 0:
        raise SegueError("the dataset has no playlists: there is nothing to mine")
    min_count = thresholds.min_count(n)
    entries = (
        spark.read.parquet(f"{data_dir}/{schema.PLAYLIST_TRACKS_FILE}")
        .select(schema.PID, schema.TRACK_ID)
        .distinct()
    )
    frequent = (
        entries.groupBy(schema.TRACK_ID)
        .count()
        .where(F.col("count") >= min_count)
        .select(schema.TRACK_ID)
        .cache()
    )
    n_frequent = frequent.count()
    log.info("spark rules: %s playlists, %s tracks in ≥ %s", f"{n:,}", f"{n_frequent:,}", min_count)
    if n_frequent < 2:
        return _empty(thresholds, n, n_frequent)
    baskets = (
        entries.join(F.broadcast(frequent), schema.TRACK_ID)
        .groupBy(schema.PID)
        .agg(F.array(F.collect_list(schema.TRACK_ID)).alias("sequence"))
        .cache()
    )
    n_baskets = baskets.count()
    # MLlib keeps a pattern seen in ceil(minSupport · sequences) of them; the sequences are only
    # the playlists holding a frequent track, so the share is set to give exactly min_count.
    miner = PrefixSpan(
        minSupport=(min_count - 0.5) / n_baskets,
        maxPatternLength=thresholds.max_len,
        maxLocalProjDBSize=32_000_000,
    )
    itemsets = collect(
        miner.findFrequentSequentialPatterns(baskets).select(
            F.array_sort(F.col("sequence")[0]).alias("items"), "freq"
        )
    )
    baskets.unpersist()
    frequent.unpersist()
    log.info(
        "spark prefixspan: %s item sets of ≤ %d tracks in %.1f s",
        f"{itemsets.num_rows:,}",
        thresholds.max_len,
        time.perf_counter() - start,
    )
    return _rules_from_itemsets(itemsets, n, n_frequent, thresholds)


def _empty(thresholds: RuleThresholds, n: int, n_frequent: int) -> RuleSet:
    no = np.zeros(0, np.int64)
    return rule_set(no, no, no, no, no, no, n, n_frequent, thresholds)


def _rules_from_itemsets(itemsets, n: int, n_frequent: int, thresholds: RuleThresholds):
    """Every rule ``S∖{c} → c`` of the frequent sets ``S`` (an Arrow table of sorted ``items``
    lists and their ``freq``), with its three counts, as :func:`rule_set` takes them."""
    items = itemsets.column("items").combine_chunks()
    offsets = items.offsets.to_numpy()
    flat = items.values.to_numpy().astype(np.int64)
    freq = itemsets.column("freq").to_numpy().astype(np.int64)
    sets = [tuple(flat[a:b].tolist()) for a, b in itertools.pairwise(offsets.tolist())]
    count_of = dict(zip(sets, freq.tolist(), strict=True))
    consequents, sizes, antecedents, count, body_count, head_count = [], [], [], [], [], []
    for itemset, support in zip(sets, freq.tolist(), strict=True):
        if len(itemset) < 2:
            continue
        for j, head in enumerate(itemset):
            body = itemset[:j] + itemset[j + 1 :]
            consequents.append(head)
            sizes.append(len(body))
            antecedents.extend(body)
            count.append(support)
            body_count.append(count_of[body])
            head_count.append(count_of[(head,)])
    as_int = [np.asarray(v, dtype=np.int64) for v in (consequents, sizes, antecedents)]
    return rule_set(
        *as_int,
        np.asarray(count, dtype=np.int64),
        np.asarray(body_count, dtype=np.int64),
        np.asarray(head_count, dtype=np.int64),
        n,
        n_frequent,
        thresholds,
    )
