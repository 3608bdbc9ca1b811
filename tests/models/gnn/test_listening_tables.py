"""Real-data shaped listening tables through the CLI: a tab-separated plays table and a tags table
(hetrec2011's layout) give items genres, so genre_gat runs; without genres it is skipped, named,
while the other models are evaluated; a bad genres file is one line and exit 2."""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest

from segue.cli import main

GENRES = ["rock", "jazz", "country"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """60 users; track t has genre t // 20; user u plays 12 of genre u % 3's tracks in time order.
    Tags: each track tagged with its genre by 3 users and once with a one-off tag (dropped)."""
    root = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    lines = ["userID\ttrackID\tts"]
    for u in range(60):
        for i, t in enumerate((u % 3) * 20 + rng.choice(20, size=12, replace=False)):
            lines.append(f"u{u}\tt{t}\t{1_600_000_000 + u * 100_000 + i * 300}")
    (root / "plays.dat").write_text("\n".join(lines) + "\n")
    tags = ["userID\ttrackID\ttagID"] + [
        f"u{u}\tt{t}\t{t // 20}" for t in range(60) for u in range(3)
    ]
    tags += [f"u0\tt{t}\t{100 + t}" for t in range(60)]
    (root / "tags.dat").write_text("\n".join(tags) + "\n")
    (root / "tag_names.dat").write_text(
        "tagID\ttagValue\n"
        + "".join(f"{i}\t{g}\n" for i, g in enumerate(GENRES))
        + "".join(f"{100 + t}\tone-off {t}\n" for t in range(60))
    )
    return root


def ingest(tables, out, *extra) -> int:
    return main(
        [
            "ingest",
            "sessions",
            str(tables / "plays.dat"),
            "--out",
            str(out),
            "--user-col",
            "userID",
            "--item-col",
            "trackID",
            "--timestamp-col",
            "ts",
            *extra,
        ]
    )


def graph_evaluate(data, out, models: str) -> int:
    """``segue graph evaluate`` of ``models`` against popularity, mini mode; the exit status."""
    return main(
        [
            "graph",
            "evaluate",
            str(data),
            "--out",
            str(out),
            "--models",
            models,
            "--baselines",
            "popular",
            "--mode",
            "mini",
        ]
    )


def test_genre_gat_runs_on_listening_data_given_a_genres_table(tables, tmp_path, capsys):
    data = tmp_path / "data"
    assert (
        ingest(
            tables,
            data,
            "--genres",
            str(tables / "tags.dat"),
            "--genre-col",
            "tagID",
            "--genre-names",
            str(tables / "tag_names.dat"),
        )
        == 0
    )
    assert "3 genres from" in capsys.readouterr().out
    manifest = orjson.loads((data / "manifest.json").read_bytes())
    assert manifest["counts"]["genres"] == 3
    assert graph_evaluate(data, tmp_path / "eval", "genre_gat") == 0
    report = orjson.loads((tmp_path / "eval" / "graph_report.json").read_bytes())
    table = report["evaluation"]["users"]["table"]
    assert set(table) == {"popular", "genre_gat"} and report["skipped"] == {}
    # every listened track has its one planted genre, so a list of 10 spans 1 to 3 genres
    assert 1 <= table["genre_gat"]["all"]["genre_diversity"] <= 3
    assert report["genre"]["genre_share_of_score"] > 0


def test_a_model_that_cannot_run_is_skipped_and_named(tables, tmp_path, capsys, caplog):
    data = tmp_path / "data"
    assert ingest(tables, data) == 0
    capsys.readouterr()
    assert graph_evaluate(data, tmp_path / "eval", "genre_gat,gat") == 0
    captured = capsys.readouterr()
    report = orjson.loads((tmp_path / "eval" / "graph_report.json").read_bytes())
    assert set(report["evaluation"]["users"]["table"]) == {"popular", "gat"}
    assert (
        list(report["skipped"]) == ["genre_gat"]
        and "the data has no genres" in report["skipped"]["genre_gat"]
    )
    assert "skipped genre_gat: the data has no genres" in caplog.text
    assert "- genre_gat: the data has no genres" in captured.out
    markdown = (tmp_path / "eval" / "graph_report.md").read_text()
    assert "- genre_gat: the data has no genres" in markdown
    gat_row = next(line for line in markdown.splitlines() if line.startswith("| gat | all |"))
    assert gat_row.endswith("| – | – |") and "0.0000 |" not in gat_row.split("|", 6)[-1]
    assert report["evaluation"]["users"]["table"]["gat"]["all"]["genre_coverage"] is None


def test_no_model_that_can_run_is_an_error(tables, tmp_path):
    from segue.errors import SegueError
    from segue.models.gnn.runs import evaluate_listening_models, load_listening_split

    assert ingest(tables, tmp_path / "data") == 0
    with pytest.raises(
        SegueError, match="no model could run on this data: genre_gat: the data has no genres"
    ):
        evaluate_listening_models(
            load_listening_split(tmp_path / "data"),
            models=("genre_gat",),
            baselines=(),
            mode="mini",
        )
    with pytest.raises(SegueError, match="unknown model 'nope'"):  # a typo is not skipped
        evaluate_listening_models(
            load_listening_split(tmp_path / "data"), models=("gat",), baselines=("nope",)
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--genres", "MISSING"], "missing.dat: no such file (the genres table)"),
        (
            ["--genres", "tags.dat", "--genre-col", "tag"],
            "tags.dat: has no column 'tag' (columns: userID, trackID, "
            "tagID); read as tab-separated",
        ),
        (
            ["--genres", "tags.dat", "--genre-col", "tagID", "--genre-item-col", "userID"],
            "tags.dat: none of its",
        ),
    ],
)
def test_a_bad_genres_file_is_one_line_and_exit_2(
    tables, tmp_path, capsys, monkeypatch, extra, message
):
    # A fresh log handler on this test's stderr (an earlier test's may hold a closed stream).
    monkeypatch.setattr(logging.getLogger("segue"), "handlers", [])
    extra = [
        str(tables / "missing.dat")
        if e == "MISSING"
        else str(tables / e)
        if e.endswith(".dat")
        else e
        for e in extra
    ]
    capsys.readouterr()
    assert ingest(tables, tmp_path / "data", *extra) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "data").exists()
