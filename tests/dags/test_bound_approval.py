"""Approval binds to one result (issue 13): publish finds the run folder from the run's own id,
and publishes only with a recorded Approve of exactly that result by someone other than the
user who triggered the run. dag.test() triggers as the user "dag_test"."""

from __future__ import annotations

import json

import pytest

from tests.dags.dagrun import FAST, Officer, run_folder, run_round

pytestmark = pytest.mark.usefixtures("airflow_db")


def _published(root) -> list:
    return sorted(root.rglob("manifest.json")) if root.exists() else []


def test_approve_marked_success_by_hand_publishes_nothing(dagbag, runs_root, own_publish_root):
    dr, states = run_round(dagbag, {"round": "small", **FAST}, mark_success_pattern="^approve$")
    assert states["approve"] == "success" and states["publish_prepare"] == "failed", states
    assert states.get("publish") in (None, "upstream_failed"), states   # never ran
    assert _published(own_publish_root) == []
    out = run_folder(runs_root, "small", dr.run_id)
    assert not (out / "approval.json").exists()


def test_the_trigger_cannot_approve_their_own_run(dagbag, runs_root, own_publish_root):
    officer = Officer("Approve", username="dag_test")      # the same person who triggered
    dr, states = run_round(dagbag, {"round": "small", **FAST}, officer)
    assert officer.error is None
    assert states["approve"] == "success" and states["publish_prepare"] == "failed", states
    assert states.get("publish") in (None, "upstream_failed"), states   # never ran
    assert _published(own_publish_root) == []
    out = run_folder(runs_root, "small", dr.run_id)
    record = json.loads((out / "approval.json").read_text())
    assert record["responded_by"]["id"] == "dag_test" and record["chosen_options"] == ["Approve"]


def test_approval_text_leads_with_the_fingerprint_and_is_recorded(dagbag, runs_root, own_publish_root):
    from allocation.publish.audit import read as read_audit
    from allocation.publish.audit import read_officer
    from allocation.publish.version import result_fingerprint

    officer = Officer("Approve")
    dr, states = run_round(dagbag, {"round": "small", **FAST}, officer)
    assert officer.error is None and dr.state == "success", states
    out = run_folder(runs_root, "small", dr.run_id)
    fingerprint = result_fingerprint(out)
    assert officer.body.splitlines()[0] == f"**Result fingerprint (sha256):** `{fingerprint}`"
    manifest = json.loads(next(iter(_published(own_publish_root))).read_text())
    assert manifest["result_fingerprint"] == fingerprint
    entry = read_audit(own_publish_root, manifest["round_id"])[-1]
    assert entry["roles"] == {"triggered": "officer", "approved": "approver"}   # the public trail: roles
    assert entry["approved_fingerprint"] == fingerprint
    assert entry["four_eyes"] == "approver differs from the triggering user"
    detail = read_officer(own_publish_root, manifest["round_id"])[-1]         # the officers': names
    assert detail["approved_by"] == "officer (Approve)" and detail["triggered_by"] == "dag_test"
    assert detail["run_id"] == dr.run_id and detail["out_dir"] == str(out.resolve())
    # nothing served names the triggering account, the run or a server path
    for path in (p for p in own_publish_root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in ("dag_test", dr.run_id, str(runs_root), str(own_publish_root)):
            assert needle.encode() not in data, (path, needle)


def test_approvers_are_named_people(dagbag, monkeypatch):
    import voucher_approval

    assert type(dagbag.dags["allocation_round"].get_task("approve")).__name__ == "BoundApproval"
    assert type(dagbag.dags["round_refill"].get_task("approve")).__name__ == "BoundApproval"
    monkeypatch.setenv("VOUCHER_APPROVERS", "kim, lee:Lee Jiwoo ,")
    assert voucher_approval.assigned_approvers() == [{"id": "kim", "name": "kim"},
                                                     {"id": "lee", "name": "Lee Jiwoo"}]
    approve = voucher_approval.BoundApproval(task_id="approve_probe", defaults="Reject")
    assert approve.assigned_users == [{"id": "kim", "name": "kim"}, {"id": "lee", "name": "Lee Jiwoo"}]
    monkeypatch.delenv("VOUCHER_APPROVERS")
    assert voucher_approval.assigned_approvers() is None
    monkeypatch.setenv("VOUCHER_ALLOW_SELF_APPROVAL", "1")
    assert voucher_approval.allow_self_approval()


def test_demo_publishes_into_its_own_root_marked_demo(dagbag, runs_root, own_publish_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VOUCHER_DEMO", "1")
    monkeypatch.setenv("VOUCHER_DEMO_PUBLISH_ROOT", str(tmp_path / "demo-published"))
    dr, states = run_round(dagbag, {"round": "small", **FAST}, mark_success_pattern="^approve$")
    assert dr.state == "success" and states["publish"] == "success", states
    assert _published(own_publish_root) == []                       # never the official root
    manifests = _published(tmp_path / "demo-published")
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["demo"] is True
    for page in manifests[0].parent.glob("*.html"):
        assert "<strong>DEMO</strong>" in page.read_text(encoding="utf-8"), page.name
