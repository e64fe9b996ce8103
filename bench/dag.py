"""The whole round through Airflow: raw round folder -> published site, with the DAG.

    .venv/bin/python -m bench.dag [--sizes 100000,1000000] [--out bench/results/dag.md]

For each size: a synthetic round folder (bench.synthetic, seed 0, CSV as officers send it) whose
receipt codes are replaced by 80-bit ``voucher codes`` codes (strength class 60: what issue 15's
publish targets assume); then ``airflow dags test allocation_round`` on a throwaway AIRFLOW_HOME
(SQLite, the project's airflow.cfg, the DAGs folder), auto-approved as in ``./run demo``
(``--mark-success-pattern approve``, VOUCHER_DEMO=1: published under the run's own demo root).

Measured: wall seconds of the whole DAG run; per task the seconds from Airflow's own records
(task_instance start/end in the metadata DB; mapped tasks: first start to last end, and the
number of map indexes); peak RSS of the whole process tree (``airflow dags test`` runs the tasks
in its process; sealing workers are its children), sampled every 0.2 s, overall and inside each
task's window. The run must end with every task in success (else the bench fails and says which).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path


from allocation import files
from bench.publish import _tree_rss
from bench.run import load_average, machine
from bench.synthetic import build_round, with_strong_codes, write_round

ROOT = Path(__file__).resolve().parents[1]
ROUND = "dagbench"
TARGET_S = 600.0
STRETCH_S = 300.0


def make_round(folder: Path, n: int) -> Path:
    """A synthetic round of n applications (seed 0) with strong (80-bit) receipt codes."""
    return write_round(with_strong_codes(build_round(n, seed=0)), folder)


def airflow_env(home: Path, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VOUCHER"))}
    subprocess.run([sys.executable, str(ROOT / "deploy" / "make_secrets.py"), str(home)], check=True,
                   capture_output=True)
    secrets = home / "secrets"
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__FERNET_KEY": (secrets / "fernet_key").read_text().strip(),
        "AIRFLOW__API_AUTH__JWT_SECRET": (secrets / "jwt_secret").read_text().strip(),
        "AIRFLOW__API__SECRET_KEY": (secrets / "api_secret_key").read_text().strip(),
        "VOUCHER_SIGNING_KEY": str(secrets / "signing_key.pem"),
        "VOUCHER_ROUNDS_ROOT": str(work / "rounds"), "VOUCHER_RUNS_ROOT": str(work / "runs"),
        "VOUCHER_DEMO": "1", "VOUCHER_DEMO_PUBLISH_ROOT": str(work / "published"),
        "VOUCHER_DEADLINE_HOURS": "0",   # dags test (3.3.2) cannot finish a DAG with a deadline alert
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    })
    return env


def run_dag(env: dict[str, str], log_path: Path) -> dict:
    """`airflow dags test allocation_round`, sampling the process tree's RSS with timestamps."""
    airflow = str(Path(sys.executable).parent / "airflow")
    conf = json.dumps({"round": ROUND, "time_limit_s": 60})
    samples: list[tuple[float, int]] = []
    with open(log_path, "w") as log:
        start = time.time()
        proc = subprocess.Popen([airflow, "dags", "test", "allocation_round", "--conf", conf,
                                 "--mark-success-pattern", "approve"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

        def sample() -> None:
            while proc.poll() is None:
                samples.append((time.time(), _tree_rss(proc.pid)))
                time.sleep(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        proc.wait()
        thread.join()
        wall = time.time() - start
    return {"wall": wall, "returncode": proc.returncode, "samples": samples}


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def task_rows(home: Path, samples: list[tuple[float, int]]) -> list[dict]:
    """Per task (in start order): state, seconds, map indexes, peak tree RSS inside its window."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                          "WHERE dag_id = 'allocation_round'").fetchall()
    tasks: dict[str, dict] = {}
    for task_id, map_index, state, start, end in rows:
        t = tasks.setdefault(task_id, {"task": task_id, "states": set(), "starts": [], "ends": [],
                                       "maps": 0})
        t["states"].add(state)
        t["maps"] += 1 if map_index is not None and map_index >= 0 else 0
        if _epoch(start) is not None:
            t["starts"].append(_epoch(start))
        if _epoch(end) is not None:
            t["ends"].append(_epoch(end))
    out = []
    for t in tasks.values():
        begin = min(t["starts"], default=None)
        finish = max(t["ends"], default=None)
        window = [rss for at, rss in samples if begin is not None and finish is not None and begin <= at <= finish]
        out.append({"task": t["task"], "state": ",".join(sorted(s or "none" for s in t["states"])),
                    "seconds": round(finish - begin, 1) if begin is not None and finish is not None else None,
                    "map_indexes": t["maps"], "start": begin,
                    "peak_rss_gib": round(max(window) / 2**30, 2) if window else None})
    return sorted(out, key=lambda r: (r["start"] is None, r["start"] or 0))


def measure(n: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_round(work / "rounds" / ROUND, n)
    generate_s = time.perf_counter() - start
    home = work / "airflow-home"
    env = airflow_env(home, work)
    migrate = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                             capture_output=True, text=True)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
    result = run_dag(env, work / "dags-test.log")
    tasks = task_rows(home, result["samples"])
    failed = [t["task"] for t in tasks if t["state"] != "success"]
    if result["returncode"] != 0 or failed:
        tail = (work / "dags-test.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"DAG run of {n:,} applications did not succeed (tasks not in success: {failed}):\n{tail}")
    published = work / "published"
    versions = [files.latest_version_dir(d) for d in published.iterdir() if d.is_dir()]
    versions = [v for v in versions if v is not None]
    if len(versions) != 1:
        raise RuntimeError(f"expected one published round under {published}, found {versions}")
    version = versions[0]
    n_files = sum(len(fs) for _, _, fs in os.walk(version))
    size = sum((Path(d) / f).stat().st_size for d, _, fs in os.walk(version) for f in fs)
    return {"applications": n, "generate_round_s": round(generate_s, 1), "wall_s": round(result["wall"], 1),
            "peak_rss_gib": round(max((r for _, r in result["samples"]), default=0) / 2**30, 2),
            "tasks": tasks, "published_files": n_files, "published_gb": round(size / 1e9, 2)}


def verdict(wall_s: float) -> str:
    if wall_s > TARGET_S:
        return "**NOT met**"
    return "met (stretch too)" if wall_s <= STRETCH_S else "met"


def table(rows: list[dict]) -> list[str]:
    """Markdown lines: per size the whole run and one row per task."""
    lines = [f"Target (issue 16): whole DAG at 1M ≤ {TARGET_S:.0f} s on 2 cores (stretch {STRETCH_S:.0f} s).", ""]
    for r in rows:
        judged = f" (≤ {TARGET_S:.0f} s: {verdict(r['wall_s'])})" if r["applications"] == 1_000_000 else ""
        lines += [f"**{r['applications']:,} applications**: whole DAG run {r['wall_s']} s"
                  f"{judged}, peak RSS {r['peak_rss_gib']} GiB; published "
                  f"{r['published_files']:,} files, {r['published_gb']} GB; generating the round folder (not part "
                  f"of the run) {r['generate_round_s']} s.", "",
                  "| task | state | seconds | map indexes | peak RSS in its window (GiB) |", "|---|---|---:|---:|---:|"]
        for t in r["tasks"]:
            lines.append(f"| {t['task']} | {t['state']} | {t['seconds']} | {t['map_indexes'] or '—'} | {t['peak_rss_gib']} |")
        lines.append("")
    return lines


DESCRIPTION = ("Raw round folder (CSV, 80-bit receipt codes) → `airflow dags test allocation_round` (SQLite, "
               "LocalExecutor settings of airflow.cfg, auto-approved as in `./run demo`) → published version. "
               "Wall includes Airflow's start-up and DAG parsing. Task seconds from Airflow's task_instance "
               "records; peak RSS = the whole process tree, sampled every 0.2 s.")


def markdown(rows: list[dict], command: str, loads: list[str]) -> str:
    mach = machine()
    lines = ["# The whole round through Airflow", "",
             f"Command: `{command}` (run {time.strftime('%Y-%m-%d %H:%M')}).", "",
             f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram']} RAM; load average at "
             f"start {loads[0]}, at the end {loads[-1]} (shared with other work).", "",
             DESCRIPTION, "", *table(rows),
             "## Raw results", "", "```json", json.dumps(rows, indent=1, default=str), "```", ""]
    return "\n".join(lines)


def run(sizes: list[int], work: Path | None = None) -> list[dict]:
    base = Path(work) if work else Path(tempfile.mkdtemp(prefix="voucher-dag-"))
    rows = []
    try:
        for n in sizes:
            rows.append(measure(n, base / str(n)))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "tasks"}), flush=True)
            shutil.rmtree(base / str(n), ignore_errors=True)
    finally:
        if not work:
            shutil.rmtree(base, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed after)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dag.md"))
    args = ap.parse_args(argv)
    command = ".venv/bin/python -m bench.dag " + " ".join(argv if argv is not None else sys.argv[1:])
    loads = [load_average()]
    rows = run([int(x) for x in args.sizes.split(",") if x], args.work)
    loads.append(load_average())
    Path(args.out).write_text(markdown(rows, command.strip(), loads), encoding="utf-8")
    print(f"wrote {args.out}; median wall {statistics.median(r['wall_s'] for r in rows)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
