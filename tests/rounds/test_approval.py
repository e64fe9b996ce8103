"""What the approving officer reads (allocation.rounds.approval)."""

from pathlib import Path

from allocation.rounds.approval import approval_markdown


def test_approval_summary_reads_well():
    report = {"round_id": "2026-R1", "status": "optimal", "gap": 0.0,
              "summary": {"funded": 3, "applications": 5, "awarded_krw": 80, "budget_krw": 100,
                          "budget_used_share": 0.8, "gpu_utilisation": {"H100": 0.5},
                          "gpu_hours_awarded": {"H100": 10}, "gpu_hours_capacity": {"H100": 20},
                          "by_status": {"awarded": 3, "not_selected": 2}, "by_reason": {"budget_exhausted": 2}},
              "limits": {"quotas": [{"quota": "first_time", "share": 0.31, "min_share": 0.3}]}}
    md = approval_markdown(report, Path("/runs/x"))
    for text in ("**3** of 5", "80.0 %", "| H100 | 10 | 20 | 50.0 % |", "| first_time | 31.0 % | 30.0 % |",
                 "budget_exhausted=2", "gap 0.00 %"):
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
