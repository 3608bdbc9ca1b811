"""Shared fixtures: one small generated MPD directory and its ingested tables per test session.

Generation uses the calibrated default world (built once per process, ~5 s), so the tests see
the same kind of data as `make demo` and real users of the generator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segue.data.ingest import ingest_mpd
from segue.data.synthetic.mpd import generate_mpd

SMALL_N = 4_000
SMALL_SEED = 11


@pytest.fixture(scope="session")
def small_mpd(tmp_path_factory) -> Path:
    """4,000 generated playlists in 4 slices plus a 10×20 challenge set."""
    out = tmp_path_factory.mktemp("mpd") / "mpd"
    generate_mpd(out, SMALL_N, seed=SMALL_SEED, challenge_per_category=20, workers=1)
    return out


@pytest.fixture(scope="session")
def small_data(small_mpd, tmp_path_factory) -> Path:
    """``small_mpd`` ingested (two worker processes, as on a real run)."""
    out = tmp_path_factory.mktemp("data") / "data"
    ingest_mpd(small_mpd, out, workers=2)
    return out
