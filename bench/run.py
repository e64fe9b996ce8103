"""The benchmark, one command:  .venv/bin/python -m bench.run [--sizes 1000,10000] [...]

1. Synthetic rounds of each size (bench.synthetic, seed 0; generated, validated and
   scored once, cached in $VOUCHER_BENCH_DATA or /tmp/voucher-bench). For each size, each
   method runs in its own subprocess (honest peak RSS), one after the other in this run:
   ours (allocation.solve.dispatch.solve, strategy auto), greedy by score, plain CP-SAT, HiGHS MIP, LP bound.
2. OR-Library Chu-Beasley MKP instances (read from ../shared/benchmarks/orlib at run time).
3. End to end: raw round folder -> outcomes (allocation.rounds.allocate.run_round, as `voucher allocate`), per
   stage seconds (timings.json) and peak RSS, for the --e2e sizes.
4. Refills and appeals at scale (bench.lifecycle) for the --lifecycle sizes, and small rounds with
   tight quotas against the exact optimum (bench.tight) for the --tight seeds.
5. Publishing and republishing (bench.publish) for the --publish sizes, and the whole round through
   Airflow, raw folder to published site (bench.dag), for the --dag sizes.
Writes BENCHMARKS.md (tables, machine, command) at the project root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.targets import targets_table

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
METHODS = ("ours", "greedy", "greedy1", "cpsat", "highs", "lp")
PEER_KILL_S = 300.0   # a method process still running after max(this, 10 x time limit) is killed


def sh(args: list[str], timeout: float) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return [{"status": f"killed after {timeout:.0f} s", "objective": None, "bound": None}]
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rows.append(json.loads(line))
    if proc.returncode != 0 and not rows:
        rows.append({"status": f"crashed: {proc.stderr.strip().splitlines()[-1][:100] if proc.stderr.strip() else proc.returncode}",
                     "objective": None, "bound": None})
    return rows


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram": mem, "python": platform.python_version(),
            "load_at_start": load_average()}


def fmt_obj(x) -> str:
    return "—" if x is None else f"{x:.6e}"


def run_sizes(sizes: list[int], methods: list[str], time_limit: float, repeat: int) -> dict:
    from bench.rounds import problem_path
    results: dict[int, dict[str, dict]] = {}
    for n in sizes:
        t = time.perf_counter()
        problem_path(n)
        print(f"[{n}] data ready ({time.perf_counter() - t:.1f} s)", flush=True)
        results[n] = {}
        for m in methods:
            if m in ("cpsat", "highs") and n >= 1_000_000:
                results[n][m] = {"status": "not run at 1M (model build alone takes minutes)",
                                 "objective": None, "bound": None}
                continue
            runs = []
            for _ in range(repeat if m == "ours" else 1):
                rows = sh([PY, "-m", "bench.methods", m, str(n), "--time-limit", str(time_limit)],
                          timeout=max(PEER_KILL_S, 10 * time_limit))
                runs.append(rows[0] if rows else {"status": "no output"})
            r = dict(runs[0])
            secs = [x.get("seconds") for x in runs if x.get("seconds") is not None]
            if secs:
                r["seconds"] = statistics.median(secs)
                r["seconds_all"] = secs
            results[n][m] = r
            print(f"[{n}] {m}: {json.dumps(r)[:300]}", flush=True)
    return results


def size_table(n: int, res: dict[str, dict]) -> list[str]:
    bounds = [r.get("bound") for m, r in res.items() if m in ("ours", "highs", "cpsat") and r.get("bound")]
    lp = res.get("lp", {}).get("bound")
    best_bound = min(bounds) if bounds else lp
    greedy = res.get("greedy", {}).get("objective")
    lines = [f"### {n:,} applications ({res.get('ours', {}).get('items', '?'):,} selectable)"
             if isinstance(res.get('ours', {}).get('items'), int) else f"### {n:,} applications", "",
             "| method | objective | gap to best bound | vs greedy | seconds | peak RSS MiB | status |",
             "|---|---|---|---|---|---|---|"]
    names = {"ours": "ours (auto)", "greedy": "greedy by score (+quota repair, fill)",
             "greedy1": "greedy by score, single pass", "cpsat": "plain CP-SAT (2 workers)",
             "highs": "HiGHS MIP", "lp": "LP relaxation (HiGHS)"}
    for m in METHODS:
        if m not in res:
            continue
        r = res[m]
        obj = r.get("objective")
        gap = f"{(best_bound - obj) / best_bound:.2e}" if obj is not None and best_bound else "—"
        vs = f"{(obj / greedy - 1) * 100:+.3f}%" if obj is not None and greedy else "—"
        status = str(r.get("status", ""))
        if m == "ours" and r.get("strategy"):
            status = f"{status} ({r['strategy']})"
        if m == "lp":
            status = f"{status}; bound {fmt_obj(r.get('bound'))}"
        if r.get("bound") and m != "lp":
            status += f"; bound {fmt_obj(r['bound'])}"
        secs = r.get("seconds")
        lines.append(f"| {names[m]} | {fmt_obj(obj)} | {gap} | {vs} | "
                     f"{'—' if secs is None else f'{secs:.1f}'} | {r.get('peak_rss_mib', '—')} | {status} |")
    lines.append("")
    lines.append(f"Best bound = the smallest valid upper bound found ({fmt_obj(best_bound)}; "
                 f"LP relaxation {fmt_obj(lp)}). Our bound is the Lagrangian dual bound (company "
                 "blocks exact), never a heuristic number.")
    if res.get("ours", {}).get("stage_seconds"):
        lines.append(f"Ours, stage seconds: `{json.dumps(res['ours']['stage_seconds'])}`.")
    lines.append("")
    return lines


def run_orlib(per_class: int | None, time_limit: float, strategies: list[str]) -> dict[str, list[dict]]:
    out = {}
    for strategy in strategies:
        args = [PY, "-m", "bench.orlib", strategy, str(time_limit)]
        if per_class is not None:
            args += ["--per-class", str(per_class)]
        rows = sh(args, timeout=3 * 3600)
        out[strategy] = rows
        print(f"[orlib] {strategy}: {len(rows)} instances", flush=True)
    return out


def orlib_table(res: dict[str, list[dict]], time_limit: float) -> list[str]:
    lines = ["| class m.n | instances | strategy | mean gap to best-known | max gap | "
             "median s | max s | within 10 s | proven optimal |", "|---|---|---|---|---|---|---|---|---|"]
    for strategy, rows in res.items():
        classes: dict[str, list[dict]] = {}
        for r in rows:
            classes.setdefault(r["class"], []).append(r)
        for cls, rs in classes.items():
            gaps = [r["gap_to_best"] for r in rs if r.get("gap_to_best") is not None]
            secs = [r["seconds"] for r in rs]
            lines.append(
                f"| {cls} | {len(rs)} | {strategy} | {statistics.mean(gaps) * 100:.3f}% | "
                f"{max(gaps) * 100:.3f}% | {statistics.median(secs):.1f} | {max(secs):.1f} | "
                f"{sum(s <= 10.0 for s in secs)} | {sum(r['status'] == 'optimal' for r in rs)} |")
    return lines


E2E_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from allocation.rounds import allocate
from bench.methods import peak_rss_mib
t = time.perf_counter()
report = allocate.run_round(Path(sys.argv[1]), Path(sys.argv[2]))
wall = time.perf_counter() - t
timings = json.loads((Path(sys.argv[2]) / "timings.json").read_text())
print(json.dumps({"wall": round(wall, 2), "timings": timings, "status": report["status"],
                  "gap": report["gap"], "objective": report["objective"],
                  "peak_rss_mib": round(peak_rss_mib(), 1)}))
"""


def run_e2e(sizes: list[int]) -> dict[int, dict]:
    import shutil
    from bench.rounds import data_dir, round_dir
    out = {}
    for n in sizes:
        rd = round_dir(n)
        od = data_dir() / f"e2e_out_{n}"
        shutil.rmtree(od, ignore_errors=True)
        rows = sh([PY, "-c", E2E_SCRIPT, str(rd), str(od)], timeout=3600)
        out[n] = rows[0] if rows else {"status": "no output"}
        print(f"[e2e {n}] {json.dumps(out[n])}", flush=True)
    return out


def e2e_table(res: dict[int, dict]) -> list[str]:
    lines = ["| applications | whole allocate s | validate (intake) s | score s | build_model s | "
             "solve s | explain s | peak RSS MiB | status, gap |", "|---|---|---|---|---|---|---|---|---|"]
    for n, r in res.items():
        t = r.get("timings", {})
        lines.append(f"| {n:,} | {r.get('wall', '—')} | {t.get('validate', '—')} | {t.get('score', '—')} | "
                     f"{t.get('build_model', '—')} | {t.get('solve', '—')} | {t.get('explain', '—')} | "
                     f"{r.get('peak_rss_mib', '—')} | {r.get('status', '')}, {r.get('gap', '')} |")
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--time-limit", type=float, default=60.0,
                    help="per method: CP-SAT deterministic limit, HiGHS wall limit, ours' polish cap")
    ap.add_argument("--repeat", type=int, default=1, help="runs of ours per size; the median seconds are reported")
    ap.add_argument("--orlib", default="first", help="none | first (first instance of each tightness "
                    "group: 27) | all (270) | K (first K of each group)")
    ap.add_argument("--orlib-time-limit", type=float, default=4.5, help="deterministic seconds per instance "
                    "(4.5 keeps every instance under 10 wall seconds on the 2-core dev machine)")
    ap.add_argument("--orlib-strategies", default="lp_guided,auto")
    ap.add_argument("--e2e", default="100000,1000000", help="sizes for the end-to-end run ('' = none)")
    ap.add_argument("--lifecycle", default="100000,1000000",
                    help="sizes for refill and appeal runs (bench.lifecycle; '' = none)")
    ap.add_argument("--tight", default="120:0.85,0.6:0,1,2,3,4;250:0.9,0.7:2;400:0.85,0.6:2",
                    help="tight-quota small rounds, APPLICATIONS:NC,FT:SEEDS groups separated by ';' "
                         "(bench.tight; '' = none)")
    ap.add_argument("--publish", default="100000,1000000",
                    help="sizes for publish and a 5%%-changed republish (bench.publish; '' = none)")
    ap.add_argument("--dag", default="100000,1000000",
                    help="sizes for the whole DAG run through Airflow (bench.dag; '' = none)")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--render", default=None, metavar="FILE",
                    help="measure nothing: rewrite --out from the raw results (and command) of FILE, an "
                         "earlier BENCHMARKS.md, with this version's tables and verdicts")
    return ap


def rerender(path: Path, out: Path) -> int:
    """--render: the tables again from an earlier file's raw JSON, with its command, date and load."""
    import re
    text = Path(path).read_text(encoding="utf-8")
    head = re.search(r"Command: `(?P<cmd>[^`]*)` \(run (?P<started>[^,]+), (?P<min>[0-9.]+) min in all\)", text)
    raw = text.split("## Raw results", 1)[1].split("```json", 1)[1].rsplit("```", 1)[0]
    data = json.loads(raw)
    for key in ("sizes", "e2e", "lifecycle"):
        data[key] = {int(k): v for k, v in (data.get(key) or {}).items()}
    for key in ("tight", "publish", "dag"):
        data[key] = data.get(key) or []
    if not head:
        raise SystemExit(f"{path}: no 'Command: ... (run ..., N min in all)' line")
    argv = head["cmd"].split("bench.run", 1)[1].split()
    a = parser().parse_args(argv)
    Path(out).write_text(render(data, a, head["cmd"], head["started"], float(head["min"]) * 60), encoding="utf-8")
    print(f"wrote {out} from the raw results of {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.render:
        return rerender(Path(a.render), Path(a.out))
    import tempfile

    from bench import dag as dag_bench
    from bench import publish as publish_bench
    from bench.lifecycle import run_size as run_lifecycle_size
    from bench.tight import measure as tight_measure
    from bench.tight import parse_rounds as parse_tight_rounds
    command = ".venv/bin/python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M")
    mach = machine()
    sizes = [int(x) for x in a.sizes.split(",") if x]
    methods = [m for m in a.methods.split(",") if m]
    t0 = time.perf_counter()
    results = run_sizes(sizes, methods, a.time_limit, a.repeat)
    mach["load_after_sizes"] = load_average()
    per_class = None if a.orlib == "all" else (1 if a.orlib == "first" else (None if a.orlib == "none" else int(a.orlib)))
    orlib = (run_orlib(per_class, a.orlib_time_limit, [x for x in a.orlib_strategies.split(",") if x])
             if a.orlib != "none" else {})
    mach["load_after_orlib"] = load_average()
    e2e = run_e2e([int(x) for x in a.e2e.split(",") if x])
    lifecycle = {n: run_lifecycle_size(n, 1, 20, 20, ["refill", "appeal"])
                 for n in [int(x) for x in a.lifecycle.split(",") if x]}
    tight_rows = [tight_measure(n, seed, shares, 300.0) for n, shares, seed in parse_tight_rounds(a.tight)]
    mach["load_after_lifecycle_and_tight"] = load_average()
    publish_rows: list[dict] = []
    if [x for x in a.publish.split(",") if x]:
        work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
        try:
            publish_rows = publish_bench.run([int(x) for x in a.publish.split(",") if x], work)
        finally:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    dag_rows = dag_bench.run([int(x) for x in a.dag.split(",") if x])
    mach["load_at_end"] = load_average()
    total = time.perf_counter() - t0
    data = {"sizes": results, "orlib_rows": orlib, "e2e": e2e, "lifecycle": lifecycle, "tight": tight_rows,
            "publish": publish_rows, "dag": dag_rows, "machine": mach}
    Path(a.out).write_text(render(data, a, command, started, total), encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


def render(data: dict, a, command: str, started: str, total: float) -> str:
    """BENCHMARKS.md from one run's numbers (also from the raw JSON of an earlier file: --render)."""
    from bench import dag as dag_bench
    from bench import publish as publish_bench
    from bench.lifecycle import table as lifecycle_table
    from bench.lifecycle import verdicts as lifecycle_verdicts
    from bench.tight import table as tight_table
    results, orlib, e2e, lifecycle = data["sizes"], data["orlib_rows"], data["e2e"], data["lifecycle"]
    tight_rows, publish_rows, dag_rows, mach = data["tight"], data["publish"], data["dag"], data["machine"]
    sizes = list(results)
    per_class = None if a.orlib == "all" else (1 if a.orlib == "first" else (None if a.orlib == "none" else int(a.orlib)))

    md = ["# Benchmarks", "",
          f"Command: `{command.strip()}` (run {started}, {total / 60:.1f} min in all).", "",
          f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram']} RAM, Python {mach['python']}; "
          f"load average (1, 5, 15 min) at start {mach['load_at_start']}, after the synthetic rounds "
          f"{mach['load_after_sizes']}, after OR-Library {mach['load_after_orlib']}, "
          + (f"after the refills, appeals and tight rounds {mach['load_after_lifecycle_and_tight']}, "
             if mach.get("load_after_lifecycle_and_tight") else "")
          + f"at the end {mach['load_at_end']} (this run's own solvers use 1-2 cores). The machine is shared with "
          "other work, so absolute seconds vary by 2-3x between runs; compare the methods side by side "
          "within one run.", "",
          "## Targets of Issue 5, judged from this run's numbers (bench/targets.py)", "",
          *targets_table(results, orlib, e2e), "",
          "## Synthetic rounds", "",
          "Rounds from `bench.synthetic` (seed 0): 4 GPU types + budget, levels {0, 50, 75, 100%}, "
          "~20% all-or-nothing, per-company cap, two quotas; objective Σ score × awarded KRW. "
          "Each method runs in its own process; seconds = solve only (loading excluded, model building "
          "included), peak RSS = whole process. Time limit per method: "
          f"{a.time_limit:g} (CP-SAT: deterministic seconds; HiGHS: wall seconds). "
          "\"vs greedy\" = objective relative to greedy by score.", ""]
    for n in sizes:
        md += size_table(n, results[n])
    if orlib:
        md += ["## OR-Library multidimensional knapsack (Chu–Beasley)", "",
               f"Read from `../shared/benchmarks/orlib` at run time; instances: "
               f"{'all 30' if per_class is None else f'the first {per_class} of each tightness group of 10'} "
               f"per file. Each MKP is an AllocationProblem with one option per item, no company caps, "
               f"no quotas, solved through `allocation.solve.dispatch.solve` with {a.orlib_time_limit:g} deterministic "
               "seconds and 2 workers; seconds are wall seconds of the whole solve. `lp_guided` = LP "
               "prices → rounding → top-up → LNS polish: two rounds of two single-worker CP-SAT solves "
               "side by side (a 35% then 50% core of the items nearest the price cut-off, beside the "
               "whole instance), each hinted with the best so far. `auto` = plain CP-SAT for n ≤ 500 "
               "items (what a small round gets), LP-guided above. Best-known = the Chu–Beasley GA "
               "values of best-feasible-slns.txt (later work improved some, so a negative gap means we "
               "beat the GA). Gap = (best-known − ours) / best-known.", ""]
        md += orlib_table(orlib, a.orlib_time_limit)
        md.append("")
    if e2e:
        md += ["## End to end (`voucher allocate` equivalent: allocation.rounds.allocate.run_round)", "",
               "Raw CSV round folder → validate (intake, someone else's module) → score → allocate "
               "(build model, solve, explain, write outcomes/awards/solution.json). Stage seconds from "
               "timings.json; whole = wall time of run_round; peak RSS of the process.", ""]
        md += e2e_table(e2e)
        md.append("")
    if lifecycle:
        md += ["## Refills and appeals at scale (bench.lifecycle)", "",
               "The round of each size allocated once, then every 20th awardee declines and the others "
               "accept (refill), plus 20 upheld appeals with replacement reviews (appeal); wall = the whole "
               "`voucher refill`/`appeal`; checked from the files: every kept award's lines byte-identical, "
               "every limit of the whole round. Gap = to the proven bound of the restricted problem.", ""]
        md += lifecycle_table(lifecycle)
        md += ["", *lifecycle_verdicts(lifecycle), ""]
    if tight_rows:
        md += ["## Small rounds with tight quotas (bench.tight)", "",
               "`bench.synthetic -n N --quota-shares NC,FT --seed S` as listed; ours = `auto` with the "
               "round's settings (solve and quota costs), plain CP-SAT = one solve with the whole time limit "
               "(what `auto` was before issue 16), exact optimum = HiGHS with mip_rel_gap 0.", ""]
        md += tight_table(tight_rows)
        md.append("")
    if publish_rows:
        md += ["## Publishing at scale (bench.publish)", "",
               "A solved round tiled up to each size; `voucher publish` (v1), then a republish after 5% of "
               "the outcomes changed (v2), each in its own process.", ""]
        md += [line for line in publish_bench.markdown(publish_rows, "").splitlines()[4:]]
        md += [*publish_bench.verdicts(publish_rows), ""]
    if dag_rows:
        md += ["## The whole round through Airflow (bench.dag)", "", dag_bench.DESCRIPTION, ""]
        md += dag_bench.table(dag_rows)
    md += ["## Raw results", "", "```json",
           json.dumps({"sizes": {str(k): v for k, v in results.items()}, "orlib_rows": orlib,
                       "e2e": {str(k): v for k, v in e2e.items()},
                       "lifecycle": {str(k): v for k, v in lifecycle.items()}, "tight": tight_rows,
                       "publish": publish_rows, "dag": dag_rows,
                       "machine": mach}, indent=1),
           "```", ""]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
