"""The evaluation flow through main(argv): split → train → recommend → check → evaluate."""

from __future__ import annotations

import gzip
import json

from segue.cli import main


def test_popularity_submission_written_checked_and_evaluated(small_data, tmp_path, capsys):
    split, model, sub, report = (
        tmp_path / "split",
        tmp_path / "popular",
        tmp_path / "sub.csv.gz",
        tmp_path / "eval",
    )
    assert (
        main(
            [
                "split",
                str(small_data),
                "--out",
                str(split),
                "--per-category",
                "10",
                "--validation-per-category",
                "5",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert "test 100 (10 categories)" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "popular" in capsys.readouterr().out
    assert main(["train", "popular", str(split / "train"), "--out", str(model)]) == 0
    challenge = split / "test" / "challenge_set.json"
    assert (
        main(
            [
                "recommend",
                str(model),
                "--challenge",
                str(challenge),
                "--out",
                str(sub),
                "--team",
                "segue tests",
                "--email",
                "tests@example.org",
            ]
        )
        == 0
    )
    lines = gzip.decompress(sub.read_bytes()).decode().splitlines()
    assert lines[0] == "team_info,segue tests,tests@example.org" and len(lines) == 101
    assert all(len(line.split(",")) == 501 for line in lines[1:])
    assert main(["check-submission", str(sub), "--challenge", str(challenge)]) == 0
    assert "ok" in capsys.readouterr().out
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--submission",
                str(sub),
                "--split",
                str(split),
                "--out",
                str(report),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "scored 2 rankings on 100 playlists" in out
    result = json.loads((report / "evaluation.json").read_text())
    table = result["table"]
    # The model and its own submission are the same ranking reached two ways: same scores.
    assert table["popular"]["all"]["r_precision"] == table["sub"]["all"]["r_precision"]
    assert 0 < table["popular"]["all"]["r_precision"]["mean"] < 0.2
    assert (report / "fig_ndcg.png").exists() and "9 — title + first 100 tracks" in (
        report / "evaluation.md"
    ).read_text()


def test_evaluate_refuses_a_model_trained_elsewhere(small_data, tmp_path, capsys):
    split, model = tmp_path / "split", tmp_path / "popular-all"
    assert (
        main(["split", str(small_data), "--out", str(split), "--per-category", "5", "--seed", "2"])
        == 0
    )
    assert (
        main(["train", "popular", str(small_data), "--out", str(model)]) == 0
    )  # saw the test playlists
    capsys.readouterr()
    assert main(["evaluate", str(model), "--split", str(split), "--out", str(tmp_path / "e")]) == 2
    assert "could leak held-out playlists" in capsys.readouterr().err


def test_bad_submission_exits_1_and_names_the_fault(small_data, tmp_path, capsys):
    split = tmp_path / "split"
    assert (
        main(["split", str(small_data), "--out", str(split), "--per-category", "5", "--seed", "3"])
        == 0
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("team_info,x,x@example.org\n1000000,spotify:track:abc\n")
    capsys.readouterr()
    assert (
        main(
            [
                "check-submission",
                str(bad),
                "--challenge",
                str(split / "test" / "challenge_set.json"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "unknown_pid" in out or "wrong_count" in out
    assert main(["evaluate", "--split", str(split), "--out", str(tmp_path / "e")]) == 2
    assert (
        main(
            [
                "recommend",
                str(tmp_path / "nope"),
                "--challenge",
                str(split / "test" / "challenge_set.json"),
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
