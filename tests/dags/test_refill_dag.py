"""End to end with dag.test(): v1 (allocation_round) → declines → v2 (round_refill) → an upheld
appeal → v3; the applicant lookup on the latest version shows each applicant's latest outcome.

Approvals are answered through the api-server's own HITL handler, as in test_dag_runs.py.
"""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from tests.dags.dagrun import FAST, ROUNDS, Officer, run_dag, run_folder, run_round

pytestmark = pytest.mark.usefixtures("airflow_db")
ROUND_ID = "2026-R1"


class RefillOfficer(Officer):
    """Answers the approval request of round_refill."""

    @staticmethod
    def _waiting(session):
        from sqlalchemy import select

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        return session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == "round_refill", TaskInstance.task_id == "approve",
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()


DEFAULTS = {"responses": "responses.csv", "appeals": "appeals.csv", "as_of": None}


def run_refill(dagbag, conf: dict, officer: Officer | None = None):
    return run_dag(dagbag, "round_refill", {**DEFAULTS, **conf}, officer)


def test_refill_dag_shape(dagbag):
    dag = dagbag.dags["round_refill"]
    assert dag.schedule is None
    assert [t.task_id for t in dag.topological_sort()] == ["prepare", "score", "allocate", "approve", "publish_prepare",
                                                                 "publish_pages", "seal_lookup", "publish"]
    assert [a.name for a in dag.get_task("publish").outlets] == ["published_round"]
    assert dag.get_task("prepare").retries == 0 and dag.get_task("approve").retries == 0
    assert set(dag.params) == {"round", "responses", "appeals", "as_of", "time_limit_s", "allow_empty"}


def test_lifecycle_end_to_end(dagbag, runs_root, own_publish_root):
    from allocation.publish.audit import read as read_audit
    from allocation.publish.audit import read_officer
    from allocation.publish.lookup import lookup_result

    name = "lifecycle"
    round_dir = ROUNDS / name
    shutil.rmtree(round_dir, ignore_errors=True)
    shutil.copytree(ROUNDS / "sample", round_dir)
    for stale in ("responses.csv", "appeals.csv", "replacement_reviews.csv"):
        (round_dir / stale).unlink(missing_ok=True)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[lifecycle]\naccept_by = 2026-03-01\nreserve_share = 0.1\n")

    # v1: the round DAG, approved by the officer
    officer = Officer("Approve")
    dr1, states = run_round(dagbag, {"round": name, **FAST}, officer)
    assert officer.error is None and dr1.state == "success", states
    v1 = own_publish_root / ROUND_ID / "v1"
    out1 = run_folder(runs_root, name, dr1.run_id)
    awards_v1 = pl.read_parquet(v1 / "awards_public.parquet").sort("awarded_krw", descending=True)
    won = awards_v1["application_id"].to_list()
    declined, accepted = won[:2], won[2:6]

    # a bad responses file stops the refill in prepare with one clear message
    (round_dir / "bad_responses.csv").write_text(
        "application_id,response,responded_on\nNOPE,accepted,2026-02-01\n", encoding="utf-8")
    dr_bad, states = run_refill(dagbag, {"round": name, "responses": "bad_responses.csv",
                                         "as_of": "2026-02-10", **FAST})
    assert dr_bad.state == "failed" and states["prepare"] == "failed", states
    error = (run_folder(runs_root, name, dr_bad.run_id) / "validation_error.txt").read_text()
    assert "bad_responses.csv" in error and "row 2 [application_id]" in error and "NOPE" in error
    assert not (own_publish_root / ROUND_ID / "v2").exists()

    # v2: the two largest awards declined, four accepted, the rest pending
    (round_dir / "responses.csv").write_text(
        "application_id,response,responded_on\n"
        + "".join(f"{a},declined,2026-02-01\n" for a in declined)
        + "".join(f"{a},accepted,2026-02-02\n" for a in accepted), encoding="utf-8")
    officer = RefillOfficer("Approve")
    dr2, states = run_refill(dagbag, {"round": name, "as_of": "2026-02-10", **FAST}, officer)
    assert officer.error is None and dr2.state == "success", states
    assert officer.body and "refill" in officer.body and "released 2" in officer.body
    v2 = own_publish_root / ROUND_ID / "v2"
    out2 = run_folder(runs_root, name, dr2.run_id)
    changes = json.loads((v2 / "changes.json").read_text())
    assert changes["released"] == 2 and changes["diff"]["gained"] > 0 and changes["diff"]["changed"] == 0
    gained = [g["application_id"] for g in changes["gained_awardees"]]
    awards_v2 = pl.read_parquet(v2 / "awards_public.parquet")
    kept = lambda f: f.filter(pl.col("application_id").is_in(won[2:])).sort("application_id").write_csv()  # noqa: E731
    assert kept(awards_v1) == kept(awards_v2)                     # every kept award, byte for byte

    # v3: an upheld appeal (replacement reviews) and a rejected one
    out2_outcomes = pl.read_parquet(out2 / "outcomes.parquet")
    requests = pl.read_parquet(out2 / "intake" / "requests.parquet").group_by("application_id").agg(
        pl.col("gpu_hours").sum().alias("ask"))
    waiting = (out2_outcomes.filter(pl.col("status") == "waitlisted").join(requests, on="application_id")
               .sort("ask"))
    appellant, rejected = waiting["application_id"][0], waiting["application_id"][1]
    (round_dir / "appeals.csv").write_text(
        "application_id,decision,note\n"
        f"{appellant},upheld,reviewer conflict of interest\n{rejected},rejected,no new facts\n",
        encoding="utf-8")
    (round_dir / "replacement_reviews.csv").write_text(
        "application_id,reviewer_id,criterion,score\n"
        + "".join(f"{appellant},APPEAL-{r},{c},100\n" for r in (1, 2, 3)
                  for c in ("technical", "feasibility", "impact")), encoding="utf-8")
    officer = RefillOfficer("Approve")
    dr3, states = run_refill(dagbag, {"round": name, "as_of": "2026-02-20", **FAST}, officer)
    assert officer.error is None and dr3.state == "success", states
    v3 = own_publish_root / ROUND_ID / "v3"
    out3 = run_folder(runs_root, name, dr3.run_id)
    changes3 = json.loads((v3 / "changes.json").read_text())
    assert changes3["kind"] == "appeal" and changes3["appeals"] == {"upheld": 1, "rejected": 1}
    effect = pl.read_csv(out3 / "changes.csv")
    assert effect.height == out2_outcomes.height                   # every applicant is accounted for
    awards_v3 = pl.read_parquet(v3 / "awards_public.parquet")
    assert kept(awards_v1) == kept(awards_v3.filter(pl.col("application_id").is_in(accepted + won[6:])))

    # audit trail: three versions, the officer approved each, the report shows the timeline
    trail = read_audit(own_publish_root, ROUND_ID)
    assert [(e["version"], e["kind"]) for e in trail] == [(1, "allocation"), (2, "refill"), (3, "appeal")]
    assert all(e["via"] == "airflow" and e["roles"]["approved"] == "approver" for e in trail), trail
    officers = read_officer(own_publish_root, ROUND_ID)            # names and runs: the officers' trail
    assert all("officer" in o["approved_by"] for o in officers), officers
    assert officers[1]["run_id"] == dr2.run_id and officers[1]["triggered_by"]
    report = (v3 / "report.html").read_text()
    assert "Timeline" in report and "appeal" in report and "refill" in report

    # results_index sees the latest version
    assert dagbag.dags["results_index"].test().state == "success"
    index = json.loads((own_publish_root / "index.json").read_text())
    assert index["rounds"][ROUND_ID]["versions"] == [1, 2, 3]

    # the applicant lookup on the latest version: each applicant's latest outcome
    # receipt codes are only in the round folder (intake keeps the lookup masters instead)
    apps = pl.read_csv(round_dir / "applications.csv", encoding="cp949", infer_schema=False)
    code = dict(zip(apps["application_id"], apps["receipt_code"]))
    final = pl.read_parquet(out3 / "outcomes.parquet")
    latest = own_publish_root / ROUND_ID
    for app_id in [declined[0], accepted[0], gained[0], appellant, rejected]:
        result = lookup_result(latest, app_id, code[app_id])
        row = final.filter(pl.col("application_id") == app_id).row(0, named=True)
        assert result["status"] == row["status"] and result["reason"] == row["reason"], app_id
    assert lookup_result(latest, declined[0], code[declined[0]])["reason"] == "declined"
    assert lookup_result(latest, accepted[0], code[accepted[0]])["status"] == "awarded"
    assert lookup_result(latest, gained[0], code[gained[0]])["status"] == "awarded"
