"""What the served publish root shows: roles, not staff account names; no server paths."""

from __future__ import annotations

import json
from pathlib import Path

from allocation.publish.index import refresh_index
from allocation.publish.report import timeline_rows


def test_timeline_names_roles_never_staff_accounts():
    entries = [
        {"version": 1, "via": "airflow", "triggered_by": "kim.officer", "approved_by": "lee.approver (Approve)",
         "four_eyes": "approver differs from the triggering user", "published_at": "2026-03-01T00:00:00+00:00"},
        {"version": 2, "via": "airflow", "triggered_by": "park.solo", "approved_by": "park.solo (Approve)",
         "four_eyes": "WAIVED: self-approved (one-person office allowed by VOUCHER_ALLOW_SELF_APPROVAL)"},
        {"version": 3, "via": "cli", "triggered_by": "cli", "approved_by": "cli"},
    ]
    rows = timeline_rows(entries)
    text = json.dumps(rows, ensure_ascii=False)
    for name in ("kim.officer", "lee.approver", "park.solo"):
        assert name not in text
    assert [r["approved_by"] for r in rows] == ["승인권자 / approving officer",
                                                "승인권자 (본인 승인) / approver (self-approved)",
                                                "명령줄 / command line"]
    assert rows[0]["triggered_by"] == "담당자 / programme officer"


def test_index_lists_relative_paths_only(published_sample):
    root = Path(published_sample).parents[1]
    index = refresh_index(root)
    text = (root / "index.json").read_text(encoding="utf-8")
    assert str(root) not in text and "/" + root.name not in text
    entry = next(iter(index["rounds"].values()))
    for key in ("latest_path", "results_page", "award_list", "applicant_lookup"):
        assert not entry[key].startswith("/") and (root / entry[key]).exists(), key
