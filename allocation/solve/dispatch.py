"""One entry to the solvers for a round: which strategy, its LP relaxation, its quota costs.

The dual prices of the large-round method are computed once per problem and handed on
explicitly (solve -> LP relaxation -> quota costs); nothing is cached behind the caller's back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from allocation.config import SolverSection
from allocation.model.problem import AllocationProblem, Solution
from allocation.solve import lp_guided
from allocation.solve.cpsat import solve_cpsat
from allocation.solve.lp import LpResult, solve_lp_glop

STRATEGIES = ("cpsat", "lp_guided")

# "auto": plain exact CP-SAT up to this many items (the sample round, ~260 selectable items,
# proves optimal in ~1 deterministic second), the LP-guided method above it (see
# allocation.solve.lp_guided). On rounds of ~1k items plain CP-SAT no longer proves optimality
# within 10 deterministic seconds; the LP-guided method then hands the whole problem (core
# <= POLISH_CORE_ITEMS) to CP-SAT with its rounded solution as a hint, and reports "optimal"
# when CP-SAT proves it. Its int64 objective would overflow around 1e5 items x 1e13 values.
AUTO_CPSAT_MAX_ITEMS = 500

# Above this many items the relaxation is not handed to GLOP (minutes and GBs at 1M items):
# `lp_relaxation` then minimises the Lagrangian dual over the few global prices
# (allocation.solve.lp_guided), which gives the same kind of bound and prices in seconds.
LP_GLOP_MAX_ITEMS = 30_000

# Refills and appeals keep accepted awards fixed and use the round's strategy like an
# allocation: CP-SAT with the kept awards fixed on small rounds (the strategy is then named
# FIXED_AWARDS_STRATEGY), the LP-guided method with them forced on large ones
# (FIXED_AWARDS_LARGE_STRATEGY): the restricted problem's dual prices, rounding, repair,
# top-up and polish never move a kept award.
FIXED_AWARDS_STRATEGY = "cpsat (fixed awards)"
FIXED_AWARDS_LARGE_STRATEGY = "lp_guided (fixed awards)"


def choose_strategy(problem: AllocationProblem, strategy: str = "auto") -> str:
    """The strategy `solve` will use: "auto" is CP-SAT on small rounds, LP-guided on large ones."""
    if strategy == "auto":
        return "cpsat" if problem.n_items <= AUTO_CPSAT_MAX_ITEMS else "lp_guided"
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown solve strategy {strategy!r}; choose 'auto' or one of {sorted(STRATEGIES)}")
    return strategy


def solve(problem: AllocationProblem, *, strategy: str = "auto", time_limit_s: float = 60.0,
          workers: int = 2, seed: int = 0, dual: lp_guided.DualOutcome | None = None,
          forced: np.ndarray | None = None) -> Solution:
    """Solve with the named strategy ("auto", "cpsat" or "lp_guided").

    forced: (n,) option each item is kept at, -1 = free (lp_guided.forced_array); items fixed
    to none are expected to have no allowed option (AllocationProblem.restricted)."""
    name = choose_strategy(problem, strategy)
    if name == "cpsat":
        fixed = None
        hint = None
        if forced is not None and (forced >= 0).any():
            on = np.flatnonzero(forced >= 0)
            fixed = dict(zip(on.tolist(), forced[on].tolist()))
            hint = forced
        return solve_cpsat(problem, time_limit_s=time_limit_s, workers=workers, seed=seed,
                           fixed=fixed, hint=hint)
    return lp_guided.solve_lp_guided(problem, time_limit_s=time_limit_s, workers=workers, seed=seed,
                                     dual=dual, forced=forced)


def lp_relaxation(problem: AllocationProblem, dual: lp_guided.DualOutcome | None = None) -> LpResult:
    """LP relaxation (0 <= x <= 1): upper bound and non-negative dual prices.

    Up to LP_GLOP_MAX_ITEMS items: GLOP on the explicit LP. Above: the Lagrangian dual over the
    global rows (`dual`, when the caller has it for this problem, else computed). Its bound is
    min over prices of the dual function, company blocks taken exactly, so it is a valid
    upper bound at least as tight as the plain LP bound; x is the Lagrangian 0/1 solution at
    the final prices; status is "optimal" when the dual method met its tolerance, else
    "approximate" (bound still valid).
    """
    if problem.n_items <= LP_GLOP_MAX_ITEMS:
        return solve_lp_glop(problem)
    d = dual if dual is not None else lp_guided.dual_prices(problem)
    x = np.zeros((problem.n_items, problem.n_options), np.float64)
    choice = lp_guided.decode(d.structure, d.dual.chosen)
    on = np.flatnonzero(choice >= 0)
    x[on, choice[on]] = 1.0
    return LpResult(bound=d.dual.bound, x=x, row_duals=d.row_duals, cover_duals=d.cover_duals,
                    status="optimal" if d.dual.converged else "approximate")


@dataclass
class RoundSolve:
    """What one round's solve produced: the allocation, how, and its prices."""

    solution: Solution
    strategy: str                       # the strategy actually used
    lp: LpResult | None                 # LP relaxation (of the restricted problem when fixed)
    quota_costs: dict[str, int | None]
    quota_costs_method: str             # "re-solve" | "lp" | "none"
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)   # wall-clock per step


def _forced_empty(name: str, funded: int) -> str:
    return (f"Quota '{name}' alone forces an empty allocation: without it {funded} applications "
            f"could be funded. Check its min_share against the eligible applications in its group.")


def solve_round(problem: AllocationProblem, settings: SolverSection, *,
                fixed: dict[int, int] | None = None) -> RoundSolve:
    """The round's solve: allocation, LP prices and quota costs, one dispatch for every run.

    fixed (refills and appeals): item -> option kept as published (-1: released for good).
    The solution always keeps them; feasibility of the rest is checked by the caller.
    """
    args = dict(time_limit_s=settings.time_limit_s, workers=settings.workers, seed=settings.seed)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    if fixed is not None and choose_strategy(problem, settings.strategy) == "lp_guided":
        return _solve_round_large_fixed(problem, settings, fixed, args, seconds, lap)
    if fixed is not None:
        hint = np.full(problem.n_items, -1, np.int64)
        for i, o in fixed.items():
            hint[i] = o
        solution = solve_cpsat(problem, hint=hint, fixed=fixed, **args)
        lap("solve")
        lp = lp_relaxation(problem.restricted(fixed)) if problem.n_items else None
        lap("lp_relaxation")
        costs = {}
        if solution.status != "no_solution":
            for q, name in enumerate(problem.cover_names):
                relaxed = solve_cpsat(problem.without_quota(q), hint=solution.choice, fixed=fixed, **args)
                costs[name] = max(relaxed.objective - solution.objective, 0)
        lap("quota_costs")
        return RoundSolve(solution=solution, strategy=FIXED_AWARDS_STRATEGY, lp=lp, quota_costs=costs,
                          quota_costs_method="re-solve" if costs else "none", seconds=seconds)

    strategy = choose_strategy(problem, settings.strategy)
    dual = lp_guided.dual_prices(problem) if strategy == "lp_guided" else None
    solution = solve(problem, strategy=strategy, dual=dual, **args)
    lap("solve")
    lp = lp_relaxation(problem, dual) if problem.n_items else None
    lap("lp_relaxation")
    costs: dict[str, int | None] = {}
    warnings: list[str] = []
    if strategy == "lp_guided" and problem.cover_names:
        # the difference of the Lagrangian dual bounds without and with each quota, found in a
        # few warm-started dual iterations instead of a full re-solve: an LP-based estimate
        R = len(problem.capacity)
        for q, name in enumerate(problem.cover_names):
            relaxed_problem = problem.without_quota(q)
            relaxed = lp_guided.dual_prices(relaxed_problem, lam0=np.delete(dual.dual.lam, R + q))
            costs[name] = max(int(math.floor(relaxed.dual.bound - dual.dual.bound)), 0)
            if solution.objective == 0:
                full = solve(relaxed_problem, strategy=strategy, **args)
                if full.objective > 0:
                    warnings.append(_forced_empty(name, int((full.choice >= 0).sum())))
        warnings.append(
            "Quota costs are LP-based estimates (difference of the dual bounds with and without "
            "each quota), not exact re-solves: this round is solved by the LP-guided method.")
        method = "lp"
    else:
        for q, name in enumerate(problem.cover_names):
            relaxed = solve(problem.without_quota(q), strategy=strategy, **args)
            costs[name] = max(relaxed.objective - solution.objective, 0)
            if solution.objective == 0 and relaxed.objective > 0:
                warnings.append(_forced_empty(name, int((relaxed.choice >= 0).sum())))
        method = "re-solve" if costs else "none"
    lap("quota_costs")
    return RoundSolve(solution=solution, strategy=strategy, lp=lp, quota_costs=costs,
                      quota_costs_method=method, warnings=warnings, seconds=seconds)


def _solve_round_large_fixed(problem: AllocationProblem, settings: SolverSection, fixed: dict[int, int],
                             args: dict, seconds: dict[str, float], lap) -> RoundSolve:
    """A refill or appeal of a large round: the LP-guided method on the restricted problem
    (kept awards forced to their option, released ones without any option); LP prices and
    LP-based quota costs as in an allocation."""
    restricted = problem.restricted(fixed)
    forced = lp_guided.forced_array(restricted, {i: o for i, o in fixed.items() if o >= 0})
    dual = lp_guided.dual_prices(restricted, forced=forced)
    solution = lp_guided.solve_lp_guided(restricted, dual=dual, forced=forced, **args)
    lap("solve")
    lp = lp_relaxation(restricted, dual) if problem.n_items else None
    lap("lp_relaxation")
    costs: dict[str, int | None] = {}
    warnings: list[str] = []
    if solution.status != "no_solution" and problem.cover_names:
        R = len(problem.capacity)
        for q, name in enumerate(problem.cover_names):
            relaxed = lp_guided.dual_prices(restricted.without_quota(q), lam0=np.delete(dual.dual.lam, R + q),
                                            forced=forced)
            costs[name] = max(int(math.floor(relaxed.dual.bound - dual.dual.bound)), 0)
        warnings.append(
            "Quota costs are LP-based estimates (difference of the dual bounds with and without "
            "each quota, the kept awards fixed), not exact re-solves: this round is solved by the "
            "LP-guided method.")
    lap("quota_costs")
    return RoundSolve(solution=solution, strategy=FIXED_AWARDS_LARGE_STRATEGY, lp=lp, quota_costs=costs,
                      quota_costs_method="lp" if costs else "none", warnings=warnings, seconds=seconds)
