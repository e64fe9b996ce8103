"""Every public page at a phone's and a laptop's width (headless Chromium): nothing overflows
the page horizontally, and Korean text is drawn with a Korean font."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

PAGES = ("index.html", "report.html", "awards_public.html")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


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
def test_no_horizontal_overflow(browser, served, page_name, width, tmp_path):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{served}/{page_name}")
    page.wait_for_load_state("load")
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(tmp_path / f"{page_name}-{width}.png"), full_page=True)
    page.close()
    assert scroll_width <= inner_width, (page_name, width, scroll_width, inner_width)


def test_korean_text_is_drawn_with_a_korean_font(browser, served):
    """The first font of the stack the browser finds for Korean text is a CJK font, not a
    fallback drawing empty boxes."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
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
