"""Review-panel assignment at scale: `voucher assign` end to end on a synthetic round.

    .venv/bin/python -m bench.panel [--applications 100000] [--reviewers 2000] [--conflicts 5000]
                                    [--repeats 3] [--k 3] [--out bench/results/panel.md]

Builds a round folder (bench.synthetic + bench.synthetic_panel: topic tags on applications,
reviewers with 2–4 expertise topics and ~8% affiliated with an applicant, declared conflicts),
then runs allocation.rounds.panel.assign — read, check, solve (min-cost flow), write
assignments.csv, one CSV work list per reviewer, work_lists.xlsx — in a fresh process per
repeat, and reports the median wall time, the solve time and the peak RSS of that process.
Target (issue 18): 100,000 applications × 2,000 reviewers in ≤ 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

TARGET_S = 120.0
_CHILD = """
import json, resource, sys, time
from allocation.rounds import panel
t = time.perf_counter()
report = panel.assign(sys.argv[1], sys.argv[2], reviewers_per_application=int(sys.argv[3]))
wall = time.perf_counter() - t
timings = json.load(open(sys.argv[2] + "/timings.json"))
print(json.dumps({"wall_s": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "timings": timings, "report": report}))
"""


def build(round_dir: Path, n: int, m: int, conflicts: int, k: int, seed: int) -> None:
    import polars as pl

    from bench.synthetic import build_round, write_round
    from bench.synthetic_panel import panel_tables
    result = build_round(n, seed=seed, reviewers_per_application=k)
    apps = result.tables["applications"]
    width = max(4, len(str(m)))
    ids = [f"PNL-{i:0{width}d}" for i in range(1, m + 1)]
    tags, reviewers, conflict_rows = panel_tables(apps, ids, k, seed, n_conflicts=conflicts)
    result.tables = {"applications": apps.with_columns(tags), "requests": result.tables["requests"],
                     "capacity": result.tables["capacity"], "reviewers": reviewers,
                     "conflicts": conflict_rows, "reviews": pl.DataFrame(
                         schema={"application_id": pl.String, "reviewer_id": pl.String,
                                 "criterion": pl.String, "score": pl.Int64})}
    result.config_text += f"\n[panel]\nreviewers_per_application = {k}\n"
    write_round(result, round_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--applications", type=int, default=100_000)
    ap.add_argument("--reviewers", type=int, default=2_000)
    ap.add_argument("--conflicts", type=int, default=5_000)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    a = ap.parse_args(argv)
    command = " ".join([".venv/bin/python -m bench.panel", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        round_dir = Path(tmp) / "round"
        t = time.perf_counter()
        build(round_dir, a.applications, a.reviewers, a.conflicts, a.k, a.seed)
        built_s = time.perf_counter() - t
        runs = []
        for i in range(a.repeats):
            out = subprocess.run([sys.executable, "-c", _CHILD, str(round_dir), str(Path(tmp) / f"out{i}"),
                                  str(a.k)], check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"run {i + 1}: {runs[-1]['wall_s']:.1f} s, peak RSS {runs[-1]['rss_mb']:.0f} MB", file=sys.stderr)
        same = all((Path(tmp) / f"out{i}" / "assignments.csv").read_bytes()
                   == (Path(tmp) / "out0" / "assignments.csv").read_bytes() for i in range(a.repeats))
    load_avg = os.getloadavg()[0]
    wall = statistics.median(r["wall_s"] for r in runs)
    solve = statistics.median(r["timings"]["panel_solve"] for r in runs)
    read = statistics.median(r["timings"]["panel_read"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    rep = runs[0]["report"]
    lines = [
        "# Review-panel assignment at scale (bench/panel.py)", "",
        f"Run {date.today().isoformat()} on the 2-core dev machine ({platform.python_implementation()} "
        f"{platform.python_version()}), shared with other jobs. Median of {a.repeats} runs, each in a fresh "
        f"process; peak RSS is the largest of the runs. Load average at the end: {load_avg:.1f} "
        f"(2 cores: above 2, other jobs took CPU time from these runs).", "",
        f"Command: `{command}` (round built in {built_s:.0f} s, not timed)", "",
        "| applications | reviewers | k | conflict pairs | groups | arcs | status | gap | reviews | "
        "read+check s | solve s | end-to-end s | peak RSS MB | target ≤ 120 s | same bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {a.applications:,} | {a.reviewers:,} | {a.k} | {rep['conflicts']['pairs_with_eligible_applications']:,} "
        f"| {rep['solver']['application_groups']:,} | {rep['solver']['arcs']:,} | {rep['status']} "
        f"| {rep['solver']['gap']:g} | {rep['reviews']['assigned']:,} of {rep['reviews']['needed']:,} "
        f"| {read:.1f} | {solve:.1f} | {wall:.1f} | {rss:.0f} | {'met' if wall <= TARGET_S else 'MISSED'} "
        f"| {'yes' if same else 'NO'} |", "",
        f"Loads {rep['loads']['min']}–{rep['loads']['max']} reviews per reviewer (share of max load "
        f"{rep['loads']['share_min']}–{rep['loads']['share_max']}); {rep['expertise']['reviews_sharing_a_tag']:,} "
        f"reviews share a topic tag with their application ({rep['applications']['untagged']:,} applications "
        "are untagged and take any reviewer). End-to-end = read and check the tables, conflicts, solve, write "
        "assignments.csv, one CSV per reviewer and work_lists.xlsx, panel.json.", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
