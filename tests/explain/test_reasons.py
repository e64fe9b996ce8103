"""Why an application is not funded higher (allocation.explain.reasons), on rounds small enough
to check by hand: one GPU type at ₩1,000 an hour, no co-payment, levels 50% / 100%."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from allocation.explain.reasons import explain_items, limits_report, next_allowed_option
from allocation.model.problem import Solution
from allocation.solve.brute_force import brute_force
from tests.explain.tiny import item, solved, tiny_round

THREE = [{"application_id": "A", "score": 90, "hours": 10},
         {"application_id": "B", "score": 80, "hours": 10},
         {"application_id": "C", "score": 70, "hours": 10}]


def test_gpu_capacity_is_the_reason_when_hours_run_out():
    # 25 hours for 3 × 10 requested: A and B in full, C at half (5 h); C's next step (10 h) breaks H100
    model, *_ = tiny_round(THREE, capacity_hours=25)
    choice, ex = solved(model)
    c = item(model, "C")
    assert choice.tolist() == [1, 1, 0]
    assert ex.codes(c) == ("capacity_H100_exhausted",)
    assert ex.quotas(c) == ()
    assert ex.next_option[c] == 1
    assert ex.codes(item(model, "A")) == () and ex.next_option[item(model, "A")] == -1   # at the top


def test_budget_is_the_reason_when_money_runs_out():
    # ₩25,000 for 3 × ₩10,000 requests: the same cut, now by the budget
    model, *_ = tiny_round(THREE, budget=25_000)
    choice, ex = solved(model)
    assert choice.tolist() == [1, 1, 0]
    assert ex.codes(item(model, "C")) == ("budget_exhausted",)


def test_both_limits_are_named_when_both_bind():
    model, *_ = tiny_round(THREE, capacity_hours=25, budget=25_000)
    _, ex = solved(model)
    assert set(ex.codes(item(model, "C"))) == {"capacity_H100_exhausted", "budget_exhausted"}


def test_company_cap_is_the_reason_for_the_second_application_of_a_company():
    # A and B are one company (same business number), capped at ₩15,000: A in full, B at half
    rows = [{**THREE[0], "business_no": "123-45-67891"}, {**THREE[1], "business_no": "123-45-67891"},
            {**THREE[2], "business_no": "220-81-62517"}]
    model, *_ = tiny_round(rows, cap=15_000)
    choice, ex = solved(model)
    assert choice.tolist() == [1, 0, 1]
    assert ex.codes(item(model, "B")) == ("company_cap",)
    report = limits_report(model, _solution(model, choice), ex, {}, {}, None)
    assert report["company_caps"] == {"cap_krw": 15_000, "companies_blocked": 1,
                                      "business_nos": ["1234567891"]}


def test_an_application_above_the_company_cap_at_every_level_says_so():
    # ₩30,000 at half is above a ₩20,000 cap: never allowed, whatever the others get
    rows = [{"application_id": "A", "score": 90, "hours": 60}, THREE[1]]
    model, *_ = tiny_round(rows, cap=20_000)
    choice, ex = solved(model)
    a = item(model, "A")
    assert not model.problem.allowed[a].any() and choice[a] == -1
    assert ex.codes(a) == ("company_cap",)


def test_quota_is_the_reason_and_names_the_quota():
    # "jeju" needs half the awarded money in Jeju; the only Jeju application (J) asks ₩10,000, so
    # at most ₩10,000 may go elsewhere. Best: A in full beside J (90·10k + 61·10k beats A and B at
    # half beside J). B's next step (half, ₩5,000) would make Jeju 10k of 25k = 40 %: the quota.
    quota = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.5'
    rows = [{"application_id": "A", "score": 90, "hours": 10},
            {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "J", "score": 61, "hours": 10, "region": "Jeju"}]
    model, *_ = tiny_round(rows, quota=quota)
    choice, ex = solved(model)
    assert choice.tolist() == [1, -1, 1]
    b = item(model, "B")
    assert ex.codes(b) == ("quota",) and ex.quotas(b) == ("jeju",)


def test_below_the_optimum_nothing_blocks_and_the_reason_is_not_optimal():
    # a choice that leaves room: C unfunded though everything would still fit
    model, *_ = tiny_round(THREE)
    choice = np.array([1, 1, -1])
    ex = explain_items(model, choice)
    assert ex.codes(item(model, "C")) == ("not_optimal",)


def test_next_allowed_option_skips_levels_that_are_not_allowed():
    model, *_ = tiny_round(THREE)
    allowed = model.problem.allowed.copy()
    allowed[0, 0] = False   # A may only be funded in full
    problem = replace(model.problem, allowed=allowed)
    assert next_allowed_option(problem, np.array([-1, -1, 0])).tolist() == [1, 0, 1]
    assert next_allowed_option(problem, np.array([1, 1, 1])).tolist() == [-1, -1, -1]


def test_score_needed_by_hand():
    # Budget ₩25,000 binds (capacity does not): the LP prices the budget at the marginal
    # application's value per KRW. C (70) is the marginal one: price = 7000 centipoints per KRW.
    # A rejected application with a smaller score at the same usage needs score >= price / 100.
    rows = THREE + [{"application_id": "D", "score": 65, "hours": 10}]
    model, *_ = tiny_round(rows, budget=25_000)
    choice, ex = solved(model)
    assert choice.tolist() == [1, 1, 0, -1]
    d = item(model, "D")
    # D's next step is half (₩5,000): price 7000 × 5,000 / (5,000 awarded) = 7000 centipoints = 70.00
    assert math.isclose(ex.score_needed[d], 70.0)
    # the funded ones have no score_needed; C is partly funded and its own score is the price
    assert math.isnan(ex.score_needed[item(model, "A")])
    assert math.isnan(ex.score_needed[item(model, "C")])


def test_score_needed_is_enough_at_the_same_prices():
    """Raise D's score to score_needed (and a hair more, to break the tie): at the same prices
    the optimum now funds it."""
    rows = THREE + [{"application_id": "D", "score": 65, "hours": 10}]
    model, *_ = tiny_round(rows, budget=25_000)
    _, ex = solved(model)
    needed = ex.score_needed[item(model, "D")]
    bumped = [dict(r) for r in rows]
    bumped[3]["score"] = needed + 0.01
    model2, *_ = tiny_round(bumped, budget=25_000)
    _, choice2 = brute_force(model2.problem)
    assert choice2[item(model2, "D")] >= 0


def test_limits_report_counts_use_and_binding():
    model, *_ = tiny_round(THREE, capacity_hours=25)
    choice, ex = solved(model)
    report = limits_report(model, _solution(model, choice), ex, {}, {}, None)
    rows = {r["limit"]: r for r in report["rows"]}
    assert rows["gpu:H100"] == {"limit": "gpu:H100", "used": 25, "capacity": 25, "slack": 0,
                                "utilisation": 1.0, "binding": True, "lp_price": None}
    assert rows["budget"]["used"] == 25_000 and not rows["budget"]["binding"]


def _solution(model, choice):
    objective = model.problem.objective(choice)
    return Solution(choice=choice, status="optimal", objective=objective, bound=float(objective),
                    solver="brute force")
