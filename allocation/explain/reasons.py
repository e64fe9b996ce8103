"""Why each application got what it got, and which limits of the round bind.

For an application below its highest level, the *next step* is its next allowed level (or,
when no higher level is allowed at all, the next level with money, which some limit forbids on
its own: over the company cap, the budget or a GPU type's capacity by itself).
Every limit that the next step would break, with all other awards kept, is a reason (for a
level forbidden on its own: every limit it breaks on its own):
capacity of a GPU type, the budget, the company cap, a quota. Since a bigger step uses
more of every resource, the next step is the one that tells.

The score that would have sufficed is read off the LP clearing prices: an application
is worth funding when score * awarded_krw >= sum(price_r * usage_r) - sum(quota_price * cover).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocation import schema
from allocation.model.build import BUDGET_ROW, ModelData
from allocation.model.problem import AllocationProblem, Solution


@dataclass(frozen=True)
class ItemExplanation:
    """Why each item is not funded higher, in vectorised form: item i's reason codes are
    ``patterns[pattern[i]][0]`` and the quotas that block it ``patterns[pattern[i]][1]``
    (a round has only a few distinct patterns, so a million items share a handful)."""

    next_option: np.ndarray        # (n,) int, -1 when at the top level (nothing to explain)
    score_needed: np.ndarray       # (n,) float, NaN when not meaningful
    forbidden: np.ndarray          # (n,) bool: the next step breaks a limit on its own (can never be granted)
    pattern: np.ndarray            # (n,) int64 index into patterns
    patterns: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    def codes(self, item: int) -> tuple[str, ...]:
        """Reason codes that block item's next step (empty: nothing to explain)."""
        return self.patterns[int(self.pattern[item])][0]

    def quotas(self, item: int) -> tuple[str, ...]:
        """Names of the quotas that block item's next step."""
        return self.patterns[int(self.pattern[item])][1]


def _row_reason(row_name: str) -> str:
    """budget_exhausted, capacity_<GPU>_exhausted, or by month capacity_<GPU>@<YYYY-MM>_exhausted."""
    if row_name == BUDGET_ROW:
        return "budget_exhausted"
    return schema.capacity_reason(row_name.removeprefix("gpu:"))


def _first_above(mask: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per item: the first level index above `level` where mask (n, L) holds, -1 if none."""
    above = mask & (np.arange(mask.shape[1])[None, :] > level[:, None])
    return np.where(above.any(axis=1), above.argmax(axis=1), -1)


def month_next_step(model: ModelData, choice: np.ndarray, knapsack_use: np.ndarray) -> np.ndarray:
    """By month: the option an explanation is about. Its level is the next level with an
    allowed start (else the next level with money, forbidden on its own); its start is the
    one whose months break the fewest GPU rows with all other awards kept (budget, company cap
    and quotas do not depend on the start), ties to the current start, then the earliest."""
    problem = model.problem
    n, M = problem.n_items, len(model.months)
    L = problem.n_options // M
    level, start = model.level_of(choice), model.start_of(choice)
    allowed = problem.allowed.reshape(n, L, M)
    money = (problem.company_weight.reshape(n, L, M) > 0).any(axis=2)
    target = _first_above(allowed.any(axis=2), level)
    target = np.where(target >= 0, target, _first_above(money, level))
    items, cur = np.arange(n), np.maximum(choice, 0)
    funded = choice >= 0
    gpu_rows = slice(0, len(problem.row_names) - 1)
    old = np.where(funded, problem.weight[gpu_rows, items, cur], 0)            # (R-1, n)
    step = np.maximum(target, 0)
    some_allowed = allowed[items, step].any(axis=1)
    best, best_broken = np.zeros(n, np.int64), np.full(n, np.iinfo(np.int64).max)
    for s in range(M):
        option = step * M + s
        new = problem.weight[gpu_rows, items, option]
        if_alone = new > problem.capacity[gpu_rows, None]
        with_others = knapsack_use[gpu_rows, None] + new - old > problem.capacity[gpu_rows, None]
        broken = np.where(some_allowed, with_others, if_alone).sum(axis=0)
        # only allowed starts are candidates; when no start of the level is allowed, every
        # start in the application's window is (the level breaks a limit on its own)
        in_window = np.where(some_allowed, allowed[items, step, s], model.start_window[:, s])
        score = np.where(in_window, broken * 2 + (s != start), np.iinfo(np.int64).max)
        better = score < best_broken
        best, best_broken = np.where(better, s, best), np.where(better, score, best_broken)
    return np.where(target >= 0, step * M + best, -1).astype(np.int64)


def next_allowed_option(problem: AllocationProblem, choice: np.ndarray) -> np.ndarray:
    """Smallest allowed option above the current one (-1 if none)."""
    n, n_options = problem.value.shape
    options = np.arange(n_options)[None, :]
    above = (options > choice[:, None]) & problem.allowed
    first = np.where(above.any(axis=1), above.argmax(axis=1), -1)
    return first.astype(np.int64)


def next_step(problem: AllocationProblem, choice: np.ndarray) -> np.ndarray:
    """The step an explanation is about: the next allowed option above the current one; when
    none is allowed, the next level above it that a limit forbids on its own (an award level
    with money, e.g. over the company cap by itself); -1 at the top level."""
    nxt = next_allowed_option(problem, choice)
    options = np.arange(problem.n_options)[None, :]
    above = (options > choice[:, None]) & (problem.company_weight > 0)
    forbidden = np.where(above.any(axis=1), above.argmax(axis=1), -1)
    return np.where(nxt >= 0, nxt, forbidden).astype(np.int64)


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
    nxt = month_next_step(model, choice, use["knapsack"]) if model.months else next_step(problem, choice)
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
    # A next step that no limit allows on its own is explained by the limits it breaks on its
    # own, whatever the others get (no award of anyone else could make room for it).
    step = np.maximum(nxt, 0)
    alone = has_next & ~problem.allowed[items, step] if n else np.zeros(0, bool)
    nothing = ~(problem.company_weight > 0).any(axis=1) if n else np.zeros(0, bool)
    if alone.any():
        over_rows = np.where(alone, problem.weight[:, items, step] > problem.capacity[:, None], over_rows)
        over_company = np.where(alone, problem.company_weight[items, step] > problem.company_cap, over_company)
        under_cover = np.where(alone, False, under_cover)

    # Every item's (codes, quotas) is a function of a few booleans: encode them as one integer
    # key per item (vectorised), then spell out each distinct key once.
    R, Q = len(problem.row_names), len(problem.cover_names)
    key = np.zeros(n, np.int64)                      # 0: nothing to explain
    if n:
        bits = np.zeros(n, np.int64)
        for r in range(R):
            bits |= over_rows[r].astype(np.int64) << r
        bits |= over_company.astype(np.int64) << R
        for q in range(Q):
            bits |= under_cover[q].astype(np.int64) << (R + 1 + q)
        key = np.where(has_next, 1 + bits, 0)        # 1 + bits >= 1
        # no level grants even one whole GPU-hour (a tiny request at fractional levels)
        key = np.where(nothing, -1, key)
    uniq, pattern = np.unique(key, return_inverse=True)
    patterns = []
    for k in uniq.tolist():
        codes: list[str] = []
        quotas: list[str] = []
        if k < 0:
            codes.append("request_too_small")
        elif k > 0:
            b = k - 1
            codes += [_row_reason(name) for r, name in enumerate(problem.row_names) if b >> r & 1]
            if b >> R & 1:
                codes.append("company_cap")
            quotas = [name for q, name in enumerate(problem.cover_names) if b >> (R + 1 + q) & 1]
            if quotas:
                codes.append("quota")
            if not codes:
                codes.append("not_optimal")
        patterns.append((tuple(codes), tuple(quotas)))
    pattern = pattern.astype(np.int64).reshape(-1)

    score_needed = np.full(n, np.nan)
    if row_duals is not None and n:
        allowed_next = next_allowed_option(problem, choice)
        if model.months:   # the level-major order: the first allowed level above, cheapest start
            allowed_next = _cheapest_start(model, choice, row_duals, cover_duals)
        opt = np.where(allowed_next >= 0, allowed_next, _top_option(problem))
        ok = opt >= 0
        j = np.maximum(opt, 0)
        price = (row_duals[:, None] * problem.weight[:, items, j]).sum(axis=0)
        if cover_duals is not None and len(cover_duals):
            price -= (cover_duals[:, None] * problem.cover[:, items, j]).sum(axis=0)
        awarded = model.awarded[items, j].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = price / np.where(awarded > 0, awarded, np.nan)   # centipoints per KRW
            # the LP's duals carry float noise (7000.000000000002): an exact break-even stays exact
            needed = np.ceil(ratio - 1e-9 * np.maximum(np.abs(ratio), 1.0)) / 100.0
        score_needed = np.where(ok & ~funded & (needed > model.scores), needed, np.nan)
    return ItemExplanation(next_option=nxt, score_needed=score_needed, forbidden=alone | nothing,
                           pattern=pattern, patterns=tuple(patterns))


def _cheapest_start(model: ModelData, choice: np.ndarray, row_duals: np.ndarray,
                    cover_duals: np.ndarray | None) -> np.ndarray:
    """By month: the allowed option of the next allowed level whose resources cost least at
    the LP prices (-1 if none)."""
    problem = model.problem
    n, M = problem.n_items, len(model.months)
    L = problem.n_options // M
    allowed = problem.allowed.reshape(n, L, M)
    target = _first_above(allowed.any(axis=2), model.level_of(choice))
    items, step = np.arange(n), np.maximum(target, 0)
    best, best_price = np.full(n, -1, np.int64), np.full(n, np.inf)
    for s in range(M):
        option = step * M + s
        price = (row_duals[:, None] * problem.weight[:, items, option]).sum(axis=0)
        if cover_duals is not None and len(cover_duals):
            price -= (cover_duals[:, None] * problem.cover[:, items, option]).sum(axis=0)
        better = allowed[items, step, s] & (price < best_price)
        best, best_price = np.where(better, option, best), np.where(better, price, best_price)
    return np.where(target >= 0, best, -1)


def limits_report(model: ModelData, solution: Solution, explanation: ItemExplanation,
                  quota_costs: dict[str, int | None], min_shares: dict[str, float],
                  row_duals: np.ndarray | None) -> dict:
    """Usage and binding state of every limit of the round."""
    problem = model.problem
    use = problem.usage(solution.choice)
    pattern, patterns = explanation.pattern, explanation.patterns
    present = np.zeros(len(patterns), bool)
    present[np.unique(pattern)] = True
    blocked = {code for k, (codes, _) in enumerate(patterns) if present[k] for code in codes}
    quota_blocked = {name for k, (_, qs) in enumerate(patterns) if present[k] for name in qs}
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
            "binding": name in quota_blocked or bool(cost),
            "objective_cost": cost,
            "objective_cost_share": (round(cost / (solution.objective + cost), 6)
                                     if cost and solution.objective + cost else 0.0),
            "eligible_members": int(member.sum()),
        })
    capped_pattern = np.array([("company_cap" in codes) for codes, _ in patterns], bool)
    capped_items = np.flatnonzero(capped_pattern[pattern]) if len(pattern) else np.zeros(0, np.int64)
    capped = sorted(set(model.business_nos[capped_items].tolist()))
    return {"rows": rows, "quotas": quotas,
            "company_caps": {"cap_krw": problem.company_cap, "companies_blocked": len(capped),
                             "business_nos": capped}}

