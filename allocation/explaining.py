"""Why each application got what it got, and which limits of the round bind.

For an application below its highest level, the *next step* is its next allowed level.
Every limit that the next step would break, with all other awards kept, is a reason:
capacity of a GPU type, the budget, the company cap, a quota. Since a bigger step uses
more of every resource, the next step is the one that tells.

The score that would have sufficed is read off the LP clearing prices: an application
is worth funding when score * awarded_krw >= sum(price_r * usage_r) - sum(quota_price * cover).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from allocation import schema
from allocation.modeling import BUDGET_ROW, ModelData
from allocation.problem import AllocationProblem, Solution


@dataclass(frozen=True)
class ItemExplanation:
    next_option: np.ndarray        # (n,) int, -1 when at the top level (nothing to explain)
    blockers: list[list[str]]      # (n,) reason codes that block the next step
    quota_blockers: list[list[str]]  # (n,) names of quotas that block the next step
    score_needed: np.ndarray       # (n,) float, NaN when not meaningful


def _row_reason(row_name: str) -> str:
    if row_name == BUDGET_ROW:
        return "budget_exhausted"
    return schema.capacity_reason(row_name.removeprefix("gpu:"))


def next_allowed_option(problem: AllocationProblem, choice: np.ndarray) -> np.ndarray:
    """Smallest allowed option above the current one (-1 if none)."""
    n, n_options = problem.value.shape
    options = np.arange(n_options)[None, :]
    above = (options > choice[:, None]) & problem.allowed
    first = np.where(above.any(axis=1), above.argmax(axis=1), -1)
    return first.astype(np.int64)


def _top_option(problem: AllocationProblem) -> np.ndarray:
    """Highest option index that could ever be granted, -1 if none is allowed."""
    n_options = problem.n_options
    rev = problem.allowed[:, ::-1]
    return np.where(rev.any(axis=1), n_options - 1 - rev.argmax(axis=1), -1)


def explain_items(model: ModelData, choice: np.ndarray,
                  row_duals: np.ndarray | None = None,
                  cover_duals: np.ndarray | None = None) -> ItemExplanation:
    problem = model.problem
    n = problem.n_items
    use = problem.usage(choice)
    nxt = next_allowed_option(problem, choice)
    has_next = nxt >= 0
    items = np.arange(n)
    cur = np.maximum(choice, 0)
    funded = choice >= 0

    def delta(coef: np.ndarray) -> np.ndarray:  # coef (..., n, L) -> change by moving to nxt
        new = np.where(has_next, coef[..., items, np.maximum(nxt, 0)], 0)
        old = np.where(funded, coef[..., items, cur], 0)
        return new - old

    over_rows = (use["knapsack"][:, None] + delta(problem.weight)) > problem.capacity[:, None]
    company_total = use["company"][problem.company] if n else np.zeros(0, np.int64)
    over_company = company_total + delta(problem.company_weight) > problem.company_cap
    under_cover = (use["cover"][:, None] + delta(problem.cover)) < 0

    # Options never allowed say why directly (e.g. one application above the company cap).
    never = ~problem.allowed.any(axis=1)
    lowest_awarded = model.awarded[:, 0] if n else np.zeros(0, np.int64)

    blockers: list[list[str]] = []
    quota_blockers: list[list[str]] = []
    for i in range(n):
        codes: list[str] = []
        quotas: list[str] = []
        if never[i]:
            if lowest_awarded[i] > problem.company_cap:
                codes.append("company_cap")
            if lowest_awarded[i] > problem.capacity[-1]:
                codes.append("budget_exhausted")
            if not codes:
                codes.append(_row_reason(problem.row_names[int(np.argmax(
                    model.hours[i, 0] > problem.capacity[:-1]))]))
        elif has_next[i]:
            codes += [_row_reason(name) for r, name in enumerate(problem.row_names) if over_rows[r, i]]
            if over_company[i]:
                codes.append("company_cap")
            quotas = [name for q, name in enumerate(problem.cover_names) if under_cover[q, i]]
            if quotas:
                codes.append("quota")
            if not codes:
                codes.append("not_optimal")
        blockers.append(codes)
        quota_blockers.append(quotas)

    score_needed = np.full(n, np.nan)
    if row_duals is not None and n:
        opt = np.where(has_next, nxt, _top_option(problem))
        ok = opt >= 0
        j = np.maximum(opt, 0)
        price = (row_duals[:, None] * problem.weight[:, items, j]).sum(axis=0)
        if cover_duals is not None and len(cover_duals):
            price -= (cover_duals[:, None] * problem.cover[:, items, j]).sum(axis=0)
        awarded = model.awarded[items, j].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.ceil(price / np.where(awarded > 0, awarded, np.nan)) / 100.0
        score_needed = np.where(ok & ~funded & (needed > model.scores), needed, np.nan)
    return ItemExplanation(next_option=nxt, blockers=blockers, quota_blockers=quota_blockers,
                           score_needed=score_needed)


def without_quota(problem: AllocationProblem, q: int) -> AllocationProblem:
    keep = [k for k in range(len(problem.cover_names)) if k != q]
    return replace(problem, cover=problem.cover[keep],
                   cover_names=tuple(problem.cover_names[k] for k in keep))


def limits_report(model: ModelData, solution: Solution, explanation: ItemExplanation,
                  quota_costs: dict[str, int | None], min_shares: dict[str, float],
                  row_duals: np.ndarray | None) -> dict:
    """Usage and binding state of every limit of the round."""
    problem = model.problem
    use = problem.usage(solution.choice)
    blocked = {code for codes in explanation.blockers for code in codes}
    rows = []
    for r, name in enumerate(problem.row_names):
        used, cap = int(use["knapsack"][r]), int(problem.capacity[r])
        rows.append({
            "limit": name, "used": used, "capacity": cap, "slack": cap - used,
            "utilisation": round(used / cap, 6) if cap else None,
            "binding": _row_reason(name) in blocked,
            "lp_price": None if row_duals is None else float(row_duals[r]),
        })
    total = int(model.awarded[np.arange(problem.n_items), np.maximum(solution.choice, 0)]
                [solution.choice >= 0].sum())
    quotas = []
    for name in problem.cover_names:
        member = model.quota_groups[name]
        funded = solution.choice >= 0
        group_total = int(model.awarded[np.arange(problem.n_items), np.maximum(solution.choice, 0)]
                          [funded & member].sum())
        cost = quota_costs.get(name)
        quotas.append({
            "quota": name, "group_awarded_krw": group_total, "awarded_krw": total,
            "share": round(group_total / total, 6) if total else None,
            "min_share": min_shares[name],
            "binding": any(name in qs for qs in explanation.quota_blockers) or bool(cost),
            "objective_cost": cost,
            "objective_cost_share": (round(cost / (solution.objective + cost), 6)
                                     if cost and solution.objective + cost else 0.0),
            "eligible_members": int(member.sum()),
        })
    capped = sorted({model.business_nos[i] for i, codes in enumerate(explanation.blockers)
                     if "company_cap" in codes})
    return {"rows": rows, "quotas": quotas,
            "company_caps": {"cap_krw": problem.company_cap, "companies_blocked": len(capped),
                             "business_nos": capped}}

