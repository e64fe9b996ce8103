"""The HiGHS step of `auto` on small rounds (allocation.solve.highs, and its place in
allocation.solve.dispatch.solve_exact): exact on tiny rounds, checked exactly, deterministic,
and a wrong answer from HiGHS is never used."""

from __future__ import annotations

import threading

import highspy
import numpy as np
import pytest

from allocation.solve import dispatch
from allocation.solve import highs as highs_step
from allocation.solve.brute_force import brute_force
from tests.solve.builders import make_problem, random_hard_problem, random_tiny_problem
from tests.solve.test_fixed_and_tight import best_with_fixed, random_fixed


@pytest.mark.parametrize("seed", range(40))
def test_highs_finds_the_brute_force_optimum_and_never_claims_a_proof(seed):
    problem = random_tiny_problem(seed)
    try:
        opt, _ = brute_force(problem)
    except ValueError:
        opt = None
    sol = highs_step.solve_highs(problem, node_limit=10_000)
    if opt is None:
        assert sol.status == "no_solution"
        return
    assert sol.status == "feasible"                  # a float bound is never reported as proven
    assert sol.bound == float("inf")
    assert problem.violations(sol.choice) == []
    assert sol.objective == opt == problem.objective(sol.choice)
    assert sol.details["highs_status"] in ("Optimal", "Empty")    # Empty: no option is allowed


@pytest.mark.parametrize("seed", range(15))
def test_highs_keeps_fixed_items(seed):
    problem = random_tiny_problem(seed)
    fixed = random_fixed(problem, seed)
    best = best_with_fixed(problem, fixed)
    sol = highs_step.solve_highs(problem, node_limit=10_000, fixed=fixed)
    if best is None:
        assert sol.status == "no_solution"
        return
    assert all(int(sol.choice[i]) == o for i, o in fixed.items())
    assert problem.violations(sol.choice) == [] and sol.objective == best


def test_highs_is_deterministic_when_the_node_limit_stops_it():
    problem = random_hard_problem(150, seed=3)
    runs = [highs_step.solve_highs(problem, node_limit=300) for _ in range(2)]
    assert runs[0].details["stopped_by"] == "node_limit"
    assert runs[0].status == "feasible" and problem.violations(runs[0].choice) == []
    assert runs[1].choice.tolist() == runs[0].choice.tolist()
    assert runs[1].details == runs[0].details


def test_highs_is_deterministic_in_concurrent_threads():
    # quota-cost re-solves run in threads: two HiGHS runs at once give what one alone gives
    problem = random_hard_problem(150, seed=3)
    alone = highs_step.solve_highs(problem, node_limit=300)
    out: list = [None, None]

    def run(k: int) -> None:
        out[k] = highs_step.solve_highs(problem, node_limit=300)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sol in out:
        assert sol.choice.tolist() == alone.choice.tolist() and sol.details == alone.details


def test_one_krw_over_a_limit_is_caught_by_the_exact_check():
    # 1e12 KRW of budget, two awards of 5e11 + 1: together 1 KRW over. In the scaled float model
    # that is a relative violation of 1e-12, far inside HiGHS's tolerances; the check is exact.
    half = 5 * 10**11
    problem = make_problem([[3], [3]], weight=[[[half + 1], [half]]], capacity=[2 * half])
    ok = np.array([0, -1])
    over = np.array([0, 0])
    assert highs_step.check_choice(problem, ok, None) == []
    assert highs_step.check_choice(problem, over, None) == [f"row0: {2 * half + 1} > {2 * half}"]
    assert highs_step.check_choice(problem, ok, {1: 0}) == ["fixed item 1 at option -1, not 0"]
    choice, reasons = highs_step.decode(problem, np.array([1.0, 0.3]), np.array([0, 1]), np.array([0, 0]))
    assert choice.tolist() == [0, -1] and reasons and "not 0 or 1" in reasons[0]


class _WrongHighs(highspy.Highs):
    """HiGHS that reports every column at 1 (each item at all its options, every limit broken)."""

    def getSolution(self):
        sol = super().getSolution()
        sol.col_value = [1.0] * len(sol.col_value)
        return sol


class _PoorOptimumHighs(highspy.Highs):
    """HiGHS that claims 'Optimal' for the empty allocation (feasible, far from optimal)."""

    def getSolution(self):
        sol = super().getSolution()
        sol.col_value = [0.0] * len(sol.col_value)
        return sol

    def getModelStatus(self):
        return highspy.HighsModelStatus.kOptimal


def _funds_something(problem) -> tuple[int, np.ndarray] | None:
    try:
        opt, choice = brute_force(problem)
    except ValueError:
        return None
    return (opt, choice) if opt > 0 else None


def test_a_wrong_highs_solution_is_rejected(monkeypatch):
    problem = random_tiny_problem(4)
    assert _funds_something(problem) is not None
    monkeypatch.setattr(highs_step.highspy, "Highs", _WrongHighs)
    sol = highs_step.solve_highs(problem, node_limit=10_000)
    assert sol.status == "no_solution" and sol.objective == 0
    assert (sol.choice == -1).all()
    assert sol.details["rejected"]


@pytest.mark.parametrize("wrong", [_WrongHighs, _PoorOptimumHighs])
@pytest.mark.parametrize("seed", range(12))
def test_auto_never_uses_a_wrong_highs_answer(seed, wrong, monkeypatch):
    # the CP-SAT steps get (almost) no time, so HiGHS's answer matters; a broken or poor
    # "optimal" answer must neither end up in the allocation nor stop the race early
    problem = random_tiny_problem(seed)
    found = _funds_something(problem)
    if found is None:
        return
    opt, _ = found
    monkeypatch.setattr(dispatch, "AUTO_FIRST_TRY_S", 1e-9)
    monkeypatch.setattr(dispatch, "AUTO_LIN2_S", 1e-9)
    monkeypatch.setattr(highs_step.highspy, "Highs", wrong)
    sol, used = dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0)
    assert "highs" in used and not used.endswith("(best: highs)")
    assert problem.violations(sol.choice) == []
    assert sol.objective == opt and sol.status == "optimal"


def test_auto_race_uses_highs_and_repeats_itself(monkeypatch):
    # a round CP-SAT does not prove in its first steps: the race with HiGHS gives the same answer twice
    monkeypatch.setattr(dispatch, "AUTO_FIRST_TRY_S", 1e-9)
    monkeypatch.setattr(dispatch, "AUTO_LIN2_S", 1e-9)
    problem = random_hard_problem(40, seed=2)
    runs = [dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0) for _ in range(2)]
    (a, used_a), (b, used_b) = runs
    assert "highs" in used_a and used_a == used_b
    assert a.choice.tolist() == b.choice.tolist() and a.objective == b.objective
    assert problem.violations(a.choice) == []
    highs_row = next(r for r in a.details["race"] if r["step"] == "highs")
    assert highs_row["objective"] <= a.objective and "highs_dual_bound" in highs_row


def test_solve_round_side_by_side_gives_what_solve_exact_gives_one_after_the_other(monkeypatch):
    # the race goes on after the first try: in solve_round HiGHS, CP-SAT (level 2) and the quota
    # re-solves run side by side; the allocation is solve_exact's (one step after the other), and
    # a second run repeats allocation and quota costs
    from allocation.config import SolverSection
    monkeypatch.setattr(dispatch, "AUTO_FIRST_TRY_S", 1e-9)
    monkeypatch.setattr(dispatch, "AUTO_LIN2_S", 0.05)
    monkeypatch.setattr(dispatch, "AUTO_HIGHS_NODES", 300)
    monkeypatch.setattr(dispatch, "QUOTA_COST_HIGHS_NODES", 100)
    problem = random_hard_problem(60, seed=4)
    assert problem.cover_names
    settings = SolverSection(strategy="auto", time_limit_s=1.0, workers=1, seed=0)
    a = dispatch.solve_round(problem, settings)
    b = dispatch.solve_round(problem, settings)
    alone, used = dispatch.solve_exact(problem, time_limit_s=1.0, workers=1, seed=0)
    assert "highs" in a.strategy and a.strategy == b.strategy == used
    assert a.solution.choice.tolist() == b.solution.choice.tolist() == alone.choice.tolist()
    assert a.quota_costs == b.quota_costs and a.quota_costs_method == "re-solve"
    assert all(c >= 0 for c in a.quota_costs.values())
    assert problem.violations(a.solution.choice) == []


def test_highs_stops_when_asked():
    problem = random_hard_problem(150, seed=3)
    stop = threading.Event()
    stop.set()
    sol = highs_step.solve_highs(problem, node_limit=100_000, stop=stop)
    assert sol.details["stopped_by"] == "cancelled" and sol.details["nodes"] <= 1
    assert sol.status == "no_solution" or problem.violations(sol.choice) == []


@pytest.mark.parametrize("seed", [0, 1, 4, 5])
def test_when_level_2_cpsat_proves_optimality_highs_is_not_used(seed, monkeypatch):
    from allocation.config import SolverSection
    monkeypatch.setattr(dispatch, "AUTO_FIRST_TRY_S", 1e-9)
    problem = random_tiny_problem(seed)
    opt, _ = brute_force(problem)
    solved = dispatch.solve_round(problem, SolverSection(strategy="auto", time_limit_s=5.0, workers=1, seed=0))
    alone, used = dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0)
    assert solved.strategy == used and "highs" not in used and dispatch.LIN2 in used
    assert solved.solution.choice.tolist() == alone.choice.tolist()
    assert solved.solution.objective == opt and solved.solution.status == "optimal"
