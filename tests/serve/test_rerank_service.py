"""The two-stage ranker behind the service: its answers keep to the genre and explain themselves."""

from __future__ import annotations

import pytest

from segue.cli import main
from segue.serve.service import Service
from tests.serve.conftest import GENRES, uri

JAZZ = {uri(k) for k in GENRES["jazz"]}


@pytest.fixture(scope="module")
def service(planted, tmp_path_factory) -> Service:
    out = tmp_path_factory.mktemp("rerank") / "rerank"
    assert (
        main(
            [
                "train",
                "rerank",
                str(planted["data"]),
                "--out",
                str(out),
                "--param",
                "validation_per_group=20",
            ]
        )
        == 0
    )
    return Service.load([out])


def test_seeded_requests_keep_to_the_genre_and_name_the_rankers_signals(service):
    seeds = [uri(30), uri(31), uri(32)]
    body = service.recommend(tracks=seeds, title="", n=10, model=None, explain=True)
    assert body["model"] == "rerank" and len(body["items"]) == 10
    assert sum(item["track_uri"] in JAZZ for item in body["items"]) >= 8
    assert not {item["track_uri"] for item in body["items"]} & set(seeds)
    for item in body["items"]:
        assert "the ranker weighed most" in item["because"] or "popular track" in item["because"]
        assert sum(e["share"] for e in item["evidence"]) == pytest.approx(1.0)


def test_title_only_requests_follow_the_title(service):
    body = service.recommend(tracks=[], title="Jazz", n=10, model=None, explain=True)
    assert sum(item["track_uri"] in JAZZ for item in body["items"]) >= 8
    assert body["items"][0]["evidence"][0]["component"] == "title"
