"""The limits report (allocation.explain.reasons.limits_report) and the explanation's edges, every
field by hand on tiny rounds (one GPU type at ₩1,000 an hour, levels 50% / 100%, no co-payment).
Written to kill mutants of allocation/explain/reasons.py (bench/mutation.py)."""

from __future__ import annotations

import numpy as np
import pytest

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


def _codes(model, ex, application_id):
    i = int(np.flatnonzero(model.application_ids == application_id)[0])
    return ex.codes(i)


def test_limits_exactly_reached_by_the_next_step_are_not_reasons():
    # A and B are one company capped at ₩15,000; 14 hours. A in full (10 h, ₩10,000); B's half
    # (5 h, ₩5,000) would bring the company to exactly the cap (allowed) but need 15 hours of 14
    # (one too many): the hours are the only reason.
    rows = [{"application_id": "A", "score": 90, "hours": 10, "business_no": "123-45-67891"},
            {"application_id": "B", "score": 80, "hours": 10, "business_no": "123-45-67891"}]
    model, *_ = tiny_round(rows, capacity_hours=14, cap=15_000)
    choice, ex = solved(model)
    assert choice.tolist() == [1, -1]
    assert _codes(model, ex, "B") == ("capacity_H100_exhausted",)


def test_a_quota_met_exactly_after_the_next_step_is_not_a_reason():
    # Jeju at least half of the awarded KRW, 15 hours: J in full (₩10,000) and A at half (₩5,000).
    # A's full level and B's half would each leave Jeju at exactly 50 %: only the hours block them.
    quota = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.5'
    rows = [{"application_id": "A", "score": 90, "hours": 10}, {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "J", "score": 61, "hours": 10, "region": "Jeju"}]
    model, *_ = tiny_round(rows, capacity_hours=15, quota=quota)
    choice, ex = solved(model)
    assert choice.tolist() == [0, -1, 1]
    assert _codes(model, ex, "A") == ("capacity_H100_exhausted",)
    assert _codes(model, ex, "B") == ("capacity_H100_exhausted",)


def test_a_step_over_the_company_cap_on_its_own_names_only_what_it_breaks_on_its_own():
    # N's half (20 h, ₩20,000) is over the ₩15,000 cap by itself; its 20 hours fit the 20 hours on
    # offer exactly by themselves (not with A's 10) and, with A funded, it would leave the Busan
    # quota short: neither counts, since no award of anyone else could make room for it.
    quota = '[[quota]]\nname = "busan"\nregions_in = ["Busan"]\nmin_share = 0.5'
    rows = [{"application_id": "A", "score": 90, "hours": 10},
            {"application_id": "N", "score": 85, "hours": 40, "region": "Seoul"}]
    model, *_ = tiny_round(rows, capacity_hours=20, cap=15_000, quota=quota)
    choice, ex = solved(model)
    assert choice.tolist() == [1, -1]
    assert _codes(model, ex, "N") == ("company_cap",) and bool(ex.forbidden[1])
    assert ex.quotas(1) == ()


def test_a_step_over_the_hours_on_its_own_names_only_the_hours():
    # ₩500 an hour. M (same company as A, cap ₩10,000): its half is 20 hours of 15 (over on its
    # own) and ₩10,000 = the cap exactly on its own (over it only together with A's ₩5,000).
    rows = [{"application_id": "A", "score": 90, "hours": 10, "business_no": "123-45-67891"},
            {"application_id": "M", "score": 85, "hours": 40, "business_no": "123-45-67891"}]
    model, *_ = tiny_round(rows, capacity_hours=15, cap=10_000, price=500)
    choice, ex = solved(model)
    assert choice.tolist() == [1, -1]
    assert _codes(model, ex, "M") == ("capacity_H100_exhausted",)


def test_the_next_step_skips_levels_without_money():
    # 1 hour requested: the 50 % level grants 0 hours (₩0), the full level ₩1,000 is over the ₩500
    # cap on its own: the step explained is the full level.
    model, *_ = tiny_round([{"application_id": "T", "score": 90, "hours": 1}], cap=500)
    choice, ex = solved(model)
    assert choice.tolist() == [-1]
    assert ex.next_option.tolist() == [1] and ex.codes(0) == ("company_cap",)
    # ₩1 an hour and no hours on offer: the full level (₩1) is the step, over the hours on its own
    model, *_ = tiny_round([{"application_id": "T", "score": 90, "hours": 1}], capacity_hours=0, price=1)
    choice, ex = solved(model)
    assert ex.next_option.tolist() == [1] and ex.codes(0) == ("capacity_H100_exhausted",)


def test_no_score_would_suffice_for_an_application_that_can_never_be_funded():
    # 10 hours go to A; B (80) waits with a score needed; N's every level is over the ₩15,000 cap
    # on its own, so no score would do: NaN, whatever the clearing prices.
    rows = [{"application_id": "A", "score": 90, "hours": 10}, {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "N", "score": 61, "hours": 40}]
    model, *_ = tiny_round(rows, capacity_hours=10, cap=15_000)
    choice, ex = solved(model)
    assert choice.tolist() == [1, -1, -1]
    assert ex.score_needed[1] == 90.0
    assert np.isnan(ex.score_needed[2]) and np.isnan(ex.score_needed[0])


def test_a_quota_member_funded_at_the_lowest_level_counts_with_that_level():
    # 15 hours: A (90) in full (₩10,000), J (Jeju, 80) at half (₩5,000): Jeju has ₩5,000 of ₩15,000
    quota = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.1'
    rows = [{"application_id": "A", "score": 90, "hours": 10},
            {"application_id": "J", "score": 80, "hours": 10, "region": "Jeju"}]
    model, *_ = tiny_round(rows, capacity_hours=15, quota=quota)
    choice, ex = solved(model)
    assert choice.tolist() == [1, 0]
    q = limits_report(model, _solution(model, choice), ex, {}, {"jeju": 0.1}, None)["quotas"][0]
    assert (q["group_awarded_krw"], q["awarded_krw"], q["share"]) == (5_000, 15_000, 0.333333)


def test_score_needed_counts_the_quota_price():
    # Jeju (J, K) at least half of the awarded KRW, 15 hours. Optimum: K in full (10 h), A at half
    # (5 h). Both are in the LP basis, so with y the price of an H100 hour and q the quota's price
    # (per KRW of cover), their reduced costs are 0:
    #   A half: 9,000 x 5,000 = 5 y + 5,000 q     (cover of a non-member: -5,000)
    #   K full: 6,200 x 10,000 = 10 y - 10,000 q  (cover of a member: +10,000)
    # -> y = 7,600,000 and q = 1,400. B's half (non-member): (5 y + 5,000 q) / 5,000 = 9,000
    # centipoints per KRW = 90.00; J's half (member): (5 y - 5,000 q) / 5,000 = 62.00.
    from allocation.explain.reasons import explain_items
    from allocation.solve.lp import solve_lp_glop

    quota = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.5'
    rows = [{"application_id": "A", "score": 90, "hours": 10}, {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "J", "score": 61, "hours": 10, "region": "Jeju"},
            {"application_id": "K", "score": 62, "hours": 10, "region": "Jeju"}]
    model, *_ = tiny_round(rows, capacity_hours=15, quota=quota)
    choice, ex = solved(model)
    assert choice.tolist() == [0, -1, -1, 1]
    lp = solve_lp_glop(model.problem)
    assert lp.row_duals.tolist() == pytest.approx([7_600_000.0, 0.0]) and lp.cover_duals.tolist() == pytest.approx([1_400.0])
    assert np.isnan(ex.score_needed[[0, 3]]).all()
    assert ex.score_needed[[1, 2]].tolist() == [90.0, 62.0]
    # without the quota's price only the hours count: 5 y / 5,000 = 76.00 (B's 80 suffices then)
    ex = explain_items(model, choice, lp.row_duals, None)
    assert np.isnan(ex.score_needed[1]) and ex.score_needed[2] == 76.0
