"""The allocation model as plain integer arrays: what every solver takes.

Items are the selectable applications; options are the non-zero award levels.
Choose for each item at most one option (none = level 0) to

    maximise   sum value[i, l] * x[i, l]
    subject to sum_{i,l} weight[r, i, l] * x[i, l] <= capacity[r]      for every knapsack row r
               sum_{i in company c, l} company_weight[i, l] * x[i, l] <= company_cap   for every c
               sum_{i,l} cover[q, i, l] * x[i, l] >= 0                  for every quota row q
               x[i, l] = 0 where not allowed[i, l]

All coefficients are int64 (CP-SAT takes integers only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class AllocationProblem:
    value: np.ndarray            # (n, L) int64, objective coefficient of option l of item i
    allowed: np.ndarray          # (n, L) bool
    weight: np.ndarray           # (R, n, L) int64, usage of knapsack row r
    capacity: np.ndarray         # (R,) int64
    row_names: tuple[str, ...]   # (R,) e.g. "gpu:H100", "budget"
    company: np.ndarray          # (n,) int64 company index per item, 0..C-1
    company_weight: np.ndarray   # (n, L) int64 (awarded KRW)
    company_cap: int
    cover: np.ndarray            # (Q, n, L) int64, quota rows: sum >= 0
    cover_names: tuple[str, ...] # (Q,)
    # GPU capacity by month: an item's options of equal value differ only in the GPU rows they
    # use (start months); the large-round repair may move an item between them
    equal_value_moves: bool = False

    @property
    def n_items(self) -> int:
        return int(self.value.shape[0])

    @property
    def n_options(self) -> int:
        return int(self.value.shape[1])

    def objective(self, choice: np.ndarray) -> int:
        """Objective of a choice vector (-1 = not funded, else option index)."""
        picked = choice >= 0
        idx = np.nonzero(picked)[0]
        return int(self.value[idx, choice[idx]].sum())

    def usage(self, choice: np.ndarray) -> dict[str, np.ndarray]:
        """Row activities of a choice vector: knapsack rows, company sums, cover rows."""
        idx = np.nonzero(choice >= 0)[0]
        opt = choice[idx]
        knapsack = self.weight[:, idx, opt].sum(axis=1) if len(idx) else np.zeros(len(self.capacity), np.int64)
        companies = np.zeros(int(self.company.max(initial=-1)) + 1, np.int64)
        if len(idx):
            np.add.at(companies, self.company[idx], self.company_weight[idx, opt])
        cover = self.cover[:, idx, opt].sum(axis=1) if len(idx) else np.zeros(len(self.cover_names), np.int64)
        return {"knapsack": knapsack, "company": companies, "cover": cover}

    def violations(self, choice: np.ndarray) -> list[str]:
        """Human-readable list of broken constraints (empty = feasible)."""
        out: list[str] = []
        idx = np.nonzero(choice >= 0)[0]
        if len(idx) and not self.allowed[idx, choice[idx]].all():
            out.append("an option that is not allowed is chosen")
        if (choice >= self.n_options).any() or (choice < -1).any():
            out.append("choice index out of range")
            return out
        use = self.usage(choice)
        for name, used, cap in zip(self.row_names, use["knapsack"], self.capacity):
            if used > cap:
                out.append(f"{name}: {used} > {cap}")
        over = np.nonzero(use["company"] > self.company_cap)[0]
        if len(over):
            out.append(f"company cap exceeded for company index {over.tolist()}")
        for name, act in zip(self.cover_names, use["cover"]):
            if act < 0:
                out.append(f"quota {name}: activity {act} < 0")
        return out

    def without_quota(self, q: int) -> AllocationProblem:
        """The same problem without quota row q (what the quota costs)."""
        keep = [k for k in range(len(self.cover_names)) if k != q]
        return replace(self, cover=self.cover[keep], cover_names=tuple(self.cover_names[k] for k in keep))

    def restricted(self, fixed: dict[int, int] | None) -> AllocationProblem:
        """The problem with each fixed item limited to its option (-1: to none)."""
        if not fixed:
            return self
        allowed = self.allowed.copy()
        for i, o in fixed.items():
            allowed[i, :] = False
            if o >= 0:
                allowed[i, o] = True
        return replace(self, allowed=allowed, value=np.where(allowed, self.value, 0))


@dataclass
class Solution:
    choice: np.ndarray           # (n,) int64, -1 = not funded, else option index
    status: str                  # "optimal" | "feasible" | "no_solution"
    objective: int
    bound: float                 # proven upper bound on the objective (>= objective)
    solver: str                  # e.g. "cp-sat 9.15"
    deterministic_time: float = 0.0
    wall_seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap (bound - objective) / max(|bound|, 1)."""
        return float(max(self.bound - self.objective, 0.0) / max(abs(self.bound), 1.0))
