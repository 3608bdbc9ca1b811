"""The run report in headless Chromium: its size, and the time to load it and decode every figure.

    .venv/bin/python benchmarks/bench_report.py demo/report/index.html --runs 3

Uses Debian's chromium (`make test` installs it) through Playwright, at laptop size (1280 × 800).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    path = args.report.resolve()
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for _ in range(args.runs):
            start = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
            print(f"load + every figure decoded: {time.perf_counter() - start:.2f} s")
        browser.close()


if __name__ == "__main__":
    main()
