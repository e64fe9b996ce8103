"""Run the round DAG with dag.test(): approved, rejected, and on a broken round folder.

The approval step is answered the way an officer's click in the UI is: a helper thread waits
until the `approve` task is parked in AWAITING_INPUT and then calls the api-server's own
Human-in-the-loop handler (`update_hitl_detail`) against the shared metadata DB. dag.test()
keeps polling and resumes the task with that response, so Approve and Reject both go through
the real ApprovalOperator code (a mark_success_pattern could only ever "approve").
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from tests.dags.conftest import ROUNDS

pytestmark = pytest.mark.usefixtures("airflow_db")
FAST = {"time_limit_s": 5}   # CP-SAT deterministic limit per solve; keeps the suite short


class Officer(threading.Thread):
    """Answers the first approval request of allocation_round with `option`."""

    def __init__(self, option: str, timeout: float = 240):
        super().__init__(daemon=True)
        self.option, self.timeout = option, timeout
        self.body: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self):
        try:
            self._answer()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self._unblock()

    @staticmethod
    def _waiting(session):
        from sqlalchemy import select

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        return session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == "allocation_round", TaskInstance.task_id == "approve",
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()

    def _answer(self):
        from sqlalchemy import select

        from airflow import settings
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail

        deadline = time.monotonic() + self.timeout
        while not self.done.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("the approve task never asked for input")
            with settings.Session() as session:
                ti = self._waiting(session)
                if ti is not None:
                    self.body = session.scalars(select(HITLDetail).where(HITLDetail.ti_id == ti.id)).one().body
                    update_hitl_detail(
                        dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                        update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[self.option]),
                        user=SimpleAuthManagerUser(username="officer", role="user"), session=session)
                    session.commit()
                    return
            time.sleep(0.5)

    def _unblock(self):
        """If answering failed, fail a still-waiting approve task so dag.test() cannot hang."""
        from airflow import settings
        from airflow.utils.state import TaskInstanceState

        with settings.Session() as session:
            ti = self._waiting(session)
            if ti is not None:
                ti.state = TaskInstanceState.FAILED
                session.commit()


ROUND_DEFAULTS = {"budget_krw_override": None, "time_limit_s": 60, "dry_run": False}


def run_dag(dagbag, dag_id: str, conf: dict, officer: Officer | None = None):
    """dag.test() with an optional officer answering the approval; returns (run, task states).

    dag.test() keeps the previous run's params on the DAG object, so callers pass every param.
    """
    dag = dagbag.dags[dag_id]
    if officer:
        officer.start()
    try:
        dr = dag.test(run_conf=conf)
    finally:
        if officer:
            officer.done.set()
            officer.join(5)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def run_round(dagbag, conf: dict, officer: Officer | None = None):
    return run_dag(dagbag, "allocation_round", {**ROUND_DEFAULTS, **conf}, officer)


def run_folder(runs_root: Path, round_name: str, run_id: str) -> Path:
    """RUNS_ROOT/<round folder>/<run id>/, as voucher_common.run_dir names it."""
    import voucher_common as vc  # the dagbag fixture has put dags/ on sys.path

    return vc.run_dir((ROUNDS / round_name).resolve(), run_id)


@pytest.fixture
def own_publish_root(tmp_path, monkeypatch) -> Path:
    """Each test publishes into its own folder (tasks run in-process and read the env at run time)."""
    root = tmp_path / "published"
    monkeypatch.setenv("VOUCHER_PUBLISH_ROOT", str(root))
    return root


def test_approved_round_is_published(dagbag, runs_root, own_publish_root):
    officer = Officer("Approve")
    dr, states = run_round(dagbag, {"round": "sample", **FAST}, officer)
    assert officer.error is None
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}, states

    # the officer saw the summary in the approval form
    assert officer.body and "Funded" in officer.body and "GPU utilisation" in officer.body

    out = run_folder(runs_root, "sample", dr.run_id)
    outcomes = pl.read_csv(out / "outcomes.csv")
    report = json.loads((out / "solution.json").read_text())
    intake_apps = pl.read_parquet(out / "intake" / "applications.parquet").height
    assert outcomes.height == intake_apps > 0                      # counts in = counts out
    assert set(outcomes["status"]) <= {"awarded", "waitlisted", "not_selected", "ineligible"}
    funded = outcomes.filter(pl.col("status") == "awarded")
    assert funded.height == report["summary"]["funded"] > 0
    assert 0 < funded["awarded_krw"].sum() <= report["summary"]["budget_krw"]
    assert outcomes.filter(pl.col("status") == "ineligible").height > 0   # the sample has bad rows

    version = own_publish_root / report["round_id"] / "v1"
    for name in ("awards_public.csv", "awards_public.html", "manifest.json"):
        assert (version / name).is_file(), name
    public = pl.read_csv(version / "awards_public.csv")
    assert public.height == funded.height
    assert "receipt_code" not in public.columns

    # the Asset-scheduled index DAG lists what was published
    index_run = dagbag.dags["results_index"].test()
    assert index_run.state == "success"
    index = json.loads((own_publish_root / "index.json").read_text())
    assert index["rounds"][report["round_id"]]["versions"] == [1]


def test_rejected_round_publishes_nothing(dagbag, runs_root, own_publish_root):
    officer = Officer("Reject")
    dr, states = run_round(dagbag, {"round": "small", **FAST}, officer)
    assert officer.error is None
    assert states["approve"] == "success" and states["publish"] == "skipped", states
    assert dr.state == "success"
    assert not own_publish_root.exists() or not any(own_publish_root.rglob("*.csv"))
    assert (run_folder(runs_root, "small", dr.run_id) / "outcomes.csv").is_file()  # kept for review


def test_dry_run_stops_after_allocate(dagbag, runs_root, own_publish_root):
    dr, states = run_round(dagbag, {"round": "small", "dry_run": True, **FAST})
    assert dr.state == "success"
    assert states["allocate"] == "success" and states["needs_approval"] == "success"
    assert states["approve"] == "skipped" and states["publish"] == "skipped", states
    assert (run_folder(runs_root, "small", dr.run_id) / "solution.json").is_file()
    assert not own_publish_root.exists()


def _drop_column(table: Path, column: str) -> None:
    """Remove one column from a round table (CSV in any of the accepted encodings, xlsx, parquet)."""
    if table.suffix == ".csv":
        raw = table.read_bytes()
        for encoding in ("utf-8-sig", "cp949"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        rows = list(csv.reader(text.splitlines()))
        keep = [i for i, name in enumerate(rows[0]) if name.strip() != column]
        assert len(keep) < len(rows[0]), f"{column} not in {table}"
        with open(table, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([[r[i] for i in keep if i < len(r)] for r in rows])
    else:
        frame = pl.read_excel(table) if table.suffix == ".xlsx" else pl.read_parquet(table)
        table.unlink()
        frame.drop(column).write_csv(table.with_suffix(".csv"))


def test_broken_round_fails_in_validate(dagbag, runs_root, own_publish_root):
    broken = ROUNDS / "broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(ROUNDS / "sample", broken)
    _drop_column(next(broken.glob("applications.*")), "company_size")

    dr, states = run_round(dagbag, {"round": "broken", **FAST})
    assert dr.state == "failed"
    assert states["validate"] == "failed", states
    assert all(states[t] == "upstream_failed" for t in ("score", "allocate", "publish")), states

    error = (run_folder(runs_root, "broken", dr.run_id) / "validation_error.txt").read_text()
    assert "company_size" in error and "missing" in error
    notices = (runs_root / "notifications.log").read_text()
    assert f"allocation_round.validate FAILED" in notices and dr.run_id in notices
    assert not own_publish_root.exists()


def test_path_outside_rounds_root_is_refused(dagbag, runs_root, tmp_path):
    dr, states = run_round(dagbag, {"round": str(tmp_path), **FAST})
    assert dr.state == "failed" and states["validate"] == "failed"
