"""What the approving officer reads (allocation.rounds.approval)."""

import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation.errors import RoundError
from allocation.publish.version import result_fingerprint
from allocation.rounds.approval import (approval_markdown, approved_actor, record_request, record_response,
                                        with_fingerprint)


def test_approval_summary_reads_well():
    report = {"round_id": "2026-R1", "status": "optimal", "gap": 0.0,
              "summary": {"funded": 3, "applications": 5, "awarded_krw": 80, "budget_krw": 100,
                          "budget_used_share": 0.8, "gpu_utilisation": {"H100": 0.5},
                          "gpu_hours_awarded": {"H100": 10}, "gpu_hours_capacity": {"H100": 20},
                          "by_status": {"awarded": 3, "not_selected": 2}, "by_reason": {"budget_exhausted": 2}},
              "limits": {"quotas": [{"quota": "first_time", "share": 0.31, "min_share": 0.3}]}}
    md = approval_markdown(report, Path("/runs/x"))
    for text in ("**3** of 5", "80.0 %", "| H100 | 10 | 20 | 50.0 % |", "| first_time | 31.0 % | 30.0 % |",
                 "the programme budget ran out: 2", "awarded: 3", "gap 0.00 %"):
        assert text in md, text


def _report(funded, awarded):
    return {"round_id": "2026-R1", "status": "optimal", "gap": 0.0,
            "summary": {"funded": funded, "applications": 5, "awarded_krw": awarded, "budget_krw": 100,
                        "budget_used_share": awarded / 100, "by_status": {}, "by_reason": {}},
            "limits": {"quotas": []}}


def test_empty_result_warns_loudly_at_the_top():
    md = approval_markdown(_report(0, 0), Path("/runs/x"))
    first = md.splitlines()[0]
    assert "WARNING" in first and "FUNDS NOBODY" in first and "allow_empty" in first


def test_far_less_than_previous_version_warns_at_the_top():
    previous = {"label": "v1", "funded": 40, "awarded_krw": 90}
    md = approval_markdown(_report(10, 20), Path("/runs/x"), previous=previous)
    head = md.split("### Round")[0]
    assert "FAR LESS THAN THE PREVIOUS VERSION (v1)" in head and "10 against 40" in head
    assert "20 against 90" in head
    calm = approval_markdown(_report(38, 85), Path("/runs/x"), previous=previous)
    assert "WARNING" not in calm and calm.startswith("### Round")


def test_what_needs_attention_comes_before_the_totals_and_the_preview_is_linked():
    report = {**_report(60, 95), "warnings": ["H200 capacity is 99.9 % used"]}
    previous = {"label": "v2", "funded": 40, "awarded_krw": 90}
    md = approval_markdown(report, Path("/runs/x"), previous=previous,
                           preview_url="/voucher/runs/sample/manual__1", whatif_md="| scenario |\n|---|\n| base |")
    attention = md.index("**Needs attention**")
    assert attention < md.index("| Funded |") and md.index("H200 capacity") < md.index("| Funded |")
    assert "funded applications up 50 % against the previous version v2: 60 (was 40)" in md
    assert "[open the preview](/voucher/runs/sample/manual__1)" in md and "/runs/x" not in md
    assert md.index("**What-if scenarios**") < md.index("**Approve**")
    calm = approval_markdown(_report(38, 85), Path("/runs/x"), previous=previous)
    assert "Needs attention" not in calm and "`/runs/x`" in calm


# --- An approval binds to one result (allocation.rounds.approval.approved_actor) -----------

@pytest.fixture
def run_folder(solved_sample, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(solved_sample, out)
    return out


def _approve(out: Path, who: dict | None, option: str = "Approve", triggered_by: str | None = "alice"):
    record_request(out, ti_id="ti-1", triggered_by=triggered_by)
    return record_response(out, ti_id="ti-1", chosen_options=[option], responded_by=who,
                           responded_at="2026-02-01T10:00:00+00:00")


def test_approval_text_leads_with_the_fingerprint(run_folder):
    text = with_fingerprint("### Round x", result_fingerprint(run_folder))
    assert text.splitlines()[0] == f"**Result fingerprint (sha256):** `{result_fingerprint(run_folder)}`"


def test_task_marked_success_publishes_nothing_and_says_why(run_folder):
    with pytest.raises(RoundError, match="marked success by hand"):     # approve never ran
        approved_actor(run_folder, triggered_by="alice")
    record_request(run_folder, ti_id="ti-1", triggered_by="alice")
    with pytest.raises(RoundError, match="no recorded response"):        # asked, then marked success
        approved_actor(run_folder, triggered_by="alice")


def test_reject_or_nobody_never_publishes(run_folder):
    _approve(run_folder, {"id": "bob", "name": "bob"}, option="Reject")
    with pytest.raises(RoundError, match="not Approve"):
        approved_actor(run_folder, triggered_by="alice")
    _approve(run_folder, None)
    with pytest.raises(RoundError, match="names nobody"):
        approved_actor(run_folder, triggered_by="alice")


def test_a_result_changed_after_approval_is_refused(run_folder):
    _approve(run_folder, {"id": "bob", "name": "Bob Kim"})
    actor = approved_actor(run_folder, triggered_by="alice", dag_id="allocation_round", run_id="r1")
    assert actor["approved_by"] == "Bob Kim (Approve)" and actor["triggered_by"] == "alice"
    assert actor["approved_fingerprint"] == result_fingerprint(run_folder)
    awards = pl.read_parquet(run_folder / "awards.parquet")
    awards.head(awards.height - 1).write_parquet(run_folder / "awards.parquet")   # one award dropped
    with pytest.raises(RoundError, match="changed after it was approved"):
        approved_actor(run_folder, triggered_by="alice")


def test_four_eyes_the_trigger_cannot_approve_their_own_run(run_folder):
    _approve(run_folder, {"id": "alice", "name": "Alice Lee"})
    with pytest.raises(RoundError, match="four eyes"):
        approved_actor(run_folder, triggered_by="alice")
    actor = approved_actor(run_folder, triggered_by="alice", allow_self_approval=True)
    assert actor["four_eyes"].startswith("WAIVED: self-approved")
    other = approved_actor(run_folder, triggered_by="carol")
    assert other["four_eyes"] == "approver differs from the triggering user"
