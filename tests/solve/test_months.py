"""GPU capacity by month on the large-round path: options of equal value (start months) are
moved between before anyone is dropped, and tiny month rounds reach the brute-force optimum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.config import parse_config
from allocation.model.build import build_model
from allocation.solve import lp_guided
from allocation.solve.brute_force import brute_force
from tests.solve.builders import random_hard_problem
from allocation.solve.cpsat import solve_cpsat
from tests.model.test_months import _config, _frames

MONTHS = ("2026-11", "2026-12", "2027-01")


def _model(hours: list[int], capacity: list[int], scores: list[int], durations: list[int]):
    config = parse_config("""
[round]
id = "M-1"
budget_krw = 1000000000
copay_share = 0.0
[award]
levels = [0.5, 1.0]
max_krw_per_company = 1000000000
min_score = 0
[scoring]
weights = { technical = 1.0 }
""")
    n, months = len(hours), MONTHS[:len(capacity)]
    business = ["123-45-67891", "220-81-62517", "124-81-00998", "105-87-00011"]
    apps = pl.DataFrame({"application_id": [f"A{i}" for i in range(n)], "business_no": business[:n],
                         "region": ["Busan"] * n, "prior_awards": [0] * n, "company_size": ["small"] * n,
                         "eligible": [True] * n, "duration_months": durations})
    requests = pl.DataFrame({"application_id": [f"A{i}" for i in range(n)], "gpu_type": ["H100"] * n,
                             "gpu_hours": hours})
    cap = pl.DataFrame({"gpu_type": ["H100"] * len(months), "gpu_hours": capacity,
                        "krw_per_gpu_hour": [1000] * len(months), "month": list(months)})
    scores = pl.DataFrame({"application_id": [f"A{i}" for i in range(n)], "score": [s / 100 for s in scores]})
    return build_model(apps, requests, cap, scores, config)


def test_items_piled_into_one_month_are_moved_not_dropped():
    model = _model([10, 10], [10, 10], [8000, 7000], [1, 1])
    p = model.problem
    assert p.equal_value_moves
    S = lp_guided.build_structure(p)
    full_first = 1 * 2 + 0          # level 1.0, start 2026-11 (o = level * M + start)
    piled = np.array([full_first, full_first])
    red = np.where(p.allowed, p.value.astype(float), -np.inf)
    moved = lp_guided.move_before_drop(p, S, piled, red)
    assert not p.violations(moved)
    assert sorted(model.option_start[moved].tolist()) == [0, 1]    # one moved to 2026-12, none dropped
    assert (model.option_level[moved] == 1).all()
    assert p.objective(moved) == p.objective(piled)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_tiny_month_rounds_lp_guided_reaches_the_brute_force_optimum(data):
    n = data.draw(st.integers(1, 4))
    m = data.draw(st.integers(1, 3))
    model = _model(data.draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)),
                   data.draw(st.lists(st.integers(0, 40), min_size=m, max_size=m)),
                   data.draw(st.lists(st.integers(6000, 9999), min_size=n, max_size=n)),
                   data.draw(st.lists(st.integers(1, m), min_size=n, max_size=n)))
    best, _ = brute_force(model.problem)
    solution = lp_guided.solve_lp_guided(model.problem, time_limit_s=5, workers=1, seed=0)
    assert not model.problem.violations(solution.choice)
    assert solution.objective == best and solution.bound >= best


def _two_type_model(data):
    """A random small month round with two GPU types (not every application uses both)."""
    n = data.draw(st.integers(1, 6))
    months = ("2026-11", "2026-12", "2027-01", "2027-02")[:data.draw(st.integers(1, 4))]
    M = len(months)
    apps = []
    for i in range(n):
        d = data.draw(st.integers(1, M))
        start = data.draw(st.integers(0, M - d))
        hours = {g: data.draw(st.integers(1, 60)) for g in ("H100", "A100") if data.draw(st.booleans()) or g == "H100"}
        apps.append({"duration": d, "earliest": months[start], "latest": None, "hours": hours,
                     "score": data.draw(st.integers(6000, 9999)), "company": i % 3})
    capacity = {(g, m): data.draw(st.integers(0, 80)) for g in ("H100", "A100") for m in months}
    return build_model(*_frames(apps, capacity, {"H100": 1000, "A100": 700}),
                       _config(data.draw(st.integers(10**4, 10**6)), 10**6))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_factored_month_dual_equals_the_dense_one(data):
    """The month structure prices every option from its factors (MonthPricing): f(lam), the
    reduced values and the Lagrangian choice equal those of the dense structure (the same problem
    with the weight array materialised) at any prices."""
    model = _two_type_model(data)
    p = model.problem
    dense = dataclasses.replace(p, weight=np.asarray(p.weight))
    Sm, Sd = lp_guided.build_structure(p), lp_guided.build_structure(dense)
    assert Sm.monthly and not Sd.monthly
    assert np.array_equal(Sm.rscale, Sd.rscale)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    for lam in (np.zeros(Sm.D), rng.random(Sm.D), rng.random(Sm.D) * (rng.random(Sm.D) < 0.5)):
        fm, gm, cm = lp_guided.evaluate(Sm, lam)
        fd, gd, cd = lp_guided.evaluate(Sd, lam)
        assert abs(fm - fd) <= 1e-9 * max(1.0, abs(fd))
        assert np.allclose(gm, gd, rtol=1e-9, atol=1e-9)
        rm, rd = lp_guided.item_reduced(Sm, lam), lp_guided.item_reduced(Sd, lam)
        assert np.array_equal(np.isfinite(rm), np.isfinite(rd))
        assert np.allclose(rm[np.isfinite(rm)], rd[np.isfinite(rd)], rtol=1e-9, atol=1e-9)
        # the same choice unless two options tie within float noise
        same = np.array_equal(lp_guided.decode(Sm, cm), lp_guided.decode(Sd, cd))
        assert same or np.isclose(fm, fd)
    choice = lp_guided.decode(Sd, cd)
    for st_ in (lp_guided._State(p, Sm, choice), lp_guided._State(dense, Sd, choice)):
        assert np.array_equal(st_.used, lp_guided._State(dense, Sd, choice).used)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_month_dual_parts_add_up_and_each_cut_is_valid(data):
    """The dual models a month round's f part by part (evaluate_cuts): the parts add up to f and
    the subgradient; every part's usage is the exact usage of its items' chosen options; and each
    part's cut at lam is below that part at any other prices (a valid cut of a convex part),
    which is what lets the master trust a cut per part. Minimising by parts ends at least as low
    as f at the start and gives a valid bound (>= CP-SAT's proven optimum)."""
    model = _two_type_model(data)
    p = model.problem
    S = lp_guided.build_structure(p)
    P = S.pricing
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    lams = [np.zeros(S.D), rng.random(S.D), rng.random(S.D) * (rng.random(S.D) < 0.5), rng.random(S.D) * 3]
    for lam in lams:
        f, g, chosen, fg, gg = lp_guided.evaluate_cuts(S, lam)
        f1, g1, _ = lp_guided.evaluate(S, lam)
        assert fg.shape == (P.n_groups + 1,) and gg.shape == (P.n_groups + 1, S.D)
        assert f == f1 and np.array_equal(g, g1)
        assert abs(fg.sum() - f) <= 1e-9 * max(1.0, abs(f))
        assert np.allclose(gg.sum(axis=0), g, rtol=1e-9, atol=1e-9)
        # the single items' part usage, exactly: group by group from the problem's own rows
        pos = np.flatnonzero(np.isin(P.order, chosen.items))
        for k in range(P.n_groups):
            mine = np.isin(chosen.items, P.order[pos[P.group[pos] == k]])
            exact = (S.A.total(chosen.items[mine], chosen.opts[mine]) if mine.any()
                     else np.zeros(S.D, np.int64))
            want = -exact / S.rscale + (S.b_dual / S.rscale if k == 0 else 0)
            assert np.allclose(gg[k], want, rtol=1e-12, atol=1e-12)
        for other in lams:
            _, _, _, fo, _ = lp_guided.evaluate_cuts(S, other)
            for k in range(len(fg)):
                assert fo[k] >= fg[k] + gg[k] @ (other - lam) - 1e-9 * max(1.0, abs(fo[k]))
    lam0, _ = lp_guided.warm_start(p, S)
    result = lp_guided.minimise_dual(S, lam0)
    start = lp_guided.evaluate(S, np.maximum(lam0, 0))[0] * S.vscale
    assert result.bound <= start + 1e-6 * max(1.0, abs(start))
    exact = solve_cpsat(p, time_limit_s=10, workers=1, seed=0)
    if exact.status == "optimal":
        assert result.bound >= exact.objective - 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_top_up_filter_by_level_gives_the_same_candidates(data):
    """The top-up's filter of a month round tests value, company weight and budget per level
    first (they do not depend on the start): the candidates are exactly those of the filter on
    every (item, option), for any allocation and any state of the limits."""
    model = _two_type_model(data)
    p = model.problem
    S = lp_guided.build_structure(p)
    assert S.pricing.level_value is not None and S.pricing.level_cw is not None
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    choice = np.full(p.n_items, -1, np.int64)
    for i in range(p.n_items):
        opts = np.flatnonzero(p.allowed[i])
        if len(opts) and rng.random() < 0.6:
            choice[i] = rng.choice(opts)
    state = lp_guided._State(p, S, choice)
    # limits from roomy to overfull: the filter must agree whatever the residuals are
    state.used = state.used + rng.integers(-50, 50, state.used.shape) * (rng.random(state.used.shape) < 0.5)
    priority = lp_guided.item_reduced(S, rng.random(S.D))
    rows = np.flatnonzero(rng.random(p.n_items) < 0.8)
    got = lp_guided._month_prefilter(p, S, state, priority, rows)
    saved = S.pricing.level_value
    S.pricing.level_value = None        # the filter on every (item, option)
    try:
        want = lp_guided._month_prefilter(p, S, state, priority, rows)
    finally:
        S.pricing.level_value = saved
    assert sorted(zip(got[0].tolist(), got[1].tolist())) == sorted(zip(want[0].tolist(), want[1].tolist()))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_month_pricing_in_chunks_and_threads_gives_the_same_numbers(monkeypatch, data):
    """The dual prices a month round's items in chunks, two chunks at a time with two workers:
    the best options and values are identical for one and two threads, and equal (to float
    noise) the reduced values priced in one piece."""
    model = _two_type_model(data)
    S = lp_guided.build_structure(model.problem)
    P = S.pricing
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    mu = rng.random(S.D) * (rng.random(S.D) < 0.7) / S.rscale
    whole = P.reduced(mu)
    monkeypatch.setattr(lp_guided, "PRICING_CHUNK_ITEMS", data.draw(st.integers(1, 3)))
    assert len(P._chunks()) > 1 or len(P.order) <= 3
    P.threads = 1
    v1, o1 = P.best(mu)
    P.threads = 2
    v2, o2 = P.best(mu)
    assert np.array_equal(v1, v2) and np.array_equal(o1, o2)
    assert np.allclose(P.reduced(mu), whole, rtol=1e-12, atol=1e-12, equal_nan=True)
    finite = np.isfinite(v1)
    n = len(P.order)
    assert np.allclose(v1[finite], whole[np.arange(n), o1][finite], rtol=1e-12, atol=1e-12)
    assert np.allclose(v1[finite], np.max(whole, axis=1)[finite], rtol=1e-12, atol=1e-12)


def test_tied_items_are_spread_over_their_starts_not_piled():
    # three 1-month projects of 10 h, 10 h free in each of three months: at prices 0 every start
    # ties; the first start for all would put 30 h into 2026-11
    model = _model([10, 10, 10], [10, 10, 10], [8000, 7000, 6000], [1, 1, 1])
    p = model.problem
    S = lp_guided.build_structure(p)
    red = lp_guided.item_reduced(S, np.zeros(S.D))
    full_first = 1 * 3 + 0
    piled = np.array([full_first] * 3)
    assert p.violations(piled)
    spread = lp_guided.spread_ties(p, S, piled, red)
    assert not p.violations(spread)
    assert sorted(model.option_start[spread].tolist()) == [0, 1, 2]
    assert p.objective(spread) == p.objective(piled)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_swap_top_up_keeps_every_limit_and_never_lowers_the_objective(data):
    model = _two_type_model(data)
    p = model.problem
    S = lp_guided.build_structure(p)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    red = lp_guided.item_reduced(S, rng.random(S.D) * 0.5)
    choice = lp_guided.decode(S, lp_guided.evaluate(S, rng.random(S.D) * 0.5)[2])
    choice = lp_guided.top_up(p, S, lp_guided.repair(p, S, choice, red), red)
    assert not p.violations(choice)
    swapped = lp_guided.swap_top_up(p, S, choice, red)
    assert not p.violations(swapped)
    assert p.objective(swapped) >= p.objective(choice)


def test_swap_gives_the_budget_of_a_filler_to_a_better_project_in_free_months():
    # budget 10,000 KRW: A1 (score 60, 10 h in 2026-11) holds it all; A0 (score 90, 10 h) does
    # not fit 2026-11 beside A1 but fits 2026-12; the swap funds A0 in 2026-12 and drops A1
    model = _model([10, 10], [10, 10], [9000, 6000], [1, 1])
    p = dataclasses.replace(model.problem, capacity=np.array([10, 10, 10_000], np.int64))
    S = lp_guided.build_structure(p)
    M = 2
    choice = np.array([-1, 1 * M + 0])          # A1 at the full level in 2026-11
    assert not p.violations(choice)
    red = lp_guided.item_reduced(S, np.zeros(S.D))
    swapped = lp_guided.swap_top_up(p, S, choice, red)
    assert swapped[1] == -1 and model.option_level[swapped[0]] == 1
    assert p.objective(swapped) > p.objective(choice) and not p.violations(swapped)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_shift_to_slack_keeps_every_limit_and_the_objective(data):
    model = _two_type_model(data)
    p = model.problem
    S = lp_guided.build_structure(p)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    red = lp_guided.item_reduced(S, rng.random(S.D) * 0.5)
    choice = lp_guided.decode(S, lp_guided.evaluate(S, rng.random(S.D) * 0.5)[2])
    choice = lp_guided.top_up(p, S, lp_guided.repair(p, S, choice, red), red)
    shifted = lp_guided.shift_to_slack(p, S, choice, red, tight=data.draw(st.sampled_from([1e-3, 0.5])))
    assert not p.violations(shifted)
    assert p.objective(shifted) == p.objective(choice)
    # only starts move: every item keeps its level (or stays unfunded)
    assert np.array_equal(model.level_of(shifted), model.level_of(choice))


def test_shift_to_slack_moves_a_project_out_of_a_full_month():
    # A0 (1 month, 10 h) sits in the full 2026-12; 2026-11 has room: it moves there
    model = _model([10], [10, 10], [8000], [1])
    p = model.problem
    S = lp_guided.build_structure(p)
    choice = np.array([1 * 2 + 1])
    red = lp_guided.item_reduced(S, np.zeros(S.D))
    shifted = lp_guided.shift_to_slack(p, S, choice, red)
    assert model.option_start[shifted].tolist() == [0] and model.option_level[shifted].tolist() == [1]


def _four_month_round():
    """30 applications over 4 months and two GPU types, three companies (seed 3)."""
    rng = np.random.default_rng(3)
    months = ("2026-11", "2026-12", "2027-01", "2027-02")
    apps = []
    for i in range(30):
        d = int(rng.integers(1, 4))
        apps.append({"duration": d, "earliest": months[int(rng.integers(0, 5 - d))], "latest": None,
                     "hours": {"H100": int(rng.integers(10, 60)), "A100": int(rng.integers(5, 40))},
                     "score": int(rng.integers(6000, 9999)), "company": i % 3})
    capacity = {(g, m): int(rng.integers(60, 160)) for g in ("H100", "A100") for m in months}
    return build_model(*_frames(apps, capacity, {"H100": 1000, "A100": 700}), _config(900_000, 600_000)).problem


def test_month_polish_runs_its_two_cores_side_by_side_with_two_workers():
    """A month round larger than the polish core: with two workers its two cores (k and 2k items)
    are solved side by side in one round, with one worker one after the other; either way every
    limit holds, the polish never lowers the objective, and a second run gives the same answer."""
    p = _four_month_round()
    d = lp_guided.dual_prices(p)
    S = d.structure
    red = lp_guided.item_reduced(S, d.dual.lam)
    start = lp_guided.top_up(p, S, lp_guided.repair(p, S, lp_guided.decode(S, d.dual.chosen), red), red)
    assert not p.violations(start)
    rounds = {}
    for workers in (1, 2):
        out, info = lp_guided.polish(p, S, start, red, core_items=4, dtime=5.0, workers=workers, seed=0)
        assert not p.violations(out)
        assert p.objective(out) >= p.objective(start)
        rounds[workers] = [s["round"] for s in info["steps"]]
        again, _ = lp_guided.polish(p, S, start, red, core_items=4, dtime=5.0, workers=workers, seed=0)
        assert np.array_equal(again, out)
    assert rounds == {1: [0, 1], 2: [0, 0]}


def test_month_target_objective_is_the_least_objective_within_the_gap():
    for bound in (1.7316896202220388e15, 1.760908157495e16, 1.759077e17, 12345.5, 1e6):
        for gap in (1e-5, 1e-3):
            z = lp_guided.month_target_objective(bound, gap)
            assert (bound - z) / bound <= gap < (bound - (z - 1)) / bound
    assert lp_guided.month_target_objective(0.0) is None
    assert lp_guided.month_target_objective(float("inf")) is None


def test_month_polish_stops_at_its_target_and_changes_nothing_when_it_is_out_of_reach():
    """The large month polish with a target: from an empty allocation, a target above the bound
    gives exactly the polish without one; a target the allocation already reaches runs no core;
    one in between ends at an allocation that reaches it, within every limit, with no more
    deterministic time than the full polish."""
    p = _four_month_round()
    d = lp_guided.dual_prices(p)
    S = d.structure
    red = lp_guided.item_reduced(S, d.dual.lam)
    empty = np.full(p.n_items, -1, np.int64)

    def run(target):
        return lp_guided.polish(p, S, empty, red, core_items=4, dtime=5.0, workers=2, seed=0,
                                target_objective=target)

    free, free_info = run(None)
    assert p.objective(free) > 0 and free_info["steps"]
    never, never_info = run(int(d.dual.bound) + 10)
    assert np.array_equal(never, free) and never_info["steps"] == free_info["steps"]
    assert not never_info.get("stopped_at_target")
    at_start, start_info = run(0)
    assert np.array_equal(at_start, empty) and start_info["steps"] == []
    assert start_info["stopped_at_target"]
    target = p.objective(free) // 2
    half, half_info = run(target)
    assert not p.violations(half)
    assert p.objective(half) >= target and half_info["stopped_at_target"]
    assert half_info["polish_deterministic_time"] <= free_info["polish_deterministic_time"]


def test_a_month_round_within_its_target_gap_is_not_polished(monkeypatch):
    """solve_lp_guided on a large month round (core smaller than the round): with a tolerance
    every allocation meets, no core is solved and solution.json will say why it stopped; with
    none the polish runs its rounds as before."""
    p = _four_month_round()
    monkeypatch.setattr(lp_guided, "MONTH_POLISH_TARGET_GAP", 1.0)
    loose = lp_guided.solve_lp_guided(p, time_limit_s=5, workers=2, seed=0, polish_core=4)
    assert loose.details["stopped_by"] == "gap_target"
    assert loose.details["polish"]["steps"] == []
    assert loose.objective == loose.details["objective_before_polish"]
    monkeypatch.setattr(lp_guided, "MONTH_POLISH_TARGET_GAP", 0.0)
    tight = lp_guided.solve_lp_guided(p, time_limit_s=5, workers=2, seed=0, polish_core=4)
    assert tight.details["stopped_by"] != "gap_target"
    # out of reach: every round of start moves runs (two seeds each); the polish does not
    moves = tight.details["polish"]["start_moves"]["steps"]
    assert [st["round"] for st in moves] == [r for r in range(lp_guided.MONTH_MOVE_ROUNDS) for _ in (0, 1)]
    assert tight.details["polish"]["steps"] == []
    assert tight.details["polish"]["exchange"]["calls"] >= 1
    assert not p.violations(tight.choice) and tight.objective >= loose.objective


def test_start_moves_shift_a_funded_project_outside_the_core_to_make_room():
    """move_starts: A0 (1 month, 10 h) sits in the middle month of three with 10 h each; A1
    (2 months, 10 h a month) needs two months in a row, and every pair holds the middle one.
    CP-SAT on a core of A1 alone cannot fund it; moving A0 to an outer month (same level,
    must stay funded) can, and the result keeps every limit."""
    model = _model([10, 20], [10, 10, 10], [9000, 8000], [1, 2])
    p = model.problem
    S = lp_guided.build_structure(p)
    M = 3
    choice = np.array([1 * M + 1, -1])                  # A0 at the full level in the middle month
    assert not p.violations(choice)
    red = np.zeros((p.n_items, p.n_options))
    red[0], red[1] = 1.0, 1e-3                          # A1 is the item nearest zero: the core
    alone, _ = lp_guided._solve_core(p, choice, np.array([1]), dtime=5.0, seed=0)
    assert alone[1] == -1                               # the core alone cannot fund A1
    full = np.array([1 * M + 0, 1 * M + 1])             # A0 in the first month, A1 in the other two
    assert not p.violations(full)
    lam = np.ones(S.D)
    moved, info = lp_guided.move_starts(p, S, choice, red, lam, float(p.objective(full)) * 2,
                                        core_items=1, dtime=5.0, seeds=[0, 1], rounds=2,
                                        target_objective=p.objective(full))
    assert not p.violations(moved)
    assert model.option_level[moved].tolist() == [1, 1]
    assert model.option_start[moved[0]] != 1
    assert info["movers"] == 1 and info["stopped_at_target"]
    assert [st["round"] for st in info["steps"]] == [0, 0]       # reached in the first round
    assert p.objective(moved) == p.objective(full)
    # the same call again gives the same allocation
    again, _ = lp_guided.move_starts(p, S, choice, red, lam, float(p.objective(full)) * 2,
                                     core_items=1, dtime=5.0, seeds=[0, 1], rounds=2,
                                     target_objective=p.objective(full))
    assert np.array_equal(again, moved)


def test_a_month_core_holds_at_most_month_core_options_options(monkeypatch):
    """The month polish sizes its core by options, not items: MONTH_CORE_OPTIONS // options
    items when that is fewer than polish_core (12 months x 3 levels: 750 instead of 1,500), for
    the polish and the start moves alike; a single-period round keeps polish_core."""
    p = _four_month_round()
    seen = []
    real_polish, real_moves = lp_guided.polish, lp_guided.move_starts

    def polish(*args, **kwargs):
        seen.append(("polish", kwargs["core_items"]))
        return real_polish(*args, **kwargs)

    def moves(*args, **kwargs):
        seen.append(("moves", kwargs["core_items"]))
        return real_moves(*args, **kwargs)

    monkeypatch.setattr(lp_guided, "polish", polish)
    monkeypatch.setattr(lp_guided, "move_starts", moves)
    monkeypatch.setattr(lp_guided, "MONTH_POLISH_TARGET_GAP", 0.0)    # never reached: moves run
    monkeypatch.setattr(lp_guided, "MONTH_CORE_OPTIONS", 3 * p.n_options + 1)
    sol = lp_guided.solve_lp_guided(p, time_limit_s=2, workers=2, seed=0, polish_core=20)
    assert seen == [("moves", 3)]           # the start moves solved cores: no polish after them
    assert not p.violations(sol.choice)
    seen.clear()
    lp_guided.solve_lp_guided(p, time_limit_s=2, workers=2, seed=0, polish_core=2)
    assert seen == [("moves", 2)]           # polish_core is smaller: it stays
    seen.clear()
    # a core as large as the round: the start moves have nothing outside it, the polish runs
    monkeypatch.setattr(lp_guided, "MONTH_CORE_OPTIONS", 10**6)
    whole = lp_guided.solve_lp_guided(p, time_limit_s=2, workers=2, seed=0, polish_core=40)
    assert seen == [("moves", 40), ("polish", 40)]
    assert whole.details["polish"]["start_moves"]["steps"] == [] and whole.details["polish"]["steps"]
    seen.clear()
    single = random_hard_problem(40, seed=2)
    lp_guided.solve_lp_guided(single, time_limit_s=1, workers=2, seed=0, polish_core=20)
    assert seen == [("polish", 20)]


def test_must_fund_outside_the_core_is_refused():
    p = _four_month_round()
    choice = np.full(p.n_items, -1, np.int64)
    with pytest.raises(ValueError, match="must_fund"):
        lp_guided._solve_core(p, choice, np.array([0, 1]), dtime=1.0, seed=0, must_fund=np.array([5]))


def _neighbours(p, choice):
    """Every move of the exchange neighbourhood from `choice`, by brute force: (items, options,
    gain) for one item raised (or funded) alone, and for one item raised with another lowered
    (or dropped), both from their current options."""
    n = p.n_items
    value = lambda i, o: 0 if o < 0 else int(p.value[i, o])     # noqa: E731
    opts = [[o for o in range(p.n_options) if p.allowed[i, o]] for i in range(n)]
    for i in range(n):
        up = [o for o in opts[i] if value(i, o) > value(i, choice[i])]
        for o in up:
            yield (i,), (o,), value(i, o) - value(i, choice[i])
            for j in range(n):
                if j == i or choice[j] < 0:
                    continue
                for oj in [-1] + [x for x in opts[j] if value(j, x) < value(j, choice[j])]:
                    gain = value(i, o) - value(i, choice[i]) + value(j, oj) - value(j, choice[j])
                    yield (i, j), (o, oj), gain


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_exchange_ends_where_brute_force_finds_no_improving_pair(data):
    """exchange keeps every limit, never lowers the objective, is deterministic, and with its
    reduced-cost cut made loose (a far bound) and passes enough it stops only where no move of
    its neighbourhood (one option raised alone, or with another item lowered or dropped), checked
    by brute force with the problem's own limits, gains anything."""
    model = _two_type_model(data)
    p = model.problem
    S = lp_guided.build_structure(p)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    lam = rng.random(S.D) * 0.5
    red = lp_guided.item_reduced(S, lam)
    choice = lp_guided.decode(S, lp_guided.evaluate(S, lam)[2])
    choice = lp_guided.repair(p, S, choice, red)
    assert not p.violations(choice)
    far = float(p.value.clip(min=0).sum()) * 4 + 1.0
    out, info = lp_guided.exchange(p, S, choice, red, far, passes=10 * p.n_items + 10)
    assert not p.violations(out)
    assert p.objective(out) >= p.objective(choice)
    assert p.objective(out) - p.objective(choice) == info["improved_by"]
    again, _ = lp_guided.exchange(p, S, choice, red, far, passes=10 * p.n_items + 10)
    assert np.array_equal(again, out)
    for items, options, gain in _neighbours(p, out):
        if gain <= 0:
            continue
        moved = out.copy()
        moved[list(items)] = options
        assert p.violations(moved), (items, options, gain)


def test_exchange_drops_a_filler_for_a_better_project_and_respects_the_cut():
    # budget 10,000 KRW: A1 (score 60, 10 h in 2026-11) holds it all; A0 (score 90) fits the
    # GPU months but not the budget beside A1: the exchange drops A1 and funds A0 at its full
    # level. With a bound just above the objective (G smaller than A0's loss) it may not.
    model = _model([10, 10], [10, 10], [9000, 6000], [1, 1])
    p = dataclasses.replace(model.problem, capacity=np.array([10, 10, 10_000], np.int64))
    S = lp_guided.build_structure(p)
    choice = np.array([-1, 1 * 2 + 0])
    red = lp_guided.item_reduced(S, np.zeros(S.D))
    far = float(p.value.max()) * 10
    out, info = lp_guided.exchange(p, S, choice, red, far)
    assert out[1] == -1 and model.option_level[out[0]] == 1
    assert info["moves"] >= 1 and not p.violations(out)
    assert p.objective(out) == int(p.value[0].max())
    near, info = lp_guided.exchange(p, S, choice, red, float(p.objective(choice)) + 1.0)
    assert np.array_equal(near, choice) and info["improved_by"] == 0


def test_exchange_searches_only_the_items_nearest_zero(monkeypatch):
    """EXCHANGE_ITEMS caps what a call searches (its cost stays that of a 10k round at any
    size): with a cap of one item, the one nearest zero, only it may change."""
    p = _four_month_round()
    S = lp_guided.build_structure(p)
    lam = np.full(S.D, 0.05)
    red = lp_guided.item_reduced(S, lam)
    choice = np.full(p.n_items, -1, np.int64)
    far = float(p.value.clip(min=0).sum()) * 4
    full, _ = lp_guided.exchange(p, S, choice, red, far)
    assert (full != choice).sum() > 1
    monkeypatch.setattr(lp_guided, "EXCHANGE_ITEMS", 1)
    one, _ = lp_guided.exchange(p, S, choice, red, far)
    nearest = lp_guided._polish_order(p, choice, red, S.forced)[0]
    assert set(np.flatnonzero(one != choice).tolist()) <= {int(nearest)}
    assert not p.violations(one)
