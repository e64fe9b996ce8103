"""Every public page at a phone's and a laptop's width (headless Chromium): nothing overflows
the page horizontally, and Korean text is drawn with a Korean font."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ENSURE = Path(__file__).with_name("ensure_chromium.sh")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
               "--disable-background-networking", "--disable-component-update"]
PAGES = ("index.html", "report.html", "awards_public.html")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pages_browser():
    result = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not CHROMIUM.is_file():
        pytest.skip(f"Chromium missing: {CHROMIUM} not there and Debian's chromium could not be installed "
                    f"({ENSURE.name} exit {result.returncode}): {result.stderr.strip()[-400:]}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(published_sample):
    handler = functools.partial(_Quiet, directory=str(published_sample))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("page_name", PAGES)
def test_no_horizontal_overflow(pages_browser, served, page_name, width, tmp_path):
    page = pages_browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{served}/{page_name}")
    page.wait_for_load_state("load")
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(tmp_path / f"{page_name}-{width}.png"), full_page=True)
    page.close()
    assert scroll_width <= inner_width, (page_name, width, scroll_width, inner_width)


def test_korean_text_is_drawn_with_a_korean_font(pages_browser, served):
    """The first font of the stack the browser finds for Korean text is a CJK font, not a
    fallback drawing empty boxes."""
    page = pages_browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{served}/report.html")
    client = page.context.new_cdp_session(page)
    client.send("DOM.enable")
    client.send("CSS.enable")
    root = client.send("DOM.getDocument")["root"]["nodeId"]
    h1 = client.send("DOM.querySelector", {"nodeId": root, "selector": "header.top h1"})["nodeId"]
    fonts = client.send("CSS.getPlatformFontsForNode", {"nodeId": h1})["fonts"]
    page.close()
    names = " ".join(f["familyName"] for f in fonts)
    assert any(k in names for k in ("Noto Sans CJK", "Noto Sans KR", "Nanum", "Malgun", "Apple SD")), names
