"""The Voucher rounds view inside the real Airflow UI, in headless Chromium.

A real `airflow api-server` (a subprocess with its own throwaway AIRFLOW_HOME, the project's
airflow.cfg and AIRFLOW__CORE__PLUGINS_FOLDER=deploy/plugins) serves the UI and the plugin.
The officer and the viewer get their JWTs from the simple auth manager's own login endpoint
(POST /auth/token) and carry them as the UI does, in the `_token` cookie. The officer opens the
view from the UI's navigation (/plugin/voucher-rounds, an iframe of /voucher/) and sees a run's
preview; the viewer sees the totals and no applicant; an anonymous request is refused.

VOUCHER_SCREENSHOTS=<folder> also saves the screenshots used in docs/screenshots/.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.rounds.whatif import check_scenarios, solve_scenarios

PROJECT = Path(__file__).resolve().parents[2]
RUN_ID, FAILED_ID = "manual__2026-03-02T09:00:00+00:00", "manual__2026-03-02T08:00:00+00:00"
RUN, FAILED = "manual__2026-03-02T09_00_00_00_00", "manual__2026-03-02T08_00_00_00_00"   # their run folders
PASSWORDS = {"officer": "officer-pw-123", "viewer": "viewer-pw-123"}
# the two runs as Airflow knows them: one waiting for its approval, one failed with its note
SEED_RUNS = f"""
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType
import pendulum
with create_session() as session:
    for run_id, state, note in (("{RUN_ID}", "running", None), ("{FAILED_ID}", "failed",
                                 "FAILED: round folder sample: requests.csv: missing")):
        run = DagRun(dag_id="allocation_round", run_id=run_id, run_type=DagRunType.MANUAL, conf={{"round": "sample"}},
                     state=DagRunState(state), run_after=pendulum.now("UTC"), triggered_by=None)
        run.start_date = pendulum.now("UTC")
        session.add(run)
        session.flush()
        if note:
            run.note = note
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_ui(solved_sample, sample_round_dir, tmp_path_factory):
    """A real api-server with the plugin, over a runs root holding one solved and one failed run."""
    base = tmp_path_factory.mktemp("airflow-ui")
    home, runs = base / "home", base / "runs"
    home.mkdir()
    shutil.copytree(solved_sample, runs / "sample" / RUN)
    failed = files.private_dir(runs / "sample" / FAILED)
    (failed / files.VALIDATION_ERROR).write_text(
        "round folder sample: requests.csv: missing (every round needs applications.csv, requests.csv, "
        "reviews.csv and capacity.csv)\n")
    files.write_json(runs / "sample" / RUN / files.APPROVAL_REQUEST, {"ti_id": "x", "fingerprint": "f"})
    solve_scenarios(runs / "sample" / RUN, runs / "sample" / RUN / files.WHATIF_DIR,
                    check_scenarios(sample_round_dir, ["budget=+10%", "quota.non_capital=0.4"]))
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    key = lambda: base64.urlsafe_b64encode(os.urandom(32)).decode()   # noqa: E731
    port = _free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "deploy" / "plugins"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
           "AIRFLOW__CORE__FERNET_KEY": key(), "AIRFLOW__API_AUTH__JWT_SECRET": key(),
           "AIRFLOW__API__SECRET_KEY": key(), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "VOUCHER_RUNS_ROOT": str(runs), "VOUCHER_PUBLISH_ROOT": str(base / "published"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    subprocess.run([sys.executable, "-c", SEED_RUNS], env=env, check=True, timeout=300)
    log = open(base / "api-server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], env=env, stdout=log, stderr=log,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"api-server did not start: {(base / 'api-server.log').read_text()[-2000:]}")
                time.sleep(1)
        yield {"url": url, "runs": runs}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def login(ui: dict, user: str) -> str:
    request = urllib.request.Request(f"{ui['url']}/auth/token", method="POST",
                                     data=json.dumps({"username": user, "password": PASSWORDS[user]}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["access_token"]


def context_of(browser, ui: dict, user: str, width: int = 1280):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    context.add_cookies([{"name": "_token", "value": login(ui, user), "url": ui["url"]}])
    return context


def shot(page, name: str) -> None:
    folder = os.environ.get("VOUCHER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_anonymous_requests_are_refused(airflow_ui, browser):
    for path in ("/voucher/", f"/voucher/runs/sample/{RUN}", f"/voucher/runs/sample/{RUN}/report"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{airflow_ui['url']}{path}", timeout=30)
        assert refused.value.code in (401, 403), path
    page = browser.new_page()
    response = page.goto(f"{airflow_ui['url']}/voucher/runs/sample/{RUN}")
    assert response.status in (401, 403) and "R1-" not in page.content()
    page.close()


def test_an_officer_opens_the_view_from_the_ui_and_reads_a_runs_preview(airflow_ui, browser):
    outcomes = pl.read_parquet(airflow_ui["runs"] / "sample" / RUN / files.OUTCOMES_PARQUET)
    awarded = outcomes.filter(pl.col("status") == "awarded")
    context = context_of(browser, airflow_ui, "officer")
    page = context.new_page()
    page.goto(f"{airflow_ui['url']}/plugin/voucher-rounds")          # the UI's nav entry: an iframe
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Runs of the round DAG").wait_for(timeout=60_000)
    frame.locator(f"a[href$='/runs/sample/{RUN}']").click()
    frame.locator("#preview").wait_for(timeout=60_000)
    shot(page, "rounds-view-in-airflow.png")
    direct = context.new_page()                                      # the view's own page, filtered
    direct.goto(f"{airflow_ui['url']}/voucher/runs/sample/{RUN}?status=awarded")
    rows = direct.locator("#preview tbody tr")
    assert rows.count() == min(50, awarded.height)
    assert rows.first.locator("td").first.inner_text() == awarded["application_id"][0]
    assert f"{awarded.height} of {outcomes.height:,} applications match" in direct.content()
    report = direct.frame_locator("iframe.report").first
    report.locator("h1").first.wait_for(timeout=60_000)
    overflow = direct.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], overflow
    assert direct.locator("#whatif tbody tr").count() == 3
    link = direct.get_by_role("link", name="Answer the approval (Required actions)")
    assert link.get_attribute("href").endswith("/required_actions") and link.get_attribute("target") == "_top"
    shot(direct, "rounds-view-officer-preview.png")
    context.close()


def test_a_viewer_sees_totals_and_no_applicant(airflow_ui, browser):
    outcomes = pl.read_parquet(airflow_ui["runs"] / "sample" / RUN / files.OUTCOMES_PARQUET)
    context = context_of(browser, airflow_ui, "viewer")
    page = context.new_page()
    page.goto(f"{airflow_ui['url']}/voucher/runs/sample/{RUN}")
    page.get_by_role("heading", name="Totals").wait_for()
    html = page.content()
    assert page.locator("#preview").count() == 0 and "status and totals only" in html
    assert not [v for v in outcomes["application_id"].to_list() if v in html]
    shot(page, "rounds-view-viewer.png")
    failed = context.new_page()
    failed.goto(f"{airflow_ui['url']}/voucher/runs/sample/{FAILED}")
    assert "requests.csv: missing" in failed.locator(".failure").inner_text()
    shot(failed, "rounds-view-failed-run.png")
    context.close()
