"""One entry to the solvers for a round: which strategy, its LP relaxation, its quota costs.

The dual prices of the large-round method are computed once per problem and handed on
explicitly (solve -> LP relaxation -> quota costs); nothing is cached behind the caller's back.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from allocation.config import SolverSection
from allocation.model.problem import AllocationProblem, Solution
from allocation.solve import lp_guided
from allocation.solve.arrays import float_at_least
from allocation.solve.cpsat import solve_cpsat
from allocation.solve.highs import solve_highs
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

# "auto" on small rounds (solve_exact): CP-SAT first gets AUTO_FIRST_TRY_S deterministic seconds;
# a round it does not prove optimal in them goes on to two steps that both start from its
# allocation and run side by side in solve_round (one thread each): HiGHS's branch-and-bound
# (allocation.solve.highs: scaled model, one thread, at most AUTO_HIGHS_NODES nodes, its solution
# re-checked exactly) and CP-SAT with a stronger relaxation (linearization level 2) for at most
# AUTO_LIN2_S (it proved the 120- and 250-application rounds of bench/tight.py in 1-2.7 of them;
# when it proves optimality, HiGHS is stopped and not used); then, unless one of them proved
# optimality or HiGHS reported an optimum (its floating-point bound met, its checked allocation
# the best), the LP-guided method for at most AUTO_RACE_STEP_S. (A 120-application round with
# tight quotas stopped plain CP-SAT at its 60 s limit 0.42% below the optimum. On the 400-application round of bench/tight.py CP-SAT's bound
# stays 8.4e-5 above the optimum for 10 deterministic seconds and the LP-guided method ends
# 3.6e-5 below it; HiGHS, started from CP-SAT's first allocation, finds and closes it in 20,644
# nodes, ~20 s of one core.)
AUTO_FIRST_TRY_S = 2.0
AUTO_HIGHS_NODES = 30_000
AUTO_LIN2_S = 5.0
AUTO_RACE_STEP_S = 10.0
RACE_CPSAT_PARAMETERS: dict[str, object] = {"linearization_level": 2}
# HiGHS's reported optimum ends the race only within this relative distance of the proven bound
# (CP-SAT's): further away the claim is implausible (the rounds of bench/tight.py: 8.4e-5 at most)
# and the LP-guided step still runs
HIGHS_TRUSTED_GAP = 1e-3
# each quota's exact re-solve (its cost) gets its own budget, hinted with the round's allocation:
# QUOTA_COST_TIME_S deterministic seconds of CP-SAT and QUOTA_COST_HIGHS_NODES HiGHS nodes (on the
# 400-application round of bench/tight.py the first-time quota's re-solve, run beside the race,
# found a cost of 12.70e9 with them and 7.13e9 without; exact: 13.68e9)
QUOTA_COST_TIME_S = 5.0
QUOTA_COST_HIGHS_NODES = 2_000


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
    The solution always keeps them; feasibility of the rest is checked by the caller. Refills
    use the round's strategy like an allocation: on the restricted problem (kept awards forced,
    released ones without any option).
    """
    args = dict(time_limit_s=settings.time_limit_s, workers=settings.workers, seed=settings.seed)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(seconds.get(name, 0.0) + now - clock, 3)
        clock = now

    strategy = choose_strategy(problem, settings.strategy)
    race = settings.strategy == "auto"
    relaxations: list[Solution] | None = None     # quota re-solves already done beside the race
    if fixed is not None:
        work = problem.restricted(fixed)
        forced = lp_guided.forced_array(work, {i: o for i, o in fixed.items() if o >= 0})
        hint = lp_guided.forced_array(problem, fixed)
    else:
        work, forced, hint = problem, None, None

    quota_args = dict(args, time_limit_s=min(float(settings.time_limit_s), QUOTA_COST_TIME_S))
    if fixed is None and not race:
        quota_args = args

    def relax(q: int, start: np.ndarray | None) -> Solution:
        # the round without quota q, hinted with an allocation of the round (feasible there)
        return solve_exact(work.without_quota(q), forced=forced, hint=start, race=race,
                           highs_nodes=QUOTA_COST_HIGHS_NODES, **quota_args)[0]

    Q = len(problem.cover_names)

    if strategy == "lp_guided":
        dual = lp_guided.dual_prices(work, forced=forced, workers=args["workers"])
        solution = lp_guided.solve_lp_guided(work, dual=dual, forced=forced, **args)
        used = "lp_guided" if fixed is None else FIXED_AWARDS_LARGE_STRATEGY
    else:
        dual = None
        first = first_try(work, forced=forced, hint=hint, **args) if race else None
        if first is None or settled(work, first):
            solution, used = (first, "cpsat") if first is not None else solve_exact(
                work, forced=forced, hint=hint, race=False, **args)
        else:
            # the race goes on: its steps 2-3 (CP-SAT and HiGHS, one thread each) run side by side,
            # and the quota re-solves, hinted with the better allocation of CP-SAT's two steps, in
            # the thread CP-SAT leaves free; every task depends on its inputs only, so the results
            # are those of one after the other
            steps = race_steps(work, first, forced=forced, hint=hint, **args)
            stop = threading.Event()
            with ThreadPoolExecutor(max_workers=max(1, min(2 + Q, os.cpu_count() or 1))) as pool:
                lin2 = pool.submit(steps.lin2) if steps.lin2 is not None else None
                mip = pool.submit(steps.highs, stop) if steps.highs is not None else None
                second = lin2.result() if lin2 is not None else None
                if second is not None and second.status == "optimal":
                    stop.set()      # HiGHS's answer is not used (RaceSteps): stop it
                tried = [s for s in (first, second) if s is not None and s.status != "no_solution"]
                start = max(tried, key=lambda s: s.objective).choice if tried else hint   # first of equals
                early = [pool.submit(relax, q, start) for q in range(Q)]
                solution, used = finish_race(work, first, mip.result() if mip is not None else None, second,
                                             forced=forced, **args)
                lap("solve")
                relaxations = [f.result() for f in early]
            lap("quota_costs")      # the re-solves' time beyond the race
        if fixed is not None:
            used = FIXED_AWARDS_STRATEGY if used == "cpsat" else f"{used} (fixed awards)"
    if "solve" not in seconds:
        lap("solve")
    lp = lp_relaxation(work, dual) if problem.n_items else None
    lap("lp_relaxation")
    costs: dict[str, int | None] = {}
    warnings: list[str] = []
    if solution.status == "no_solution" and fixed is not None:
        method = "none"
    elif strategy == "lp_guided" and problem.cover_names:
        # the difference of the Lagrangian dual bounds without and with each quota, found in a
        # few warm-started dual iterations instead of a full re-solve: an LP-based estimate
        R = len(problem.capacity)
        for q, name in enumerate(problem.cover_names):
            relaxed_problem = work.without_quota(q)
            relaxed = lp_guided.dual_prices(relaxed_problem, lam0=np.delete(dual.dual.lam, R + q),
                                            forced=forced, workers=args["workers"])
            costs[name] = max(int(math.floor(relaxed.dual.bound - dual.dual.bound)), 0)
            if solution.objective == 0 and fixed is None:
                full = solve(relaxed_problem, strategy=strategy, **args)
                if full.objective > 0:
                    warnings.append(_forced_empty(name, int((full.choice >= 0).sum())))
        warnings.append(
            "Quota costs are LP-based estimates (difference of the dual bounds with and without "
            "each quota" + ("" if fixed is None else ", the kept awards fixed") + "), not exact "
            "re-solves: this round is solved by the LP-guided method.")
        method = "lp"
    else:
        # exact re-solves without each quota, hinted with the round's allocation (feasible there;
        # when the race went on after the first try: the better of its CP-SAT allocations, the
        # re-solves having run beside HiGHS), each with its own deterministic budget (not the round's whole
        # time limit); the round's allocation is feasible without the quota: a cost is >= 0
        if relaxations is None:
            # independent deterministic solves: one thread per core (CP-SAT and HiGHS release the
            # GIL), the same results as one after the other
            start = solution.choice if solution.status != "no_solution" else hint
            with ThreadPoolExecutor(max_workers=max(1, min(Q, os.cpu_count() or 1))) as pool:
                relaxations = list(pool.map(lambda q: relax(q, start), range(Q)))
        for name, relaxed in zip(problem.cover_names, relaxations):
            costs[name] = max(relaxed.objective - solution.objective, 0)
            if solution.objective == 0 and relaxed.objective > 0 and fixed is None:
                warnings.append(_forced_empty(name, int((relaxed.choice >= 0).sum())))
        method = "re-solve" if costs else "none"
    lap("quota_costs")
    return RoundSolve(solution=solution, strategy=used, lp=lp, quota_costs=costs,
                      quota_costs_method=method, warnings=warnings, seconds=seconds)


def solve_exact(problem: AllocationProblem, *, time_limit_s: float, workers: int, seed: int,
                forced: np.ndarray | None = None, hint: np.ndarray | None = None,
                race: bool = True, highs_nodes: int | None = None) -> tuple[Solution, str]:
    """A small round: CP-SAT, and when it does not prove optimality quickly, HiGHS, a hinted
    CP-SAT with a stronger relaxation and the LP-guided method: (best solution, strategy).

    race=False: plain CP-SAT with the whole time limit (strategy "cpsat"). Otherwise:
      1. CP-SAT as "cpsat" would run it, for min(time_limit_s, AUTO_FIRST_TRY_S) deterministic
         seconds: most rounds (the sample round: ~0.3) are proven optimal here, and then the
         answer is exactly plain CP-SAT's.
      2. HiGHS branch-and-bound (allocation.solve.highs), started from step 1's allocation, at
         most highs_nodes nodes (default AUTO_HIGHS_NODES; 0: no HiGHS step); its allocation is re-checked exactly
         and dropped if it breaks any limit. Its dual bound is floating point and not a proof:
         it never enters the reported bound.
      3. CP-SAT on the whole round with the LP of all its rows (linearization_level 2), hinted
         with step 1's allocation, for min(the rest of time_limit_s, AUTO_LIN2_S).
         Steps 2 and 3 do not depend on each other (race_steps): solve_round runs them side by
         side, here they run one after the other, with the same results.
      4. Unless a step proved optimality or HiGHS reported an optimum whose checked allocation
         is the best so far: the LP-guided method (dual prices, rounding, growing LNS cores),
         starting from the best allocation so far, for min(the rest, AUTO_RACE_STEP_S).
    All steps are deterministic (fixed seeds, deterministic time and node limits); the best
    allocation wins (ties: the earlier step). The bound is the smallest of the CP-SAT and
    LP-guided steps' proven bounds; status "optimal" only when one of them proves it exactly.
    """
    if not race:
        return solve_cpsat(problem, time_limit_s=time_limit_s, workers=workers, seed=seed,
                           fixed=_fixed(forced), hint=hint), "cpsat"
    first = first_try(problem, time_limit_s=time_limit_s, workers=workers, seed=seed, forced=forced, hint=hint)
    if settled(problem, first):
        return first, "cpsat"
    steps = race_steps(problem, first, time_limit_s=time_limit_s, workers=workers, seed=seed, forced=forced,
                       hint=hint, highs_nodes=highs_nodes)
    second = steps.lin2() if steps.lin2 is not None else None
    mip = (steps.highs(None) if steps.highs is not None and (second is None or second.status != "optimal")
           else None)
    return finish_race(problem, first, mip, second, time_limit_s=time_limit_s, workers=workers, seed=seed,
                       forced=forced)


def _fixed(forced: np.ndarray | None) -> dict[int, int] | None:
    if forced is None or not (forced >= 0).any():
        return None
    on = np.flatnonzero(forced >= 0)
    return dict(zip(on.tolist(), forced[on].tolist()))


def first_try(problem: AllocationProblem, *, time_limit_s: float, workers: int, seed: int,
              forced: np.ndarray | None = None, hint: np.ndarray | None = None) -> Solution:
    """Step 1 of the race (solve_exact): CP-SAT for min(time_limit_s, AUTO_FIRST_TRY_S)."""
    return solve_cpsat(problem, time_limit_s=min(float(time_limit_s), AUTO_FIRST_TRY_S), workers=workers,
                       seed=seed, fixed=_fixed(forced), hint=hint)


def settled(problem: AllocationProblem, first: Solution) -> bool:
    """The first try ends the race: optimal, proven infeasible, or nothing to choose."""
    return first.status == "optimal" or first.details.get("stopped_by") == "proof" or problem.n_items == 0


LIN2 = "cpsat (linearization 2)"


@dataclass
class RaceSteps:
    """Steps 2 and 3 of the race after an unsettled first try (solve_exact). Neither depends on
    the other (both start from the first try's allocation), so they may run one after the other
    or side by side: the answer is the same. When step 3 (CP-SAT) proves optimality, its
    allocation is the answer and HiGHS's is not used, so HiGHS may then be stopped early."""

    highs: Callable[[threading.Event | None], Solution] | None
    lin2: Callable[[], Solution] | None


def race_steps(problem: AllocationProblem, first: Solution, *, time_limit_s: float, workers: int,
               seed: int, forced: np.ndarray | None = None, hint: np.ndarray | None = None,
               highs_nodes: int | None = None) -> RaceSteps:
    fixed = _fixed(forced)
    start = first.choice if first.status != "no_solution" else hint
    nodes = AUTO_HIGHS_NODES if highs_nodes is None else int(highs_nodes)
    remaining = max(float(time_limit_s) - first.deterministic_time, 0.0)
    lin2 = None
    if remaining > 0:
        def lin2() -> Solution:
            return solve_cpsat(problem, time_limit_s=min(remaining, AUTO_LIN2_S), workers=workers, seed=seed,
                               fixed=fixed, hint=start, parameters=RACE_CPSAT_PARAMETERS)
    highs = None
    if nodes > 0:
        def highs(stop: threading.Event | None) -> Solution:
            return solve_highs(problem, node_limit=nodes, seed=seed, hint=start, fixed=fixed, stop=stop)
    return RaceSteps(highs=highs, lin2=lin2)


def finish_race(problem: AllocationProblem, first: Solution, mip: Solution | None, second: Solution | None, *,
                time_limit_s: float, workers: int, seed: int,
                forced: np.ndarray | None = None) -> tuple[Solution, str]:
    """Step 4 of the race (solve_exact) and its answer, given the first try, HiGHS's result
    (mip; None or unused when step 3 proved optimality) and step 3's (second; None if not run)."""
    steps = [("cpsat", first)]
    if second is not None and second.status == "optimal":
        steps.append((LIN2, second))
        mip = None
    else:
        steps += [(name, sol) for name, sol in (("highs", mip), (LIN2, second)) if sol is not None]
    found = [(name, s) for name, s in steps if s.status != "no_solution"]
    best = max(found, key=lambda ns: ns[1].objective)[1] if found else None   # first of equals
    remaining = max(float(time_limit_s) - sum(float(s.deterministic_time) for _, s in steps), 0.0)
    # HiGHS's optimum is trusted to end the search only when its allocation passed the exact
    # check, is at least as good as every other step's (else its bound is plainly wrong) and is
    # within HIGHS_TRUSTED_GAP of the proven bound; it never counts as a proof
    proven_bound = min((s.bound for _, s in found), default=math.inf)
    highs_optimum = (mip is not None and mip.status == "feasible" and best is not None
                     and mip.details.get("highs_status") == "Optimal" and mip.objective >= best.objective
                     and math.isfinite(proven_bound)
                     and proven_bound - mip.objective <= HIGHS_TRUSTED_GAP * max(abs(proven_bound), 1.0))
    proven = bool(found) and (any(s.status == "optimal" for _, s in found)
                              or proven_bound - best.objective < 1.0)
    if not proven and not highs_optimum and remaining > 0:
        third = lp_guided.solve_lp_guided(problem, time_limit_s=min(remaining, AUTO_RACE_STEP_S),
                                          workers=workers, seed=seed, forced=forced,
                                          incumbent=best.choice if best is not None else None)
        steps.append(("lp_guided", third))
    found = [(name, s) for name, s in steps if s.status != "no_solution"]
    if not found:
        return first, "cpsat"
    name, best = max(found, key=lambda ns: ns[1].objective)   # max keeps the first of equals
    bound = min(s.bound for _, s in found)
    bound = max(bound, float(best.objective))
    proved = any(s.status == "optimal" for _, s in found) or bound - best.objective < 1.0
    details = dict(best.details)
    details["race"] = [{"step": n, "status": s.status, "objective": int(s.objective), "bound": s.bound,
                        "deterministic_time": round(float(s.deterministic_time), 3),
                        **{k: s.details[k] for k in ("highs_status", "highs_dual_bound", "nodes", "rejected")
                           if k in s.details}} for n, s in steps]
    details["stopped_by"] = ("proof" if proved else "highs_optimal" if highs_optimum
                             else "deterministic_limit")
    solution = Solution(choice=best.choice, status="optimal" if proved else "feasible",
                        objective=int(best.objective),
                        bound=float_at_least(best.objective) if proved else bound,
                        solver=best.solver, deterministic_time=sum(float(s.deterministic_time) for _, s in steps),
                        wall_seconds=sum(float(s.wall_seconds) for _, s in steps), details=details)
    return solution, " + ".join(n for n, _ in steps) + f" (best: {name})"
