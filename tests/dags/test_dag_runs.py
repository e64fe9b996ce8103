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
import logging
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.dags.dagrun import FAST, ROUNDS, Officer, run_folder, run_round

pytestmark = pytest.mark.usefixtures("airflow_db")
def test_approved_round_is_published(dagbag, runs_root, own_publish_root, caplog):
    officer = Officer("Approve")
    caplog.set_level(logging.INFO)
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

    # what an Airflow viewer can read -- XCom, the task logs, the approval text -- holds no receipt
    # code and no id of an application that was not funded (totals and links only)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    with create_session() as session:
        xcom = " ".join(str(x.value) for x in session.query(XComModel).filter(
            XComModel.dag_id == "allocation_round", XComModel.run_id == dr.run_id))
    assert xcom, "the run left no XCom to check"
    viewer_text = "\n".join([xcom, caplog.text, officer.body])
    codes = pl.read_csv(ROUNDS / "sample" / "applications.csv", encoding="cp949", infer_schema=False)
    secrets = [c for c in codes["receipt_code"].drop_nulls().to_list() if len(c) >= 6]
    not_funded = outcomes.filter(pl.col("status") != "awarded")["application_id"].drop_nulls().to_list()
    assert secrets and not_funded and "ALLOCATION SUMMARY" in caplog.text   # the task logs were seen
    assert [c for c in secrets if c in viewer_text] == []
    assert [a for a in not_funded if a in viewer_text] == []

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
    assert "allocation_round.validate FAILED" in notices and dr.run_id in notices
    assert not own_publish_root.exists()


def test_path_outside_rounds_root_is_refused(dagbag, runs_root, tmp_path):
    dr, states = run_round(dagbag, {"round": str(tmp_path), **FAST})
    assert dr.state == "failed" and states["validate"] == "failed"
