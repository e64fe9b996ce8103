"""GPU capacity by month on the large-round dual path: quality and time against single-period.

    nice -n 5 .venv/bin/python -m bench.months [--applications 10000 100000 1000000] [--months 6]

For each size: the synthetic round (seed 0) as a single-period round and the same round with
capacity by month (bench.synthetic --months M: the same hours per type, split over M months
with a seasonal profile, applications with durations and start windows), each validated and
scored once (cached under $VOUCHER_BENCH_DATA or /tmp/voucher-bench), then solved by the
LP-guided method (allocation.solve.lp_guided), each in a fresh process (its own peak RSS:
validation and scoring are cached, so the peak is the model build and the solve). Gap =
(proven bound - objective) / bound, each against its own Lagrangian bound. Prints a markdown table; bench/results/months.md holds a run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time

import numpy as np
import polars as pl

from allocation import files, intake
from allocation.model.build import build_model
from allocation.rounds import allocate
from allocation.solve import lp_guided
from bench.rounds import data_dir, prepared_dir
from bench.synthetic import build_round, with_strong_codes, write_round

SEED = 0


def _model(n: int, months: int):
    if months:
        name = f"{n}_months_{months}_c80"
        raw, prepared = data_dir() / f"round_{name}", data_dir() / f"prepared_{name}"
        if not (raw / "round.toml").exists():
            # 80-bit receipt codes as in bench.rounds: intake's PBKDF2 stays cheap at 1M
            write_round(with_strong_codes(build_round(n, seed=SEED, months=months)), raw)
        if not (prepared / files.SCORES).exists():
            allocate.validate(raw, prepared)
            allocate.score(prepared)
    else:
        prepared = prepared_dir(n)       # the single-period round of bench.rounds (shared cache)
    v = intake.load_validated(prepared / files.INTAKE)
    scores = pl.read_parquet(prepared / files.SCORES)
    t = time.perf_counter()
    model = build_model(v.applications, v.requests, v.capacity, scores, v.config)
    return model, time.perf_counter() - t


def measure(n: int, months: int, time_limit: float, workers: int) -> str:
    model, build_s = _model(n, months)
    p = model.problem
    t = time.perf_counter()
    sol = lp_guided.solve_lp_guided(p, time_limit_s=time_limit, workers=workers, seed=0)
    secs = time.perf_counter() - t
    problems = p.violations(sol.choice)
    assert not problems, problems
    prices = sol.details.get("row_prices", {})
    binding = sum(1 for v in prices.values() if v > 0)
    funded = int((sol.choice >= 0).sum())
    # the problem arrays as held (by month: MonthlyWeight holds the factors, not the dense rows)
    memory = (p.weight.nbytes + p.cover.nbytes + p.value.nbytes) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20      # KiB -> GiB
    stages = sol.details.get("stage_seconds", {})
    split = " / ".join(f"{stages.get(k, 0):.1f}" for k in ("dual", "round_repair", "top_up", "polish"))
    before = (sol.bound - sol.details["objective_before_polish"]) / sol.bound
    return (f"| {n:,} | {'single period' if not months else f'{months} months'} | {p.n_items:,} | "
            f"{p.n_options} | {len(p.row_names) + len(p.cover_names)} | {binding} | {funded:,} | "
            f"{sol.objective:.6e} | {before:.2e} | {sol.gap:.2e} | {build_s:.1f} | {secs:.1f} | {split} | "
            f"{memory:,.0f} | {peak:.2f} |")


def _child(args, out) -> None:
    out.put(measure(*args))


def measure_apart(n: int, months: int, time_limit: float, workers: int) -> str:
    """measure() in a fresh process, so that its peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=((n, months, time_limit, workers), out))
    proc.start()
    row = out.get()
    proc.join()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--applications", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    print(f"Command: `{' '.join(['nice -n 5 .venv/bin/python -m bench.months', *(argv if argv is not None else sys.argv[1:])])}`"
          f" (synthetic seed 0, LP-guided, {a.workers} workers, deterministic time limit {a.time_limit:g})\n")
    print("| applications | capacity | items | options | global rows | rows with a price > 0 | funded | "
          "objective | gap before polish | gap to the proven bound | build s | solve s | "
          "dual / round+repair / top-up / polish s | problem arrays MiB | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in a.applications:
        for months in (0, a.months):
            print(measure_apart(n, months, a.time_limit, a.workers), flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
