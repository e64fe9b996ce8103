"""The round as stages that pass files: validate -> score -> allocate.

Each stage reads and writes files in the run folder (names in allocation.files), so the CLI
runs them in one process and an Airflow task can run each one alone (XCom carries paths and
summaries). The allocate stage finishes through allocation.rounds.results, like refills do.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from allocation import files, intake, schema, scoring
from allocation.config import RoundConfig, load_config
from allocation.model.build import build_model
from allocation.model.reserve import hold_back_reserve
from allocation.rounds.results import StageTimer, decide, write_results


def data_quality(v: intake.ValidatedRound) -> dict:
    """Rows in, rows rejected by reason, applications by eligibility reason."""
    apps = v.applications
    return {
        "applications": apps.height,
        "request_rows_accepted": v.requests.height,
        "review_rows_accepted": v.reviews.height,
        "rows_with_issues_by_file": dict(sorted(
            v.issues.filter(pl.col("row").is_not_null()).unique(["file", "row"])
            .group_by("file").len().iter_rows())),
        "eligible": int(apps[schema.ELIGIBLE].sum()),
        "ineligible_by_reason": dict(sorted(
            apps.filter(~pl.col(schema.ELIGIBLE)).group_by(schema.REASON).len()
            .iter_rows())),
        "issues_by_file_and_code": {
            f"{f}:{c}": n for f, c, n in
            v.issues.group_by("file", "code").len().sort("file", "code").iter_rows()},
        "issues": v.issues.height,
    }


# --- Stages --------------------------------------------------------------------

def validate(round_dir: Path, out_dir: Path, *, budget_krw: int | None = None,
             time_limit_s: float | None = None) -> dict:
    """Read and check the round folder; RoundError if it cannot run at all."""
    started = time.perf_counter()
    out_dir = files.private_dir(Path(out_dir))
    config = load_config(round_dir).with_overrides(budget_krw=budget_krw, time_limit_s=time_limit_s)
    validated = intake.read_round(round_dir, config)
    intake.save_validated(validated, out_dir / files.INTAKE)
    quality = data_quality(validated)
    files.write_json(out_dir / files.QUALITY, {"intake": quality})
    files.merge_timings(out_dir, {"validate": round(time.perf_counter() - started, 3)})
    return quality


def score(out_dir: Path) -> dict:
    started = time.perf_counter()
    validated = intake.load_validated(out_dir / files.INTAKE)
    scores = scoring.score_applications(validated.applications, validated.reviews, validated.config)
    files.write_parquet(scores, out_dir / files.SCORES)
    files.merge_timings(out_dir, {"score": round(time.perf_counter() - started, 3)})
    described = scores["score"].describe()
    return {"scored": scores.height,
            "score_min": scores["score"].min(), "score_median": scores["score"].median(),
            "score_max": scores["score"].max(), "rows": described.height}


def allocate(out_dir: Path) -> dict:
    """Solve, explain and write outcomes.csv/.parquet, awards.csv/.parquet, solution.json."""
    out_dir = Path(out_dir)
    validated = intake.load_validated(out_dir / files.INTAKE)
    scores = pl.read_parquet(out_dir / files.SCORES)
    return allocate_with(out_dir, validated, scores, validated.config)


def allocate_with(out_dir: Path, validated: intake.ValidatedRound, scores: pl.DataFrame,
                  config: RoundConfig) -> dict:
    """The allocate stage under a given policy (the round's, or a what-if scenario's): the
    first allocation of a round, the lifecycle reserve held back."""
    timer = StageTimer()
    started = time.perf_counter()
    capacity, extra = validated.capacity, {}
    if config.lifecycle.reserve_share > 0:   # the first allocation leaves the reserve alone
        config, capacity, extra["reserve"] = hold_back_reserve(config, capacity)
    model = build_model(validated.applications, validated.requests, capacity, scores, config)
    timer.record("build_model", started)
    decided = decide(model, validated, scores, config, timer)
    return write_results(out_dir, decided, decided.outcomes, validated, config, timer, extra=extra)


def run_round(round_dir: Path, out_dir: Path, *, budget_krw: int | None = None,
              time_limit_s: float | None = None, on_stage=None) -> dict:
    """All stages in one process (the CLI). on_stage(name) is called as each starts."""
    round_dir, out_dir = Path(round_dir), Path(out_dir)
    notify = on_stage or (lambda name: None)
    notify("validate")
    validate(round_dir, out_dir, budget_krw=budget_krw, time_limit_s=time_limit_s)
    notify("score")
    score(out_dir)
    notify("allocate")
    return allocate(out_dir)

