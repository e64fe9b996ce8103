"""Exact CP-SAT on an AllocationProblem, deterministic for a given problem, seed and workers."""

from __future__ import annotations

import math
import time

import numpy as np
import ortools
from ortools.sat.python import cp_model

from allocation.model.problem import AllocationProblem, Solution
from allocation.solve.arrays import (binding_company_groups, check_overflow, fixed_arrays, float_at_least,
                                     item_extremes, model_variables)

SOLVER_NAME = f"cp-sat {ortools.__version__}"


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


class _StopAt(cp_model.CpSolverSolutionCallback):
    """Ends the search at the first solution of objective >= target (solve_cpsat's stop_at)."""

    def __init__(self, target: int, var_index: np.ndarray, coef: np.ndarray):
        super().__init__()
        self.target = int(target)
        self.var_index, self.coef = var_index, coef    # the objective's terms
        self.reached = False

    def on_solution_callback(self) -> None:
        # exact, in int64 (check_overflow: |sum| < 2**62), not CP-SAT's float objective_value
        values = np.asarray(self.response_proto.solution, dtype=np.int64)[self.var_index]
        if int(values @ self.coef) >= self.target:
            self.reached = True
            self.stop_search()


def solve_cpsat(
    problem: AllocationProblem,
    *,
    time_limit_s: float = 60.0,
    workers: int = 2,
    seed: int = 0,
    hint: np.ndarray | None = None,
    fixed: dict[int, int] | None = None,
    parameters: dict[str, object] | None = None,
    stop_at: int | None = None,
    must_fund: np.ndarray | None = None,
) -> Solution:
    """Solve exactly with CP-SAT (deterministic for a given problem, seed and workers).

    hint:  choice vector (-1 = none) given to CP-SAT as a complete solution hint.
    fixed: item -> option forced in the solution (-1 = forced to none).
    parameters: further CP-SAT parameters (name -> value), set after the defaults.
    stop_at: stop at the first solution whose objective is at least this (details["stopped_by"]
    "target"); with one worker the solutions come in a fixed order, so where it stops is
    deterministic too.
    must_fund: items that must take one of their options (exactly one instead of at most one;
    an item with no option left makes the model infeasible).
    """
    start = time.perf_counter()
    n, L = problem.n_items, problem.n_options
    fixed_items, fixed_opts = fixed_arrays(problem, fixed)
    ii, ll = model_variables(problem, fixed_items, fixed_opts)
    check_overflow(problem, ii, ll)
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

    # at most one option per item, exactly one for must_fund (variables are grouped by item:
    # np.nonzero is row-major)
    must = np.zeros(n, bool)
    if must_fund is not None:
        must[np.asarray(must_fund, np.int64)] = True
        if np.setdiff1d(np.flatnonzero(must), ii).size:    # an item that must be funded has no option
            model.add_bool_or([])
    if K:
        bounds = np.flatnonzero(np.diff(ii)) + 1
        for group in np.split(np.arange(K), bounds):
            if must[ii[group[0]]]:
                model.add_exactly_one([x[k] for k in group.tolist()])
            elif len(group) > 1:
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
        hi, _ = item_extremes(coef, ii, n)
        if int(hi.sum()) <= int(problem.capacity[r]):
            continue
        model.add(add_row(coef) <= int(problem.capacity[r]))

    # company caps: only companies whose items could exceed the cap together
    cw = problem.company_weight[ii, ll]
    for group in binding_company_groups(problem, ii, cw):
        model.add(add_row(cw, group) <= int(problem.company_cap))

    # quota cover rows: activity >= 0 (skipped when always satisfied)
    for q in range(len(problem.cover_names)):
        coef = problem.cover[q, ii, ll]
        _, lo = item_extremes(coef, ii, n)
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
    stopper = _StopAt(stop_at, var_index[nz], obj_coef[nz]) if stop_at is not None else None
    status = solver.solve(model, stopper)
    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the model: {model.validate()}")

    if status in (cp_model.OPTIMAL, cp_model.INFEASIBLE):
        stopped_by = "proof"
    elif stopper is not None and stopper.reached:
        stopped_by = "target"
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
        bound = float_at_least(objective)
    else:
        raw = float(solver.best_objective_bound)
        bound = max(raw, float_at_least(objective)) if math.isfinite(raw) else raw
        if math.isnan(bound) or bound < objective:
            bound = float_at_least(objective)

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
