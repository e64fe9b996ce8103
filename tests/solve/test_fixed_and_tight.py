"""Issue 16: kept awards on the large-round path (forced items in allocation.solve.lp_guided,
refills through allocation.solve.dispatch.solve_round) and `auto` on small rounds with tight
quotas (allocation.solve.dispatch.solve_exact)."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from allocation import files, intake
from allocation.config import SolverSection
from allocation.model.build import build_model
from allocation.rounds import allocate as stages
from allocation.solve import dispatch, lp_guided
from allocation.solve.brute_force import brute_force
from bench.synthetic import generate_round
from tests.solve.builders import random_tiny_problem


def best_with_fixed(problem, fixed: dict[int, int]) -> int | None:
    """Exhaustive optimum with the fixed items at their option (-1: none); None if infeasible."""
    n, L = problem.n_items, problem.n_options
    free = [i for i in range(n) if i not in fixed]
    best = None
    for combo in itertools.product(range(-1, L), repeat=len(free)):
        choice = np.full(n, -1, np.int64)
        choice[free] = combo
        for i, o in fixed.items():
            choice[i] = o
        on = np.flatnonzero(choice >= 0)
        if len(on) and not problem.allowed[on, choice[on]].all():
            continue
        if problem.violations(choice):
            continue
        value = problem.objective(choice)
        best = value if best is None or value > best else best
    return best


def random_fixed(problem, seed: int) -> dict[int, int]:
    """Some items kept at an allowed option, some released (-1), the rest free."""
    rng = np.random.default_rng(seed + 1000)
    fixed = {}
    for i in range(problem.n_items):
        r = rng.random()
        options = np.flatnonzero(problem.allowed[i])
        if r < 0.35 and len(options):
            fixed[i] = int(rng.choice(options))
        elif r < 0.45:
            fixed[i] = -1
    return fixed


def settings(strategy: str, time_limit_s: float = 5.0) -> SolverSection:
    return SolverSection(strategy=strategy, time_limit_s=time_limit_s, workers=1, seed=0)


@pytest.mark.parametrize("seed", range(40))
def test_large_round_path_keeps_fixed_items_and_is_optimal_on_tiny_rounds(seed):
    problem = random_tiny_problem(seed)
    fixed = random_fixed(problem, seed)
    best = best_with_fixed(problem, fixed)
    solved = dispatch.solve_round(problem, settings("lp_guided"), fixed=fixed)
    sol = solved.solution
    assert solved.strategy == dispatch.FIXED_AWARDS_LARGE_STRATEGY
    if best is None:
        assert sol.status == "no_solution"
        return
    assert sol.status != "no_solution"
    assert all(int(sol.choice[i]) == o for i, o in fixed.items())        # every kept award as it was
    assert problem.violations(sol.choice) == []                           # every limit of the round
    assert sol.objective == best                                          # the restricted optimum
    assert sol.bound >= best
    if problem.cover_names:
        assert solved.quota_costs_method == "lp" and set(solved.quota_costs) == set(problem.cover_names)


@pytest.mark.parametrize("seed", range(12))
def test_forced_dual_bound_is_valid_for_the_restricted_problem(seed):
    problem = random_tiny_problem(seed)
    fixed = random_fixed(problem, seed)
    best = best_with_fixed(problem, fixed)
    restricted = problem.restricted(fixed)
    forced = lp_guided.forced_array(restricted, {i: o for i, o in fixed.items() if o >= 0})
    d = lp_guided.dual_prices(restricted, forced=forced)
    if best is not None:
        assert d.dual.bound >= best - 1e-6 * max(1, abs(best))
    # the forced items are in no block of the dual and decode at their option
    choice = lp_guided.decode(d.structure, d.dual.chosen)
    assert all(int(choice[i]) == o for i, o in fixed.items() if o >= 0)


def test_forced_items_of_a_capped_company_leave_the_rest_its_residual_cap():
    # company 0 has three items; item 0 is kept at 60 of a cap of 100: the other two may add 40
    from tests.solve.builders import make_problem
    value = [[60], [35], [30]]
    problem = make_problem(value, weight=np.zeros((1, 3, 1)), capacity=[0], company=[0, 0, 0],
                           company_weight=[[60], [35], [30]], company_cap=100)
    solved = dispatch.solve_round(problem, settings("lp_guided"), fixed={0: 0})
    assert solved.solution.choice.tolist() == [0, 0, -1]
    assert problem.violations(solved.solution.choice) == []


def test_every_item_fixed_keeps_them_all():
    problem = random_tiny_problem(5)
    opt, choice = brute_force(problem)
    fixed = {i: int(o) for i, o in enumerate(choice.tolist())}
    solved = dispatch.solve_round(problem, settings("lp_guided"), fixed=fixed)
    assert solved.solution.choice.tolist() == choice.tolist()
    assert solved.solution.objective == opt and solved.solution.status == "optimal"


@pytest.mark.parametrize("seed", range(25))
def test_auto_race_after_an_unproven_first_try_finds_the_optimum(seed, monkeypatch):
    # CP-SAT's first try gets (almost) no time: the LP-guided step and the hinted CP-SAT decide
    monkeypatch.setattr(dispatch, "AUTO_FIRST_TRY_S", 1e-9)
    problem = random_tiny_problem(seed)
    try:
        opt, _ = brute_force(problem)
    except ValueError:
        return
    sol, used = dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0)
    assert problem.violations(sol.choice) == []
    assert sol.objective == opt and sol.status == "optimal" and sol.bound >= opt


def test_auto_keeps_plain_cpsat_answers_when_it_proves_optimality_quickly():
    problem = random_tiny_problem(7)
    sol, used = dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0)
    plain, _ = dispatch.solve_exact(problem, time_limit_s=5.0, workers=1, seed=0, race=False)
    assert used == "cpsat" and sol.choice.tolist() == plain.choice.tolist()


@pytest.fixture(scope="module")
def tight_round(tmp_path_factory):
    """120 applications, quotas at 85% (non-capital) and 60% (first-time) of the awarded money:
    plain CP-SAT stopped 0.25% below the optimum after 5 deterministic seconds."""
    base = tmp_path_factory.mktemp("tight")
    generate_round(base / "round", 120, seed=1, quota_shares=(0.85, 0.6))
    stages.validate(base / "round", base / "prep")
    stages.score(base / "prep")
    v = intake.load_validated(base / "prep" / files.INTAKE)
    return build_model(v.applications, v.requests, v.capacity,
                       pl.read_parquet(base / "prep" / files.SCORES), v.config).problem


def test_auto_on_a_tight_quota_round_reaches_the_highs_optimum(tight_round):
    from bench.methods import run_highs
    problem = tight_round
    assert problem.n_items <= dispatch.AUTO_CPSAT_MAX_ITEMS
    exact = run_highs(problem, 300, True, mip_rel_gap=0)
    assert exact["status"] == "Optimal" and exact["objective"] is not None
    solved = dispatch.solve_round(problem, SolverSection(strategy="auto", time_limit_s=60, workers=1, seed=0))
    sol = solved.solution
    assert problem.violations(sol.choice) == []
    assert sol.objective == exact["objective"]
    assert sol.status == "optimal" and sol.bound >= exact["objective"]
    assert solved.quota_costs_method == "re-solve"
    assert all(c is not None and c >= 0 for c in solved.quota_costs.values())
