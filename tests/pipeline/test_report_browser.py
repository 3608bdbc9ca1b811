"""The run's report in a real browser: headless Chromium (Debian's, driven by Playwright, as in
the serve tests) opens ``report/index.html`` from disk at a laptop's width and takes a screenshot."""

from __future__ import annotations

import re

from tests.pipeline.conftest import MODELS
from tests.serve.test_browser import browser_page  # noqa: F401  (the fixture: Debian's chromium)


def test_the_report_renders_at_laptop_width(demo_run, browser_page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    page, errors = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto((demo_run.out / "report" / "index.html").as_uri(), wait_until="load")
    expect(page).to_have_title("segue run report")
    expect(page.locator("h1")).to_have_text("segue run report")

    # The evaluation table: visible, one row per evaluated model, each with numbers and a CI.
    heading = page.locator("h2", has_text="Evaluation on held-out playlists")
    expect(heading).to_be_visible()
    table = heading.locator("xpath=following-sibling::table[1]")
    expect(table).to_be_visible()
    expect(table.locator("th").first).to_have_text("model")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(len(MODELS))
    shown = {
        rows.nth(i).locator("td").first.inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
        for i in range(len(MODELS))
    }
    assert sorted(shown) == sorted(MODELS)
    assert all(re.fullmatch(r"0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", cell) for cell in shown.values()), (
        shown
    )

    # Every figure is inlined and decoded by the browser.
    images = page.locator("img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.src.slice(0, 22), complete: i.complete, width: i.naturalWidth}))"
    )
    assert len(images) >= 5
    assert all(
        i["src"] == "data:image/png;base64," and i["complete"] and i["width"] > 0 for i in images
    ), images
    # Readable on a laptop: no horizontal scroll at 1280 px (wide tables scroll inside themselves),
    # and every figure and table stays inside the page's column.
    widths = page.evaluate("""() => {
        const main = document.querySelector('main').getBoundingClientRect();
        const inside = [...document.querySelectorAll('main img, main table')].map(e => e.getBoundingClientRect())
            .every(r => r.width > 0 && r.left >= main.left && r.right <= main.right);
        return {page: document.documentElement.scrollWidth, view: window.innerWidth, main: main.width, inside};
    }""")
    assert widths["page"] <= widths["view"] == 1280 and widths["inside"], widths

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert errors == []
