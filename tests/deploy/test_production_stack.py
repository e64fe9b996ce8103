"""Production profile for real: PostgreSQL + CeleryExecutor (Redis), driven through /api/v2.

Starts deploy/stack.sh on a fresh database, triggers the round DAG with its params through the
REST API as the named officer, approves through the HITL API as the named approver (FAB auth
manager, roles in deploy/roles.json) and checks the published files against a direct run; a
third test tries every attack an officer or operator could make through /api/v2.
Skips only when PostgreSQL or Redis is not reachable (a failure under CI=true, see tests/ci_skips.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
import requests

from allocation.publish.manifest import verify
from allocation.publish.version import publish
from allocation.rounds import allocate as stages

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "allocation_round"
PORT = 28181


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


_MISSING = [f"{name} at 127.0.0.1:{port} unreachable"
            for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable(port)]
pytestmark = pytest.mark.skipif(
    bool(_MISSING), reason="production-profile test needs PostgreSQL and Redis: " + "; ".join(_MISSING))


class Api:
    def __init__(self, base: str, user: str, password: str):
        self.base = base
        token = requests.post(f"{base}/auth/token", json={"username": user, "password": password},
                              timeout=30).json()["access_token"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs):
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def status(self, method: str, path: str, **kwargs) -> int:
        """The HTTP status of one call (for what must be refused)."""
        return self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs).status_code

    def task_instances(self, run_id: str) -> dict[str, dict]:
        data = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in data["task_instances"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "VOUCHER_STACK_HOME": str(home), "VOUCHER_PG_DB": f"voucher_test_{uuid.uuid4().hex[:8]}",
           "VOUCHER_API_PORT": str(PORT), "VOUCHER_RETRY_DELAY_S": "1",
           "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20"}
    script = str(ROOT / "deploy" / "stack.sh")
    subprocess.run([script, "start"], env=env, check=True, timeout=300)
    try:
        users = json.loads((home / "passwords.json.generated").read_text())
        base = f"http://127.0.0.1:{PORT}"
        api = Api(base, "officer", users["officer"])
        apis = {name: Api(base, name, users[name]) for name in ("approver", "operator", "admin")}
        deadline = time.time() + 180
        while True:  # the dag-processor parses dags/ on its own schedule
            try:
                api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
                break
            except requests.HTTPError:
                if time.time() > deadline:
                    raise
                time.sleep(2)
        yield {"api": api, "home": home, "env": env, "approver": apis["approver"], **apis}
    finally:
        subprocess.run([script, "stop"], env=env, timeout=120)
        db = env["VOUCHER_PG_DB"]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'DROP DATABASE IF EXISTS "{db}"'],
                       timeout=60)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """What the embedded default produces for the sample round: the same pipeline, in-process."""
    base = tmp_path_factory.mktemp("reference")
    stages.run_round(ROOT / "data" / "rounds" / "sample", base / "out")
    info = publish(base / "out", base / "published")
    return base / "out", Path(info["path"])


def trigger_and_approve(api: Api, approver: Api, conf: dict, on_running=None, on_waiting=None,
                        timeout: float = 600) -> tuple[str, dict]:
    """The officer (api) triggers, the approver answers; on_waiting(run_id) runs once while
    approve waits for input."""
    run = api.call("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    approved = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        tis = api.task_instances(run_id)
        if on_running is not None:
            on_running(tis)
        approve = tis.get("approve", {})
        if not approved and approve.get("state") in ("deferred", "awaiting_input"):
            if on_waiting is not None:
                on_waiting(run_id)
            approver.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
                     json={"chosen_options": ["Approve"], "params_input": {}})
            approved = True
        state = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state, api.task_instances(run_id)
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} did not finish in {timeout} s: {api.task_instances(run_id)}")


def published_version(home: Path) -> Path:
    versions = sorted((home / "published" / "2026-R1").glob("v*"))
    assert versions, "nothing published"
    return versions[-1]


def assert_same_publication(got: Path, expected: Path) -> None:
    for name in ("awards_public.csv", "awards_public.parquet", "awards_public.html"):
        assert (got / name).read_bytes() == (expected / name).read_bytes(), name
    assert verify(got) == []


def test_round_published_by_celery_workers(stack, reference):
    api, home = stack["api"], stack["home"]
    state, tis = trigger_and_approve(api, stack["approver"], {"round": "sample", "time_limit_s": 60,
                                                              "dry_run": False, "budget_krw_override": None})
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    assert tis["publish"]["state"] == "success"
    assert tis["allocate"]["pool"] == "solver"
    assert tis["allocate"]["executor"] in (None, "CeleryExecutor") or "Celery" in str(tis["allocate"])
    out_ref, pub_ref = reference
    assert_same_publication(published_version(home), pub_ref)
    run_out = next((home / "runs").rglob("outcomes.parquet")).parent
    assert pl.read_parquet(run_out / "outcomes.parquet").equals(pl.read_parquet(out_ref / "outcomes.parquet"))


def _worker_of(pid: int, home: Path) -> Path | None:
    """The worker pid file whose process is an ancestor of pid."""
    workers = {int(p.read_text()): p for p in (home / "stack").glob("worker*.pid")}
    while pid > 1:
        if pid in workers:
            return workers[pid]
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return None
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def test_killed_worker_task_is_retried_on_the_other(stack, reference):
    api, home = stack["api"], stack["home"]
    shutil.rmtree(home / "published", ignore_errors=True)
    killed: dict = {}

    def kill_allocating_worker(tis):
        ti = tis.get("allocate", {})
        if killed or ti.get("state") != "running" or not ti.get("pid"):
            return
        worker = _worker_of(int(ti["pid"]), home)
        if worker is None:
            return
        os.killpg(int(worker.read_text()), signal.SIGKILL)
        killed.update(worker=worker.stem, try_number=ti["try_number"])

    state, tis = trigger_and_approve(api, stack["approver"], {"round": "sample"}, on_running=kill_allocating_worker)
    assert killed, "allocate finished before a worker could be killed"
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    assert tis["allocate"]["try_number"] > killed["try_number"]
    assert_same_publication(published_version(home), reference[1])


def test_named_roles_least_privilege_through_the_api(stack):
    """officer: trigger and read only; approver: answers approvals; operator: clear/retry but no
    state changes; only admin edits XCom, sets states, deletes. The api-server binds localhost."""
    officer, approver, operator, admin = stack["api"], stack["approver"], stack["operator"], stack["admin"]
    home = stack["home"]
    shutil.rmtree(home / "published", ignore_errors=True)
    refused: dict[str, int] = {}

    def attacks(run_id: str) -> None:
        run = f"/dags/{DAG_ID}/dagRuns/{run_id}"
        ti = f"{run}/taskInstances"
        xcom = f"{ti}/allocate/xcomEntries/return_value"
        forged = {"value": {"out_dir": "/tmp/forged", "round_id": "2026-R1"}, "map_index": -1}
        for who, api in (("officer", officer), ("operator", operator)):
            refused[f"{who} approves"] = api.status(
                "PATCH", f"{ti}/approve/-1/hitlDetails", json={"chosen_options": ["Approve"], "params_input": {}})
            refused[f"{who} patches XCom"] = api.status("PATCH", xcom, json=forged)
            refused[f"{who} adds XCom"] = api.status("POST", f"{ti}/allocate/xcomEntries",
                                                     json={"key": "forged", "value": 1, "map_index": -1})
            refused[f"{who} marks approve success"] = api.status(
                "PATCH", f"{ti}/approve", json={"new_state": "success"})
            refused[f"{who} marks publish success"] = api.status(
                "PATCH", f"{ti}/publish", json={"new_state": "success"})
            refused[f"{who} marks the run success"] = api.status("PATCH", run, json={"state": "success"})
            refused[f"{who} deletes the run"] = api.status("DELETE", run)
            refused[f"{who} deletes the DAG"] = api.status("DELETE", f"/dags/{DAG_ID}")
        refused["officer clears a task"] = officer.status(
            "POST", f"/dags/{DAG_ID}/clearTaskInstances",
            json={"dry_run": True, "task_ids": ["allocate"], "dag_run_id": run_id})
        # what the roles may do
        assert operator.status("POST", f"/dags/{DAG_ID}/clearTaskInstances",
                               json={"dry_run": True, "task_ids": ["score"], "dag_run_id": run_id}) == 200
        assert admin.status("GET", f"{xcom}") == 200

    state, tis = trigger_and_approve(officer, approver, {"round": "sample", "time_limit_s": 5},
                                     on_waiting=attacks)
    assert refused and all(code in (401, 403) for code in refused.values()), refused
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    entry = json.loads((home / "published" / "2026-R1" / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["roles"] == {"triggered": "officer", "approved": "approver"}, entry   # public: roles only
    assert entry["four_eyes"] == "approver differs from the triggering user"
    detail = json.loads((home / "published.officers" / "2026-R1.audit.jsonl").read_text().splitlines()[-1])
    assert detail["triggered_by"] == "officer" and detail["approved_by"] == "approver (Approve)", detail
    # approvers approve; they do not trigger runs
    assert approver.status("POST", f"/dags/{DAG_ID}/dagRuns",
                           json={"logical_date": None, "conf": {"round": "sample"}}) == 403
    # the api-server listens on localhost only (production.env VOUCHER_API_HOST)
    log = (home / "stack" / "api-server.log").read_text(errors="replace")
    assert "0.0.0.0" not in log and "127.0.0.1" in log


def test_database_and_broker_use_generated_passwords(stack):
    """The metadata DB and the Celery broker are reached as their own users with generated
    passwords (secrets/, 0600), never as the passwordless superuser or default user."""
    import redis
    home, env = stack["home"], stack["env"]
    secrets = {name: (home / "secrets" / name).read_text().strip() for name in ("pg_password", "redis_password")}
    for name in secrets:
        assert len(secrets[name]) >= 40 and oct((home / "secrets" / name).stat().st_mode & 0o777) == "0o600"
    shown = subprocess.run([str(ROOT / "deploy" / "stack.sh"), "env"], env=env, capture_output=True,
                           text=True, timeout=120, check=True).stdout
    assert f"voucher:{secrets['pg_password']}@" in shown and "postgres@" not in shown
    assert f"redis://voucher:{secrets['redis_password']}@" in shown
    # the role exists with a password and owns the database
    query = (f"SELECT r.rolpassword IS NOT NULL, d.datdba = r.oid FROM pg_authid r, pg_database d "
             f"WHERE r.rolname = 'voucher' AND d.datname = '{env['VOUCHER_PG_DB']}'")
    row = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", query], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert row == "t|t"
    # Redis checks the ACL user's password
    assert redis.Redis(host="127.0.0.1", port=6379, username="voucher", password=secrets["redis_password"]).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=6379, username="voucher", password="wrong").ping()


def test_voucher_rounds_view_follows_the_fab_roles(stack, reference):
    """The plugin view on the production stack (FAB auth manager, deploy/roles.json): anonymous
    refused; the FAB Viewer sees the run's totals but no applicant; officer, approver, operator
    and Admin (DAGs can_edit) see the per-applicant preview."""
    out, _ = reference
    runs_root = Path(stack["env"].get("VOUCHER_RUNS_ROOT") or stack["home"] / "runs")   # as deploy/stack.sh
    run = runs_root / "sample" / "manual__view"
    shutil.copytree(out, run, dirs_exist_ok=True)
    base = stack["api"].base
    page = f"{base}/voucher/runs/sample/manual__view"
    assert requests.get(page, timeout=30).status_code == 401
    users = json.loads((stack["home"] / "passwords.json.generated").read_text())
    first_id = pl.read_parquet(run / "outcomes.parquet")["application_id"][0]
    for user, sees_applicants in (("viewer", False), ("officer", True), ("approver", True),
                                  ("operator", True), ("admin", True)):
        body = Api(base, user, users[user]).session.get(page, timeout=60)
        assert body.status_code == 200, (user, body.status_code)
        assert ('id="preview"' in body.text, first_id in body.text) == (sees_applicants, sees_applicants), user
        assert "Totals" in body.text
