"""Helpers every solver shares: which (item, option) pairs get a variable, fixed items,
the company rows that can bind, and int64 overflow checks."""

from __future__ import annotations

import math

import numpy as np

from allocation.model.problem import AllocationProblem

# CP-SAT works in int64 and rejects a model when a linear expression could
# overflow; we refuse earlier with a message a person can act on.
OVERFLOW_LIMIT = 2**62


# ---------------------------------------------------------------------------
# helpers shared by the solvers
# ---------------------------------------------------------------------------


def abs_sum_exceeds(coefs: np.ndarray, limit: int = OVERFLOW_LIMIT) -> bool:
    """sum(|coefs|) > limit, exactly (int64 sums of |x| can themselves overflow)."""
    if coefs.size == 0:
        return False
    approx = float(np.abs(coefs.astype(np.float64)).sum())
    if approx <= limit / 2:
        return False
    return sum(abs(int(c)) for c in coefs.ravel().tolist()) > limit


def check_overflow(problem: AllocationProblem, ii: np.ndarray, ll: np.ndarray) -> None:
    """Raise ValueError when objective or a row could overflow int64 inside CP-SAT."""
    if abs_sum_exceeds(problem.value[ii, ll]):
        raise ValueError(
            "objective too large for CP-SAT: the sum of |value| over allowed options exceeds 2**62 "
            "(int64 overflow risk); express values in a coarser unit (e.g. thousands of KRW)"
        )
    for r, name in enumerate(problem.row_names):
        if abs_sum_exceeds(problem.weight[r, ii, ll]) or abs(int(problem.capacity[r])) > OVERFLOW_LIMIT:
            raise ValueError(f"knapsack row {name!r}: coefficients too large for CP-SAT (sum of |weight| > 2**62)")
    if abs_sum_exceeds(problem.company_weight[ii, ll]) or abs(int(problem.company_cap)) > OVERFLOW_LIMIT:
        raise ValueError("company rows: coefficients too large for CP-SAT (sum of |company_weight| > 2**62)")
    for q, name in enumerate(problem.cover_names):
        if abs_sum_exceeds(problem.cover[q, ii, ll]):
            raise ValueError(f"quota row {name!r}: coefficients too large for CP-SAT (sum of |cover| > 2**62)")


def float_at_least(value: int) -> float:
    """The smallest float >= the integer `value` (float(value) may round down)."""
    f = float(value)
    return f if f >= value else math.nextafter(f, math.inf)


def item_extremes(coef: np.ndarray, item: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item: max(0, max coef) and min(0, min coef) over its model variables.

    With at most one option per item these bound any row activity from above/below.
    """
    hi = np.zeros(n, np.int64)
    lo = np.zeros(n, np.int64)
    if len(item):
        np.maximum.at(hi, item, coef)
        np.minimum.at(lo, item, coef)
    return hi, lo


def binding_company_groups(problem: AllocationProblem, ii: np.ndarray, cw: np.ndarray) -> list[np.ndarray]:
    """Variable positions per company, for companies whose items could exceed the cap.

    A company whose items' largest options sum to <= cap can never violate it: no row.
    """
    if len(ii) == 0:
        return []
    hi, _ = item_extremes(cw, ii, problem.n_items)
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


def fixed_arrays(problem: AllocationProblem, fixed: dict[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
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


def model_variables(
    problem: AllocationProblem, fixed_items: np.ndarray, fixed_opts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(item, option) pairs that get a variable, item-major: allowed ones, narrowed by fixing."""
    mask = problem.allowed.astype(bool).copy()
    mask[fixed_items, :] = False
    chosen = fixed_opts >= 0
    mask[fixed_items[chosen], fixed_opts[chosen]] = True
    ii, ll = np.nonzero(mask)
    return ii.astype(np.int64), ll.astype(np.int64)
