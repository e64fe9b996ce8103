"""The Voucher rounds plugin (deploy/plugins/voucher_rounds.py) in-process: every request is
authenticated by Airflow's auth manager (real JWTs of the simple auth manager the project's
airflow.cfg configures) and each role sees only what it may; the plugin registers its app,
its UI view and its failure-note listener with Airflow; the listener notes why a run failed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from allocation import files
from tests.dags.dagrun import PROJECT

pytestmark = pytest.mark.usefixtures("airflow_db")
PLUGIN = PROJECT / "deploy" / "plugins" / "voucher_rounds.py"
RUN = "manual__2026-02-01T00_00_00_00_00"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("voucher_rounds_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_folder(solved_sample, airflow_env) -> Path:
    folder = Path(airflow_env["VOUCHER_RUNS_ROOT"]) / "sample" / RUN
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(solved_sample, folder)
    return folder


@pytest.fixture(scope="module")
def client(plugin, run_folder):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import init_auth_manager

    parent = FastAPI()
    init_auth_manager(parent)
    parent.mount("/voucher", plugin.app)
    return TestClient(parent)


def token(role: str | None, name: str = "someone") -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))


PAGES = ["/voucher/", f"/voucher/runs/sample/{RUN}", f"/voucher/runs/sample/{RUN}/report"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_and_forged_requests_are_refused(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    assert client.get(path, cookies={"_token": "forged"}).status_code in (401, 403)
    assert client.get(path, headers={"Authorization": f"Bearer {token(None)}"}).status_code == 403  # no role


def test_a_viewer_sees_states_and_totals_but_no_applicant(client, run_folder):
    bearer = {"Authorization": f"Bearer {token('viewer')}"}
    index = client.get("/voucher/", headers=bearer)
    assert index.status_code == 200 and RUN in index.text
    page = client.get(f"/voucher/runs/sample/{RUN}", headers=bearer)
    assert page.status_code == 200 and "Totals" in page.text
    outcomes = pl.read_parquet(run_folder / files.OUTCOMES_PARQUET)
    leaked = [v for v in outcomes["application_id"].to_list() + outcomes["company_name"].to_list() if v in page.text]
    assert leaked == [] and 'id="preview"' not in page.text
    # even asking for a filtered page gives no row
    asked = client.get(f"/voucher/runs/sample/{RUN}?q={outcomes['application_id'][0]}", headers=bearer)
    assert outcomes["application_id"][0] not in asked.text.replace(f"value=\"{outcomes['application_id'][0]}\"", "")


@pytest.mark.parametrize("role", ["user", "admin"])
def test_an_officer_sees_the_preview_through_the_ui_cookie(client, run_folder, role):
    outcomes = pl.read_parquet(run_folder / files.OUTCOMES_PARQUET)
    wanted = outcomes.filter(pl.col("status") == "awarded")["application_id"][0]
    page = client.get(f"/voucher/runs/sample/{RUN}?status=awarded&q={wanted.lower()}",
                      cookies={"_token": token(role, "officer")})
    assert page.status_code == 200 and 'id="preview"' in page.text
    assert f"<tr><td>{wanted}</td>" in page.text and page.text.count("<tr><td>R1-") == 1
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'self'" in page.headers[
        "content-security-policy"]
    report = client.get(f"/voucher/runs/sample/{RUN}/report", cookies={"_token": token(role)})
    assert report.status_code == 200 and "<html" in report.text


def test_paths_out_of_the_runs_root_are_not_found(client):
    bearer = {"Authorization": f"Bearer {token('admin')}"}
    for path in ("/voucher/runs/sample/..", "/voucher/runs/..%2F..%2Fetc/passwd", "/voucher/runs/sample/nope"):
        assert client.get(path, headers=bearer).status_code == 404, path


def test_the_failure_listener_notes_why_in_plain_words(plugin, vc, airflow_env):
    from airflow.sdk.exceptions import AirflowFailException   # noqa: F401  (airflow importable)

    listener = plugin.FailureNote()
    gone = SimpleNamespace(dag_id="allocation_round", run_id="manual__gone", conf={"round": "no-such-round"}, note=None)
    listener.on_dag_run_failed(dag_run=gone, msg="task_failure")
    assert gone.note.startswith("FAILED: round folder") and "does not exist" in gone.note
    assert "Traceback" not in gone.note and 'File "' not in gone.note
    folder = vc.run_dir(vc.resolve_round("sample"), "manual__bad")
    files.private_dir(folder)
    (folder / files.VALIDATION_ERROR).write_text("round.toml: [award] min_score: must be at most 100\n")
    bad = SimpleNamespace(dag_id="allocation_round", run_id="manual__bad", conf={"round": "sample"}, note=None)
    listener.on_dag_run_failed(dag_run=bad, msg="task_failure")
    assert bad.note == "FAILED: round.toml: [award] min_score: must be at most 100"
    other = SimpleNamespace(dag_id="results_index", run_id="x", conf={}, note=None)
    listener.on_dag_run_failed(dag_run=other, msg="")
    assert other.note is None


def test_airflow_loads_the_app_the_view_and_the_listener(airflow_env):
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "deploy" / "plugins")}
    out = subprocess.run([sys.executable, "-m", "airflow", "plugins", "--output", "json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    plugins = {p["name"]: p for p in json.loads(out[out.index("["):])}
    ours = plugins["voucher_rounds"]
    assert "/voucher" in json.dumps(ours["fastapi_apps"])
    assert "voucher-rounds" in json.dumps(ours["external_views"])
    assert "FailureNote" in json.dumps(ours["listeners"])


def test_the_listener_notes_a_run_handed_over_detached_in_the_database(plugin):
    """`airflow dags test` hands the listener a run no session holds: the note goes in by a session
    of the listener's own (the scheduler's runs are attached: the note is set on them directly)."""
    import pendulum
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    with create_session() as session:
        run = DagRun(dag_id="allocation_round", run_id="manual__detached", run_type=DagRunType.MANUAL,
                     conf={"round": "nowhere"}, state=DagRunState.FAILED, run_after=pendulum.now("UTC"))
        session.add(run)
    plugin.FailureNote().on_dag_run_failed(dag_run=run, msg="task_failure")
    with create_session() as session:
        stored = session.scalar(select(DagRun).where(DagRun.run_id == "manual__detached"))
        assert stored.note.startswith("FAILED: round folder") and "nowhere does not exist" in stored.note


def test_a_green_run_that_published_nothing_says_so(plugin, vc):
    folder = files.private_dir(vc.run_dir(vc.resolve_round("sample"), "manual__rejected"))
    files.write_json(folder / files.APPROVAL_RECORD, {"chosen_options": ["Reject"], "timed_out": False,
                                                      "responded_by": {"id": "approver", "name": "approver"},
                                                      "responded_at": "2026-03-02T10:00:00+00:00"})
    run = SimpleNamespace(dag_id="allocation_round", run_id="manual__rejected", conf={"round": "sample"}, note=None)
    plugin.FailureNote().on_dag_run_success(dag_run=run, msg="success")
    assert run.note.startswith("NOT PUBLISHED: the approval was answered Reject by approver")
    approved = SimpleNamespace(dag_id="allocation_round", run_id="manual__approved", conf={"round": "sample"}, note=None)
    plugin.FailureNote().on_dag_run_success(dag_run=approved, msg="success")
    assert approved.note is None
