"""Small AllocationProblems for the solver tests (plain helpers, not tests)."""

from __future__ import annotations

import numpy as np

from allocation.model.problem import AllocationProblem


def make_problem(
    value,
    allowed=None,
    weight=None,
    capacity=None,
    company=None,
    company_weight=None,
    company_cap=10**18,
    cover=None,
) -> AllocationProblem:
    value = np.asarray(value, np.int64).reshape(len(value), -1) if len(value) else np.zeros((0, 1), np.int64)
    n, L = value.shape
    allowed = np.ones((n, L), bool) if allowed is None else np.asarray(allowed, bool)
    weight = np.zeros((1, n, L), np.int64) if weight is None else np.asarray(weight, np.int64)
    capacity = np.zeros(len(weight), np.int64) if capacity is None else np.asarray(capacity, np.int64)
    company = np.arange(n, dtype=np.int64) if company is None else np.asarray(company, np.int64)
    company_weight = np.zeros((n, L), np.int64) if company_weight is None else np.asarray(company_weight, np.int64)
    cover = np.zeros((0, n, L), np.int64) if cover is None else np.asarray(cover, np.int64)
    if cover.ndim == 2:
        cover = cover[None]
    return AllocationProblem(
        value=value,
        allowed=allowed,
        weight=weight,
        capacity=capacity,
        row_names=tuple(f"row{r}" for r in range(len(weight))),
        company=company,
        company_weight=company_weight,
        company_cap=int(company_cap),
        cover=cover,
        cover_names=tuple(f"quota{q}" for q in range(len(cover))),
    )


def random_tiny_problem(seed: int) -> AllocationProblem:
    """n <= 7 items, L <= 3 options, 1-3 knapsack rows, shared companies, 0-2 quota rows."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    L = int(rng.integers(1, 4))
    R = int(rng.integers(1, 4))
    allowed = rng.random((n, L)) < 0.8
    # awarded amount grows with the option level (like voucher levels)
    w = np.cumsum(rng.integers(1, 6, size=(n, L)), axis=1)
    weight = w[None, :, :] * rng.integers(0, 4, size=(R, n, 1)) + rng.integers(0, 3, size=(R, n, L))
    capacity = (weight.max(axis=2).sum(axis=1) * rng.uniform(0.2, 0.9, size=R)).astype(np.int64)
    # values with frequent ties and some zeros
    value = w * rng.integers(0, 4, size=(n, 1)) + rng.integers(0, 3, size=(n, L))
    n_comp = int(rng.integers(1, n + 1))
    company = rng.integers(0, n_comp, size=n)
    company_weight = w * 1000
    company_cap = int(rng.integers(1, 3) * company_weight.max() * rng.uniform(0.4, 1.0))
    Q = int(rng.integers(0, 3))
    cover = np.zeros((Q, n, L), np.int64)
    for q in range(Q):
        in_group = (rng.random(n) < 0.5).astype(np.int64)
        den = int(rng.integers(2, 6))
        num = int(rng.integers(1, den))  # group share >= num/den of awarded amount
        cover[q] = den * in_group[:, None] * w - num * w
    return make_problem(value, allowed, weight, capacity, company, company_weight, company_cap, cover)


def random_hard_problem(n: int, seed: int = 1) -> AllocationProblem:
    """Correlated multi-dimensional knapsack with companies and a quota: not solved quickly."""
    rng = np.random.default_rng(seed)
    L, R = 3, 3
    base = rng.integers(50, 1000, size=(R, n, 1))
    weight = base * np.arange(1, L + 1)[None, None, :] + rng.integers(0, 30, size=(R, n, L))
    value = (weight.sum(axis=0) * 10 + rng.integers(0, 500, size=(n, L))) * 10**9
    capacity = (weight[:, :, 0].sum(axis=1) * 0.6).astype(np.int64)
    allowed = rng.random((n, L)) < 0.9
    company = rng.integers(0, max(1, n // 3), size=n)
    cw = weight[0] * 1000
    grp = (rng.random(n) < 0.3).astype(np.int64)
    cover = (4 * grp[:, None] * cw - cw)[None]
    return make_problem(value, allowed, weight, capacity, company, cw, int(np.median(cw) * 3), cover)


def many_ties_problem(n: int = 40) -> AllocationProblem:
    """Identical items: any half of them is optimal (huge number of equal optima)."""
    L = 2
    value = np.tile(np.array([[10, 20]]), (n, 1))
    weight = np.tile(np.array([[[100, 200]]]), (1, n, 1))
    capacity = [100 * n + 50]
    return make_problem(value, weight=weight, capacity=capacity, company=np.arange(n) // 2,
                        company_weight=value * 1000, company_cap=25_000)


def assert_valid(problem: AllocationProblem, sol) -> None:
    assert sol.choice.shape == (problem.n_items,)
    assert sol.choice.dtype == np.int64
    assert problem.violations(sol.choice) == []
    assert sol.objective == problem.objective(sol.choice)
    assert sol.bound >= sol.objective
    assert sol.solver.startswith("cp-sat 9.15")
    assert set(sol.details) >= {"workers", "seed", "num_booleans", "num_conflicts"}
