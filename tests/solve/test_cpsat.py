"""CP-SAT (allocation.solve.cpsat) against brute force, the LP relaxation (allocation.solve.lp),
the dispatcher, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.model.problem import AllocationProblem
from allocation.solve.brute_force import brute_force
from allocation.solve.cpsat import solve_cpsat
from allocation.solve.dispatch import STRATEGIES, solve
from allocation.solve.dispatch import lp_relaxation as solve_lp_relaxation
from allocation.solve.lp import LpResult
from tests.solve.builders import assert_valid, make_problem, many_ties_problem, random_hard_problem, random_tiny_problem


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


def test_stop_at_ends_the_search_at_the_first_solution_that_reaches_it():
    """stop_at: the search ends at the first solution at least that good (exact, in integers),
    repeatably; a target above the optimum changes nothing (the search runs to its proof)."""
    p = random_hard_problem(80, seed=1)
    full = solve_cpsat(p, time_limit_s=5.0, workers=1, seed=0)
    assert_valid(p, full)
    target = full.objective - full.objective // 50        # 2% below what the full search finds
    runs = [solve_cpsat(p, time_limit_s=5.0, workers=1, seed=0, stop_at=target) for _ in range(2)]
    for s in runs:
        assert_valid(p, s)
        assert s.details["stopped_by"] == "target"
        assert target <= s.objective <= full.objective
        assert s.deterministic_time <= full.deterministic_time
    assert np.array_equal(runs[0].choice, runs[1].choice)
    small = random_tiny_problem(7)
    opt, _ = brute_force(small)
    exact = solve_cpsat(small, time_limit_s=5.0, workers=1, seed=0, stop_at=opt + 1)
    assert exact.status == "optimal" and exact.objective == opt
    assert exact.details["stopped_by"] == "proof"


def _brute_force_funding(problem: AllocationProblem, must: np.ndarray) -> int | None:
    """Best objective over every choice vector that keeps every limit and funds every item in
    `must` (None: no such vector), by enumeration."""
    import itertools
    best = None
    for combo in itertools.product(range(-1, problem.n_options), repeat=problem.n_items):
        c = np.array(combo, np.int64)
        if (c[must] < 0).any() or problem.violations(c):
            continue
        best = max(best if best is not None else -1, problem.objective(c))
    return best


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), pick=st.integers(min_value=0, max_value=2**7 - 1))
def test_must_fund_matches_brute_force(seed, pick):
    """must_fund: the items must take an option (exactly one); the optimum under that rule is
    brute force's, and no allocation means no_solution."""
    p = random_tiny_problem(seed)
    must = np.flatnonzero([(pick >> i) & 1 for i in range(p.n_items)])
    opt = _brute_force_funding(p, must)
    sol = solve_cpsat(p, time_limit_s=10.0, workers=1, seed=0, must_fund=must)
    if opt is None:
        assert sol.status == "no_solution"
        return
    assert_valid(p, sol)
    assert sol.status == "optimal" and sol.objective == opt
    assert (sol.choice[must] >= 0).all()


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
