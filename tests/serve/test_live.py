"""``POST /v1/playlists`` through real servers: learned at once, kept across restarts, shared by workers."""

from __future__ import annotations

import shutil
import time

import httpx
import numpy as np
import orjson
import psutil
import pytest

from segue.cli import main
from segue.models.base import Queries, Recommender
from tests.serve.conftest import start_server, uri

# Planted tracks 5 (rock) and 40 (jazz) never share a training playlist.
NEW = {"title": "crossover", "tracks": [uri(5), uri(40), "spotify:track:not-in-catalog"]}


def recs(client: httpx.Client, model: str, tracks: list[str], n: int = 90) -> dict:
    response = client.post(
        "/v1/recommendations", json={"tracks": tracks, "n": n, "model": model, "explain": True}
    )
    assert response.status_code == 200, response.text
    return response.json()


def score_of(body: dict, track: str) -> float | None:
    return next((i["score"] for i in body["items"] if i["track_uri"] == track), None)


def test_added_playlist_is_learned_at_once_and_survives_a_restart(fresh_models, tmp_path):
    dirs = [fresh_models[m] for m in ("itemknn", "popular", "playlistknn", "title")]
    shutil.copytree(
        fresh_models["itemknn"], tmp_path / "reference-itemknn"
    )  # untouched by the server
    server = start_server(dirs, tmp_path / "a.log")
    try:
        with server.client() as api:
            before = recs(api, "itemknn", [uri(5)])
            assert score_of(before, uri(40)) is None  # no evidence before
            popular_before = api.get("/v1/tracks", params={"q": "blue note 10"}).json()["items"][0][
                "playlists"
            ]
            response = api.post("/v1/playlists", json=NEW)
            assert response.status_code == 201, response.text
            added = response.json()
            assert [m["name"] for m in added["models"]] == ["itemknn", "popular", "playlistknn"]
            assert all(m["seq"] == 1 and m["tracks"] == 2 for m in added["models"])
            assert added["skipped"] == [
                {"name": "title", "reason": "title cannot learn new playlists live"}
            ]
            assert added["unknown_tracks"] == ["spotify:track:not-in-catalog"]
            # itemknn: 40 now has evidence beside 5, exactly as the model learning the playlist in-process.
            after = recs(api, "itemknn", [uri(5)])
            assert score_of(after, uri(40)) is not None
            reference = Recommender.load(tmp_path / "reference-itemknn")
            catalog = reference.catalog().column("track_uri").to_pylist()
            reference.add_playlists(
                Queries.from_lists([[catalog.index(uri(5)), catalog.index(uri(40))]])
            )
            expected = reference.recommend(Queries.from_lists([[catalog.index(uri(5))]]), 90)
            assert [i["track_uri"] for i in after["items"]] == [catalog[t] for t in expected.ids[0]]
            np.testing.assert_allclose(
                [np.nan if i["score"] is None else i["score"] for i in after["items"]],
                expected.scores[0],
                rtol=1e-6,
            )
            explained = next(i for i in after["items"] if i["track_uri"] == uri(40))
            assert explained["evidence"][0]["track_uri"] == uri(5)
            # popular: one more playlist holds track 40 ("Blue Note 10").
            assert (
                api.get("/v1/tracks", params={"q": "blue note 10"}).json()["items"][0]["playlists"]
                == popular_before + 1
            )
            models = {m["name"]: m for m in api.get("/v1/models").json()["models"]}
            assert (
                models["itemknn"]["live_playlists"] == 1 and models["title"]["live_playlists"] == 0
            )
            knn_after = recs(api, "playlistknn", [uri(5), uri(6)], n=30)
        code, output = server.stop()
        assert code == 0 and "Traceback" not in output, output
        log = fresh_models["itemknn"].parent / "itemknn.live" / "playlists.jsonl"
        assert not (fresh_models["itemknn"] / "live").exists()  # beside the model, not in it
        assert log.read_text().count("\n") == 1 and "crossover" in log.read_text()

        # A restart replays the log: the same answers as before it.
        server = start_server(dirs, tmp_path / "b.log")
        with server.client() as api:
            assert recs(api, "itemknn", [uri(5)]) == after
            assert recs(api, "playlistknn", [uri(5), uri(6)], n=30) == knn_after
            assert {
                m["name"]: m["live_playlists"] for m in api.get("/v1/models").json()["models"]
            } == {"itemknn": 1, "popular": 1, "playlistknn": 1, "title": 0}
    finally:
        server.stop()


def test_live_update_errors(fresh_models, tmp_path):
    server = start_server(
        [fresh_models["title"], fresh_models["popular"]],
        tmp_path / "s.log",
        "--state",
        str(tmp_path / "state"),
    )
    try:
        with server.client() as api:
            refused = api.post("/v1/playlists", json={"tracks": [uri(1)], "model": "title"})
            assert refused.status_code == 409 and "title (title)" in refused.json()["message"]
            unknown = api.post(
                "/v1/playlists", json={"tracks": ["spotify:track:a", "spotify:track:b"]}
            )
            assert (
                unknown.status_code == 404 and "none of the 2 tracks" in unknown.json()["message"]
            )
            assert api.post("/v1/playlists", json={"tracks": []}).status_code == 422
            assert (
                api.post("/v1/playlists", json={"title": "x"})
                .json()["message"]
                .startswith("tracks:")
            )
            assert (
                api.post("/v1/playlists", json={"tracks": [uri(1)], "model": "nope"}).status_code
                == 404
            )
            assert (
                api.post(
                    "/v1/playlists", json={"tracks": [uri(k) for k in range(100)] * 6}
                ).status_code
                == 422
            )
            ok = api.post(
                "/v1/playlists", json={"tracks": [uri(1)]}
            )  # title skipped, popular learns
            assert ok.status_code == 201 and [m["name"] for m in ok.json()["models"]] == ["popular"]
        assert (
            tmp_path / "state" / "popular" / "playlists.jsonl"
        ).exists()  # --state, not the model dir
        assert not (fresh_models["popular"].parent / "popular.live").exists()
    finally:
        server.stop()


def test_torn_and_corrupt_logs(fresh_models, tmp_path, capsys):
    log = fresh_models["popular"].parent / "popular.live" / "playlists.jsonl"
    log.parent.mkdir()
    log.write_bytes(
        b'{"seq": 1, "title": "a", "tracks": ["'
        + uri(40).encode()
        + b'"]}\n{"seq": 2, "title": "b", "tra'
    )
    server = start_server([fresh_models["popular"]], tmp_path / "torn.log")
    try:
        with server.client() as api:
            assert api.get("/v1/models").json()["models"][0]["live_playlists"] == 1
            assert (
                api.post("/v1/playlists", json={"tracks": [uri(41)]}).json()["models"][0]["seq"]
                == 2
            )
    finally:
        code, output = server.stop()
    assert code == 0 and "dropping an incomplete last record" in output
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and '"title":"b"' not in lines[1]  # the torn tail was cut, not glued to

    # A complete line that is not a record is skipped with an error naming the file, line and
    # field — at start as while serving; the records around it are learned.
    log.write_text(
        log.read_text()
        + '{"seq": 3, "tracks": "not a list"}\n'
        + '{"seq": 4, "title": "d", "tracks": ["'
        + uri(42)
        + '"]}\n'
    )
    server = start_server([fresh_models["popular"]], tmp_path / "bad.log")
    try:
        with server.client() as api:
            assert api.get("/v1/models").json()["models"][0]["live_playlists"] == 4
            second = api.post("/v1/playlists", json={"tracks": [uri(43)]}).json()
            assert second["models"][0]["seq"] == 5
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output
    assert f"{log}: line 3: field 'tracks' must be a list of track URIs (skipped)" in output


def test_two_workers_see_each_others_additions(fresh_models, tmp_path):
    server = start_server([fresh_models["itemknn"]], tmp_path / "w.log", "--workers", "2")
    try:
        # New connection per request, so the kernel spreads them over both workers.
        with server.client(limits=httpx.Limits(max_keepalive_connections=0)) as api:
            workers = {api.get("/healthz").json()["worker"] for _ in range(40)}
            assert len(workers) == 2
            assert api.post("/v1/playlists", json=NEW).status_code == 201
            answered_by = set()
            for _ in range(30):
                response = api.post("/v1/recommendations", json={"tracks": [uri(5)], "n": 90})
                assert score_of(response.json(), uri(40)) is not None
                answered_by.add(response.headers["x-segue-worker"])
            assert answered_by == workers
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output


def test_a_retrain_in_place_loses_no_acknowledged_playlist(planted, fresh_models, tmp_path):
    """Serve a model, add playlists, retrain it into the same directory while it is served:
    writes are then refused (503: the served model is not the one on disk), never acknowledged
    and lost; the next start replays every acknowledged playlist into the new model."""
    model = fresh_models["popular"]
    server = start_server([model], tmp_path / "a.log")
    acknowledged = 0
    try:
        with server.client() as api:
            for track in (1, 2):
                response = api.post("/v1/playlists", json={"tracks": [uri(track)]})
                assert response.status_code == 201, response.text
                acknowledged += 1
            assert main(["train", "popular", str(planted["data"]), "--out", str(model)]) == 0
            response = api.post("/v1/playlists", json={"tracks": [uri(3)]})
            assert response.status_code == 503, response.text
            assert "was replaced while the service runs" in response.json()["message"]
            assert "2 playlists added so far are kept" in response.json()["message"]
            assert api.get("/v1/models").status_code == 200  # reads go on
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output
    log = model.parent / "popular.live" / "playlists.jsonl"
    assert log.read_text().count("\n") == acknowledged == 2
    server = start_server([model], tmp_path / "b.log")
    try:
        with server.client() as api:
            assert api.get("/v1/models").json()["models"][0]["live_playlists"] == acknowledged
            assert api.post("/v1/playlists", json={"tracks": [uri(3)]}).status_code == 201
    finally:
        server.stop()


def test_only_a_json_body_writes_and_a_removed_log_is_never_acknowledged(fresh_models, tmp_path):
    """A web page can POST text/plain or a form cross-site without asking; only
    application/json writes. A log deleted under the running service gets a 503, not a 201."""
    model = fresh_models["popular"]
    server = start_server([model], tmp_path / "a.log")
    log = model.parent / "popular.live" / "playlists.jsonl"
    body = '{"tracks": ["' + uri(1) + '"]}'
    try:
        with server.client() as api:
            for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
                headers = {"Content-Type": content_type} if content_type else {}
                response = api.post("/v1/playlists", content=body, headers=headers)
                assert response.status_code == 415, (content_type, response.text)
            assert log.stat().st_size == 0  # made writable at start, nothing written since
            ok = api.post(
                "/v1/playlists", content=body, headers={"Content-Type": "application/json"}
            )
            assert ok.status_code == 201
            log.unlink()
            gone = api.post("/v1/playlists", json={"tracks": [uri(2)]})
            assert gone.status_code == 503 and "removed or replaced" in gone.json()["message"]
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output


def test_a_log_inside_the_model_directory_is_moved_beside_it(fresh_models, tmp_path):
    """segue 0.1 kept the log in MODEL/live/: the first start moves it out, so a retrain can no
    longer delete it."""
    model = fresh_models["popular"]
    old = model / "live" / "playlists.jsonl"
    old.parent.mkdir()
    old.write_text('{"seq": 1, "title": "a", "tracks": ["' + uri(40) + '"]}\n')
    server = start_server([model], tmp_path / "a.log")
    try:
        with server.client() as api:
            assert api.get("/v1/models").json()["models"][0]["live_playlists"] == 1
    finally:
        code, output = server.stop()
    assert code == 0 and "moved the live log" in output
    assert not old.exists() and (model.parent / "popular.live" / "playlists.jsonl").exists()


def test_a_full_disk_refuses_writes_with_507_and_loses_none(fresh_models, tmp_path):
    """Files limited to 2,000 bytes (RLIMIT_FSIZE: the kernel refuses a write past it as a
    full disk would): POSTs are acknowledged while records fit, then answered 507 with the
    reason; the log holds exactly the acknowledged records, whole, and the service goes on."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, 2_000))

    model = fresh_models["popular"]
    server = start_server([model], tmp_path / "a.log", preexec_fn=limit)
    acknowledged, refused = [], 0
    try:
        with server.client() as api:
            for i in range(60):
                title = f"playlist {i:02d}"
                response = api.post("/v1/playlists", json={"title": title, "tracks": [uri(1)]})
                if response.status_code == 201:
                    acknowledged.append(title)
                else:
                    assert response.status_code == 507, response.text
                    assert "the disk refused the record (File too large)" in response.text
                    refused += 1
            assert api.get("/healthz").status_code == 200
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output[-2000:]
    log = model.parent / "popular.live" / "playlists.jsonl"
    persisted = [orjson.loads(line)["title"] for line in log.read_bytes().splitlines()]
    assert acknowledged and refused and persisted == acknowledged
    print(
        f"full disk: {len(acknowledged)} acknowledged, {refused} refused (507), {len(persisted)} persisted"
    )


@pytest.mark.parametrize("victims", ["all", "parent", "worker"])
def test_kill_9_under_concurrent_writes_loses_no_acknowledged_playlist(
    fresh_models, tmp_path, victims
):
    """Eight writers against two workers; SIGKILL mid-stream for the parent and both workers,
    the parent alone (its workers follow it) or one worker (replaced; the writers go on). Every
    acknowledged playlist is in the log (a record written but not yet answered may be there
    too), the log is whole records, and a restart serves them all."""
    import os
    import signal
    import threading

    model = fresh_models["popular"]
    server = start_server([model], tmp_path / "a.log", "--workers", "2")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(k: int) -> None:
        with server.client() as api:
            i = 0
            while not stop.is_set():
                title = f"w{k}-{i}"
                i += 1
                try:
                    response = api.post("/v1/playlists", json={"title": title, "tracks": [uri(2)]})
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(title)

    workers = [p.pid for p in psutil.Process(server.process.pid).children()]
    assert len(workers) == 2
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acknowledged) >= 200, (len(acknowledged), server.log.read_text()[-2000:])
    chosen = {"all": [server.process.pid, *workers], "parent": [server.process.pid]}
    for pid in chosen.get(victims, workers[:1]):
        os.kill(pid, signal.SIGKILL)
    if victims == "worker":  # the service goes on: more writes, then a clean stop
        before = len(acknowledged)
        deadline = time.monotonic() + 60
        while len(acknowledged) < before + 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acknowledged) >= before + 100
    stop.set()
    for t in threads:
        t.join(timeout=30)
    if victims == "worker":
        code, output = server.stop()
        assert code == 0 and "was killed by signal 9" in output, output[-2000:]
    else:
        server.process.wait(timeout=10)
        alive = []  # the workers of a killed parent finish and exit (SIGTERM): wait for them
        for pid in workers:
            try:
                alive.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(alive, timeout=30)
        assert not left, f"workers {left} outlived their parent"
    log = model.parent / "popular.live" / "playlists.jsonl"
    raw = log.read_bytes()
    whole = raw[: raw.rfind(b"\n") + 1]
    persisted = [orjson.loads(line)["title"] for line in whole.splitlines()]
    assert set(acknowledged) <= set(persisted) and len(set(persisted)) == len(persisted)
    assert len(persisted) - len(acknowledged) <= 8  # at most one unanswered write per writer
    print(f"kill -9 of {victims}: {len(acknowledged)} acknowledged, {len(persisted)} persisted")
    restarted = start_server([model], tmp_path / "b.log")
    try:
        with restarted.client() as api:
            count = api.get("/v1/models").json()["models"][0]["live_playlists"]
            assert count == len(persisted)
    finally:
        restarted.stop()


def _read_only_mount(directory):
    """A ``preexec_fn`` that gives the child its own mount namespace in which ``directory`` is
    a read-only bind mount (so even root cannot write there, and nothing outside changes)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rdonly, ms_remount, ms_bind, ms_rec, ms_private = (
        0x20000,
        1,
        32,
        4096,
        16384,
        1 << 18,
    )

    def mount(source, flags):
        target = str(directory).encode()
        if libc.mount(source, target, None, flags, None) != 0:
            raise OSError(ctypes.get_errno(), "mount")

    def preexec():
        if libc.unshare(clone_newns) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        mount(str(directory).encode(), ms_bind)
        mount(None, ms_remount | ms_bind | ms_rdonly)

    return preexec


def test_a_read_only_state_refuses_to_start_and_keeps_what_it_holds(fresh_models, tmp_path):
    """Two playlists acknowledged, then the state is read-only (a bind mount in the server's own
    mount namespace): the start is refused with one line naming the folder and exit 2, and
    the log still holds both. (A folder cannot turn read-only under the running service: the
    kernel refuses a read-only remount while the log is open for writing.)"""
    import subprocess
    import sys

    model, state = fresh_models["popular"], tmp_path / "state"
    server = start_server([model], tmp_path / "a.log", "--state", str(state))
    try:
        with server.client() as api:
            acknowledged = sum(
                api.post("/v1/playlists", json={"title": t, "tracks": [uri(1)]}).status_code == 201
                for t in ("first", "second")
            )
    finally:
        server.stop()
    command = [sys.executable, "-m", "segue", "serve", str(model), "--port", "0"]
    try:
        run = subprocess.run(
            [*command, "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=60,  # a server that started anyway runs until this fails the test
            preexec_fn=_read_only_mount(state),
        )
    except subprocess.TimeoutExpired:
        raise
    except subprocess.SubprocessError as exc:  # no mount namespaces here (not root, no CAP)
        pytest.skip(f"cannot make a read-only mount on this machine: {exc}")
    log = state / "popular" / "playlists.jsonl"
    persisted = [orjson.loads(line)["title"] for line in log.open("rb")]
    assert acknowledged == 2 and persisted == ["first", "second"]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {log.parent}: cannot keep the live log here (Read-only file system)"
    )
