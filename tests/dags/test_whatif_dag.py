"""What-if scenarios in the round DAG (param `whatif`): checked in validate before any solve,
solved after allocate into the run folder, shown in the approval text; a failed task leaves its
message in words for the run note (deploy/plugins/voucher_rounds.py)."""

from __future__ import annotations

import json

import pytest

from allocation import files
from allocation.rounds import view
from tests.dags.dagrun import FAST, run_folder, run_round

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_scenarios_are_solved_after_allocate_and_shown_for_approval(dagbag, runs_root, own_publish_root):
    dr, states = run_round(dagbag, {"round": "small", "dry_run": True, "whatif": ["budget=+10%", "min_score=85"],
                                    **FAST})
    assert dr.state == "success" and states["whatif"] == "success", states
    out = run_folder(runs_root, "small", dr.run_id)
    rows = json.loads((out / files.WHATIF_DIR / "whatif.json").read_text())["scenarios"]
    assert [r["scenario"] for r in rows] == ["base", "budget=+10%", "min_score=85"]
    base = json.loads((out / files.SOLUTION).read_text())
    assert rows[0]["funded"] == base["summary"]["funded"] and rows[1]["budget_krw"] == round(
        base["summary"]["budget_krw"] * 1.1)
    approval = (out / files.APPROVAL_TEXT).read_text()
    assert "**What-if scenarios**" in approval and "min\\_score=85" in approval
    assert f"/voucher/runs/{out.parent.name}/{out.name}" in approval
    assert view.run_state(out).whatif["scenarios"][2]["scenario"] == "min_score=85"


def test_a_bad_scenario_fails_validate_before_anything_is_solved(dagbag, runs_root, own_publish_root):
    dr, states = run_round(dagbag, {"round": "small", "whatif": ["quota.nope=0.3"], **FAST})
    assert dr.state == "failed" and states["validate"] == "failed", states
    out = run_folder(runs_root, "small", dr.run_id)
    assert not (out / files.SCORES).exists() and not (out / files.SOLUTION).exists()
    note = view.failure_note(out)
    assert note.startswith("FAILED: scenario 'quota.nope=0.3': no quota named 'nope'")
    assert "Traceback" not in note
