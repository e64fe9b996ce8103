"""OR-Library Chu-Beasley multidimensional knapsack instances through the allocation solvers.

The files are read at run time from ../shared/benchmarks/orlib (or $ORLIB_DIR); nothing is
copied into the repository. Format per file: K, then per problem "n m best", n profits,
m x n weights (row by row), m capacities. The best-known values come from
best-feasible-slns.txt (Chu & Beasley 1997 GA). An MKP maps to an AllocationProblem with one
option per item, m knapsack rows, no companies caps and no quotas.

    python -m bench.orlib STRATEGY TIME_LIMIT [--per-class K]     (one JSON line per instance)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from allocation.model.problem import AllocationProblem


def orlib_dir() -> Path:
    env = os.environ.get("ORLIB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "orlib"


def read_file(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """[(profits (n,), weights (m, n), capacities (m,))] of one mknapcbX.txt."""
    nums = path.read_text().split()
    pos = 0

    def take(k: int) -> np.ndarray:
        nonlocal pos
        out = np.array(nums[pos:pos + k], dtype=np.float64)
        pos += k
        return out

    K = int(take(1)[0])
    out = []
    for _ in range(K):
        n, m, _opt = (int(x) for x in take(3))
        profits = take(n).astype(np.int64)
        weights = take(m * n).astype(np.int64).reshape(m, n)
        caps = take(m).astype(np.int64)
        out.append((profits, weights, caps))
    return out


def best_known(path: Path) -> dict[str, int]:
    """'5.100-00' -> best feasible value (first table of best-feasible-slns.txt)."""
    # integer values only: the second table (LP relaxation values) is written as floats
    best: dict[str, int] = {}
    for name, val in re.findall(r"^\s*(\d+\.\d+-\d+)\s+(\d+)\s*$", path.read_text(), re.M):
        best.setdefault(name, int(val))
    return best


def to_problem(profits: np.ndarray, weights: np.ndarray, caps: np.ndarray) -> AllocationProblem:
    m, n = weights.shape
    return AllocationProblem(
        value=profits.reshape(n, 1), allowed=np.ones((n, 1), bool),
        weight=weights.reshape(m, n, 1), capacity=caps, row_names=tuple(f"c{r}" for r in range(m)),
        company=np.arange(n, dtype=np.int64), company_weight=np.zeros((n, 1), np.int64),
        company_cap=1, cover=np.zeros((0, n, 1), np.int64), cover_names=())


def instances(per_class: int | None):
    """(class name 'm.n', instance name, problem, best) in file order.

    per_class: None = all 30 per file; k = the first k of each tightness group of ten
    (tightness 0.25, 0.5, 0.75), i.e. 3k per file.
    """
    d = orlib_dir()
    best = best_known(d / "best-feasible-slns.txt")
    for f in range(1, 10):
        path = d / f"mknapcb{f}.txt"
        for k, (p, w, c) in enumerate(read_file(path)):
            if per_class is not None and k % 10 >= per_class:
                continue
            m, n = w.shape
            name = f"{m}.{n}-{k:02d}"
            yield f"{m}.{n}", name, to_problem(p, w, c), best.get(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("strategy")
    ap.add_argument("time_limit", type=float)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    from allocation.solve import dispatch
    for cls, name, problem, best in instances(a.per_class):
        t = time.perf_counter()
        sol = dispatch.solve(problem, strategy=a.strategy, time_limit_s=a.time_limit,
                            workers=a.workers, seed=0)
        secs = time.perf_counter() - t
        ok = not problem.violations(sol.choice)
        print(json.dumps({"class": cls, "instance": name, "objective": sol.objective if ok else None,
                          "best_known": best, "bound": sol.bound, "status": sol.status,
                          "seconds": round(secs, 3),
                          "gap_to_best": (best - sol.objective) / best if best and ok else None}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
