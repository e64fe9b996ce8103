"""Solvers for `AllocationProblem`: exact CP-SAT, GLOP LP relaxation, brute force.

* `solve_cpsat`          exact MIP-style model in CP-SAT, deterministic (see `_cpsat_parameters`).
* `solve_lp_relaxation`  0 <= x <= 1 relaxation in GLOP: upper bound and dual prices.
* `solve`                dispatcher over the `STRATEGIES` registry.
* `brute_force`          exhaustive optimum for tiny problems (used by tests).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import ortools
from ortools.linear_solver import linear_solver_pb2, pywraplp
from ortools.sat.python import cp_model

from allocation.problem import AllocationProblem, Solution

SOLVER_NAME = f"cp-sat {ortools.__version__}"

# CP-SAT works in int64 and rejects a model when a linear expression could
# overflow; we refuse earlier with a message a person can act on.
_OVERFLOW_LIMIT = 2**62


# ---------------------------------------------------------------------------
# helpers shared by the solvers
# ---------------------------------------------------------------------------


def _abs_sum_exceeds(coefs: np.ndarray, limit: int = _OVERFLOW_LIMIT) -> bool:
    """sum(|coefs|) > limit, exactly (int64 sums of |x| can themselves overflow)."""
    if coefs.size == 0:
        return False
    approx = float(np.abs(coefs.astype(np.float64)).sum())
    if approx <= limit / 2:
        return False
    return sum(abs(int(c)) for c in coefs.ravel().tolist()) > limit


def _check_overflow(problem: AllocationProblem, ii: np.ndarray, ll: np.ndarray) -> None:
    """Raise ValueError when objective or a row could overflow int64 inside CP-SAT."""
    if _abs_sum_exceeds(problem.value[ii, ll]):
        raise ValueError(
            "objective too large for CP-SAT: the sum of |value| over allowed options exceeds 2**62 "
            "(int64 overflow risk); express values in a coarser unit (e.g. thousands of KRW)"
        )
    for r, name in enumerate(problem.row_names):
        if _abs_sum_exceeds(problem.weight[r, ii, ll]) or abs(int(problem.capacity[r])) > _OVERFLOW_LIMIT:
            raise ValueError(f"knapsack row {name!r}: coefficients too large for CP-SAT (sum of |weight| > 2**62)")
    if _abs_sum_exceeds(problem.company_weight[ii, ll]) or abs(int(problem.company_cap)) > _OVERFLOW_LIMIT:
        raise ValueError("company rows: coefficients too large for CP-SAT (sum of |company_weight| > 2**62)")
    for q, name in enumerate(problem.cover_names):
        if _abs_sum_exceeds(problem.cover[q, ii, ll]):
            raise ValueError(f"quota row {name!r}: coefficients too large for CP-SAT (sum of |cover| > 2**62)")


def _float_at_least(value: int) -> float:
    """The smallest float >= the integer `value` (float(value) may round down)."""
    f = float(value)
    return f if f >= value else math.nextafter(f, math.inf)


def _item_extremes(coef: np.ndarray, item: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item: max(0, max coef) and min(0, min coef) over its model variables.

    With at most one option per item these bound any row activity from above/below.
    """
    hi = np.zeros(n, np.int64)
    lo = np.zeros(n, np.int64)
    if len(item):
        np.maximum.at(hi, item, coef)
        np.minimum.at(lo, item, coef)
    return hi, lo


def _binding_company_groups(problem: AllocationProblem, ii: np.ndarray, cw: np.ndarray) -> list[np.ndarray]:
    """Variable positions per company, for companies whose items could exceed the cap.

    A company whose items' largest options sum to <= cap can never violate it: no row.
    """
    if len(ii) == 0:
        return []
    hi, _ = _item_extremes(cw, ii, problem.n_items)
    n_comp = int(problem.company.max(initial=-1)) + 1
    comp_max = np.zeros(n_comp, np.int64)
    np.add.at(comp_max, problem.company, hi)
    binding = np.flatnonzero(comp_max > int(problem.company_cap))
    if len(binding) == 0:
        return []
    comp = problem.company[ii]
    order = np.argsort(comp, kind="stable")
    sorted_comp = comp[order]
    starts = np.searchsorted(sorted_comp, binding, side="left")
    ends = np.searchsorted(sorted_comp, binding, side="right")
    return [order[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


def _fixed_arrays(problem: AllocationProblem, fixed: dict[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """`fixed` as (items, options) int64 arrays, validated."""
    fixed = fixed or {}
    items = np.fromiter((int(i) for i in fixed.keys()), dtype=np.int64, count=len(fixed))
    opts = np.fromiter((int(o) for o in fixed.values()), dtype=np.int64, count=len(fixed))
    n, L = problem.n_items, problem.n_options
    bad = (items < 0) | (items >= n)
    if bad.any():
        raise ValueError(f"fixed: item index {int(items[bad][0])} out of range 0..{n - 1}")
    bad = (opts < -1) | (opts >= L)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"fixed: option {int(opts[k])} for item {int(items[k])} out of range -1..{L - 1}")
    chosen = opts >= 0
    bad = np.zeros(len(items), bool)
    bad[chosen] = ~problem.allowed[items[chosen], opts[chosen]]
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"fixed: option {int(opts[k])} is not allowed for item {int(items[k])}")
    return items, opts


def _model_variables(
    problem: AllocationProblem, fixed_items: np.ndarray, fixed_opts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(item, option) pairs that get a variable, item-major: allowed ones, narrowed by fixing."""
    mask = problem.allowed.astype(bool).copy()
    mask[fixed_items, :] = False
    chosen = fixed_opts >= 0
    mask[fixed_items[chosen], fixed_opts[chosen]] = True
    ii, ll = np.nonzero(mask)
    return ii.astype(np.int64), ll.astype(np.int64)


# ---------------------------------------------------------------------------
# CP-SAT
# ---------------------------------------------------------------------------


# Wall-clock safety net: max_time_in_seconds = factor * time_limit_s + extra.
# Deterministic time (dtime) is a work count, not seconds. Measured on the 2-core
# dev machine, a solve took 0.8-2 wall seconds per dtime unit when idle and ~3.7
# when the machine was shared with other jobs (load ~5): with 3x + 10 the wall net
# fired first on a 30 s budget and three runs gave two different answers. The net
# is therefore wide; `details["stopped_by"]` reports which limit ended the solve.
WALL_SAFETY_FACTOR = 10.0
WALL_SAFETY_EXTRA_S = 30.0


def _cpsat_parameters(solver: cp_model.CpSolver, *, time_limit_s: float, workers: int, seed: int) -> None:
    p = solver.parameters
    p.num_workers = max(1, int(workers))
    p.random_seed = int(seed)
    # Determinism (same problem + seed + workers -> same choice vector):
    # * interleave_search=True makes CP-SAT run its portfolio as fixed batches of
    #   tasks that exchange solutions/bounds only at batch boundaries
    #   (DeterministicLoop instead of NonDeterministicLoop), so thread timing no
    #   longer changes the search; the parameter docs call it "deterministic
    #   (independently of num_workers!)". It is marked experimental; the price is
    #   a slightly weaker search than the default asynchronous portfolio.
    # * The search must also be *stopped* deterministically: max_deterministic_time.
    #   In interleave mode the budget is consumed in chunks (each full-problem task
    #   runs up to 1 dtime unit, several per batch), so the reported
    #   deterministic_time can exceed time_limit_s by a few units.
    # * max_time_in_seconds is only a safety net; if it fires the answer is not
    #   reproducible (details["stopped_by"] == "wall_clock").
    # Evidence (tests/test_solving.py determinism tests, plus a 200-item hard
    # instance solved 5x with time_limit_s=2 and 3x with 10: identical choice
    # vectors and identical deterministic_time in every repetition).
    # one worker is deterministic as it is; interleaving would only weaken its search
    p.interleave_search = p.num_workers > 1
    p.max_deterministic_time = float(time_limit_s)
    p.max_time_in_seconds = WALL_SAFETY_FACTOR * float(time_limit_s) + WALL_SAFETY_EXTRA_S
    p.log_search_progress = False


def solve_cpsat(
    problem: AllocationProblem,
    *,
    time_limit_s: float = 60.0,
    workers: int = 2,
    seed: int = 0,
    hint: np.ndarray | None = None,
    fixed: dict[int, int] | None = None,
    parameters: dict[str, object] | None = None,
) -> Solution:
    """Solve exactly with CP-SAT (deterministic for a given problem, seed and workers).

    hint:  choice vector (-1 = none) given to CP-SAT as a complete solution hint.
    fixed: item -> option forced in the solution (-1 = forced to none).
    parameters: further CP-SAT parameters (name -> value), set after the defaults.
    """
    start = time.perf_counter()
    n, L = problem.n_items, problem.n_options
    fixed_items, fixed_opts = _fixed_arrays(problem, fixed)
    ii, ll = _model_variables(problem, fixed_items, fixed_opts)
    _check_overflow(problem, ii, ll)
    K = len(ii)

    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{i}_{l}") for i, l in zip(ii.tolist(), ll.tolist())]
    var_index = np.fromiter((v.index for v in x), dtype=np.int64, count=K)

    def add_row(coef: np.ndarray, subset: np.ndarray | None = None):
        """Linear expression sum coef[k] * x[k] over k in subset, zero coefficients skipped."""
        ks = np.arange(K) if subset is None else subset
        c = coef[ks]
        nz = np.nonzero(c)[0]
        ks, c = ks[nz], c[nz]
        return cp_model.LinearExpr.weighted_sum([x[k] for k in ks.tolist()], c.tolist())

    # at most one option per item (variables are grouped by item: np.nonzero is row-major)
    if K:
        bounds = np.flatnonzero(np.diff(ii)) + 1
        for group in np.split(np.arange(K), bounds):
            if len(group) > 1:
                model.add_at_most_one([x[k] for k in group.tolist()])
    # fixed options: the only variable left for such an item is forced to 1
    # (items fixed to none have no variable at all)
    if K and len(fixed_items):
        position = np.full((n, L), -1, np.int64)
        position[ii, ll] = np.arange(K)
        chosen = fixed_opts >= 0
        for k in position[fixed_items[chosen], fixed_opts[chosen]].tolist():
            model.add(x[k] == 1)

    # knapsack rows (skipped when they can never bind)
    for r in range(len(problem.capacity)):
        coef = problem.weight[r, ii, ll]
        hi, _ = _item_extremes(coef, ii, n)
        if int(hi.sum()) <= int(problem.capacity[r]):
            continue
        model.add(add_row(coef) <= int(problem.capacity[r]))

    # company caps: only companies whose items could exceed the cap together
    cw = problem.company_weight[ii, ll]
    for group in _binding_company_groups(problem, ii, cw):
        model.add(add_row(cw, group) <= int(problem.company_cap))

    # quota cover rows: activity >= 0 (skipped when always satisfied)
    for q in range(len(problem.cover_names)):
        coef = problem.cover[q, ii, ll]
        _, lo = _item_extremes(coef, ii, n)
        if int(lo.sum()) >= 0:
            continue
        model.add(add_row(coef) >= 0)

    # objective: maximize sum value * x, written straight into the proto as
    # "minimize -value, scaling_factor -1" (what CpModel.maximize produces, minus
    # its per-term Python loop: ~2 s saved per 100k items)
    obj_coef = problem.value[ii, ll]
    nz = np.nonzero(obj_coef)[0]
    obj_proto = model.proto.objective
    obj_proto.vars.extend(var_index[nz].tolist())
    obj_proto.coeffs.extend((-obj_coef[nz]).tolist())
    obj_proto.scaling_factor = -1.0

    if hint is not None:
        hint = np.asarray(hint, dtype=np.int64)
        if hint.shape != (n,):
            raise ValueError(f"hint must have shape ({n},), got {hint.shape}")
        hinted = (hint[ii] == ll).tolist()
        for var, h in zip(x, hinted):
            model.add_hint(var, h)

    solver = cp_model.CpSolver()
    _cpsat_parameters(solver, time_limit_s=time_limit_s, workers=workers, seed=seed)
    for name, value in (parameters or {}).items():
        setattr(solver.parameters, name, value)
    status = solver.solve(model)
    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the model: {model.validate()}")

    if status in (cp_model.OPTIMAL, cp_model.INFEASIBLE):
        stopped_by = "proof"
    elif solver.deterministic_time >= solver.parameters.max_deterministic_time:
        stopped_by = "deterministic_limit"
    else:
        # the deterministic budget was not used up: the wall-clock net fired
        stopped_by = "wall_clock"

    choice = np.full(n, -1, np.int64)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        values = np.asarray(solver.response_proto.solution, dtype=np.int64)
        on = values[var_index] != 0 if K else np.zeros(0, bool)
        choice[ii[on]] = ll[on]
        status_str = "optimal" if status == cp_model.OPTIMAL else "feasible"
        objective = problem.objective(choice)
    else:
        status_str = "no_solution"
        objective = 0
    if status_str == "optimal":
        bound = _float_at_least(objective)
    else:
        raw = float(solver.best_objective_bound)
        bound = max(raw, _float_at_least(objective)) if math.isfinite(raw) else raw
        if math.isnan(bound) or bound < objective:
            bound = _float_at_least(objective)

    return Solution(
        choice=choice,
        status=status_str,
        objective=int(objective),
        bound=bound,
        solver=SOLVER_NAME,
        deterministic_time=float(solver.deterministic_time),
        wall_seconds=time.perf_counter() - start,
        details={
            "workers": int(solver.parameters.num_workers),
            "seed": int(seed),
            "num_booleans": int(solver.num_booleans),
            "num_conflicts": int(solver.num_conflicts),
            "cpsat_status": status.name,
            "stopped_by": stopped_by,
            "solve_wall_seconds": float(solver.wall_time),
        },
    )


# ---------------------------------------------------------------------------
# LP relaxation (GLOP)
# ---------------------------------------------------------------------------


@dataclass
class LpResult:
    bound: float              # LP optimum: upper bound on the integer optimum (nan if not solved)
    x: np.ndarray             # (n, L) float, LP values (0 where not allowed)
    row_duals: np.ndarray     # (R,) >= 0, price of one unit of each knapsack row's capacity
    cover_duals: np.ndarray   # (Q,) >= 0, price of one unit of each quota row's requirement
    status: str               # "optimal" | "infeasible" | "unbounded" | "abnormal" | ...


_LP_STATUS = {
    linear_solver_pb2.MPSOLVER_OPTIMAL: "optimal",
    linear_solver_pb2.MPSOLVER_FEASIBLE: "feasible",
    linear_solver_pb2.MPSOLVER_INFEASIBLE: "infeasible",
    linear_solver_pb2.MPSOLVER_UNBOUNDED: "unbounded",
    linear_solver_pb2.MPSOLVER_ABNORMAL: "abnormal",
    linear_solver_pb2.MPSOLVER_NOT_SOLVED: "not_solved",
}


# Above this many items the relaxation is not handed to GLOP (minutes and GBs at 1M items):
# `solve_lp_relaxation` then minimises the Lagrangian dual over the few global prices
# (allocation.solving_dual), which gives the same kind of bound and prices in seconds.
LP_GLOP_MAX_ITEMS = 30_000


def solve_lp_relaxation(problem: AllocationProblem) -> LpResult:
    """LP relaxation (0 <= x <= 1): upper bound and non-negative dual prices.

    Up to LP_GLOP_MAX_ITEMS items: GLOP on the explicit LP (`solve_lp_glop`). Above: the
    Lagrangian dual over the global rows (`allocation.solving_dual.dual_prices`; reused when
    the same problem object was just solved by the lp_guided strategy). Its bound is
    min over prices of the dual function, company blocks taken exactly, so it is a valid
    upper bound at least as tight as the plain LP bound; x is the Lagrangian 0/1 solution at
    the final prices; status is "optimal" when the dual method met its tolerance, else
    "approximate" (bound still valid).
    """
    if problem.n_items <= LP_GLOP_MAX_ITEMS:
        return solve_lp_glop(problem)
    from allocation import solving_dual
    d = solving_dual.dual_prices(problem)
    x = np.zeros((problem.n_items, problem.n_options), np.float64)
    choice = solving_dual.decode(d.structure, d.dual.chosen)
    on = np.flatnonzero(choice >= 0)
    x[on, choice[on]] = 1.0
    return LpResult(bound=d.dual.bound, x=x, row_duals=d.row_duals, cover_duals=d.cover_duals,
                    status="optimal" if d.dual.converged else "approximate")


def solve_lp_glop(problem: AllocationProblem) -> LpResult:
    """LP relaxation (0 <= x <= 1) solved by GLOP: bound and non-negative dual prices.

    Rows, in order: one "at most one option" row per item with >= 1 allowed option,
    knapsack rows, binding company rows, cover rows. The model is built as an
    MPModelProto with list-extends (no per-coefficient Python calls into the solver).
    """
    n, L = problem.n_items, problem.n_options
    R, Q = len(problem.capacity), len(problem.cover_names)
    ii, ll = _model_variables(problem, *_fixed_arrays(problem, None))
    K = len(ii)

    proto = linear_solver_pb2.MPModelProto(maximize=True)
    # Scale the objective and every row to unit magnitude: raw coefficients reach ~1e13
    # and GLOP reports ABNORMAL on them. Duals are unscaled below.
    obj_raw = problem.value[ii, ll].astype(np.float64)
    obj_scale = float(np.abs(obj_raw).max()) if K and np.abs(obj_raw).max() > 0 else 1.0
    obj = (obj_raw / obj_scale).tolist()
    row_scales: list[float] = []
    for c in obj:
        proto.variable.add(lower_bound=0.0, upper_bound=1.0, objective_coefficient=c)

    def add_constraint(ks: np.ndarray, coef: np.ndarray, lb: float, ub: float) -> None:
        nz = np.nonzero(coef)[0]
        scale = float(np.abs(coef[nz]).max()) if len(nz) else 1.0
        row_scales.append(scale)
        ct = proto.constraint.add(lower_bound=lb / scale, upper_bound=ub / scale)
        ct.var_index.extend(ks[nz].tolist())
        ct.coefficient.extend((coef[nz].astype(np.float64) / scale).tolist())

    ks_all = np.arange(K)
    if K:
        bounds = np.flatnonzero(np.diff(ii)) + 1
        for group in np.split(ks_all, bounds):
            if len(group) > 1:
                add_constraint(group, np.ones(len(group)), -math.inf, 1.0)
    first_knapsack = len(proto.constraint)
    for r in range(R):
        add_constraint(ks_all, problem.weight[r, ii, ll], -math.inf, float(problem.capacity[r]))
    cw = problem.company_weight[ii, ll]
    for group in _binding_company_groups(problem, ii, cw):
        add_constraint(group, cw[group], -math.inf, float(problem.company_cap))
    first_cover = len(proto.constraint)
    for q in range(Q):
        add_constraint(ks_all, problem.cover[q, ii, ll], 0.0, math.inf)

    request = linear_solver_pb2.MPModelRequest(
        model=proto,
        solver_type=linear_solver_pb2.MPModelRequest.GLOP_LINEAR_PROGRAMMING,
        # Dual simplex: ~30x faster than GLOP's default primal on these models
        # (10k items: 0.3 s vs 8.9 s), same optimum.
        solver_specific_parameters="use_dual_simplex: true",
    )
    response = linear_solver_pb2.MPSolutionResponse()
    pywraplp.Solver.SolveWithProto(request, response)
    status = _LP_STATUS.get(response.status, f"status_{response.status}")

    x = np.zeros((n, L), np.float64)
    row_duals = np.zeros(R, np.float64)
    cover_duals = np.zeros(Q, np.float64)
    if status in ("optimal", "feasible"):
        if K:
            x[ii, ll] = np.asarray(response.variable_value, dtype=np.float64)
        duals = np.asarray(response.dual_value, dtype=np.float64) * obj_scale / np.asarray(row_scales)
        # MPSolver reports dual = d(objective)/d(rhs). For a maximisation, a "<=" row
        # has dual >= 0 and a ">= 0" row has dual <= 0; report both as prices >= 0.
        row_duals = np.maximum(duals[first_knapsack:first_knapsack + R], 0.0)
        cover_duals = np.maximum(-duals[first_cover:first_cover + Q], 0.0)
        bound = float(response.objective_value) * obj_scale
    else:
        bound = math.nan
    return LpResult(bound=bound, x=x, row_duals=row_duals, cover_duals=cover_duals, status=status)


# ---------------------------------------------------------------------------
# dispatcher
# ---------------------------------------------------------------------------

Strategy = Callable[..., Solution]

def _solve_lp_guided(problem: AllocationProblem, **kwargs) -> Solution:
    from allocation.solving_dual import solve_lp_guided
    return solve_lp_guided(problem, **kwargs)


# name -> solver(problem, *, time_limit_s, workers, seed) -> Solution.
STRATEGIES: dict[str, Strategy] = {
    "cpsat": solve_cpsat,
    "lp_guided": _solve_lp_guided,
}

# "auto": plain exact CP-SAT up to this many items (the sample round, ~260 selectable items,
# proves optimal in ~1 deterministic second), the LP-guided method above it (see
# allocation.solving_dual). On rounds of ~1k items plain CP-SAT no longer proves optimality
# within 10 deterministic seconds; the LP-guided method then hands the whole problem (core
# <= POLISH_CORE_ITEMS) to CP-SAT with its rounded solution as a hint, and reports "optimal"
# when CP-SAT proves it. Its int64 objective would overflow around 1e5 items x 1e13 values.
AUTO_CPSAT_MAX_ITEMS = 500


def _choose_strategy(problem: AllocationProblem) -> str:
    """What "auto" means: CP-SAT on small rounds, LP-guided on large ones."""
    return "cpsat" if problem.n_items <= AUTO_CPSAT_MAX_ITEMS else "lp_guided"


def choose_strategy(problem: AllocationProblem, strategy: str = "auto") -> str:
    """The strategy name `solve` will use."""
    return _choose_strategy(problem) if strategy == "auto" else strategy


def solve(
    problem: AllocationProblem,
    *,
    strategy: str = "auto",
    time_limit_s: float = 60.0,
    workers: int = 2,
    seed: int = 0,
) -> Solution:
    name = _choose_strategy(problem) if strategy == "auto" else strategy
    try:
        fn = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown solve strategy {strategy!r}; choose 'auto' or one of {sorted(STRATEGIES)}"
        ) from None
    return fn(problem, time_limit_s=time_limit_s, workers=workers, seed=seed)


# ---------------------------------------------------------------------------
# brute force (tests)
# ---------------------------------------------------------------------------

_BRUTE_FORCE_LIMIT = 2_000_000


def brute_force(problem: AllocationProblem) -> tuple[int, np.ndarray]:
    """Exhaustive optimum: (objective, choice). Raises ValueError if infeasible or too big.

    Enumerates all (L+1)^n choice vectors (vectorised; ties -> first in
    lexicographic order of the choice vector with -1 < 0 < 1 ...).
    """
    n, L = problem.n_items, problem.n_options
    total = (L + 1) ** n
    if total > _BRUTE_FORCE_LIMIT:
        raise ValueError(f"brute_force: {total} combinations is too many (limit {_BRUTE_FORCE_LIMIT})")
    if n == 0:
        empty = np.zeros(0, np.int64)
        if problem.violations(empty):
            raise ValueError("brute_force: problem is infeasible")
        return 0, empty
    # column 0 = "none"; column l+1 = option l
    combos = np.array(list(itertools.product(range(L + 1), repeat=n)), dtype=np.int64)  # (M, n)
    items = np.arange(n)

    def pad(a: np.ndarray, fill=0) -> np.ndarray:
        return np.concatenate([np.full(a.shape[:-1] + (1,), fill, a.dtype), a], axis=-1)

    ok = pad(problem.allowed.astype(bool), True)[items, combos].all(axis=1)
    ok &= (pad(problem.weight)[:, items, combos].sum(axis=2) <= problem.capacity[:, None]).all(axis=0)
    ok &= (pad(problem.cover)[:, items, combos].sum(axis=2) >= 0).all(axis=0)
    cw = pad(problem.company_weight)[items, combos]  # (M, n)
    for c in np.unique(problem.company):
        ok &= cw[:, problem.company == c].sum(axis=1) <= problem.company_cap
    if not ok.any():
        raise ValueError("brute_force: problem is infeasible")
    obj = pad(problem.value)[items, combos].sum(axis=1)
    obj = np.where(ok, obj, np.iinfo(np.int64).min)
    best = int(np.argmax(obj))
    return int(obj[best]), combos[best] - 1
