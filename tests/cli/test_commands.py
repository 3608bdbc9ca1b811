"""The CLI through main(argv): the whole Foundation flow, and clean failures."""

from __future__ import annotations

import json

from segue.cli import main


def test_generate_verify_ingest_eda(tmp_path, capsys):
    mpd, data, eda = tmp_path / "mpd", tmp_path / "data", tmp_path / "eda"
    assert (
        main(
            [
                "generate",
                "mpd",
                "--playlists",
                "1200",
                "--out",
                str(mpd),
                "--seed",
                "3",
                "--challenge-per-category",
                "5",
            ]
        )
        == 0
    )
    assert "wrote 1,200 playlists" in capsys.readouterr().out
    assert main(["verify", str(mpd)]) == 0
    assert "RESULT: OK" in capsys.readouterr().out
    assert main(["ingest", str(mpd), "--out", str(data)]) == 0
    assert "ingested 1,200 playlists" in capsys.readouterr().out
    assert main(["eda", str(data), "--out", str(eda)]) == 0
    assert (eda / "eda.md").exists() and (eda / "eda.png").exists()
    stats = json.loads((eda / "eda.json").read_text())
    assert stats  # the EDA's own tests check the numbers


def test_verify_failure_exits_1(tmp_path, capsys):
    from tests.data.helpers import two_slices

    src = two_slices(tmp_path / "src")
    (src / "mpd.slice.2-3.json").write_text('{"playlists": [')
    assert main(["verify", str(src)]) == 1
    out = capsys.readouterr().out
    assert "RESULT: FAILED" in out and "mpd.slice.2-3.json" in out


def test_bad_input_exits_2_without_traceback(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing: no such directory" in err and "Traceback" not in err
    assert main(["ingest", str(tmp_path)]) == 2  # --out missing: usage error
    assert "Missing option" in capsys.readouterr().err
    assert main(["generate", "mpd", "--playlists", "0", "--out", str(tmp_path / "g")]) == 2
    assert main(["eda", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    from importlib.metadata import version

    import segue

    assert f"segue {segue.__version__}\n" == capsys.readouterr().out
    assert segue.__version__ == version("segue")  # the package's metadata says the same
    assert main([]) == 0
    assert "generate" in capsys.readouterr().out


def test_segue_demo_defaults_are_the_pipelines():
    """`segue demo` shows literal defaults (so `--help` does not import the pipeline); they must be
    the demo's own: DEMO_PLAYLISTS playlists with at least DEMO_MIN_FOLLOWERS followers."""
    import inspect

    from segue.cli import runs
    from segue.pipeline import DEMO_MIN_FOLLOWERS, DEMO_PLAYLISTS, DEMO_USERS

    params = inspect.signature(runs.demo).parameters
    assert params["playlists"].default == DEMO_PLAYLISTS
    assert params["min_followers"].default == DEMO_MIN_FOLLOWERS
    assert params["users"].default == DEMO_USERS
