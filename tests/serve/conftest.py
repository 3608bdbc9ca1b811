"""A planted catalog with readable names, trained models, and real servers on loopback.

The planted playlists are the contract suite's (``tests/models/test_contract.py``): three genres
of 30 tracks and 10 global hits, so the right answers are known. Here they are written as MPD
slices with names that say what each track is ("Rock Anthem 3" by "Stone Crew", "Blue Note 7"
by "Miles Quartet", …), ingested like real data, and the models are trained with the CLI.
Tests refer to tracks by URI only (ingest assigns its own ids).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segue.cli import main
from tests.data.helpers import write_slice
from tests.models.test_contract import planted_data

GENRES = {
    "rock": range(0, 30),
    "jazz": range(30, 60),
    "country": range(60, 90),
    "hits": range(90, 100),
}
MODELS = ("itemknn", "popular", "playlistknn", "title")


def uri(k: int) -> str:
    """The URI of planted track ``k`` (0-29 rock, 30-59 jazz, 60-89 country, 90-99 hits)."""
    return f"spotify:track:planted{k:03d}"


def track_meta(k: int) -> dict:
    if k < 30:
        name, artist = f"Rock Anthem {k}", ("Stone Crew" if k % 2 else "Granite Band")
        if k == 15:
            name = "Déjà Vu Anthem"  # accents: found by "deja"
    elif k < 60:
        name, artist = f"Blue Note {k - 30}", "Miles Quartet"
    elif k < 90:
        name, artist = f"Dusty Road {k - 60}", "Hank Ranchers"
    else:
        name, artist = f"Chart Hit {k - 90}", "Pop Star"
    return {"track_name": name, "artist_name": artist}


def write_planted_mpd(directory: Path) -> Path:
    data = planted_data()
    playlists = []
    for p in range(data.n_playlists):
        tracks = data.matrix.indices[data.matrix.indptr[p] : data.matrix.indptr[p + 1]].tolist()
        playlists.append(
            {
                "name": data.names[p],
                "collaborative": "false",
                "pid": p,
                "modified_at": 1500000000,
                "num_tracks": len(tracks),
                "num_albums": 1,
                "num_followers": 1,
                "num_edits": 1,
                "duration_ms": 200_000 * len(tracks),
                "num_artists": 1,
                "tracks": [
                    {
                        "pos": i,
                        "artist_name": track_meta(k)["artist_name"],
                        "track_uri": uri(k),
                        "artist_uri": f"spotify:artist:{track_meta(k)['artist_name'].replace(' ', '')}",
                        "track_name": track_meta(k)["track_name"],
                        "album_uri": f"spotify:album:a{k // 10}",
                        "duration_ms": 200_000,
                        "album_name": f"Album {k // 10}",
                    }
                    for i, k in enumerate(tracks)
                ],
            }
        )
    for start in range(0, len(playlists), 100):
        write_slice(directory, start, start + 99, playlists[start : start + 100])
    return directory


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> dict:
    """{"data": dataset dir, "models": {name: model dir}} for the planted catalog."""
    root = tmp_path_factory.mktemp("planted")
    mpd = write_planted_mpd(root / "mpd")
    assert main(["ingest", str(mpd), "--out", str(root / "data"), "--workers", "1"]) == 0
    models = {}
    for name in MODELS:
        models[name] = root / "models" / name
        assert main(["train", name, str(root / "data"), "--out", str(models[name])]) == 0
    return {"data": root / "data", "models": models}


@pytest.fixture
def fresh_models(planted, tmp_path) -> dict:
    """Copies of the trained model directories (a test may write live logs beside them)."""
    out = {}
    for name, path in planted["models"].items():
        out[name] = tmp_path / "models" / name
        shutil.copytree(path, out[name])
    return out


@dataclass
class Server:
    """A ``segue serve`` process on a free loopback port."""

    process: subprocess.Popen
    url: str
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, wait; returns (exit status, everything it logged)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, self.log.read_text()


def start_server(
    model_dirs: list[Path], log: Path, *args: str, timeout: float = 60, preexec_fn=None
) -> Server:
    """Run ``segue serve DIRS --port 0 ARGS`` and wait until it answers /healthz
    (``preexec_fn`` runs in the child first: resource limits for fault tests)."""
    command = [sys.executable, "-m", "segue", "serve", *map(str, model_dirs), "--port", "0", *args]
    handle = open(log, "w")  # the child writes it; our copy is closed once it is started
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
    )
    handle.close()
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"segue serve exited with {process.returncode}:\n{log.read_text()}")
        match = re.search(r"on (http://127\.0\.0\.1:\d+) ", log.read_text())
        if match:
            url = match.group(1)
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return Server(process, url, log)
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(
        f"segue serve did not answer within {timeout} s (url {url}):\n{log.read_text()}"
    )


@pytest.fixture(scope="module")
def server(planted, tmp_path_factory):
    """One server for the read-only API tests: every planted model, the first (itemknn) default."""
    tmp = tmp_path_factory.mktemp("server")
    evaluation = tmp / "evaluation.json"
    evaluation.write_text(
        '{"table": {"itemknn": {"all": {"r_precision": {"mean": 0.5, "ci_low": 0.4, '
        '"ci_high": 0.6, "n": 10}}}}}'
    )
    handle = start_server(
        [planted["models"][m] for m in MODELS],
        tmp / "server.log",
        "--state",
        str(tmp / "state"),
        "--evaluation",
        str(evaluation),
        "--max-body-kb",
        "64",
    )
    yield handle
    code, output = handle.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


def run_concurrently(functions) -> list:
    """Run callables in threads; return their results in order (exceptions re-raised)."""
    results = [None] * len(functions)
    errors = []

    def run(i, f):
        try:
            results[i] = f()
        except Exception as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
