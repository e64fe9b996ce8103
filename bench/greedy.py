"""Baselines for the benchmarks: what most programmes do (fund by score until things run out).

Built from the LP-guided solver's exact repair and top-up steps, so they keep every limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from allocation.model.problem import AllocationProblem, Solution
from allocation.solve.lp_guided import build_structure, repair, top_up


def greedy_priority(problem: AllocationProblem) -> np.ndarray:
    """Score order: value per awarded KRW (= score in centipoints in our model), larger first."""
    cw = problem.company_weight.astype(np.float64)
    v = problem.value.astype(np.float64)
    return np.where(cw > 0, v / np.where(cw > 0, cw, 1), v)


def solve_greedy(problem: AllocationProblem, *, time_limit_s: float = 0.0, workers: int = 1,
                 seed: int = 0) -> Solution:
    """What most programmes do: fund by score, each at the largest level that fits the GPU
    capacity, budget and company cap; if a quota is then short, drop the lowest-scored
    applications outside its group until it holds; finally fill what is left, by score,
    with everything that still fits every limit."""
    start = time.perf_counter()
    prio = greedy_priority(problem)
    no_quota = replace(problem, cover=problem.cover[:0], cover_names=())
    S0 = build_structure(no_quota)
    choice = top_up(no_quota, S0, np.full(problem.n_items, -1, np.int64), prio)
    S = build_structure(problem)
    choice = repair(problem, S, choice, prio)
    choice = top_up(problem, S, choice, prio)
    objective = problem.objective(choice)
    return Solution(choice=choice, status="feasible", objective=int(objective),
                    bound=math.inf, solver="greedy by score", wall_seconds=time.perf_counter() - start,
                    details={"workers": 1, "seed": 0, "num_booleans": 0, "num_conflicts": 0})


def solve_greedy_single_pass(problem: AllocationProblem, **_: object) -> Solution:
    """Naive single pass by score: the largest level that keeps every limit (quotas included)
    at the moment it is offered; an application offered too early for a quota is retried
    later, but nothing already funded is ever revisited."""
    start = time.perf_counter()
    S = build_structure(problem)
    choice = top_up(problem, S, np.full(problem.n_items, -1, np.int64), greedy_priority(problem))
    return Solution(choice=choice, status="feasible", objective=int(problem.objective(choice)),
                    bound=math.inf, solver="greedy by score, single pass",
                    wall_seconds=time.perf_counter() - start,
                    details={"workers": 1, "seed": 0, "num_booleans": 0, "num_conflicts": 0})
