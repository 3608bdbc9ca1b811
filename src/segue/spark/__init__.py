"""The heavy stages on Apache Spark (the optional extra ``segue[spark]``): ``--engine spark``.

Each stage here produces what its local counterpart does — the same files, the same model
directories — from the same inputs, so everything downstream (evaluation, serving, the report)
is unchanged. The local engine stays the default; Spark is for data that outgrows one machine,
or a team whose data already lives on a Spark cluster.

* :mod:`segue.spark.session` — the one SparkSession of a process (``local[*]`` or a master URL).
* :mod:`segue.spark.ingest` — MPD slices → the local engine's tables and manifest.
* :mod:`segue.spark.rules` — association rules: frequent sets mined by MLlib, the measures
  computed by segue from their counts, exactly as the local miner's are.
* :mod:`segue.spark.itemknn` — item-kNN neighbours (the asymmetric cosine) by a self-join.
* :mod:`segue.spark.als` — implicit ALS with MLlib, exported to segue's ALS model format.
* :mod:`segue.spark.batch` — a challenge set answered, and scored, in partitions.
"""
