"""The limits report (allocation.explain.reasons.limits_report) and the explanation's edges, every
field by hand on tiny rounds (one GPU type at ₩1,000 an hour, levels 50% / 100%, no co-payment).
Written to kill mutants of allocation/explain/reasons.py (bench/mutation.py)."""

from __future__ import annotations

import numpy as np

from allocation.explain.reasons import limits_report
from allocation.model.problem import Solution
from tests.explain.tiny import solved, tiny_round

JEJU = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.25'
ROWS = [{"application_id": "A", "score": 90, "hours": 11}, {"application_id": "B", "score": 80, "hours": 10},
        {"application_id": "J", "score": 61, "hours": 10, "region": "Jeju"},
        {"application_id": "K", "score": 62, "hours": 6, "region": "Jeju"}]


def _solution(model, choice):
    objective = model.problem.objective(choice)
    return Solution(choice=choice, status="optimal", objective=objective, bound=float(objective), solver="test")


def test_limits_report_every_field_by_hand():
    # 26 hours, ₩70,000, Jeju (J, K) at least 25 % of the awarded KRW. Best: A in full (11 h), B at
    # half (5 h), J in full (10 h): 26 h, ₩26,000, Jeju ₩10,000 = 38.46 % (A, B, J half would leave
    # Jeju at 5/26 < 25 %). Objective (90 x 11,000 + 80 x 5,000 + 61 x 10,000) x 100 = 200,000,000.
    model, *_ = tiny_round(ROWS, capacity_hours=26, budget=70_000, quota=JEJU)
    choice, ex = solved(model)
    assert choice.tolist() == [1, 0, 1, -1]
    solution = _solution(model, choice)
    assert solution.objective == 200_000_000
    report = limits_report(model, solution, ex, {"jeju": 19_100_000}, {"jeju": 0.25}, np.array([7.5, 0.0]))
    assert report == {
        "rows": [
            {"limit": "gpu:H100", "used": 26, "capacity": 26, "slack": 0, "utilisation": 1.0,
             "binding": True, "lp_price": 7.5},
            # 26,000 / 70,000 = 0.3714285... -> 0.371429
            {"limit": "budget", "used": 26_000, "capacity": 70_000, "slack": 44_000, "utilisation": 0.371429,
             "binding": False, "lp_price": 0.0},
        ],
        "quotas": [
            # 10,000 / 26,000 = 0.3846153... -> 0.384615; cost share 19.1M / (200M + 19.1M) = 0.0871748...
            {"quota": "jeju", "group_awarded_krw": 10_000, "awarded_krw": 26_000, "share": 0.384615,
             "min_share": 0.25, "binding": True, "objective_cost": 19_100_000,
             "objective_cost_share": 0.087175, "eligible_members": 2},
        ],
        "company_caps": {"cap_krw": 1_000_000_000, "companies_blocked": 0, "business_nos": []},
    }
    assert type(report["rows"][1]["lp_price"]) is float and type(report["rows"][0]["used"]) is int
    # a quota without a cost that blocks nobody does not bind
    report = limits_report(model, solution, ex, {"jeju": 0}, {"jeju": 0.25}, None)
    assert report["quotas"][0]["binding"] is False and report["quotas"][0]["objective_cost_share"] == 0.0
    assert [r["lp_price"] for r in report["rows"]] == [None, None]


def test_limits_report_of_a_round_nobody_can_be_funded_in():
    # No GPU-hours at all: nobody funded; a zero capacity has no utilisation, no awards no share.
    model, *_ = tiny_round(ROWS, capacity_hours=0, quota=JEJU)
    choice, ex = solved(model)
    assert choice.tolist() == [-1, -1, -1, -1]
    report = limits_report(model, _solution(model, choice), ex, {}, {"jeju": 0.25}, None)
    assert report == {
        "rows": [
            {"limit": "gpu:H100", "used": 0, "capacity": 0, "slack": 0, "utilisation": None,
             "binding": True, "lp_price": None},
            {"limit": "budget", "used": 0, "capacity": 1_000_000_000, "slack": 1_000_000_000,
             "utilisation": 0.0, "binding": False, "lp_price": None},
        ],
        "quotas": [
            {"quota": "jeju", "group_awarded_krw": 0, "awarded_krw": 0, "share": None, "min_share": 0.25,
             "binding": False, "objective_cost": None, "objective_cost_share": 0.0, "eligible_members": 2},
        ],
        "company_caps": {"cap_krw": 1_000_000_000, "companies_blocked": 0, "business_nos": []},
    }
