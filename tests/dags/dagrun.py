"""Helpers of the DAG tests (plain module, not tests): where the throwaway Airflow lives, and
dag.test() with an officer answering the approval the way the UI does."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
TMP = Path(tempfile.mkdtemp(prefix="voucher-airflow-tests-"))
HOME = TMP / "airflow-home"
ROUNDS = TMP / "rounds"
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


FAST = {"time_limit_s": 5}   # CP-SAT deterministic limit per solve; keeps the suite short


class Officer(threading.Thread):
    """Answers the first approval request of allocation_round with `option`."""

    def __init__(self, option: str, timeout: float = 240, username: str = "officer"):
        super().__init__(daemon=True)
        self.option, self.timeout, self.username = option, timeout, username
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
                        user=SimpleAuthManagerUser(username=self.username, role="user"), session=session)
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


ROUND_DEFAULTS = {"budget_krw_override": None, "time_limit_s": 60, "dry_run": False, "allow_empty": False}


def run_dag(dagbag, dag_id: str, conf: dict, officer: Officer | None = None, **test_kwargs):
    """dag.test() with an optional officer answering the approval; returns (run, task states).

    dag.test() keeps the previous run's params on the DAG object, so callers pass every param.
    """
    dag = dagbag.dags[dag_id]
    if officer:
        officer.start()
    try:
        dr = dag.test(run_conf=conf, **test_kwargs)
    finally:
        if officer:
            officer.done.set()
            officer.join(5)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def run_round(dagbag, conf: dict, officer: Officer | None = None, **test_kwargs):
    return run_dag(dagbag, "allocation_round", {**ROUND_DEFAULTS, **conf}, officer, **test_kwargs)


def run_folder(runs_root: Path, round_name: str, run_id: str) -> Path:
    """RUNS_ROOT/<round folder>/<run id>/, as voucher_common.run_dir names it."""
    import voucher_common as vc  # the dagbag fixture has put dags/ on sys.path

    return vc.run_dir((ROUNDS / round_name).resolve(), run_id)
