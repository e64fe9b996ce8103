"""DAG guards: an unanswered approval falls back to Reject (both DAGs); the budget override
reaches the run.

The approval timeout is VOUCHER_APPROVAL_TIMEOUT_HOURS, read when the DAG file is parsed, so
each test parses its own DagBag after setting it. On Airflow 3.3 an ApprovalOperator waits in
AWAITING_INPUT and the *scheduler's* timeout sweep (SchedulerJobRunner.check_awaiting_input_timeouts)
resolves it: with `defaults` it records them as the answer and resumes the task, without them the
task fails. dag.test() has no scheduler, so a helper thread runs that same sweep once the
deadline has passed (and fails a task still waiting after a few minutes, so a missing timeout
fails the test instead of hanging it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from allocation.config import load_config
from allocation.publish.version import publish
from allocation.rounds import allocate as stages
from allocation.rounds.lifecycle.previous import load_previous
from bench.synthetic import generate_round

pytestmark = pytest.mark.usefixtures("airflow_db")
DAGS = Path(__file__).resolve().parents[2] / "dags"
TINY_TIMEOUT_H = 2 / 3600          # two seconds


def parse(dag_file: str):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=DAGS / dag_file, bundle_path=DAGS, bundle_name="dags-folder")
    assert bag.import_errors == {}
    return bag


class TimeoutSweeper(threading.Thread):
    """Plays the scheduler's AWAITING_INPUT timeout sweep for one DAG's `approve` task."""

    def __init__(self, dag_id: str, give_up_after: float = 120):
        super().__init__(daemon=True)
        self.dag_id, self.give_up_after = dag_id, give_up_after
        self.done = threading.Event()
        self.swept = False
        self.error: BaseException | None = None

    def _waiting(self, session):
        from sqlalchemy import select

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        return session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == "approve",
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()

    def run(self):
        from airflow import settings
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.utils.state import TaskInstanceState

        class Scheduler:                       # the sweep only needs a logger from its runner
            log = logging.getLogger("test.timeout_sweep")

        deadline = time.monotonic() + self.give_up_after
        try:
            while not self.done.is_set():
                with settings.Session() as session:
                    ti = self._waiting(session)
                    if ti is not None and time.monotonic() > deadline:
                        ti.state = TaskInstanceState.FAILED      # no timeout fired: do not hang
                        session.commit()
                        return
                if ti is not None:
                    SchedulerJobRunner.check_awaiting_input_timeouts(Scheduler())
                    self.swept = True
                time.sleep(0.5)
        except BaseException as exc:
            self.error = exc


def run_unanswered(bag, dag_id: str, conf: dict):
    sweeper = TimeoutSweeper(dag_id)
    sweeper.start()
    try:
        dr = bag.dags[dag_id].test(run_conf=conf)
    finally:
        sweeper.done.set()
        sweeper.join(10)
    assert sweeper.error is None, sweeper.error
    assert sweeper.swept, "the approve task never waited for input"
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def approval_record(dr):
    """The Human-in-the-loop record of the run's approve task."""
    from sqlalchemy import select

    from airflow import settings
    from airflow.models.hitl import HITLDetail

    ti = next(t for t in dr.get_task_instances() if t.task_id == "approve")
    with settings.Session() as session:
        detail = session.scalars(select(HITLDetail).where(HITLDetail.ti_id == ti.id)).one()
        return {"defaults": detail.defaults, "chosen": detail.chosen_options, "by": detail.responded_by}


@pytest.mark.parametrize("dag_file, dag_id", [("allocation_round.py", "allocation_round"),
                                              ("round_refill.py", "round_refill")])
def test_approval_defaults_to_reject_after_the_configured_timeout(monkeypatch, dag_file, dag_id):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    monkeypatch.delenv("VOUCHER_APPROVAL_TIMEOUT_HOURS", raising=False)
    approve = parse(dag_file).dags[dag_id].get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"]                 # no answer = nothing published
    assert approve.response_timeout == timedelta(hours=72)
    monkeypatch.setenv("VOUCHER_APPROVAL_TIMEOUT_HOURS", "1.5")
    assert parse(dag_file).dags[dag_id].get_task("approve").response_timeout == timedelta(minutes=90)


@pytest.fixture
def own_publish_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "published"
    monkeypatch.setenv("VOUCHER_PUBLISH_ROOT", str(root))
    return root


def test_unanswered_round_is_rejected_and_the_budget_override_is_used(monkeypatch, own_publish_root):
    monkeypatch.setenv("VOUCHER_APPROVAL_TIMEOUT_HOURS", str(TINY_TIMEOUT_H))
    bag = parse("allocation_round.py")
    rounds = Path(os.environ["VOUCHER_ROUNDS_ROOT"])
    budget = load_config(rounds / "small").round.budget_krw
    override = budget // 2 + 7
    conf = {"round": "small", "budget_krw_override": override, "time_limit_s": 5, "dry_run": False}
    dr, states = run_unanswered(bag, "allocation_round", conf)

    # the override reached the run: the run folder's policy, solution and awards use it
    import voucher_common as vc     # on sys.path once a DAG file is parsed
    out = vc.run_dir((rounds / "small").resolve(), dr.run_id)
    solution = json.loads((out / "solution.json").read_text())
    assert solution["summary"]["budget_krw"] == override
    assert 0 < solution["summary"]["awarded_krw"] <= override
    assert load_config(out / "intake").round.budget_krw == override

    # nobody answered: after the timeout the default (Reject) was taken and nothing published
    assert states["approve"] == "success" and states["publish"] == "skipped", states
    assert dr.state == "success"
    assert approval_record(dr) == {"defaults": ["Reject"], "chosen": ["Reject"], "by": None}
    assert not own_publish_root.exists() or not any(own_publish_root.rglob("manifest.json"))


def test_unanswered_refill_is_rejected(monkeypatch, own_publish_root):
    rounds = Path(os.environ["VOUCHER_ROUNDS_ROOT"])
    round_dir = rounds / "oracle_refill"
    if not round_dir.exists():
        generate_round(round_dir, 12, seed=2)
        with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
            handle.write("\n[lifecycle]\naccept_by = 2026-03-01\n")
    out1 = own_publish_root.parent / "out1"
    stages.run_round(round_dir, out1)
    v1 = publish(out1, own_publish_root, lookup_iterations=100_000)
    won = pl.read_parquet(out1 / "outcomes.parquet").filter(pl.col("status") == "awarded")["application_id"]
    (round_dir / "responses.csv").write_text(
        f"application_id,response,responded_on\n{won[0]},declined,2026-02-01\n", encoding="utf-8")

    monkeypatch.setenv("VOUCHER_APPROVAL_TIMEOUT_HOURS", str(TINY_TIMEOUT_H))
    bag = parse("round_refill.py")
    conf = {"round": "oracle_refill", "responses": "responses.csv", "appeals": "appeals.csv",
            "as_of": "2026-02-10", "time_limit_s": 5}
    dr, states = run_unanswered(bag, "round_refill", conf)
    assert states["allocate"] == "success", states
    assert states["approve"] == "success" and states["publish"] == "skipped", states
    assert approval_record(dr) == {"defaults": ["Reject"], "chosen": ["Reject"], "by": None}
    versions = sorted(p.name for p in (own_publish_root / v1["round_id"]).glob("v*"))
    assert versions == ["v1"]                                       # no v2
    assert load_previous(own_publish_root / v1["round_id"]).label == "v1"
