"""`segue serve` failures through main(argv), and the 500 path (in-process: it needs a planted bug)."""

from __future__ import annotations

import asyncio
import socket

import httpx

from segue.cli import main
from segue.serve.app import create_app
from segue.serve.service import Service


def test_bad_model_directories_and_busy_ports_exit_2_with_one_line(planted, tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if " INFO " not in line]  # progress aside
    assert len(problems) == 1 and "missing: not a model directory" in problems[0]
    assert "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main(["serve", str(tmp_path / "empty"), "--port", "0"]) == 2
    assert "params.json: missing" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(planted["models"]["popular"]), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert (
        main(
            [
                "serve",
                str(planted["models"]["popular"]),
                "--evaluation",
                str(tmp_path / "nope.json"),
            ]
        )
        == 2
    )
    assert "nope.json: missing" in capsys.readouterr().err


def test_an_unexpected_error_is_a_json_500_without_a_trace(planted, tmp_path, caplog):
    service = Service.load([planted["models"]["popular"]], state_dir=tmp_path)

    def broken(**kwargs):
        raise RuntimeError("planted bug with a secret path /etc/secret")

    service.recommend = broken

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(service), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post("/v1/recommendations", json={}), await client.get("/healthz")

    response, health = asyncio.run(ask())
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal error",
        "message": "the server failed on this request; the error is in its log",
    }
    assert "secret" not in response.text and "Traceback" not in response.text
    assert health.status_code == 200  # and it goes on serving
    assert "planted bug" in caplog.text  # the log has it
