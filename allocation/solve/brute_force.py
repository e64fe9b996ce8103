"""Exhaustive optimum of a tiny AllocationProblem: the oracle the tests compare solvers with."""

from __future__ import annotations

import itertools

import numpy as np

from allocation.model.problem import AllocationProblem

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
