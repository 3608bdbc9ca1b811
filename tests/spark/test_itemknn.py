"""Item-kNN on Spark: the local model's neighbours (the same pairs and similarities), in the same
model directory."""

from __future__ import annotations

import numpy as np
import pytest

from segue.cli import main
from segue.errors import SegueError
from segue.models.base import Recommender
from segue.models.itemknn import ItemKNNConfig
from tests.spark.conftest import MASTER


def test_spark_finds_the_local_neighbours(spark, split, tmp_path):
    n_neighbors = 20  # below most tracks' companions: the cut, and its ties, are tested
    local, on_spark = tmp_path / "local", tmp_path / "spark"
    args = ["train", "itemknn", str(split / "train"), "-p", f"n_neighbors={n_neighbors}", "-q"]
    assert main([*args, "--out", str(local)]) == 0
    assert main([*args, "--out", str(on_spark), "--engine", "spark", "--master", MASTER]) == 0
    a, b = Recommender.load(local), Recommender.load(on_spark)
    sa, sb = a.similarity, b.similarity
    assert sa.shape == sb.shape and sa.nnz > 10 * sa.shape[0] // 2
    # The same neighbour pairs, ties at the cut aside (≥ 99%), with the same similarities.
    same = sa.multiply(sb != 0)
    assert same.nnz >= 0.99 * sa.nnz and abs(sb.nnz - sa.nnz) <= 0.01 * sa.nnz
    np.testing.assert_allclose(
        np.asarray(sa[same.nonzero()]).ravel(), np.asarray(sb[same.nonzero()]).ravel(), rtol=1e-6
    )
    np.testing.assert_allclose(a.row_scale, b.row_scale, rtol=1e-6)
    from segue.models.base import Queries

    queries = Queries.from_lists([[0, 5, 9], [42]])
    overlap = np.mean(
        [
            len(set(x) & set(y)) / len(x)
            for x, y in zip(a.recommend(queries, 50).ids, b.recommend(queries, 50).ids, strict=True)
        ]
    )
    assert overlap >= 0.98


def test_bm25_is_refused_on_spark(spark, split):
    from segue.data.dataset import PlaylistData
    from segue.spark.itemknn import itemknn_neighbours

    with pytest.raises(SegueError, match="similarity=bm25 is not available there"):
        itemknn_neighbours(PlaylistData.load(split / "train"), ItemKNNConfig(similarity="bm25"))
