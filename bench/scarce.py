"""Rounds where GPU-hours run out before the money: how far greedy and our allocator land from
the proven bound, with and without the large-round core parameters (LARGE_CORE_PARAMETERS).

    .venv/bin/python -m bench.scarce [--applications 20000] [--factors 0.5,0.6,0.7,0.8 ...]

Each --factors is one round: GPU-hours on offer per type (H200,H100,A100,L40S) relative to what
the budget would buy of it (the default rounds use 0.7,1.1,1.4,1.8). Prints a markdown table;
bench/results/gpu_scarce.md holds a committed run.
"""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT_FACTORS = ("0.5,0.6,0.7,0.8", "0.4,0.6,0.9,1.4")


def measure(n: int, factors: tuple[float, ...], time_limit: float) -> list[str]:
    from allocation.solve import lp_guided
    from bench.greedy import solve_greedy, solve_greedy_single_pass
    from bench.rounds import model_data
    problem = model_data(n, factors).problem
    runs = {}
    for label, params in (("ours (large-core parameters)", lp_guided.LARGE_CORE_PARAMETERS),
                          ("ours (CP-SAT defaults in the core)", {})):
        t = time.perf_counter()
        sol = lp_guided.solve_lp_guided(problem, time_limit_s=time_limit, workers=1, seed=0,
                                           large_core_parameters=params)
        runs[label] = (sol, time.perf_counter() - t)
    bound = min(sol.bound for sol, _ in runs.values())
    for label, fn in (("greedy by score (+quota repair, fill)", solve_greedy),
                      ("greedy by score, single pass", solve_greedy_single_pass)):
        t = time.perf_counter()
        runs[label] = (fn(problem), time.perf_counter() - t)
    prices = runs["ours (large-core parameters)"][0].details.get("row_prices", {})
    binding = ", ".join(k for k, v in prices.items() if v > 0)
    rows = []
    for label, (sol, secs) in runs.items():
        assert not problem.violations(sol.choice), label
        rows.append(f"| {','.join(f'{f:g}' for f in factors)} | {label} | {sol.objective:.6e} | "
                    f"{(bound - sol.objective) / bound:.2e} | {secs:.1f} | {binding} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--applications", type=int, default=20_000)
    ap.add_argument("--factors", action="append", default=None)
    ap.add_argument("--time-limit", type=float, default=30.0)
    a = ap.parse_args(argv)
    print(f"Command: `{' '.join(['.venv/bin/python -m bench.scarce', *(argv if argv is not None else sys.argv[1:])])}`"
          f" ({a.applications:,} applications, synthetic seed 0, deterministic)\n")
    print("| capacity factors | method | objective | gap to the proven bound | seconds | rows with a price > 0 |")
    print("|---|---|---|---|---|---|")
    for text in a.factors or DEFAULT_FACTORS:
        factors = tuple(float(x) for x in text.split(","))
        for row in measure(a.applications, factors, a.time_limit):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
