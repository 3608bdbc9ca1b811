"""The core works without the optional extras: with torch, PyG and the service's packages made
unimportable (as on `pip install segue`), the data → split → train → evaluate path runs, and
what needs an extra says which one, in one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

# Run segue's CLI with the extras' packages unimportable, as if they were not installed.
WITHOUT_EXTRAS = """
import importlib.abc, sys
BLOCKED = ("torch", "torch_geometric", "fastapi", "uvicorn", "fastapi_offline")
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
from segue.cli import main
code = main(sys.argv[1:])
leaked = [m for m in ("torch", "torch_geometric", "fastapi") if m in sys.modules]
assert not leaked, leaked
sys.exit(code)
"""


def segue_without_extras(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args, "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_core_runs_without_extras_and_names_the_extra_otherwise(tmp_path):
    steps = [
        ["generate", "mpd", "-n", "1000", "--out", "mpd", "--challenge-per-category", "5"],
        ["ingest", "mpd", "--out", "data"],
        ["split", "data", "--out", "split", "--per-category", "10"],
        ["train", "itemknn", "split/train", "--out", "models/itemknn"],
        ["train", "als", "split/train", "--out", "models/als"],
        ["evaluate", "models/itemknn", "models/als", "--split", "split", "--out", "ev"],
        ["recommend", "models/itemknn", "--title", "summer", "--format", "json"],
        ["models", "lightgcn"],  # describing a model needs none of its packages
    ]
    for argv in steps:
        run = segue_without_extras(*argv, cwd=tmp_path)
        assert run.returncode == 0, (argv, run.stderr[-2000:])
    assert (tmp_path / "ev" / "evaluation.json").exists()
    refused = {
        ("train", "lightgcn", "split/train", "--out", "models/lightgcn"): (
            "lightgcn needs torch, torch_geometric, which are not installed: "
            "pip install 'segue[graph]'"
        ),
        ("serve", "models/itemknn"): (
            "segue serve needs fastapi, uvicorn, fastapi_offline, which are not installed: "
            "pip install 'segue[serve]'"
        ),
    }
    for argv, message in refused.items():
        run = segue_without_extras(*argv, cwd=tmp_path)
        assert run.returncode == 2 and run.stderr.strip() == f"error: {message}", run.stderr
    assert not (tmp_path / "models" / "lightgcn").exists()
