"""What-if scenarios at scale: seconds per scenario of `voucher whatif` (issue 17: ≤ 30 s at 10k).

    .venv/bin/python -m bench.whatif [--sizes 10000] [--out bench/results/whatif.md]

A synthetic round (bench.synthetic, seed 0, 80-bit receipt codes as in bench.dag) of each size; `allocation.rounds.whatif.run_whatif`
(what `voucher whatif` runs) with three scenarios — budget +10%, the non-capital quota at 0.3,
minimum score 65 — in this process. Seconds per scenario = from its start to the next one's
(solve, explain, write and the comparison with the base), read from the stage notifications.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from allocation.rounds.whatif import run_whatif
from bench.run import load_average, machine
from bench.dag import make_round

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["budget=+10%", "quota.non_capital=0.3", "min_score=65"]
TARGET_S = 30.0


def measure(n: int, work: Path) -> dict:
    folder = make_round(work / f"round-{n}", n)
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    rows = run_whatif(folder, work / f"whatif-{n}", SCENARIOS,
                      on_stage=lambda name: marks.append((name, time.perf_counter())))
    end = time.perf_counter()
    starts = [(name, t) for name, t in marks if name.startswith("scenario ")]
    seconds = [round(((starts[k + 1][1] if k + 1 < len(starts) else end) - t), 1) for k, (_, t) in enumerate(starts)]
    base = round((starts[0][1] if starts else end) - start, 1)
    return {"applications": n, "base_s": base, "scenario_s": dict(zip(SCENARIOS, seconds)),
            "funded": {r["scenario"]: r["funded"] for r in rows}}


def markdown(rows: list[dict], command: str, loads: list[str]) -> str:
    mach = machine()
    lines = ["# What-if scenarios", "", f"Command: `{command}` (run {time.strftime('%Y-%m-%d %H:%M')}).", "",
             f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram']} RAM; load average at start {loads[0]}, "
             f"at the end {loads[-1]} (shared with other work).", "",
             f"Target (issue 17): each scenario at 10k applications ≤ {TARGET_S:.0f} s on 2 cores.", "",
             "| applications | base (validate, score, allocate) s | " + " | ".join(f"`{s}` s" for s in SCENARIOS)
             + " | slowest scenario | verdict |", "|---:|---:|" + "---:|" * len(SCENARIOS) + "---:|---|"]
    for r in rows:
        slowest = max(r["scenario_s"].values())
        verdict = "met" if slowest <= TARGET_S else "**NOT met**"
        lines.append(f"| {r['applications']:,} | {r['base_s']} | " + " | ".join(str(r["scenario_s"][s]) for s in SCENARIOS)
                     + f" | {slowest} | {verdict if r['applications'] == 10_000 else '—'} |")
    lines += ["", "## Raw results", "", "```json", json.dumps(rows, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "whatif.md"))
    args = ap.parse_args(argv)
    command = ".venv/bin/python -m bench.whatif " + " ".join(argv if argv is not None else sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    loads = [load_average()]
    try:
        rows = [measure(int(n), work) for n in args.sizes.split(",") if n]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loads.append(load_average())
    Path(args.out).write_text(markdown(rows, command.strip(), loads), encoding="utf-8")
    print(Path(args.out).read_text(encoding="utf-8").split("## Raw")[0])
    print("median slowest scenario:", statistics.median(max(r["scenario_s"].values()) for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
