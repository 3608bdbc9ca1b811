"""``segue.load`` / ``segue.evaluate``: URIs in, records and frames out, mismatches refused.

The planted catalog (tests/serve/conftest.py) has four scenes that never share a playlist, so a
rock seed must be continued with rock; the internal path (ids, ``Queries``) is the reference.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import segue
from segue.cli import main
from segue.errors import InputFileError, SegueError
from segue.models.base import Queries, Recommender
from tests.serve.conftest import GENRES, uri

ROCK = set(map(uri, GENRES["rock"]))
HITS = set(map(uri, GENRES["hits"]))  # in playlists of every scene


def test_recommend_by_uri_equals_the_internal_path(planted):
    model = segue.load(planted["models"]["itemknn"])
    seeds = [uri(3), uri(7)]
    recs = model.recommend(tracks=seeds, title="rock", n=12)
    assert isinstance(recs, segue.Recommendations) and len(recs) == 12
    assert [r.rank for r in recs] == list(range(1, 13))
    assert not set(recs.uris()) & set(seeds) and set(recs.uris()) <= ROCK | HITS
    assert set(recs.uris()[:3]) <= ROCK
    internal = Recommender.load(planted["models"]["itemknn"])
    catalog = internal.catalog().column("track_uri").to_pylist()
    ranking = internal.recommend(
        Queries.from_lists([[catalog.index(u) for u in seeds]], ["rock"]), 12
    )
    assert recs.uris() == [catalog[i] for i in ranking.ids[0]]
    assert np.allclose([r.score for r in recs], ranking.scores[0])
    assert recs[0].name.startswith("Rock Anthem") and recs[0].artist in (
        "Stone Crew",
        "Granite Band",
    )


def test_explanations_name_seed_tracks_by_uri(planted):
    recs = segue.load(planted["models"]["itemknn"]).recommend([uri(3), uri(7)], n=5, explain=True)
    for r in recs:
        assert r.because
        shares = [e["share"] for e in r.evidence]
        assert abs(sum(shares) - 1) < 1e-6
        assert {e["track_uri"] for e in r.evidence} <= {uri(3), uri(7)}


def test_unknown_uris_are_refused_by_name_or_dropped_on_request(planted):
    model = segue.load(planted["models"]["popular"])
    with pytest.raises(segue.UnknownTracksError) as info:
        model.recommend([uri(1), "spotify:track:elsewhere"], n=3)
    assert info.value.uris == ["spotify:track:elsewhere"]
    assert "1 of 2 tracks are not in the catalog of model popular (100 tracks)" in str(info.value)
    recs = model.recommend([uri(1), "spotify:track:elsewhere"], n=3, unknown="ignore")
    assert len(recs) == 3 and recs.unknown == ["spotify:track:elsewhere"]
    assert uri(1) not in recs.uris()


@pytest.mark.parametrize(
    ("tracks", "n", "message"),
    [
        ([5, 6], 3, "tracks are URIs (str), got int 5"),
        (uri(1), 3, "tracks must be a list of URIs, not one string"),
        ([uri(1)], 0, "n must be a positive integer, got 0"),
    ],
)
def test_ids_and_bad_arguments_are_refused(planted, tracks, n, message):
    with pytest.raises(SegueError, match=re.escape(message)):
        segue.load(planted["models"]["popular"]).recommend(tracks, n=n)


def test_a_catalog_that_does_not_match_the_model_is_refused(planted, tmp_path):
    copy = tmp_path / "itemknn"
    shutil.copytree(planted["models"]["itemknn"], copy)
    catalog = pq.read_table(copy / "catalog.parquet")
    pq.write_table(catalog.slice(0, 50), copy / "catalog.parquet")
    with pytest.raises(SegueError, match="the catalog has 50 tracks but the model scores 100"):
        segue.load(copy).recommend([uri(1)], n=3)


def test_frames_and_similar(planted):
    model = segue.load(planted["models"]["itemknn"])
    frame = model.recommend([uri(31)], n=4, explain=True).to_frame()
    assert frame.columns == ["rank", "uri", "name", "artist", "score", "because"]
    assert frame.height == 4 and frame["artist"][0] == "Miles Quartet"
    assert set(frame["artist"]) <= {"Miles Quartet", "Pop Star"}
    assert frame.schema["score"] == pl.Float64
    with pytest.raises(SegueError, match="n must be a positive integer, got 0"):
        model.similar(uri(31), n=0)
    similar = model.similar(uri(31), n=5)
    assert len(similar) == 5 and uri(31) not in similar.uris()
    assert similar[0].artist == "Miles Quartet"
    assert {r.artist for r in similar} <= {"Miles Quartet", "Pop Star"}
    pandas = pytest.importorskip("pandas")
    assert isinstance(model.recommend([uri(31)], n=2).to_pandas(), pandas.DataFrame)


def test_the_whole_catalog_is_the_most_there_is(planted):
    recs = segue.load(planted["models"]["popular"]).recommend([uri(1), uri(2)], n=500)
    assert len(recs) == 98 and len(set(recs.uris())) == 98


def test_load_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"params\.json"):
        segue.load(tmp_path / "empty")


def test_evaluate_returns_the_cli_figures_as_a_frame(small_data, tmp_path):
    split, models = tmp_path / "split", tmp_path / "models"
    assert main(["split", str(small_data), "--out", str(split), "--per-category", "20",
                 "--validation-per-category", "10"]) == 0  # fmt: skip
    for name in ("popular", "itemknn"):
        assert main(["train", name, str(split / "train"), "--out", str(models / name)]) == 0
    frame = segue.evaluate([models / "popular", models / "itemknn"], split, n_bootstrap=200)
    assert frame.columns == ["model", "group", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(frame["model"]) == {"popular", "itemknn"}
    assert main(["evaluate", str(models / "popular"), str(models / "itemknn"), "--split",
                 str(split), "--out", str(tmp_path / "ev"), "--bootstrap", "200"]) == 0  # fmt: skip
    table = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["table"]
    assert segue.read_evaluation(tmp_path / "ev" / "evaluation.json").equals(frame)
    for row in frame.iter_rows(named=True):
        cell = table[row["model"]][row["group"]][row["metric"]]
        assert row["mean"] == pytest.approx(cell["mean"]) and row["n"] == cell["n"]
        assert row["ci_low"] == (None if cell["ci_low"] is None else pytest.approx(cell["ci_low"]))
    r_precision = frame.filter((pl.col("group") == "all") & (pl.col("metric") == "r_precision"))
    assert r_precision.height == 2 and (r_precision["n"] == 200).all()
