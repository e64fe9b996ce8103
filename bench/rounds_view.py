"""The Voucher rounds view's per-applicant table on a large run: one page, filtered, read lazily.

    python -m bench.rounds_view OUT_DIR [--rows 1000000]

Builds a run folder whose outcomes.parquet has --rows applications (the solved sample's rows
repeated with new ids), then times allocation.rounds.view.preview for the first page, a late
page, a status filter and a text search, and the whole officer page (render_run without the
report). Writes bench/results/rounds_view.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import polars as pl

from allocation import files
from allocation.rounds import view
from allocation.rounds.allocate import run_round

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path, rows: int) -> Path:
    base = out / "base"
    if not (base / files.SOLUTION).is_file():
        run_round(ROOT / "data" / "rounds" / "sample", base)
    run = out / "runs" / "big" / "manual__bench"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(base, run)
    outcomes = pl.read_parquet(base / files.OUTCOMES_PARQUET)
    copies = -(-rows // outcomes.height)
    big = pl.concat([outcomes.with_columns(application_id=pl.lit(f"B{k:04d}-") + pl.col("application_id"))
                     for k in range(copies)]).head(rows)
    files.write_parquet(big, run / files.OUTCOMES_PARQUET)
    return run


def timed(label: str, fn, results: list) -> None:
    start = time.perf_counter()
    value = fn()
    results.append((label, time.perf_counter() - start, value))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    run = build(args.out, args.rows)
    results: list = []
    timed("first page (50 rows)", lambda: len(view.preview(run).rows), results)
    timed("page 10 000 (50 rows)", lambda: len(view.preview(run, page=10_000).rows), results)
    timed("status = awarded, page 1", lambda: view.preview(run, status="awarded").matched, results)
    timed("search 'b0999-r1-00000' (lowercase)", lambda: view.preview(run, search="b0999-r1-00000").matched, results)
    timed("officer page HTML (render_run)", lambda: len(view.render_run(
        run, round_key="big", airflow=None, user="bench", applicant_data=True, prefix="/voucher")), results)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [f"# Voucher rounds view: per-applicant table on {args.rows:,} applications", "",
             "`python -m bench.rounds_view OUT --rows N` (2 shared cores). Each call scans outcomes.parquet "
             "lazily, filters and slices one page; nothing else is loaded.", "",
             "| call | seconds | result |", "|---|---:|---:|"]
    lines += [f"| {label} | {seconds:.2f} | {value:,} |" for label, seconds, value in results]
    lines += ["", f"Peak RSS of the whole process (including building the {args.rows:,}-row file): {peak_mb:,.0f} MB", ""]
    (ROOT / "bench" / "results" / "rounds_view.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
