"""The web page, end to end in headless Chromium (Debian's, driven by Playwright) against a real server.

`make test` installs Debian's chromium; Playwright's own browser download is never used.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.serve.conftest import GENRES, uri

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser test needs Debian's chromium at /usr/bin/chromium: "
            "`make test` installs it (apt-get install -y chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page, errors
        context.close()


def rec_uris(page) -> list[str]:
    return page.locator("#recs li").evaluate_all("items => items.map(i => i.dataset.uri)")


def test_type_search_add_and_watch_the_continuation_change(server, browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(server.url + "/")
    # The empty playlist gets the most popular tracks, with a note saying so.
    expect(page.locator("#recs li")).to_have_count(25)
    expect(page.locator("#notes")).to_contain_text("empty playlist")
    expect(page.locator("#model option")).to_have_count(4)
    popular = rec_uris(page)

    page.fill("#title", "late night jazz")
    page.fill("#search", "blue note 1")  # prefix of the last word, as typed
    expect(page.locator("#results li").first).to_contain_text("Blue Note 1")
    expect(page.locator("#search-status")).to_have_text(re.compile(r"^11 matches"))
    first = page.locator("#results li").first
    added = first.get_attribute("data-uri")
    assert added in {uri(k) for k in GENRES["jazz"]}
    first.locator("button.add").click()
    expect(page.locator("#playlist li")).to_have_count(1)
    expect(page.locator("#playlist li").first).to_contain_text("Blue Note 1")

    # The continuation follows the playlist: jazz now, each with its "because …" line.
    page.wait_for_function(
        "uri => document.querySelector('#recs .because') !== null && "
        "[...document.querySelectorAll('#recs li')].every(li => li.dataset.uri !== uri)",
        arg=added,
    )
    jazzy = rec_uris(page)
    assert jazzy != popular and added not in jazzy
    assert sum(u in {uri(k) for k in GENRES["jazz"]} for u in jazzy[:10]) >= 8
    expect(page.locator("#recs li .because").first).to_contain_text(
        "Because the playlist has Blue Note 1"
    )

    # One click adds a recommendation; the list moves on again.
    pick = page.locator("#recs li").first
    picked = pick.get_attribute("data-uri")
    pick.locator("button.add").click()
    expect(page.locator("#playlist li")).to_have_count(2)
    page.wait_for_function(
        "uri => [...document.querySelectorAll('#recs li')].every(li => li.dataset.uri !== uri)",
        arg=picked,
    )
    assert picked not in rec_uris(page) and rec_uris(page) != jazzy

    # Removing a track is a click too.
    page.locator("#playlist li").first.locator("button.remove").click()
    expect(page.locator("#playlist li")).to_have_count(1)
    assert errors == []


def test_the_api_docs_render_offline(server, browser_page):
    """/docs (Swagger UI) and /redoc load every script and style from the server itself: with
    every other host refused, both render the API's operations. (ReDoc's "powered by" logo is
    the one thing it asks a CDN for; the page does not need it.)"""
    from playwright.sync_api import expect

    page, errors = browser_page
    outside: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(server.url):
            return route.continue_()
        outside.append((route.request.resource_type, route.request.url))
        return route.abort()

    page.route("**/*", only_the_server)
    try:
        page.goto(server.url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("segue")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        assert page.locator(".opblock").count() >= 6
        page.goto(server.url + "/redoc")
        expect(page.locator("h1").first).to_contain_text("segue")
        expect(page.get_by_text("/v1/recommendations").first).to_be_attached()
    finally:
        page.unroute("**/*")
    assert errors == [] and [url for kind, url in outside if kind != "image"] == []
    assert [url for _, url in outside] in ([], ["https://cdn.redoc.ly/redoc/logo-mini.svg"])
