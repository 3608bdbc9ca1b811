"""Models and commands can be found without getting them wrong first: parameters with type,
default and meaning; "did you mean" for models, parameters and commands."""

from __future__ import annotations

import os

import pytest

from segue.cli import main
from segue.models.config import describe_params
from segue.models.registry import _MODELS, _load_all


def test_models_name_prints_every_parameter_with_type_default_and_meaning(capsys):
    assert main(["models", "itemknn"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("itemknn: Item–item kNN")
    assert "  alpha           float  = 0.9\n" in out
    assert "cosine's asymmetry: 0.5 = plain cosine" in out
    assert "  similarity      str    = 'cosine'\n" in out
    assert main(["models", "lightgcn"]) == 0
    assert "  trainer.learning_rate" in capsys.readouterr().out  # nested groups, dotted


def test_every_parameter_of_every_model_says_what_it_means():
    _load_all()
    undocumented = [
        f"{name}.{d.name}"
        for name, cls in _MODELS.items()
        for d in describe_params(cls.Config)
        if not d.meaning
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["models", "itemnn"], "unknown model 'itemnn' (did you mean 'itemknn'?)"),
        (
            ["train", "itemknn", "data", "--out", "m", "--param", "neighbors=5"],
            "unknown parameter neighbors (did you mean 'n_neighbors'?)",
        ),
        (
            ["train", "lightgcn", "data", "--out", "m", "--param", "trainer.learnin_rate=0.1"],
            "trainer: unknown parameter learnin_rate (did you mean 'learning_rate'?)",
        ),
        (["graph", "biuld"], "Did you mean 'build'?"),
    ],
)
def test_did_you_mean(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_ingest_takes_a_folder_named_like_a_subcommand(tmp_path, capsys, monkeypatch):
    """`segue ingest mpd --out data` where ./mpd is the folder of slices."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("mpd")
    assert main(["ingest", "mpd", "--out", "data"]) == 2
    assert "mpd: no MPD slice files" in capsys.readouterr().err  # read as the folder


def test_quiet_is_accepted_after_the_subcommand(tmp_path):
    import logging

    from tests.data.helpers import two_slices

    src = two_slices(tmp_path / "src")
    try:
        assert main(["ingest", str(src), "--out", str(tmp_path / "out"), "-q"]) == 0
        assert logging.getLogger("segue").level == logging.WARNING
        assert main(["models", "--quiet", "popular"]) == 0
    finally:
        logging.getLogger("segue").setLevel(logging.INFO)
    assert (tmp_path / "out" / "manifest.json").exists()


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_shows_every_option_name_whole(capsys):
    import typer.main

    from segue.cli.common import app

    group = typer.main.get_command(app)
    commands = list(_commands(group))
    assert len(commands) > 20
    for path in commands:
        assert main([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert "…" not in out, (path, [line for line in out.splitlines() if "…" in line])
