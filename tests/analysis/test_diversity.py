"""Diversity per category on hand-worked lists; the `segue diversity` stage and its errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segue.analysis.diversity import REFERENCE, diversity_table, popularity_profile
from segue.cli import main
from segue.evaluation.runner import EvaluationTask

# 6 catalog tracks (popularity 10, 5, 3, 1, 1, 0 of 16 playlists; the head carrying 80% of the 20
# entries is tracks 0-2) and one held-out track (id 6) that training never saw.
TASK = EvaluationTask(
    pids=[100, 101, 102],
    categories=[1, 1, 2],
    truth=[[0, 2], [3, 6], [5]],
    track_artist=[0, 0, 1, 1, 2, 3, 4],
    item_popularity=[10, 5, 3, 1, 1, 0],
    n_playlists=16,
    n_items=6,
)
RANKING = np.array([[0, 1, 2, -1], [0, 0, 3, 4], [1, 2, 4, 5]])


def info(pop: int) -> float:
    return -math.log2(max(pop, 1) / 16)


def test_hand_worked_lists_per_category_and_cutoff():
    result = diversity_table(TASK, {"a": RANKING}, cutoffs=(2, 4))
    assert result["groups"] == ["all", "1", "2"] and result["sizes"] == {"all": 3, "1": 2, "2": 1}
    at2, at4 = result["table"]["a"]["2"], result["table"]["a"]["4"]
    # k = 2: lists [0, 1], [0, 0], [1, 2].
    assert at2["1"]["artist_diversity"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert at2["2"]["artist_diversity"] == pytest.approx(1.0)
    assert at2["all"]["artist_diversity"] == pytest.approx(2.5 / 3)
    assert at2["1"]["popularity_bias"] == pytest.approx((7.5 + 10) / 2)
    assert at2["2"]["novelty"] == pytest.approx((info(5) + info(3)) / 2)
    assert at2["all"]["long_tail_share"] == 0.0
    assert at2["1"]["catalog_coverage"] == pytest.approx(2 / 6) and at2["all"][
        "catalog_coverage"
    ] == pytest.approx(3 / 6)
    # k = 4: lists {0, 1, 2}, {0, 3, 4}, {1, 2, 4, 5}.
    assert at4["1"]["artist_diversity"] == pytest.approx((2 / 3 + 1) / 2)
    assert at4["all"]["popularity_bias"] == pytest.approx((6 + 4 + 2.25) / 3)
    assert at4["1"]["long_tail_share"] == pytest.approx((0 + 2 / 3) / 2)
    assert at4["2"]["long_tail_share"] == pytest.approx(0.5)
    assert at4["2"]["novelty"] == pytest.approx((info(5) + info(3) + info(1) + info(0)) / 4)
    assert (
        at4["1"]["catalog_coverage"] == pytest.approx(5 / 6)
        and at4["all"]["catalog_coverage"] == 1.0
    )
    # The held-out tracks: the unknown track 6 has popularity 0, is long tail, and is not in the catalog.
    truth = result["table"][REFERENCE]["4"]
    assert result["table"][REFERENCE]["2"] == truth
    assert truth["1"]["popularity_bias"] == pytest.approx((6.5 + 0.5) / 2)
    assert (
        truth["1"]["long_tail_share"] == pytest.approx((0 + 1) / 2)
        and truth["2"]["long_tail_share"] == 1.0
    )
    assert truth["1"]["novelty"] == pytest.approx(((info(10) + info(3)) / 2 + 4.0) / 2)
    assert truth["1"]["catalog_coverage"] == pytest.approx(3 / 6) and truth["all"][
        "catalog_coverage"
    ] == pytest.approx(4 / 6)
    assert truth["all"]["artist_diversity"] == 1.0


def test_popularity_profile_bands():
    profile = popularity_profile(TASK, {"a": RANKING}, k=2)
    # Top-2 ids pooled: 0, 1, 0, 0, 1, 2 → popularities 10, 5, 10, 10, 5, 3: bands 1-9 (3) and 10-99 (3).
    assert profile["a"] == pytest.approx([0, 3 / 6, 3 / 6, 0, 0, 0])
    # Held out: 0, 2, 3, 6, 5 → 10, 3, 1, 0, 0.
    assert profile[REFERENCE] == pytest.approx([2 / 5, 2 / 5, 1 / 5, 0, 0, 0])


def test_rankings_of_the_wrong_shape_or_ids_are_refused():
    from segue.errors import SegueError

    with pytest.raises(SegueError, match="expected 3 rows"):
        diversity_table(TASK, {"a": RANKING[:2]})
    with pytest.raises(SegueError, match="outside the split's catalog"):
        diversity_table(TASK, {"a": RANKING + 5})


def test_diversity_stage_on_a_split(small_data, tmp_path, capsys):
    split = tmp_path / "split"
    assert (
        main(["split", str(small_data), "--out", str(split), "--per-category", "10", "--seed", "4"])
        == 0
    )
    for name in ("popular", "rules"):
        assert (
            main(
                [
                    "train",
                    name,
                    str(split / "train"),
                    "--out",
                    str(tmp_path / name),
                    *(["--param", "min_support=0.005"] if name == "rules" else []),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "recommend",
                str(tmp_path / "popular"),
                "--challenge",
                str(split / "test" / "challenge_set.json"),
                "--out",
                str(tmp_path / "pop.csv.gz"),
            ]
        )
        == 0
    )
    out = tmp_path / "div"
    assert (
        main(
            [
                "diversity",
                str(tmp_path / "popular"),
                str(tmp_path / "rules"),
                "--split",
                str(split),
                "--submission",
                str(tmp_path / "pop.csv.gz"),
                "--cutoff",
                "10",
                "--cutoff",
                "100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "analysed 3 list sets on 100 playlists at k = 10, 100" in capsys.readouterr().out
    doc = json.loads((out / "diversity.json").read_text())
    assert (
        doc["models"] == ["popular", "rules", "pop"]
        and doc["groups"][0] == "all"
        and len(doc["groups"]) == 11
    )
    table = doc["table"]
    # The model and its own submission file are the same lists.
    assert table["popular"] == table["pop"]
    # Popularity recommends the head only; people add far less popular tracks.
    assert table["popular"]["10"]["all"]["long_tail_share"] == 0.0
    assert (
        table[REFERENCE]["10"]["all"]["popularity_bias"]
        < table["popular"]["10"]["all"]["popularity_bias"] / 3
    )
    # The same ten tracks for every query of a category: coverage is 10 / catalog.
    n_items = round(10 / table["popular"]["10"]["1"]["catalog_coverage"])
    assert table["popular"]["100"]["1"]["catalog_coverage"] == pytest.approx(100 / n_items)
    for name in (
        "diversity.md",
        "diversity.csv",
        "diversity_at_10.png",
        "diversity_at_100.png",
        "popularity_profile.png",
    ):
        assert (out / name).stat().st_size > 0
    text = (out / "diversity.md").read_text()
    assert "10 — title + random 100 tracks" in text and "### long-tail share" in text
    rows = (out / "diversity.csv").read_text().splitlines()
    assert (
        rows[0] == "model,cutoff,group,group_label,queries,metric,value"
        and len(rows) == 1 + 4 * 2 * 11 * 5
    )

    # Bad input: nothing to analyse, a cut-off beyond the list, a model trained on other data.
    assert main(["diversity", "--split", str(split), "--out", str(tmp_path / "x")]) == 2
    assert "nothing to analyse" in capsys.readouterr().err
    assert (
        main(
            [
                "diversity",
                str(tmp_path / "popular"),
                "--split",
                str(split),
                "--cutoff",
                "600",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "cut-offs must be between 1 and the list length 500" in capsys.readouterr().err
    assert main(["train", "popular", str(small_data), "--out", str(tmp_path / "elsewhere")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "diversity",
                str(tmp_path / "elsewhere"),
                "--split",
                str(split),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "was not trained on" in capsys.readouterr().err and not (tmp_path / "x").exists()
