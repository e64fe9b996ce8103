"""The large-round path (allocation.solve.lp_guided) and the strategy dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from allocation import files
from allocation.model.problem import AllocationProblem
from allocation.solve import dispatch, lp_guided
from allocation.solve.brute_force import brute_force
from allocation.solve.cpsat import solve_cpsat
from allocation.solve.dispatch import lp_relaxation as solve_lp_relaxation
from allocation.solve.dispatch import solve
from allocation.solve.lp import solve_lp_glop
from bench.greedy import solve_greedy
from tests.solve.builders import make_problem, random_tiny_problem


def synthetic_problem(n: int, seed: int = 0) -> AllocationProblem:
    """A round-shaped problem without intake: 4 GPU rows + budget, levels 50/75/100%,
    ~20% all-or-nothing items, ~5% companies with two items, two quotas."""
    rng = np.random.default_rng(seed)
    T, L = 4, 3
    frac = np.array([0.5, 0.75, 1.0])
    req = (rng.integers(0, 2, (n, T)) * rng.integers(50, 4000, (n, T)))
    req[req.sum(axis=1) == 0, 0] = 100
    hours = np.floor(req[:, None, :] * frac[None, :, None]).astype(np.int64)        # (n, L, T)
    prices = np.array([9500, 7000, 3500, 1800])
    cost = hours @ prices
    awarded = cost - (2 * cost + 5) // 10                 # cost - round half up(0.2 cost)
    score = rng.integers(6000, 10000, n)
    allowed = np.ones((n, L), bool)
    allowed[rng.random(n) < 0.2, :2] = False                                       # all-or-nothing
    cap_company = 300_000_000
    allowed &= awarded <= cap_company
    value = np.where(allowed, score[:, None] * awarded, 0)
    total = awarded[:, -1].sum()
    cap_hours = (hours[:, -1].sum(axis=0) * np.array([0.12, 0.3, 0.4, 0.5])).astype(np.int64)
    weight = np.concatenate([np.moveaxis(hours, 2, 0), awarded[None]], axis=0)
    capacity = np.concatenate([cap_hours, [total // 4]]).astype(np.int64)
    n_comp = max(1, int(n / 1.05))
    company = np.concatenate([np.arange(n_comp), rng.integers(0, n_comp, n - n_comp)])
    g1 = rng.random(n) < 0.45
    g2 = rng.random(n) < 0.6
    cover = np.stack([(20 * g1[:, None] - 9) * awarded, (10 * g2[:, None] - 3) * awarded])
    return AllocationProblem(
        value=value, allowed=allowed, weight=weight, capacity=capacity,
        row_names=("gpu:H200", "gpu:H100", "gpu:A100", "gpu:L40S", "budget"),
        company=company.astype(np.int64), company_weight=awarded, company_cap=cap_company,
        cover=cover, cover_names=("non_capital", "first_time"))


def assert_feasible_with_valid_bound(problem: AllocationProblem, sol) -> None:
    assert sol.choice.shape == (problem.n_items,) and sol.choice.dtype == np.int64
    assert problem.violations(sol.choice) == []
    assert sol.objective == problem.objective(sol.choice)
    assert sol.bound >= sol.objective


@pytest.mark.parametrize("seed", range(60))
def test_lp_guided_feasible_and_bound_valid_on_tiny(seed):
    problem = random_tiny_problem(seed)
    opt, _ = brute_force(problem)
    sol = lp_guided.solve_lp_guided(problem, time_limit_s=2, workers=1)
    assert_feasible_with_valid_bound(problem, sol)
    assert sol.objective <= opt
    assert sol.bound >= opt - 1e-9 * max(1, abs(opt))       # a valid bound on the true optimum
    # the core polish covers all of a tiny problem: CP-SAT makes it exact
    assert sol.objective == opt


@pytest.mark.parametrize("seed", range(25))
def test_dual_bound_valid_without_polish(seed):
    problem = random_tiny_problem(1000 + seed)
    opt, _ = brute_force(problem)
    sol = lp_guided.solve_lp_guided(problem, polish_core=0)
    assert_feasible_with_valid_bound(problem, sol)
    assert sol.bound >= opt - 1e-9 * max(1, abs(opt))


def test_dual_bound_is_at_least_as_tight_as_glop_lp():
    problem = synthetic_problem(3000, seed=4)
    d = lp_guided.dual_prices(problem)
    lp = solve_lp_glop(problem)
    assert d.dual.converged
    # company blocks are taken exactly, so the dual bound can only be tighter
    assert d.dual.bound <= lp.bound * (1 + 1e-9)
    assert d.dual.bound >= lp.bound * (1 - 1e-3)
    assert (d.row_duals >= 0).all() and (d.cover_duals >= 0).all()


def test_large_round_path_feasible_tight_and_deterministic():
    problem = synthetic_problem(10_000, seed=1)
    runs = []
    for _ in range(2):
        runs.append(solve(problem, strategy="auto", time_limit_s=1, workers=1))
    a, b = runs
    assert a.details["strategy"] == "lp_guided"
    assert_feasible_with_valid_bound(problem, a)
    assert a.gap < 1e-4
    assert np.array_equal(a.choice, b.choice)
    assert (a.objective, a.bound, a.status) == (b.objective, b.bound, b.status)
    greedy = solve_greedy(problem)
    assert problem.violations(greedy.choice) == []
    assert a.objective > greedy.objective


def test_top_up_leaves_no_fitting_upgrade():
    problem = synthetic_problem(5000, seed=2)
    sol = lp_guided.solve_lp_guided(problem, polish_core=0)
    S = lp_guided.build_structure(problem)
    st = lp_guided._State(problem, S, sol.choice)
    n = problem.n_items
    cur = sol.choice
    cur_val = np.where(cur >= 0, problem.value[np.arange(n), np.maximum(cur, 0)], 0)
    cur_use = np.where((cur >= 0)[:, None], S.A[np.arange(n), np.maximum(cur, 0)], 0)
    cur_cw = np.where(cur >= 0, problem.company_weight[np.arange(n), np.maximum(cur, 0)], 0)
    better = problem.allowed & (problem.value > cur_val[:, None])
    fits = ((S.A - cur_use[:, None, :]) <= st.resid()).all(axis=2)
    fits &= (problem.company_weight - cur_cw[:, None]) <= st.comp_resid()[problem.company][:, None]
    assert not (better & fits).any()


def test_company_blocks_enumerated_exactly():
    # three items of one company, cap allows any two; one capacity row allows all three
    p = make_problem([[10], [9], [8]], weight=[[[1], [1], [1]]], capacity=[3],
                     company=[0, 0, 0], company_weight=[[5], [5], [5]], company_cap=10)
    S = lp_guided.build_structure(p)
    assert len(S.block_start) == 1 and len(S.col_v) == 6       # 3 singles + 3 pairs
    sol = lp_guided.solve_lp_guided(p, polish_core=0)
    assert sol.objective == 19 and sol.bound >= 19 and sol.bound < 19 + 1e-6


def test_quota_nobody_can_meet_gives_empty_feasible():
    # only non-members: the quota (cover >= 0) forces the empty allocation
    p = make_problem([[5], [4]], weight=[[[1], [1]]], capacity=[2], cover=[[[-1], [-1]]])
    sol = lp_guided.solve_lp_guided(p)
    assert (sol.choice == -1).all() and sol.objective == 0 and sol.bound >= 0
    assert sol.bound < 1e-6


def test_empty_problem():
    p = make_problem([], weight=np.zeros((1, 0, 1)), capacity=[5], company=np.zeros(0))
    sol = lp_guided.solve_lp_guided(p)
    assert sol.choice.shape == (0,) and sol.objective == 0 and sol.bound >= 0


def test_auto_picks_cpsat_on_small_rounds():
    assert dispatch.choose_strategy(random_tiny_problem(3)) == "cpsat"
    assert dispatch.choose_strategy(synthetic_problem(dispatch.AUTO_CPSAT_MAX_ITEMS + 1)) == "lp_guided"
    assert dispatch.choose_strategy(random_tiny_problem(3), "lp_guided") == "lp_guided"
    assert "lp_guided" in dispatch.STRATEGIES


def test_sample_round_stays_proven_optimal(tmp_path):
    from pathlib import Path

    import polars as pl

    from allocation import intake
    from allocation.model.build import build_model
    from allocation.rounds import allocate as stages
    sample = Path(__file__).resolve().parents[2] / "data" / "rounds" / "sample"
    stages.validate(sample, tmp_path)
    stages.score(tmp_path)
    v = intake.load_validated(tmp_path / files.INTAKE)
    scores = pl.read_parquet(tmp_path / files.SCORES)
    model = build_model(v.applications, v.requests, v.capacity, scores, v.config)
    assert dispatch.choose_strategy(model.problem, v.config.solver.strategy) == "cpsat"
    sol = solve(model.problem, strategy=v.config.solver.strategy, time_limit_s=v.config.solver.time_limit_s,
                workers=v.config.solver.workers, seed=v.config.solver.seed)
    assert sol.status == "optimal"
    # and the LP-guided path on the same round: feasible, within its own valid bound
    lg = lp_guided.solve_lp_guided(model.problem, polish_core=0)
    assert_feasible_with_valid_bound(model.problem, lg)
    assert lg.bound >= sol.objective - 1e-6 * sol.objective
    assert lg.objective <= sol.objective


def test_lp_relaxation_uses_dual_method_above_threshold(monkeypatch):
    problem = synthetic_problem(2000, seed=5)
    exact = solve_lp_glop(problem)
    monkeypatch.setattr(dispatch, "LP_GLOP_MAX_ITEMS", 100)
    lp = solve_lp_relaxation(problem)
    assert lp.status == "optimal"
    assert lp.bound <= exact.bound * (1 + 1e-9)
    assert lp.row_duals.shape == exact.row_duals.shape
    assert lp.cover_duals.shape == exact.cover_duals.shape
    assert lp.x.shape == (problem.n_items, problem.n_options)


# --- LNS polish --------------------------------------------------------------------------


def test_polish_rounds_grow_to_the_whole_problem_and_cap_large_ones():
    one_lane = lp_guided.polish_rounds(100, 1500, lanes=1)
    assert one_lane == [[20], [35], [50], [100]]
    # two lanes: every round re-solves the whole problem beside a growing core
    assert lp_guided.polish_rounds(100, 1500, lanes=2) == [[35, 100], [50, 100]]
    # a large round: one core of core_items, whatever the lanes
    assert lp_guided.polish_rounds(1_000_000, 1500, lanes=1) == [[1500]]
    assert lp_guided.polish_rounds(1_000_000, 1500, lanes=2) == [[1500]]
    assert lp_guided.polish_rounds(0, 1500, lanes=2) == []
    assert lp_guided.polish_rounds(100, 0, lanes=1) == []


def test_polish_core_holds_undecided_items_not_every_unselected_one():
    """The core is the items whose reduced value is nearest zero. (A bug once ranked every
    unselected item as 'nearest', so cores were made of hopeless items that could not fit.)"""
    problem = synthetic_problem(2000, seed=5)
    d = lp_guided.dual_prices(problem)
    red = lp_guided.item_reduced(d.structure, d.dual.lam)
    choice = lp_guided.decode(d.structure, d.dual.chosen)
    order = lp_guided._polish_order(problem, choice, red)
    best = np.where(problem.allowed, red, -np.inf).max(axis=1)
    core = order[:200]
    # the core's best reduced values sit nearer zero than the rest's
    assert np.median(np.abs(best[core])) < np.median(np.abs(best[order[200:]]))
    assert (choice[core] >= 0).any() and (choice[core] < 0).any()


@pytest.mark.parametrize("workers", [1, 2])
def test_lns_polish_feasible_deterministic_and_not_worse(workers):
    problem = synthetic_problem(400, seed=6)
    runs = []
    for _ in range(2):
        runs.append(lp_guided.solve_lp_guided(problem, time_limit_s=1, workers=workers))
    a, b = runs
    assert_feasible_with_valid_bound(problem, a)
    assert np.array_equal(a.choice, b.choice) and a.objective == b.objective
    steps = a.details["polish"]["steps"]
    assert steps and steps[-1]["core_items"] <= problem.n_items
    assert a.objective >= a.details["objective_before_polish"]
    if workers == 2:   # side-by-side solves: two per round
        assert [s["round"] for s in steps][:2] == [0, 0]


def test_mkp_without_company_blocks_starts_at_the_exact_lp_prices():
    """An OR-Library-shaped problem: the LP of the whole problem is the Lagrangian optimum, so
    the dual search stops at once and its bound equals the LP bound."""
    rng = np.random.default_rng(3)
    m, n = 5, 60
    w = rng.integers(1, 100, (m, n))
    p = AllocationProblem(
        value=rng.integers(1, 100, (n, 1)), allowed=np.ones((n, 1), bool),
        weight=w.reshape(m, n, 1), capacity=(w.sum(axis=1) // 2).astype(np.int64),
        row_names=tuple(f"c{r}" for r in range(m)), company=np.arange(n, dtype=np.int64),
        company_weight=np.zeros((n, 1), np.int64), company_cap=1,
        cover=np.zeros((0, n, 1), np.int64), cover_names=())
    d = lp_guided.dual_prices(p)
    lp = solve_lp_glop(p)
    assert d.dual.converged and d.dual.iterations == 0
    assert d.dual.bound == pytest.approx(lp.bound, rel=1e-8)
    sol = lp_guided.solve_lp_guided(p, time_limit_s=2, workers=2)
    assert_feasible_with_valid_bound(p, sol)


def test_large_round_core_gets_its_own_cp_sat_parameters():
    """One core that is a strict part of the round (a large round) is solved with
    LARGE_CORE_PARAMETERS; growing cores (small rounds, OR-Library) keep the defaults."""
    problem = synthetic_problem(400, seed=6)
    large = lp_guided.solve_lp_guided(problem, time_limit_s=1, workers=1, polish_core=60)
    assert large.details["polish"]["core_parameters"] == lp_guided.LARGE_CORE_PARAMETERS
    assert [s["round"] for s in large.details["polish"]["steps"]] == [0]
    assert_feasible_with_valid_bound(problem, large)
    small = lp_guided.solve_lp_guided(problem, time_limit_s=1, workers=1)
    assert small.details["polish"]["core_parameters"] == {}


def test_solve_cpsat_applies_extra_parameters():
    problem = synthetic_problem(400, seed=6)
    free = solve_cpsat(problem, time_limit_s=2, workers=1)
    starved = solve_cpsat(problem, time_limit_s=2, workers=1, parameters={"max_deterministic_time": 1e-6})
    assert free.deterministic_time > 1e-3
    assert starved.deterministic_time < free.deterministic_time
    with pytest.raises(AttributeError):
        solve_cpsat(problem, time_limit_s=1, workers=1, parameters={"no_such_parameter": 1})
