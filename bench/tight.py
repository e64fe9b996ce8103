"""Small rounds with tight quotas: `auto` against the exact optimum (HiGHS, gap 0) and plain CP-SAT.

    .venv/bin/python -m bench.tight [--rounds "120:0.85,0.6:0,1,2,3,4;250:0.9,0.7:2;400:0.85,0.6:2"]
                                    [--highs-time-limit 300] [--repeat 2] [--out bench/results/tight_quotas.md]

--rounds: ";"-separated APPLICATIONS:NC,FT:SEEDS groups. The default family: five 120-application
rounds, and the two rounds of a 250/400-application search (3 seeds x 4 settings) where plain
CP-SAT did not prove optimality within 5 deterministic seconds.

Each round: bench.synthetic with --quota-shares (non-capital and first-time minimum shares of
the awarded money; the generator's default puts non-capital 5 points above its group's share
and first-time well below it), validated and scored; then, one after the other in this process:
  * ours: allocation.solve.dispatch.solve_round with the round's [solver] settings (auto, 60
    deterministic seconds, 1 worker): the allocation and the quota costs, as `voucher allocate`;
    --repeat times (the repeats must give the identical allocation and quota costs);
  * plain CP-SAT as `auto` solved small rounds before issue 16 (one CP-SAT solve with the whole
    time limit; its quota-cost re-solves are not run here: they took as long again per quota);
  * HiGHS MIP with mip_rel_gap = 0 (the exact optimum the table compares with; 1 thread, a
    wall-clock limit, bench.methods.run_highs: not the node-limited step inside `auto`).
Writes a markdown table with the command at its top and the medians over the family.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench.rounds import data_dir
from bench.run import ROOT, load_average, machine

TARGET_SECONDS = 30.0
DEFAULT_ROUNDS = "120:0.85,0.6:0,1,2,3,4;250:0.9,0.7:2;400:0.85,0.6:2"


def parse_rounds(text: str) -> list[tuple[int, tuple[float, float], int]]:
    out = []
    for group in (g for g in text.split(";") if g.strip()):
        n, shares, seeds = group.split(":")
        nc, ft = (float(x) for x in shares.split(","))
        out += [(int(n), (nc, ft), int(s)) for s in seeds.split(",") if s]
    return out


def tight_problem(n: int, seed: int, shares: tuple[float, float]):
    """(AllocationProblem, solver settings) of a tight-quota synthetic round, cached on disk."""
    import polars as pl

    from allocation import files, intake
    from allocation.model.build import build_model
    from allocation.rounds import allocate
    from bench.synthetic import generate_round
    tag = f"tight_{n}_{seed}_" + "_".join(f"{s:g}" for s in shares)
    base = data_dir() / tag
    if not (base / "prep" / files.SCORES).exists():
        generate_round(base / "round", n, seed=seed, quota_shares=shares)
        allocate.validate(base / "round", base / "prep")
        allocate.score(base / "prep")
    v = intake.load_validated(base / "prep" / files.INTAKE)
    model = build_model(v.applications, v.requests, v.capacity, pl.read_parquet(base / "prep" / files.SCORES),
                        v.config)
    return model.problem, v.config.solver


def measure(n: int, seed: int, shares: tuple[float, float], highs_limit: float, repeat: int = 1) -> dict:
    from allocation.solve.cpsat import solve_cpsat
    from allocation.solve.dispatch import solve_round
    from bench.methods import run_highs
    problem, settings = tight_problem(n, seed, shares)
    row: dict = {"applications": n, "quota_shares": list(shares), "seed": seed, "items": problem.n_items,
                 "time_limit_s": settings.time_limit_s}
    t = time.perf_counter()
    ours = solve_round(problem, settings)
    row["ours"] = {"seconds": round(time.perf_counter() - t, 2), "objective": ours.solution.objective,
                   "bound": ours.solution.bound, "status": ours.solution.status, "strategy": ours.strategy,
                   "stopped_by": ours.solution.details.get("stopped_by"),
                   "stage_seconds": ours.seconds, "quota_costs": ours.quota_costs,
                   "race": ours.solution.details.get("race")}
    assert not problem.violations(ours.solution.choice)
    # the same round again: the same allocation and quota costs (deterministic limits only)
    again = []
    for _ in range(repeat - 1):
        t = time.perf_counter()
        other = solve_round(problem, settings)
        again.append({"seconds": round(time.perf_counter() - t, 2),
                      "identical": other.solution.choice.tolist() == ours.solution.choice.tolist()
                      and other.quota_costs == ours.quota_costs and other.strategy == ours.strategy})
    row["ours"]["repeats"] = again
    t = time.perf_counter()
    plain = solve_cpsat(problem, time_limit_s=settings.time_limit_s, workers=settings.workers, seed=settings.seed)
    row["plain_cpsat"] = {"seconds": round(time.perf_counter() - t, 2), "objective": plain.objective,
                          "bound": plain.bound, "status": plain.status,
                          "deterministic_time": round(plain.deterministic_time, 2)}
    t = time.perf_counter()
    h = run_highs(problem, highs_limit, True, mip_rel_gap=0)
    row["highs"] = {"seconds": round(time.perf_counter() - t, 2), "objective": h.get("objective"),
                    "bound": h.get("bound"), "status": h["status"]}
    return row


def _below(x, best) -> str:
    if x is None or best is None:
        return "—"
    return f"{(best - x) / best:.2e}"


def exact_optimum(r: dict) -> tuple[int | None, str]:
    """The round's exact optimum and who proved it: HiGHS (gap 0), else ours when its bound
    equals its objective; (None, "") when neither proved it."""
    if r["highs"]["status"] == "Optimal" and r["highs"]["objective"] is not None:
        return r["highs"]["objective"], "HiGHS"
    if r["ours"]["status"] == "optimal":
        return r["ours"]["objective"], "ours (bound = objective)"
    return None, ""


def table(rows: list[dict]) -> list[str]:
    lines = ["| applications, quota shares, seed | items | exact optimum (proved by) | ours (auto): below optimum | "
             "status (stopped by) | ours: proven bound above ours | strategy used | ours s (solve + quota costs) | "
             "repeat s (identical?) | plain CP-SAT: below optimum | status | "
             "plain CP-SAT s | HiGHS: below optimum | HiGHS status | HiGHS s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best, by = exact_optimum(r)
        o, p, h = r["ours"], r["plain_cpsat"], r["highs"]
        rep = ", ".join(f"{a['seconds']:.1f} ({'yes' if a['identical'] else 'NO'})" for a in o.get("repeats", [])) or "—"
        lines.append(f"| {r.get('applications', 120)}, {','.join(f'{x:g}' for x in r.get('quota_shares', []))}, "
                     f"{r['seed']} | {r['items']} | {best if best is not None else 'unknown'} ({by or '—'}) | "
                     f"{_below(o['objective'], best)} | {o['status']} ({o.get('stopped_by') or '—'}) | "
                     f"{(o['bound'] - o['objective']) / o['bound']:.1e} | {o['strategy']} | {o['seconds']:.1f} | {rep} | "
                     f"{_below(p['objective'], best)} | {p['status']} (dtime {p['deterministic_time']}) | "
                     f"{p['seconds']:.1f} | {_below(h['objective'], best)} | {h['status']} | {h['seconds']:.1f} |")
    known = [(r, exact_optimum(r)[0]) for r in rows]
    hit = sum(best is not None and r["ours"]["objective"] == best for r, best in known)
    hit_plain = sum(best is not None and r["plain_cpsat"]["objective"] == best for r, best in known)
    med = lambda k: statistics.median(r[k]["seconds"] for r in rows)  # noqa: E731
    slowest = max(r["ours"]["seconds"] for r in rows)
    ok30 = slowest <= TARGET_SECONDS
    lines += ["", f"Target (auto at the optimum or within 1e-5 of a proven bound, ≤ {TARGET_SECONDS:g} s): "
              + ("met" if hit == len(rows) and ok30 else "**NOT met**")
              + f" — optimum reached on {hit} of {len(rows)} rounds, slowest {slowest:.1f} s.", "",
              f"Plain CP-SAT reaches it on {hit_plain} of {len(rows)}. Median seconds: ours {med('ours'):.1f} "
              f"(solve and quota costs), plain CP-SAT {med('plain_cpsat'):.1f} (solve only), HiGHS "
              f"{med('highs'):.1f}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", default=DEFAULT_ROUNDS)
    ap.add_argument("--highs-time-limit", type=float, default=300.0)
    ap.add_argument("--repeat", type=int, default=2, help="solve each round this many times with auto "
                    "(the table shows whether the repeats gave the identical allocation and quota costs)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tight_quotas.md"))
    a = ap.parse_args(argv)
    command = ".venv/bin/python -m bench.tight " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M")
    mach = machine()
    t0 = time.perf_counter()
    rows = []
    for n, shares, seed in parse_rounds(a.rounds):
        rows.append(measure(n, seed, shares, a.highs_time_limit, a.repeat))
        print(json.dumps(rows[-1]), flush=True)
    md = ["# Small rounds with tight quotas", "",
          f"Command: `{command.strip()}` (run {started}, {(time.perf_counter() - t0) / 60:.1f} min in all).", "",
          f"Machine: {mach['nproc']} cores ({mach['cpu']}); load average at start {mach['load_at_start']}, "
          f"at the end {load_average()} (shared with other work: compare the columns of one run side by side).", "",
          "Rounds: `python -m bench.synthetic OUT -n N --seed S --quota-shares NC,FT` "
          "(non-capital and first-time quotas at these shares of the awarded money), each round's own "
          "[solver] settings (auto, 60 deterministic seconds, 1 worker). \"below optimum\" = (exact − ours) / exact.",
          "", *table(rows), "", "## Raw results", "", "```json", json.dumps(rows, indent=1), "```", ""]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(md), encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
