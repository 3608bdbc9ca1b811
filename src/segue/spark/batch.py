"""Batch recommendation and scoring on Spark: a challenge set answered in partitions.

The queries (a challenge set's partial playlists, as :class:`~segue.models.base.Queries`) are
cut into contiguous ranges of whole batches of the model's ``batch_size`` (the batches the
local engine answers in), one Spark task per range. A task loads the model from its saved
directory (once per Python worker: workers are reused, and a model's arrays are memory-mapped),
answers its range, and, when given the held-out truth, scores its answers with the same
per-query metrics as the local evaluation (``segue.evaluation.runner``). Only the answers and
the per-query values come back; the driver assembles them in query order, and the statistics
(the stratified bootstrap, the paired tests, Holm) run there on those values, as locally.
``tests/spark/test_batch.py`` checks the rankings and the evaluation equal to the local ones.

The model directory must be readable by every executor at the same path (this machine's disk
for a ``local[N]`` master; a shared or mounted file system on a cluster); the queries and the
evaluation task are broadcast (a few MB for 10,000 queries, plus the catalog's artist and
popularity arrays).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

log = logging.getLogger("segue")
_MODELS: dict[tuple, object] = {}  # per Python worker: (path, when saved) → loaded model


def _model(path: str):
    """The model saved at ``path``, loaded once per Python worker (Spark reuses workers across
    tasks and jobs); a directory saved again since is loaded again."""
    import os

    from segue.models.base import PARAMS_FILE, Recommender

    key = (path, os.stat(Path(path) / PARAMS_FILE).st_mtime_ns)
    if key not in _MODELS:
        _MODELS.clear()  # one model at a time: a worker answers for one model per job
        _MODELS[key] = Recommender.load(Path(path))
    return _MODELS[key]


def answer_partitioned(
    model_dir: Path,
    queries,
    n: int = 500,
    *,
    task=None,
    k_values: tuple[int, ...] = (10, 100),
    master: str | None = None,
    partitions: int | None = None,
) -> tuple[object, dict[str, np.ndarray] | None]:
    """The model saved in ``model_dir`` answers ``queries`` on Spark: ``(ranking, per_query)``
    with ``ranking`` the :class:`~segue.models.base.Ranking` (ids int32 and scores float32
    [q, n], in query order) that ``Recommender.recommend`` gives locally and, when ``task`` (an :class:`~segue.evaluation.runner.EvaluationTask` for the same
    queries) is given, ``per_query[metric]`` float64 [q] — else None. ``partitions``: ranges of
    queries (default: two per core Spark has), each a whole number of the model's batches."""
    from segue.evaluation.runner import metric_names
    from segue.models.base import read_params
    from segue.models.registry import get_model_class
    from segue.spark.data import collect
    from segue.spark.session import spark_errors, spark_session

    spark = spark_session(master)
    q = len(queries)
    # A model answers in batches of its batch_size queries, and a score may differ in its last
    # bit with the batch's shape (a BLAS product): the parts are whole batches from the start,
    # so each query is answered in the very batch it is answered in locally.
    batch = get_model_class(read_params(Path(model_dir))["model"]).batch_size
    batches = -(-q // batch)
    parts = max(1, min(batches, partitions or 2 * spark.sparkContext.defaultParallelism))
    bounds = np.minimum(np.linspace(0, batches, parts + 1).astype(np.int64) * batch, q)
    names = metric_names(k_values) if task is not None else []
    fields = [
        pa.field("row", pa.int64()),
        pa.field("ids", pa.list_(pa.int32())),
        pa.field("scores", pa.list_(pa.float32())),
        *[pa.field(f"m{i}", pa.float64()) for i in range(len(names))],
    ]
    shipped = spark.sparkContext.broadcast((queries, task))
    path = str(Path(model_dir).resolve())

    def answer(batches):
        from segue.evaluation.runner import _per_query, _truth_csr

        queries, task = shipped.value
        model = _model(path)
        for batch in batches:
            for part in batch.column("id").to_pylist():
                lo, hi = int(bounds[part]), int(bounds[part + 1])
                answered = model.recommend(queries.slice(lo, hi), n)
                ids = answered.ids
                offsets = pa.array(np.arange(0, (hi - lo) * n + 1, n, dtype=np.int32))
                columns = [
                    pa.array(np.arange(lo, hi, dtype=np.int64)),
                    pa.ListArray.from_arrays(offsets, pa.array(ids.reshape(-1).astype(np.int32))),
                    pa.ListArray.from_arrays(
                        offsets, pa.array(answered.scores.reshape(-1).astype(np.float32))
                    ),
                ]
                if task is not None:
                    sub = task.take(np.arange(lo, hi))
                    values = _per_query(sub, _truth_csr(sub.truth), ids.astype(np.int64), k_values)
                    columns += [pa.array(values[name], pa.float64()) for name in names]
                yield pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

    from pyspark.sql.pandas.types import from_arrow_schema

    start = time.perf_counter()
    try:
        with spark_errors("batch recommendation"):
            table = collect(
                spark.range(parts, numPartitions=parts).mapInArrow(
                    answer, from_arrow_schema(pa.schema(fields))
                )
            )
    finally:
        with contextlib.suppress(Exception):  # a dead session's broadcast is gone with it
            shipped.unpersist()
    table = table.sort_by("row")
    from segue.models.base import Ranking

    ranking = Ranking(
        table.column("ids").combine_chunks().flatten().to_numpy().reshape(q, n),
        table.column("scores").combine_chunks().flatten().to_numpy().reshape(q, n),
    )
    log.info(
        "%s answered %d queries on Spark in %d parts [%.1f s]",
        Path(model_dir).name,
        q,
        parts,
        time.perf_counter() - start,
    )
    if task is None:
        return ranking, None
    per_query = {name: table.column(f"m{i}").to_numpy() for i, name in enumerate(names)}
    return ranking, per_query
