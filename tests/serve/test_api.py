"""The HTTP API through a real ``segue serve`` process on loopback: answers and every error path."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from segue.models.base import Queries, Recommender
from segue.models.itemknn import ItemKNNConfig
from tests.serve.conftest import GENRES, planted_data, run_concurrently, uri

ROCK = set(map(uri, GENRES["rock"]))
JAZZ = set(map(uri, GENRES["jazz"]))


@pytest.fixture(scope="module")
def api(server):
    with server.client() as client:
        yield client


def reference(model_dir, uris: list[str], n: int, title: str = ""):
    """The same continuation computed in-process from the model directory."""
    model = Recommender.load(model_dir)
    catalog = model.catalog().column("track_uri").to_pylist()
    ids = [catalog.index(u) for u in uris]
    ranking = model.recommend(Queries.from_lists([ids], [title]), n)
    return [catalog[i] for i in ranking.ids[0]], ranking.scores[0]


def test_health_and_models(api):
    health = api.get("/healthz")
    assert health.json()["status"] == "ok"
    # which worker answered, by an opaque id, never a process id or a path on the server
    assert health.json()["worker"] == health.headers["x-segue-worker"]
    assert str(os.getpid()) not in health.text and "pid" not in health.json()
    listing = api.get("/v1/models")
    assert os.sep + "tmp" not in listing.text and str(Path.cwd()) not in listing.text
    models = {m["name"]: m for m in listing.json()["models"]}
    assert models["itemknn"]["directory"] == "itemknn"
    assert list(models) == ["itemknn", "popular", "playlistknn", "title"]
    assert (
        models["itemknn"]["kind"] == "itemknn"
        and models["itemknn"]["trained_on"]["n_playlists"] == 300
    )
    assert len(models["itemknn"]["fingerprint"]) == 16 and models["itemknn"]["segue_version"]
    assert (
        models["itemknn"]["config"]["n_neighbors"] == ItemKNNConfig().n_neighbors
    )  # the trained default
    assert [models[m]["learns_live"] for m in models] == [True, True, True, False]
    assert models["itemknn"]["metrics"]["values"]["r_precision"] == {
        "mean": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
    }
    assert models["popular"]["metrics"] is None


def test_recommendations_match_the_model_and_keep_to_the_genre(api, planted):
    seeds = [uri(0), uri(1), uri(2)]
    body = api.post("/v1/recommendations", json={"tracks": seeds, "n": 40}).json()
    assert body["model"] == "itemknn" and body["seed_tracks"] == 3 and body["unknown_tracks"] == []
    got = [item["track_uri"] for item in body["items"]]
    expected, scores = reference(planted["models"]["itemknn"], seeds, 40)
    assert got == expected
    got_scores = [np.nan if item["score"] is None else item["score"] for item in body["items"]]
    np.testing.assert_allclose(got_scores, scores, rtol=1e-6)  # null where back-filled
    assert len(set(got)) == 40 and not set(got) & set(seeds)
    assert sum(u not in ROCK for u in got[:10]) <= 1  # the planted genre
    assert [item["rank"] for item in body["items"]] == list(range(1, 41))
    first = body["items"][0]
    assert first["track_name"].startswith("Rock Anthem") or first["track_name"] == "Déjà Vu Anthem"
    assert first["artist_name"] in ("Stone Crew", "Granite Band")
    assert "because" not in first  # only when asked


def test_explanations_name_the_seeds(api):
    seeds = [uri(30), uri(31), uri(32)]
    body = api.post(
        "/v1/recommendations",
        json={"tracks": seeds, "n": 10, "explain": True, "model": "playlistknn"},
    ).json()
    assert body["model"] == "playlistknn"
    for item in body["items"]:
        assert item["because"].startswith("Because the playlist has")
        assert sum(e["share"] for e in item["evidence"]) == pytest.approx(1.0)
        named = [e["track_uri"] for e in item["evidence"] if e["kind"] == "seed"]
        assert named and set(named) <= set(seeds)
        assert "Blue Note" in item["because"]  # seeds by name, not id


def test_unknown_tracks_are_listed_not_dropped(api, planted):
    body = api.post(
        "/v1/recommendations", json={"tracks": [uri(60), "spotify:track:nope", uri(61)], "n": 5}
    ).json()
    assert body["unknown_tracks"] == ["spotify:track:nope"] and body["seed_tracks"] == 2
    assert any("1 of the 3 tracks are not in the catalog" in note for note in body["notes"])
    assert [i["track_uri"] for i in body["items"]] == reference(
        planted["models"]["itemknn"], [uri(60), uri(61)], 5
    )[0]
    only_unknown = api.post(
        "/v1/recommendations", json={"tracks": ["spotify:track:x"], "n": 3}
    ).json()
    assert any("none of the 1 tracks is in the catalog" in note for note in only_unknown["notes"])


def test_title_only_and_empty_requests(api):
    body = api.post(
        "/v1/recommendations", json={"title": "Jazz", "n": 10, "model": "title", "explain": True}
    ).json()
    assert sum(i["track_uri"] in JAZZ for i in body["items"]) >= 8 and body["notes"] == []
    assert "jazz" in body["items"][0]["because"].lower()
    empty = api.post("/v1/recommendations", json={}).json()
    popularity = planted_data().track_popularity
    got = [int(i["track_uri"][-3:]) for i in empty["items"]]
    assert (
        len(got) == 50 and sorted(popularity[got], reverse=True) == popularity[got].tolist()
    )  # n defaults to 50
    assert set(popularity[got]) >= set(np.sort(popularity)[-40:])  # the most popular, in order
    assert empty["items"][0]["track_name"] == "Chart Hit 0"
    assert "empty playlist" in empty["notes"][0]
    # A model that does not read titles says it found no evidence, and falls back to popularity.
    titled = api.post("/v1/recommendations", json={"title": "jazz", "n": 5}).json()
    assert any("found no evidence" in note for note in titled["notes"])
    assert all(item["score"] is None for item in titled["items"])


def test_search_prefix_fuzzy_artist_accents_and_pages(api, planted):
    data = planted_data()
    # Most popular first, ties by the catalog's (ingest) id.
    catalog = (
        Recommender.load(planted["models"]["popular"]).catalog().column("track_uri").to_pylist()
    )
    rock_by_popularity = sorted(
        ROCK, key=lambda u: (-data.track_popularity[int(u[-3:])], catalog.index(u))
    )
    full = api.get("/v1/tracks", params={"q": "anthem", "limit": 100}).json()
    assert full["total"] == 30 and [i["track_uri"] for i in full["items"]] == rock_by_popularity
    assert full["items"][0]["playlists"] == int(data.track_popularity[:30].max())
    prefix = api.get("/v1/tracks", params={"q": "Anth", "limit": 100}).json()
    assert [i["track_uri"] for i in prefix["items"]] == rock_by_popularity and prefix[
        "corrections"
    ] == {}
    fuzzy = api.get("/v1/tracks", params={"q": "antehm", "limit": 100}).json()
    assert fuzzy["corrections"] == {"antehm": ["anthem"]} and fuzzy["total"] == 30
    artist = api.get("/v1/tracks", params={"q": "miles quartet", "limit": 100}).json()
    assert {i["track_uri"] for i in artist["items"]} == JAZZ
    words = api.get("/v1/tracks", params={"q": "blue note 1"}).json()
    assert sorted(i["track_name"] for i in words["items"]) == sorted(
        ["Blue Note 1"] + [f"Blue Note {k}" for k in range(10, 20)]
    )
    assert (
        api.get("/v1/tracks", params={"q": "deja"}).json()["items"][0]["track_name"]
        == "Déjà Vu Anthem"
    )
    pages = [
        api.get("/v1/tracks", params={"q": "anthem", "offset": o, "limit": 7}).json()
        for o in range(0, 36, 7)
    ]
    assert [i["track_uri"] for p in pages for i in p["items"]] == rock_by_popularity
    assert all(p["total"] == 30 for p in pages) and pages[-1]["items"] == []
    assert api.get("/v1/tracks", params={"q": "zzzzqqq"}).json()["total"] == 0


def test_similar(api):
    body = api.get(f"/v1/tracks/{uri(61)}/similar", params={"n": 8}).json()
    assert body["track"]["track_name"] == "Dusty Road 1" and len(body["items"]) == 8
    assert sum(i["track_uri"] in {uri(k) for k in GENRES["country"]} for i in body["items"]) >= 7
    assert uri(61) not in [i["track_uri"] for i in body["items"]]
    missing = api.get("/v1/tracks/spotify:track:nope/similar")
    assert missing.status_code == 404 and "spotify:track:nope" in missing.json()["message"]


def error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "message"} and "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 501}, "n"),
        ({"n": "5"}, "n"),
        ({"n": 5.5}, "n"),
        ({"tracks": "spotify:track:planted000"}, "tracks"),
        ({"tracks": [1, 2]}, "tracks.0"),
        ({"tracks": [uri(k % 100) for k in range(501)]}, "tracks"),
        ({"explain": "yes"}, "explain"),
        ({"title": 7}, "title"),
        ({"track": []}, "track"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_fields_get_422_naming_the_field(api, payload, field):
    body = error(api.post("/v1/recommendations", json=payload), 422)
    assert body["message"].startswith(f"{field}:"), body["message"]
    assert ".".join(body["detail"][0]["loc"][1:]) == field


def test_malformed_json_and_non_objects_get_422(api):
    for raw in (b'{"n": 5,', b"not json", b"[1, 2]", b"", b'{"n": 5} trailing'):
        body = error(
            api.post(
                "/v1/recommendations", content=raw, headers={"content-type": "application/json"}
            ),
            422,
        )
        assert body["detail"][0]["loc"] == ["body"]
    # JSON is read whatever the Content-Type (what `curl -d` sends by default).
    assert (
        api.post(
            "/v1/recommendations",
            content=b'{"n": 2}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )


def test_query_parameters_out_of_range_get_422(api):
    for params in (
        {"q": ""},
        {"q": "a", "limit": 0},
        {"q": "a", "limit": 101},
        {"q": "a", "offset": -1},
        {"q": "x" * 201},
        {},
    ):
        error(api.get("/v1/tracks", params=params), 422)
    for n in (0, 501, "many"):
        error(api.get(f"/v1/tracks/{uri(1)}/similar", params={"n": n}), 422)


def test_bodies_over_the_limit_get_413(api, server):
    big = (
        b'{"tracks": [' + b",".join([b'"spotify:track:planted001"'] * 3000) + b"]}"
    )  # ~80 KB > 64 KiB
    body = error(
        api.post("/v1/recommendations", content=big, headers={"content-type": "application/json"}),
        413,
    )
    assert "65,536 bytes" in body["message"]

    def chunks():  # no Content-Length: the limit is counted as the body streams
        yield big[:40_000]
        yield big[40_000:]

    error(api.post("/v1/recommendations", content=chunks()), 413)
    error(api.post("/v1/playlists", content=big), 413)
    # A raw request that lies about its length is cut off at the limit too.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/recommendations HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999\r\n\r\n{"
        )
        assert raw.recv(200).startswith(b"HTTP/1.1 413")


def test_unknown_models_routes_and_methods(api):
    body = error(api.post("/v1/recommendations", json={"model": "svd"}), 404)
    assert "'svd' is not loaded" in body["message"] and "itemknn" in body["message"]
    error(api.get("/v1/tracks", params={"q": "rock", "model": "nope"}), 404)
    error(api.get("/v1/nothing"), 404)
    error(api.get("/v1/recommendations"), 405)


def test_a_barrage_of_bad_and_good_requests_leaves_the_server_healthy(api, server):
    bad = [
        lambda: api.post("/v1/recommendations", content=b"\xff\xfe garbage"),
        lambda: api.post("/v1/recommendations", json={"tracks": [None]}),
        lambda: api.post("/v1/recommendations", json={"n": 10**30}),
        lambda: api.get("/v1/tracks", params={"q": "\x00\u202e%%%"}),
        lambda: api.get("/v1/tracks/%00/similar"),
        lambda: api.post("/v1/recommendations", json={"tracks": [uri(1)] * 500, "n": 500}),
    ]
    good = [
        lambda: api.post("/v1/recommendations", json={"tracks": [uri(3)], "n": 20, "explain": True})
    ] * 10
    results = run_concurrently(bad + good)
    assert all(r.status_code < 500 for r in results), [
        r.text for r in results if r.status_code >= 500
    ]
    # 500 recommendations from a 100-track catalog cannot be made: what there is, and a note.
    short = results[5].json()
    assert results[5].status_code == 200 and short["items"] == [] and short["n"] == 0
    assert any("the catalog has 100 tracks: 0 of the 500" in note for note in short["notes"])
    assert all(r.status_code == 200 and len(r.json()["items"]) == 20 for r in results[len(bad) :])
    assert api.get("/healthz").status_code == 200 and server.process.poll() is None


def test_openapi_docs_and_the_page(api):
    spec = api.get("/openapi.json").json()
    assert {
        "/v1/recommendations",
        "/v1/tracks",
        "/v1/tracks/{uri}/similar",
        "/v1/playlists",
        "/v1/models",
        "/healthz",
    } <= set(spec["paths"])
    schema = spec["paths"]["/v1/recommendations"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["n"]["maximum"] == 500
    assert api.get("/docs").status_code == 200
    page = api.get("/")
    assert page.status_code == 200 and "segue" in page.text and "/static/app.js" in page.text
    assert api.get("/static/app.js").status_code == 200
