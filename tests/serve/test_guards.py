"""What keeps other web pages, other hosts and dead processes from hurting the service: the Host
check, the write token, writes refused beyond loopback without one, client disconnects, worker
supervision."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import time

import httpx
import orjson
import psutil
import pytest

from segue.serve.app import create_app
from segue.serve.server import is_loopback
from segue.serve.service import Service
from tests.serve.conftest import start_server, uri


def _ask(app, base_url: str, method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def service(planted, tmp_path) -> Service:
    return Service.load([planted["models"]["popular"]], state_dir=tmp_path / "state")


def test_only_the_hosts_the_service_answers_to_reach_it(service):
    app = create_app(service)
    for base in ("http://localhost:8000", "http://127.0.0.1", "http://[::1]:80"):
        assert _ask(app, base, "GET", "/healthz").status_code == 200, base
    # A page on evil.example whose name resolves to 127.0.0.1 (DNS rebinding) is refused.
    refused = _ask(app, "http://evil.example", "POST", "/v1/playlists", json={"tracks": [uri(1)]})
    assert refused.status_code == 400
    assert "does not answer to host 'evil.example'" in refused.json()["message"]
    assert service.default.live.path.stat().st_size == 0  # nothing was written
    long_name = "a" * 5000 + ".example"
    assert len(_ask(app, f"http://{long_name}", "GET", "/healthz").text) < 400  # not echoed whole
    named = create_app(service, allowed_hosts=("localhost", "music.lan"))
    assert _ask(named, "http://music.lan:8000", "GET", "/healthz").status_code == 200
    assert (
        _ask(create_app(service, allowed_hosts=("*",)), "http://x", "GET", "/").status_code == 200
    )


def test_a_token_guards_writes_and_reads_stay_open(service):
    app = create_app(service, token="s3cret")
    body = {"tracks": [uri(1)]}
    base = "http://localhost"
    assert _ask(app, base, "POST", "/v1/playlists", json=body).status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert _ask(app, base, "POST", "/v1/playlists", json=body, headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret"}
    assert _ask(app, base, "POST", "/v1/playlists", json=body, headers=right).status_code == 201
    assert _ask(app, base, "GET", "/v1/models").status_code == 200
    assert service.default.live.count == 1


def test_beyond_loopback_without_a_token_writes_are_refused(service):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    service.writes_refused = "listens on 0.0.0.0 without a token"
    response = _ask(
        create_app(service), "http://localhost", "POST", "/v1/playlists", json={"tracks": [uri(1)]}
    )
    assert response.status_code == 403 and "without a token" in response.json()["message"]
    assert service.default.live.count == 0


def test_a_client_that_goes_away_mid_body_is_one_info_line(fresh_models, tmp_path):
    server = start_server([fresh_models["popular"]], tmp_path / "s.log")
    host, port = server.url.removeprefix("http://").split(":")
    try:
        for _ in range(20):
            with socket.create_connection((host, int(port)), timeout=10) as raw:
                raw.sendall(
                    b"POST /v1/playlists HTTP/1.1\r\nHost: localhost\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"tracks": ['
                )
        time.sleep(1)
        with server.client() as api:
            assert api.get("/healthz").status_code == 200
    finally:
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output and " 500" not in output, output[-3000:]


def test_a_dead_worker_is_replaced_and_workers_die_with_the_parent(fresh_models, tmp_path):
    server = start_server([fresh_models["popular"]], tmp_path / "w.log", "--workers", "2")
    try:
        with server.client(limits=httpx.Limits(max_keepalive_connections=0)) as api:
            workers = {api.get("/healthz").json()["worker"] for _ in range(40)}
            pids = [p.pid for p in psutil.Process(server.process.pid).children()]
            assert len(workers) == 2 and len(pids) == 2
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "in its place" not in server.log.read_text():
                time.sleep(0.1)
            assert (
                f"worker {victim} was killed by signal 9; started worker" in server.log.read_text()
            )
            now = {api.get("/healthz").json()["worker"] for _ in range(40)}
            assert len(now) == 2 and len(now & workers) == 1  # the survivor and a new one
            now = {p.pid for p in psutil.Process(server.process.pid).children()}
            assert len(now) == 2 and victim not in now
        # kill -9 of the parent: the workers follow it, so the port is free again.
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        alive = set(now)
        while alive and time.monotonic() < deadline:
            alive = {p for p in alive if _running(p)}
            time.sleep(0.1)
        assert not alive, f"workers {alive} outlived their parent"
    finally:
        server.stop()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead, only not yet reaped
        return handle.read().split(") ")[-1][0] != "Z"


def test_stalled_connections_are_closed_and_never_lock_clients_out(fresh_models, tmp_path):
    """300 connections that send nothing or half a request, against a cap of 64 and a one-second
    read deadline: /healthz still answers at once, and every stalled connection is closed."""
    server = start_server(
        [fresh_models["popular"]],
        tmp_path / "s.log",
        "--read-timeout",
        "1",
        "--max-connections",
        "64",
    )
    host, port = server.url.removeprefix("http://").split(":")
    stalled = []
    try:
        for i in range(300):
            raw = socket.create_connection((host, int(port)), timeout=10)
            if i % 2:  # half a request: headers announce a body that never comes
                raw.sendall(
                    b"POST /v1/playlists HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
            stalled.append(raw)
        began = time.monotonic()
        with server.client() as api:
            assert api.get("/healthz").status_code == 200
        assert time.monotonic() - began < 1.0
        time.sleep(2.5)
        for raw in stalled:  # closed by the server: reading gives end-of-file (or a reset)
            raw.settimeout(5)
            try:
                assert raw.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for raw in stalled:
            raw.close()
        code, output = server.stop()
    assert code == 0 and "Traceback" not in output, output[-3000:]


@pytest.mark.parametrize(
    ("call", "code", "message", "kept"),
    [
        (
            "write",
            errno.EIO,
            "the disk refused the record (Input/output error); nothing was added",
            1,
        ),
        (
            "fsync",
            errno.EROFS,
            "the record was written but the disk did not confirm it (Read-only file system); "
            "not acknowledged: the service has learned it",
            2,
        ),
    ],
)
def test_a_disk_error_other_than_full_is_a_503(
    service, tmp_path, monkeypatch, call, code, message, kept
):
    """The storage refuses a record for another reason than space (EIO; EROFS after an ext4
    error): 503 with the reason, never a 201. A refused write leaves nothing; a record written
    but not confirmed stays, learned by the service, as a restart would find it."""
    import segue.serve.live as live

    app = create_app(service)
    first = _ask(app, "http://localhost", "POST", "/v1/playlists", json={"tracks": [uri(1)]})
    assert first.status_code == 201

    def refuse(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(live.os, call, refuse)
    second = _ask(app, "http://localhost", "POST", "/v1/playlists", json={"tracks": [uri(2)]})
    assert second.status_code == 503, second.text
    assert message in second.json()["message"]
    monkeypatch.undo()
    log = tmp_path / "state" / "popular" / "playlists.jsonl"
    assert [orjson.loads(line)["tracks"] for line in log.read_bytes().splitlines()] == [
        [uri(1)],
        [uri(2)],
    ][:kept]
    models = _ask(app, "http://localhost", "GET", "/v1/models").json()["models"]
    assert models[0]["live_playlists"] == kept
