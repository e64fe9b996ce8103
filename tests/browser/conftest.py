"""Shared by the browser tests: Debian's Chromium (installed by ensure_chromium.sh when missing)
driven headless through Playwright, one browser per test module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ENSURE = Path(__file__).with_name("ensure_chromium.sh")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Path:
    result = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not CHROMIUM.is_file():
        pytest.skip(f"Chromium missing: {CHROMIUM} not there and Debian's chromium could not be installed "
                    f"({ENSURE.name} exit {result.returncode}): {result.stderr.strip()[-400:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright missing: the playwright Python package is not installed "
                                          "(pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()
