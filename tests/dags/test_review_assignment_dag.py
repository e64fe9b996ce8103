"""The review_assignment DAG: shape, the approval step (defaults Reject, configurable timeout),
and dag.test() runs answered Approve (work lists released) and Reject (nothing goes out)."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.dags.dagrun import PROJECT, ROUNDS, Officer, run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


class PanelOfficer(Officer):
    """Answers the approval of review_assignment (Officer answers allocation_round's)."""

    @staticmethod
    def _waiting(session):
        from sqlalchemy import select

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        return session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == "review_assignment", TaskInstance.task_id == "approve",
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()


@pytest.fixture
def panel_round() -> str:
    if not (ROUNDS / "sample-panel").exists():
        shutil.copytree(PROJECT / "data" / "rounds" / "sample-panel", ROUNDS / "sample-panel")
    return "sample-panel"


@pytest.fixture
def outbox(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "outbox"
    monkeypatch.setenv("VOUCHER_PANEL_OUTBOX", str(root))
    return root


def test_shape_and_approval_defaults(dagbag, monkeypatch):
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = dagbag.dags["review_assignment"]
    assert set(dag.task_dict) == {"assign", "approve", "release"}
    assert dag.get_task("assign").downstream_task_ids == {"approve", "release"}
    assert dag.get_task("approve").downstream_task_ids == {"release"}
    assert set(dag.params) == {"round", "reviewers_per_application"}
    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator) and approve.defaults == ["Reject"]
    monkeypatch.setenv("VOUCHER_APPROVAL_TIMEOUT_HOURS", "1.5")
    dags = PROJECT / "dags"
    bag = BundleDagBag(dag_folder=dags / "review_assignment.py", bundle_path=dags, bundle_name="dags-folder")
    assert bag.dags["review_assignment"].get_task("approve").response_timeout == timedelta(minutes=90)


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_work_lists_go_out_only_when_approved(dagbag, panel_round, outbox, answer):
    officer = PanelOfficer(answer)
    dr, states = run_dag(dagbag, "review_assignment",
                         {"round": panel_round, "reviewers_per_application": 2}, officer)
    assert officer.error is None
    assert dr.state == "success", states
    assert states["assign"] == "success" and states["approve"] == "success"
    assert officer.body and "review assignment ready for approval" in officer.body
    assert "600 assigned" in officer.body and "proven optimal" in officer.body
    if answer == "Reject":
        assert states["release"] == "skipped"
        assert not outbox.exists() or not any(outbox.iterdir())
        return
    assert states["release"] == "success"
    released = outbox / "2026-R1"
    assignments = pl.read_csv(released / "assignments.csv")
    assert assignments.height == 600
    assert len(list((released / "work_lists").glob("*.csv"))) == 36
    info = (released / "release.json").read_text(encoding="utf-8")
    assert '"approved_by": "officer (Approve)"' in info and os.environ["VOUCHER_PANEL_OUTBOX"] == str(outbox)


def test_approval_text_leads_with_the_panel_fingerprint(dagbag, panel_round, outbox, runs_root):
    from allocation.rounds.panel import panel_fingerprint
    from tests.dags.dagrun import run_folder

    officer = PanelOfficer("Approve")
    dr, states = run_dag(dagbag, "review_assignment",
                         {"round": panel_round, "reviewers_per_application": 2}, officer)
    assert officer.error is None and states["release"] == "success", states
    out = run_folder(runs_root, panel_round, f"review_assignment__{dr.run_id}")
    assert officer.body.splitlines()[0] == f"**Result fingerprint (sha256):** `{panel_fingerprint(out)}`"
    info = (outbox / "2026-R1" / "release.json").read_text(encoding="utf-8")
    assert panel_fingerprint(out) in info and '"triggered_by": "dag_test"' in info


def test_approve_marked_success_by_hand_releases_nothing(dagbag, panel_round, outbox):
    dr, states = run_dag(dagbag, "review_assignment", {"round": panel_round, "reviewers_per_application": 2},
                         mark_success_pattern="^approve$")
    assert states["approve"] == "success" and states["release"] == "failed", states
    assert not outbox.exists() or not any(outbox.iterdir())
