"""HiGHS MIP on an AllocationProblem: a second exact-method engine for small rounds.

Built from the same problem arrays as CP-SAT (allocation.solve.arrays: the same variables, the
same rows that can bind), so every option kind (award levels, start months) is covered.

Numerics (money values are ~1e12-1e14 KRW): the objective is divided by its largest |value| and
every row by its largest |coefficient|, so HiGHS works on numbers of order 1 (OR-Tools' bundled
HiGHS on the unscaled objective declared a wrong "optimal" 7e-5 below the true optimum of a
250-application round). HiGHS still computes in floating point with tolerances, so its answer
is never taken on trust:

* the solution is decoded to a choice vector and re-checked exactly, in integers
  (AllocationProblem.violations: every allowed option, knapsack row, company cap and quota; the
  fixed items at their option); a solution that fails is rejected (status "no_solution",
  details["rejected"] says why), and its objective is recomputed exactly
  (AllocationProblem.objective), never read from HiGHS;
* its dual bound is NOT reported as a proven bound. It comes out of a floating-point
  branch-and-bound (LP solves with 1e-7 primal/dual tolerances, cuts, presolve reductions) that
  leaves no certificate we could check in exact arithmetic, so `Solution.bound` is +inf and
  `status` is never "optimal"; HiGHS's own claim is kept in details["highs_status"] and
  details["highs_dual_bound"]. The caller (allocation.solve.dispatch) may use the claim to stop
  searching, not to call the allocation proven.

Determinism: one thread, a fixed random seed and a node limit (mip_max_nodes) decide the result;
the wall-clock limit is only a wide safety net, and details["stopped_by"] says which limit ended
the run ("wall_clock" = not reproducible), as in allocation.solve.cpsat.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import sys
import threading
import time

import highspy
import numpy as np

from allocation.model.problem import AllocationProblem, Solution
from allocation.solve.arrays import binding_company_groups, fixed_arrays, item_extremes, model_variables

SOLVER_NAME = f"highs {importlib.metadata.version('highspy')}"

# Wall-clock safety net only (the node limit decides): seconds = factor * nodes / 1000 + extra.
# HiGHS ran ~1,000-1,500 nodes per second on the tight-quota rounds of bench/tight.py (2 cores,
# shared machine); the net is set an order of magnitude wider.
WALL_SECONDS_PER_1000_NODES = 10.0
WALL_EXTRA_S = 30.0
# a column value this far from 0 or 1 is not an integer solution (HiGHS's own tolerance: 1e-6)
INTEGRALITY_SLACK = 1e-5


_BANNER_LOCK = threading.Lock()
_banner_shown = False


def _new_highs() -> highspy.Highs:
    """highspy.Highs(), without HiGHS's banner on stdout: its C++ constructor prints it once per
    process, before any option (output_flag) can be set; it would land in the CLI's output."""
    global _banner_shown
    with _BANNER_LOCK:
        if _banner_shown:
            return highspy.Highs()
        _banner_shown = True
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):          # no usable stdout: nothing to keep clean
            return highspy.Highs()
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                return highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _scaled_rows(problem: AllocationProblem, ii: np.ndarray, ll: np.ndarray):
    """CSR rows (starts, index, value, lower, upper), each row divided by its largest |coef|."""
    n, K = problem.n_items, len(ii)
    starts: list[int] = []
    index: list[np.ndarray] = []
    value: list[np.ndarray] = []
    lower: list[float] = []
    upper: list[float] = []
    nnz = 0

    def add(ks: np.ndarray, coef: np.ndarray, lo: float, up: float) -> None:
        nonlocal nnz
        nz = np.flatnonzero(coef)
        if not len(nz):
            return
        scale = float(np.abs(coef[nz]).max())
        starts.append(nnz)
        index.append(ks[nz])
        value.append(coef[nz].astype(np.float64) / scale)
        lower.append(lo / scale)
        upper.append(up / scale)
        nnz += len(nz)

    all_k = np.arange(K)
    if K:   # at most one option per item (variables are item-major)
        cuts = np.flatnonzero(np.diff(ii)) + 1
        for group in np.split(all_k, cuts):
            if len(group) > 1:
                add(group, np.ones(len(group), np.int64), -math.inf, 1.0)
    for r in range(len(problem.capacity)):
        coef = problem.weight[r, ii, ll]
        hi, _ = item_extremes(coef, ii, n)
        if int(hi.sum()) > int(problem.capacity[r]):      # rows that can bind, as in CP-SAT
            add(all_k, coef, -math.inf, float(int(problem.capacity[r])))
    cw = problem.company_weight[ii, ll]
    for group in binding_company_groups(problem, ii, cw):
        add(group, cw[group], -math.inf, float(int(problem.company_cap)))
    for q in range(len(problem.cover_names)):
        coef = problem.cover[q, ii, ll]
        _, lo = item_extremes(coef, ii, n)
        if int(lo.sum()) < 0:
            add(all_k, coef, 0.0, math.inf)
    return starts, index, value, lower, upper, nnz


def build_model(problem: AllocationProblem, fixed: dict[int, int] | None = None):
    """(HighsLp, ii, ll, objective scale): the scaled 0/1 model; column k is (item ii[k], option ll[k])."""
    fixed_items, fixed_opts = fixed_arrays(problem, fixed)
    ii, ll = model_variables(problem, fixed_items, fixed_opts)
    K = len(ii)
    obj = problem.value[ii, ll]
    vscale = float(np.abs(obj).max()) if K and np.abs(obj).max() > 0 else 1.0
    starts, index, value, lower, upper, nnz = _scaled_rows(problem, ii, ll)
    col_lower = np.zeros(K)
    if K and len(fixed_items):        # a fixed option's column is forced to 1
        position = np.full((problem.n_items, problem.n_options), -1, np.int64)
        position[ii, ll] = np.arange(K)
        chosen = fixed_opts >= 0
        col_lower[position[fixed_items[chosen], fixed_opts[chosen]]] = 1.0
    lp = highspy.HighsLp()
    lp.num_col_ = K
    lp.num_row_ = len(starts)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = obj.astype(np.float64) / vscale
    lp.col_lower_ = col_lower
    lp.col_upper_ = np.ones(K)
    lp.row_lower_ = np.array(lower, np.float64)
    lp.row_upper_ = np.array(upper, np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = K
    lp.a_matrix_.num_row_ = len(starts)
    lp.a_matrix_.start_ = np.array(starts + [nnz], np.int32)
    lp.a_matrix_.index_ = np.concatenate(index).astype(np.int32) if index else np.zeros(0, np.int32)
    lp.a_matrix_.value_ = np.concatenate(value) if value else np.zeros(0)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * K
    return lp, ii, ll, vscale


def check_choice(problem: AllocationProblem, choice: np.ndarray, fixed: dict[int, int] | None) -> list[str]:
    """Why `choice` cannot be used (empty: it can), checked exactly in integers."""
    reasons = list(problem.violations(choice))
    for i, o in (fixed or {}).items():
        if int(choice[i]) != int(o):
            reasons.append(f"fixed item {i} at option {int(choice[i])}, not {o}")
    return reasons


def decode(problem: AllocationProblem, x: np.ndarray, ii: np.ndarray, ll: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Choice vector of HiGHS column values, and what is wrong with them as a 0/1 solution."""
    reasons = []
    x = np.asarray(x, np.float64)
    if len(x) != len(ii):
        return np.full(problem.n_items, -1, np.int64), [f"{len(x)} column values for {len(ii)} columns"]
    far = np.abs(x - np.round(x)) > INTEGRALITY_SLACK
    if far.any():
        reasons.append(f"{int(far.sum())} column values are not 0 or 1 (e.g. {float(x[far][0])!r})")
    on = x > 0.5
    per_item = np.bincount(ii[on], minlength=problem.n_items)
    if (per_item > 1).any():
        reasons.append(f"item {int(np.flatnonzero(per_item > 1)[0])} has more than one option")
    choice = np.full(problem.n_items, -1, np.int64)
    choice[ii[on]] = ll[on]
    return choice, reasons


def solve_highs(problem: AllocationProblem, *, node_limit: int, seed: int = 0,
                hint: np.ndarray | None = None, fixed: dict[int, int] | None = None,
                options: dict[str, object] | None = None, stop: threading.Event | None = None) -> Solution:
    """HiGHS branch-and-bound for at most node_limit nodes, one thread: a checked allocation.

    hint: choice vector (-1 = none) handed to HiGHS as a starting solution (used when feasible).
    fixed: item -> option forced (-1: forced to none). options: further HiGHS options.
    stop: when set (from another thread), the search ends at its next node (details["stopped_by"]
    "cancelled": the caller no longer needs the answer, which then depends on timing).
    Returns status "feasible" with bound +inf (see the module docstring), or "no_solution"
    when HiGHS found nothing or its solution failed the exact check.
    """
    start = time.perf_counter()
    lp, ii, ll, vscale = build_model(problem, fixed)
    h = _new_highs()
    for name, value in {"output_flag": False, "threads": 1, "random_seed": int(seed),
                        "mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "mip_max_nodes": int(node_limit),
                        "time_limit": WALL_SECONDS_PER_1000_NODES * node_limit / 1000 + WALL_EXTRA_S,
                        **(options or {})}.items():
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejected option {name}={value!r}")
    h.passModel(lp)
    if hint is not None:
        hint = np.asarray(hint, np.int64)
        if hint.shape != (problem.n_items,):
            raise ValueError(f"hint must have shape ({problem.n_items},), got {hint.shape}")
        start_solution = highspy.HighsSolution()
        start_solution.col_value = (hint[ii] == ll).astype(np.float64).tolist()
        start_solution.value_valid = True
        h.setSolution(start_solution)
    if stop is not None:
        def interrupt(callback_type, message, data_out, data_in, user_data):
            if stop.is_set():
                data_in.user_interrupt = True
        h.setCallback(interrupt, None)
        h.startCallback(highspy.cb.HighsCallbackType.kCallbackMipInterrupt)
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    nodes = int(info.mip_node_count)
    if model_status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible):
        stopped_by = "proof"
    elif model_status == highspy.HighsModelStatus.kTimeLimit:
        stopped_by = "wall_clock"
    elif stop is not None and stop.is_set():
        stopped_by = "cancelled"
    else:
        stopped_by = "node_limit"
    raw_bound = float(info.mip_dual_bound) * vscale
    details = {"highs_status": h.modelStatusToString(model_status), "highs_dual_bound": raw_bound,
               "nodes": nodes, "lp_iterations": int(info.simplex_iteration_count), "seed": int(seed),
               "stopped_by": stopped_by}
    choice = np.full(problem.n_items, -1, np.int64)
    status = "no_solution"
    if info.primal_solution_status >= 2 and len(ii):
        choice, reasons = decode(problem, h.getSolution().col_value, ii, ll)
        reasons += check_choice(problem, choice, fixed)
        if reasons:
            details["rejected"] = reasons
            choice = np.full(problem.n_items, -1, np.int64)
        else:
            status = "feasible"
    elif len(ii) == 0 and not check_choice(problem, choice, fixed):
        status = "feasible"      # nothing to choose: the empty allocation
    return Solution(choice=choice, status=status, objective=problem.objective(choice) if status == "feasible" else 0,
                    bound=math.inf, solver=SOLVER_NAME, deterministic_time=0.0,
                    wall_seconds=time.perf_counter() - start, details=details)
