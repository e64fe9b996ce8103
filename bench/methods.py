"""One benchmark measurement per process: `python -m bench.methods METHOD N [--time-limit S]`.

Prints one JSON line: objective, bound, solve seconds (loading the problem excluded), peak
RSS of the whole process (VmHWM, loading included), feasibility check.

Methods
  ours      allocation.solve.dispatch.solve(strategy="auto", workers=1): CP-SAT up to 500 items,
            LP-guided above (what `voucher allocate` runs with the default round.toml)
  greedy    by score, the largest level that fits capacity/budget/company cap; then drop the
            lowest-scored non-members until every quota holds; then fill by score
  greedy1   naive single pass by score, every limit (quotas included) checked as offered
  cpsat     plain CP-SAT on the whole model, 2 workers, deterministic time limit
  highs     HiGHS MIP (highspy), wall-clock time limit
  lp        LP relaxation by HiGHS (dual simplex): the classic LP bound
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from allocation.model.problem import AllocationProblem


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries the parent's
    high-water mark across fork + exec into it, so a child of a large runner reads too high."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def highs_model(problem: AllocationProblem, integer: bool):
    """The allocation MIP/LP as a highspy model built from numpy arrays (row-wise CSR)."""
    import highspy
    from allocation.solve.arrays import binding_company_groups, fixed_arrays, model_variables
    ii, ll = model_variables(problem, *fixed_arrays(problem, None))
    K = len(ii)
    vals = problem.value[ii, ll].astype(np.float64)
    vscale = float(np.abs(vals).max()) if K and np.abs(vals).max() > 0 else 1.0
    starts, idx, coef, lo, up = [], [], [], [], []
    nnz = 0

    def add(ks: np.ndarray, c: np.ndarray, lb: float, ub: float) -> None:
        nonlocal nnz
        nz = np.flatnonzero(c)
        scale = float(np.abs(c[nz]).max()) if len(nz) else 1.0
        starts.append(nnz)
        idx.append(ks[nz])
        coef.append(c[nz].astype(np.float64) / scale)
        lo.append(lb / scale)
        up.append(ub / scale)
        nnz += len(nz)

    ks_all = np.arange(K)
    # at most one option per item: CSR rows in one go
    if K:
        cuts = np.flatnonzero(np.diff(ii)) + 1
        item_start = np.concatenate([[0], cuts])
        item_len = np.diff(np.concatenate([item_start, [K]]))
        multi = item_len > 1
        for s, n_ in zip(item_start[multi].tolist(), item_len[multi].tolist()):
            starts.append(nnz)
            idx.append(np.arange(s, s + n_))
            coef.append(np.ones(n_))
            lo.append(-math.inf)
            up.append(1.0)
            nnz += n_
    for r in range(len(problem.capacity)):
        add(ks_all, problem.weight[r, ii, ll], -math.inf, float(problem.capacity[r]))
    cw = problem.company_weight[ii, ll]
    for g in binding_company_groups(problem, ii, cw):
        add(g, cw[g], -math.inf, float(problem.company_cap))
    for q in range(len(problem.cover_names)):
        add(ks_all, problem.cover[q, ii, ll], 0.0, math.inf)

    lp = highspy.HighsLp()
    lp.num_col_ = K
    lp.num_row_ = len(starts)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = vals / vscale
    lp.col_lower_ = np.zeros(K)
    lp.col_upper_ = np.ones(K)
    lp.row_lower_ = np.array(lo, np.float64)
    lp.row_upper_ = np.array(up, np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = K
    lp.a_matrix_.num_row_ = len(starts)
    lp.a_matrix_.start_ = np.array(starts + [nnz], np.int32)
    lp.a_matrix_.index_ = np.concatenate(idx).astype(np.int32) if idx else np.zeros(0, np.int32)
    lp.a_matrix_.value_ = np.concatenate(coef) if coef else np.zeros(0)
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * K
    return lp, ii, ll, vscale


def run_highs(problem: AllocationProblem, time_limit: float, integer: bool,
              mip_rel_gap: float | None = None) -> dict:
    """HiGHS on the problem (MIP when integer, else its LP relaxation); mip_rel_gap=0 asks for a
    proven optimum (HiGHS stops at 1e-4 relative gap by default)."""
    import highspy
    t0 = time.perf_counter()
    lp, ii, ll, vscale = highs_model(problem, integer)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    if integer and mip_rel_gap is not None:
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        h.setOptionValue("mip_abs_gap", 0.0)
    if not integer:
        h.setOptionValue("solver", "simplex")
    h.passModel(lp)
    build = time.perf_counter() - t0
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    out = {"status": status, "build_seconds": round(build, 3)}
    if integer:
        bound = float(info.mip_dual_bound) * vscale
        out["bound"] = bound if math.isfinite(bound) else None
        if info.primal_solution_status >= 2:
            x = np.asarray(h.getSolution().col_value)
            choice = np.full(problem.n_items, -1, np.int64)
            on = x > 0.5
            choice[ii[on]] = ll[on]
            viol = problem.violations(choice)
            out["objective"] = problem.objective(choice) if not viol else None
            out["violations"] = viol[:3]
        else:
            out["objective"] = None
    else:
        out["bound"] = float(info.objective_function_value) * vscale if status == "Optimal" else None
        out["objective"] = None
    return out


def measure(method: str, n: int, time_limit: float) -> dict:
    from bench.rounds import load_problem
    problem = load_problem(n)
    rss_loaded = peak_rss_mib()
    start = time.perf_counter()
    out: dict = {"method": method, "n": n, "items": problem.n_items}
    try:
        if method in ("ours", "ours_polish0"):
            from allocation.solve import dispatch
            sol = dispatch.solve(problem, strategy="auto", time_limit_s=time_limit, workers=1, seed=0)
            out.update(objective=sol.objective, bound=sol.bound, status=sol.status,
                       strategy=sol.details.get("strategy", "cpsat"),
                       stage_seconds=sol.details.get("stage_seconds"))
            choice = sol.choice
        elif method in ("greedy", "greedy1"):
            from bench.greedy import solve_greedy, solve_greedy_single_pass
            sol = solve_greedy(problem) if method == "greedy" else solve_greedy_single_pass(problem)
            out.update(objective=sol.objective, bound=None, status=sol.status)
            choice = sol.choice
        elif method == "cpsat":
            from allocation.solve.cpsat import solve_cpsat
            sol = solve_cpsat(problem, time_limit_s=time_limit, workers=2, seed=0)
            out.update(objective=sol.objective if sol.status != "no_solution" else None,
                       bound=sol.bound if math.isfinite(sol.bound) else None, status=sol.status)
            choice = sol.choice
        elif method in ("highs", "lp"):
            out.update(run_highs(problem, time_limit, integer=(method == "highs")))
            choice = None
        else:
            raise SystemExit(f"unknown method {method}")
        if choice is not None:
            viol = problem.violations(choice)
            out["violations"] = viol[:3]
            if viol:
                out["objective"] = None
    except ValueError as exc:   # e.g. CP-SAT int64 overflow refusal
        out.update(objective=None, bound=None, status=f"refused: {str(exc)[:90]}")
    out["seconds"] = round(time.perf_counter() - start, 3)
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    out["rss_after_load_mib"] = round(rss_loaded, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("method")
    ap.add_argument("n", type=int)
    ap.add_argument("--time-limit", type=float, default=60.0)
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.method, a.n, a.time_limit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
