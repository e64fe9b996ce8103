"""The static results page in headless Chromium (Debian's /usr/bin/chromium via playwright).

Serves a published version on 127.0.0.1, looks up an awarded and a not-funded applicant with
the right code (their outcome is shown) and one with a wrong code (nothing is revealed), and
checks the page fetched nothing but lookup.json and the single r/ file it derived.
"""

from __future__ import annotations

import functools
import json
import http.server
import threading
from pathlib import Path

import polars as pl
import pytest

from allocation.intake import receipt
from allocation.publish import lookup

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(published_sample):
    """The published v1 served on 127.0.0.1 (http.server in a thread)."""
    version = published_sample
    handler = functools.partial(_QuietHandler, directory=str(version))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield version, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _lookup(browser, base: str, application_id: str, code: str, screenshot: Path | None = None):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/index.html")
    page.fill("#application-id", application_id)
    page.fill("#receipt-code", code)
    page.click("#lookup-button")
    page.wait_for_selector("#result[data-outcome]", timeout=30_000)
    outcome = page.get_attribute("#result", "data-outcome")
    text = page.inner_text("#result")
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return outcome, text, requests, errors


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_lookup_page_shows_own_outcome_and_nothing_for_wrong_code(browser, site, tmp_path,
                                                                   solved_sample, receipt_codes):
    version, base = site
    out = solved_sample
    codes = receipt_codes
    outcomes = pl.read_parquet(out / "outcomes.parquet")
    awarded = outcomes.filter(pl.col("status") == "awarded").row(0, named=True)
    not_funded = outcomes.filter(pl.col("status") == "not_selected").row(0, named=True)

    # awarded, with the right code (spaces and lower case are forgiven in the id and the code,
    # hyphens in the code, as in Python)
    code = codes[awarded["application_id"]]
    shot = tmp_path / "awarded.png"
    outcome, text, requests, errors = _lookup(browser, base, f" {awarded['application_id'].lower()} ",
                                              f" {code[:4].lower()}-{code[4:]} ", shot)
    assert errors == []
    assert outcome == "awarded", text
    assert "선정" in text and "Awarded" in text
    assert f"₩{awarded['awarded_krw']:,}" in text and f"₩{awarded['copay_krw']:,}" in text
    assert awarded["company_name"] in text
    expected = lookup.lookup_result(version, awarded["application_id"], code)
    assert expected["explanation"]["ko"] in text and expected["explanation"]["en"] in text
    fetched = sorted(u.removeprefix(base) for u in requests)
    assert all(u.startswith(base) for u in requests), requests            # nothing off this server
    r_files = [u for u in fetched if u.startswith("/r/")]
    assert len(r_files) == 1 and set(fetched) - set(r_files) == {"/index.html", "/lookup.json"}, fetched
    assert _is_png(shot)

    # not funded, with the right code
    shot = tmp_path / "not_selected.png"
    outcome, text, _, errors = _lookup(browser, base, not_funded["application_id"],
                                       codes[not_funded["application_id"]], shot)
    assert errors == []
    assert outcome == "not_selected", text
    assert "미선정" in text and "Not selected" in text
    expected = lookup.lookup_result(version, not_funded["application_id"],
                                    codes[not_funded["application_id"]])
    assert expected["explanation"]["en"] in text
    assert _is_png(shot)

    # wrong code: "not found", nothing about the applicant
    shot = tmp_path / "wrong_code.png"
    outcome, text, requests, errors = _lookup(browser, base, awarded["application_id"],
                                              "WRONG-CODE-123", shot)
    assert outcome == "notfound", text
    assert "Not found" in text and "조회 결과가 없습니다" in text
    assert awarded["company_name"] not in text and "Awarded" not in text and "₩" not in text
    assert [e for e in errors if "404" not in e] == []   # the missing r/ file is a plain 404
    assert _is_png(shot)


# one code per strength class the floor defines (and a weak one): what the page computes from
# what the applicant types must be exactly what Python computes
CLASS_CODES = [
    "12345678",                    # 26.6 bits: weak, no file
    "1234 5678 9012 34",           # digits, 46.5 bits
    "abcdefghijk",                 # letters, 51.7 bits
    "i8vv-hkuf-s4",                # alphanumeric, 51.7 bits
    "abcd-2345-jkmn",              # Crockford base32, 60 bits
    "CJ3X-YNXK-DV5S-40H0",         # voucher codes, 80 bits
    "pa$$w0rd!",                   # printable ASCII, 54.6 bits
    "가나다라마바사아",               # other characters: graded as printable ASCII, 48.5 bits
    "0123456789012",               # digits, 43.2 bits: weak
    "ABCDEFGHJKMN0",               # base32, 65 bits: top class
]


def test_page_and_python_agree_on_strength_class_and_master(browser, site):
    version, base = site
    params = lookup.LookupParams.from_json(json.loads((version / "lookup.json").read_text()))
    page = browser.new_page()
    page.goto(f"{base}/index.html")
    seen_classes = set()
    for code in CLASS_CODES:
        py_iterations = receipt.iterations_for(code)
        assert page.evaluate("c => window.voucherLookup.millibits(c)", code) == receipt.millibits(code), code
        assert page.evaluate("c => window.voucherLookup.iterationsFor(c)", code) == py_iterations, code
        derived = page.evaluate("([i, c]) => window.voucherLookup.derive(i, c)", [" r1-000001 ", code])
        if py_iterations is None:
            assert derived is None, code
            continue
        seen_classes.add(receipt.strength_class(receipt.millibits(code)))
        master = lookup.master_of(params, "R1-000001", code)
        assert derived["iterations"] == py_iterations
        assert derived["master"] == master.hex(), code
        assert derived["name"] == lookup.file_keys(master, params.version_salt)[0], code
    assert len(seen_classes) >= 5
    assert page.evaluate("s => window.voucherLookup.normId(s)", "\t ｒ１-000001 ") == "R1-000001"
    assert page.evaluate("s => window.voucherLookup.normCode(s)", " cj3x-ynxk dv5s ") == "CJ3XYNXKDV5S"
    page.close()


def test_page_says_a_weak_code_has_no_online_result(browser, site):
    _, base = site
    outcome, text, requests, errors = _lookup(browser, base, "R1-000001", "12345678")
    assert outcome == "weak" and "programme office" in text and errors == []
    assert not [u for u in requests if "/r/" in u]                    # nothing fetched for it
