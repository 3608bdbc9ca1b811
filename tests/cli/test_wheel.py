"""The package as users get it: ``python -m build`` makes a wheel, which installs into a clean
virtual environment (the core, no extra: no torch) and runs ``segue --help`` and a 1,000-playlist
generate → ingest → split → train → evaluate there, from a directory outside the checkout, so
nothing is imported from ``src``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*argv, cwd: Path, timeout: int = 900, env: dict | None = None):
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """segue's wheel, built from a copy of the sources (setuptools writes build/ beside them)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: this environment's setuptools (a dev dependency), no download to build.
    run(
        sys.executable,
        "-m",
        "build",
        "--wheel",
        "--no-isolation",
        "--outdir",
        dist,
        ".",
        cwd=source,
    )
    (built,) = dist.glob("segue-*.whl")
    return built


def test_the_wheel_holds_the_package_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "segue/cli/__init__.py" in names and "segue/py.typed" in names
    assert {"segue/serve/static/index.html", "segue/serve/static/app.js"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/")) or "__pycache__" in n]
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    text = metadata.decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if "torch" in r or "fastapi" in r or "mlflow" in r], core
    assert {"graph", "serve", "track"} <= {
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Provides-Extra:")
    }


@pytest.mark.slow
def test_the_wheel_installs_in_a_clean_venv_and_runs_the_core(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    # The core without extras: torch and the service's packages are not there.
    check = "import importlib.util as u; print([m for m in ('torch', 'fastapi', 'mlflow') if u.find_spec(m)])"
    assert run(python, "-c", check, cwd=tmp_path).stdout.strip() == "[]"

    segue = venv / "bin" / "segue"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert "generate" in run(segue, "--help", cwd=tmp_path, env=env).stdout
    steps = [
        ["generate", "mpd", "-n", "1000", "--out", "mpd", "--challenge-per-category", "5"],
        ["ingest", "mpd", "--out", "data"],
        ["split", "data", "--out", "split", "--per-category", "10"],
        ["train", "itemknn", "split/train", "--out", "models/itemknn"],
        ["evaluate", "models/itemknn", "--split", "split", "--out", "ev"],
    ]
    for argv in steps:
        run(segue, *argv, "-q", cwd=tmp_path, env=env)
    where = run(python, "-c", "import segue; print(segue.__file__)", cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(venv))  # the installed package, not the checkout
    assert (tmp_path / "ev" / "evaluation.json").exists()
