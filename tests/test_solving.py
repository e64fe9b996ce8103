"""Tests for allocation.solving: CP-SAT vs brute force, LP relaxation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.problem import AllocationProblem
from allocation.solving import (
    STRATEGIES,
    LpResult,
    brute_force,
    solve,
    solve_cpsat,
    solve_lp_relaxation,
)


# ---------------------------------------------------------------------------
# problem builders
# ---------------------------------------------------------------------------


def make_problem(
    value,
    allowed=None,
    weight=None,
    capacity=None,
    company=None,
    company_weight=None,
    company_cap=10**18,
    cover=None,
) -> AllocationProblem:
    value = np.asarray(value, np.int64).reshape(len(value), -1) if len(value) else np.zeros((0, 1), np.int64)
    n, L = value.shape
    allowed = np.ones((n, L), bool) if allowed is None else np.asarray(allowed, bool)
    weight = np.zeros((1, n, L), np.int64) if weight is None else np.asarray(weight, np.int64)
    capacity = np.zeros(len(weight), np.int64) if capacity is None else np.asarray(capacity, np.int64)
    company = np.arange(n, dtype=np.int64) if company is None else np.asarray(company, np.int64)
    company_weight = np.zeros((n, L), np.int64) if company_weight is None else np.asarray(company_weight, np.int64)
    cover = np.zeros((0, n, L), np.int64) if cover is None else np.asarray(cover, np.int64)
    if cover.ndim == 2:
        cover = cover[None]
    return AllocationProblem(
        value=value,
        allowed=allowed,
        weight=weight,
        capacity=capacity,
        row_names=tuple(f"row{r}" for r in range(len(weight))),
        company=company,
        company_weight=company_weight,
        company_cap=int(company_cap),
        cover=cover,
        cover_names=tuple(f"quota{q}" for q in range(len(cover))),
    )


def random_tiny_problem(seed: int) -> AllocationProblem:
    """n <= 7 items, L <= 3 options, 1-3 knapsack rows, shared companies, 0-2 quota rows."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    L = int(rng.integers(1, 4))
    R = int(rng.integers(1, 4))
    allowed = rng.random((n, L)) < 0.8
    # awarded amount grows with the option level (like voucher levels)
    w = np.cumsum(rng.integers(1, 6, size=(n, L)), axis=1)
    weight = w[None, :, :] * rng.integers(0, 4, size=(R, n, 1)) + rng.integers(0, 3, size=(R, n, L))
    capacity = (weight.max(axis=2).sum(axis=1) * rng.uniform(0.2, 0.9, size=R)).astype(np.int64)
    # values with frequent ties and some zeros
    value = w * rng.integers(0, 4, size=(n, 1)) + rng.integers(0, 3, size=(n, L))
    n_comp = int(rng.integers(1, n + 1))
    company = rng.integers(0, n_comp, size=n)
    company_weight = w * 1000
    company_cap = int(rng.integers(1, 3) * company_weight.max() * rng.uniform(0.4, 1.0))
    Q = int(rng.integers(0, 3))
    cover = np.zeros((Q, n, L), np.int64)
    for q in range(Q):
        in_group = (rng.random(n) < 0.5).astype(np.int64)
        den = int(rng.integers(2, 6))
        num = int(rng.integers(1, den))  # group share >= num/den of awarded amount
        cover[q] = den * in_group[:, None] * w - num * w
    return make_problem(value, allowed, weight, capacity, company, company_weight, company_cap, cover)


def random_hard_problem(n: int, seed: int = 1) -> AllocationProblem:
    """Correlated multi-dimensional knapsack with companies and a quota: not solved quickly."""
    rng = np.random.default_rng(seed)
    L, R = 3, 3
    base = rng.integers(50, 1000, size=(R, n, 1))
    weight = base * np.arange(1, L + 1)[None, None, :] + rng.integers(0, 30, size=(R, n, L))
    value = (weight.sum(axis=0) * 10 + rng.integers(0, 500, size=(n, L))) * 10**9
    capacity = (weight[:, :, 0].sum(axis=1) * 0.6).astype(np.int64)
    allowed = rng.random((n, L)) < 0.9
    company = rng.integers(0, max(1, n // 3), size=n)
    cw = weight[0] * 1000
    grp = (rng.random(n) < 0.3).astype(np.int64)
    cover = (4 * grp[:, None] * cw - cw)[None]
    return make_problem(value, allowed, weight, capacity, company, cw, int(np.median(cw) * 3), cover)


def many_ties_problem(n: int = 40) -> AllocationProblem:
    """Identical items: any half of them is optimal (huge number of equal optima)."""
    L = 2
    value = np.tile(np.array([[10, 20]]), (n, 1))
    weight = np.tile(np.array([[[100, 200]]]), (1, n, 1))
    capacity = [100 * n + 50]
    return make_problem(value, weight=weight, capacity=capacity, company=np.arange(n) // 2,
                        company_weight=value * 1000, company_cap=25_000)


def assert_valid(problem: AllocationProblem, sol) -> None:
    assert sol.choice.shape == (problem.n_items,)
    assert sol.choice.dtype == np.int64
    assert problem.violations(sol.choice) == []
    assert sol.objective == problem.objective(sol.choice)
    assert sol.bound >= sol.objective
    assert sol.solver.startswith("cp-sat 9.15")
    assert set(sol.details) >= {"workers", "seed", "num_booleans", "num_conflicts"}


# ---------------------------------------------------------------------------
# property test against brute force
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_cpsat_matches_brute_force(seed):
    problem = random_tiny_problem(seed)
    opt, best = brute_force(problem)
    assert problem.violations(best) == []
    assert problem.objective(best) == opt

    sol = solve_cpsat(problem, time_limit_s=10.0, workers=2)
    assert_valid(problem, sol)
    assert sol.status == "optimal"
    assert sol.objective == opt

    lp = solve_lp_relaxation(problem)
    assert lp.status == "optimal"
    assert lp.bound >= opt - 1e-6 * max(1.0, abs(opt))
    assert lp.x.shape == (problem.n_items, problem.n_options)
    assert lp.row_duals.shape == (len(problem.capacity),)
    assert lp.cover_duals.shape == (len(problem.cover_names),)
    assert (lp.row_duals >= 0).all() and (lp.cover_duals >= 0).all()
    assert (lp.x[~problem.allowed] == 0).all()
    assert (lp.x.sum(axis=1) <= 1 + 1e-9).all()


# ---------------------------------------------------------------------------
# brute force itself
# ---------------------------------------------------------------------------


def test_brute_force_small_known_optimum():
    # two items, one option; capacity lets only one in: take the more valuable one
    p = make_problem([[10], [6]], weight=[[[1], [1]]], capacity=[1])
    opt, choice = brute_force(p)
    assert opt == 10 and choice.tolist() == [0, -1]


def test_brute_force_respects_company_cap_and_quota():
    # items 0 and 1 share a company whose cap allows only one of them
    p = make_problem([[5], [4], [1]], company=[0, 0, 1], company_weight=[[3], [3], [1]], company_cap=4)
    assert brute_force(p)[0] == 6
    # quota: item 2 must carry >= half of the awarded amount (cover = 2*g*w - w)
    w = np.array([[3], [3], [1]])
    g = np.array([0, 0, 1])[:, None]
    p = make_problem([[5], [4], [1]], company=[0, 0, 1], company_weight=w, company_cap=4, cover=2 * g * w - w)
    # only {item 2} or {} satisfy the quota (3 > 1)
    opt, choice = brute_force(p)
    assert opt == 1 and choice.tolist() == [-1, -1, 0]


# ---------------------------------------------------------------------------
# LP relaxation and duals
# ---------------------------------------------------------------------------


def test_lp_duals_are_prices():
    # max 10a + b  s.t.  a + b <= 1 (capacity),  b - a >= 0 (quota: group item b >= half)
    # optimum a = b = 1/2, bound 5.5; capacity price 5.5, quota price 4.5
    p = make_problem([[10], [1]], weight=[[[1], [1]]], capacity=[1], cover=[[[-1], [1]]])
    lp = solve_lp_relaxation(p)
    assert isinstance(lp, LpResult)
    assert lp.status == "optimal"
    assert lp.bound == pytest.approx(5.5)
    np.testing.assert_allclose(lp.x, [[0.5], [0.5]], atol=1e-9)
    np.testing.assert_allclose(lp.row_duals, [5.5], atol=1e-9)
    np.testing.assert_allclose(lp.cover_duals, [4.5], atol=1e-9)


def test_lp_dual_matches_capacity_perturbation():
    p = random_hard_problem(60, seed=3)
    lp = solve_lp_relaxation(p)
    assert lp.status == "optimal"
    r = int(np.argmax(lp.row_duals))
    assert lp.row_duals[r] > 0
    delta = 5
    cap = p.capacity.copy()
    cap[r] += delta
    bumped = AllocationProblem(**{**p.__dict__, "capacity": cap})
    gain = solve_lp_relaxation(bumped).bound - lp.bound
    assert gain == pytest.approx(lp.row_duals[r] * delta, rel=1e-3)


def test_lp_bound_at_least_cpsat_on_medium_problem():
    p = random_hard_problem(60, seed=5)
    sol = solve_cpsat(p, time_limit_s=0.1)
    lp = solve_lp_relaxation(p)
    assert_valid(p, sol)
    assert lp.bound >= sol.objective * (1 - 1e-9)


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def test_deterministic_when_stopped_by_time_limit():
    # Not proven optimal within the (deterministic) limit: the incumbent still repeats.
    p = random_hard_problem(80, seed=1)
    runs = [solve_cpsat(p, time_limit_s=0.1, workers=2, seed=0) for _ in range(3)]
    for s in runs:
        assert_valid(p, s)
        assert s.details["stopped_by"] == "deterministic_limit"
    assert runs[0].status == "feasible"
    for s in runs[1:]:
        assert np.array_equal(s.choice, runs[0].choice)
        assert s.objective == runs[0].objective
        assert s.deterministic_time == runs[0].deterministic_time


def test_deterministic_with_many_equal_optima():
    p = many_ties_problem(40)
    runs = [solve_cpsat(p, time_limit_s=5.0, workers=2) for _ in range(3)]
    for s in runs:
        assert_valid(p, s)
        assert s.status == "optimal"
    assert runs[0].objective == brute_force_ties_optimum(40)
    for s in runs[1:]:
        assert np.array_equal(s.choice, runs[0].choice)


def brute_force_ties_optimum(n: int) -> int:
    # capacity 100n + 50 = n "units"; value per unit is 0.1 for both options; company
    # cap 25_000 allows at most one option-1 item (20_000) or two option-0 items per pair.
    return 10 * n


def test_dispatcher_uses_cpsat_and_is_deterministic():
    p = random_tiny_problem(7)
    a = solve(p)
    b = solve(p, strategy="cpsat")
    assert np.array_equal(a.choice, b.choice)
    assert "cpsat" in STRATEGIES
    with pytest.raises(ValueError, match="unknown solve strategy"):
        solve(p, strategy="nope")


# ---------------------------------------------------------------------------
# hint and fixed
# ---------------------------------------------------------------------------


def forced_optimum(p: AllocationProblem, i: int, o: int) -> int | None:
    """Brute-force optimum with item i forced to option o (None if infeasible)."""
    allowed = p.allowed.copy()
    value = p.value.copy()
    allowed[i] = False
    if o >= 0:
        # only option o, with a bonus making every solution that takes it dominate
        allowed[i, o] = True
        bonus = int(np.abs(p.value).sum()) + 1
        value[i, o] += bonus
    sub = AllocationProblem(**{**p.__dict__, "allowed": allowed, "value": value})
    opt, choice = brute_force(sub)
    if o < 0:
        return opt
    return opt - bonus if choice[i] == o else None


def test_fixed_options_are_forced():
    statuses = set()
    for seed in range(12):
        p = random_tiny_problem(seed)
        rng = np.random.default_rng(seed)
        i = int(rng.integers(p.n_items))
        options = np.flatnonzero(p.allowed[i])
        o = int(options[-1]) if len(options) and seed % 3 else -1
        expected = forced_optimum(p, i, o)
        sol = solve_cpsat(p, fixed={i: o})
        statuses.add(sol.status)
        if expected is None:
            assert sol.status == "no_solution"
            assert (sol.choice == -1).all() and sol.objective == 0
            continue
        assert_valid(p, sol)
        assert sol.status == "optimal"
        assert sol.choice[i] == o
        assert sol.objective == expected
    assert "optimal" in statuses


def test_fixed_to_none_and_invalid_fixed():
    p = make_problem([[10], [6]], weight=[[[1], [1]]], capacity=[1])
    sol = solve_cpsat(p, fixed={0: -1})
    assert sol.choice.tolist() == [-1, 0] and sol.objective == 6
    p2 = make_problem([[10, 20]], allowed=[[True, False]])
    with pytest.raises(ValueError, match="not allowed"):
        solve_cpsat(p2, fixed={0: 1})
    with pytest.raises(ValueError, match="out of range"):
        solve_cpsat(p2, fixed={3: 0})


def test_hint_is_accepted():
    p = random_hard_problem(40, seed=2)
    base = solve_cpsat(p, time_limit_s=0.1)
    hinted = solve_cpsat(p, time_limit_s=0.1, hint=base.choice)
    assert_valid(p, hinted)
    # starting from the previous incumbent can only help
    assert hinted.objective >= base.objective
    # an infeasible / partial hint is fine too
    bad = np.zeros(p.n_items, np.int64)
    assert_valid(p, solve_cpsat(p, time_limit_s=0.1, hint=bad))
    with pytest.raises(ValueError, match="hint"):
        solve_cpsat(p, hint=np.zeros(3, np.int64))


# ---------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------


def test_overflow_raises():
    p = make_problem([[2**61], [2**61], [2**61]])
    with pytest.raises(ValueError, match="overflow"):
        solve_cpsat(p)


def test_large_values_exact():
    n = 100
    value = (10**13 + np.arange(n * 2).reshape(n, 2) * 7919) * np.array([[1, 2]])
    p = make_problem(value, weight=np.ones((1, n, 2)), capacity=[n // 2])
    sol = solve_cpsat(p, time_limit_s=5)
    assert_valid(p, sol)
    assert sol.status == "optimal"
    expected = int(np.sort(value[:, 1])[-(n // 2):].sum())
    assert sol.objective == expected


def test_empty_problem():
    p = make_problem([], weight=np.zeros((1, 0, 1)), capacity=[5], company=np.zeros(0))
    sol = solve_cpsat(p)
    assert sol.choice.shape == (0,)
    assert sol.status == "optimal" and sol.objective == 0 and sol.bound >= 0
    lp = solve_lp_relaxation(p)
    assert lp.status == "optimal" and lp.bound == 0
    assert brute_force(p)[0] == 0


def test_infeasible_gives_no_solution():
    # an item forced in but it does not fit
    p = make_problem([[5]], weight=[[[3]]], capacity=[2])
    sol = solve_cpsat(p, fixed={0: 0})
    assert sol.status == "no_solution"
    assert sol.choice.tolist() == [-1] and sol.objective == 0
    assert sol.bound >= sol.objective


def test_non_binding_rows_skipped_still_correct():
    # company cap and capacity far above anything: everything best is chosen
    p = make_problem([[1, 3], [2, 1]], weight=np.ones((2, 2, 2)), capacity=[10, 10],
                     company=[0, 0], company_weight=[[1, 1], [1, 1]], company_cap=5)
    sol = solve_cpsat(p)
    assert sol.choice.tolist() == [1, 0] and sol.objective == 5
