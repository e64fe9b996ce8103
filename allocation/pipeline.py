"""The round as stages that pass files: validate -> score -> allocate.

Each stage reads and writes files in the run's output folder, so the CLI runs them in one
process and an Airflow task can run each one alone (XCom carries paths and summaries).

OUT/
  intake/            validated tables (Parquet), issues.csv, intake.json, round.toml in force
  scores.parquet     per-application scores
  outcomes.csv/.parquet, awards.csv/.parquet, solution.json, quality.json
  timings.json       wall-clock seconds (the only file that differs between identical runs)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import polars as pl

from allocation import intake, schema, scoring, solving
from allocation.config import RoundConfig, load_config
from allocation.explaining import explain_items, limits_report, without_quota
from allocation.modeling import build_model
from allocation.outcomes import build_awards, build_outcomes, item_outcomes

INTAKE_DIR = "intake"
SCORES_FILE = "scores.parquet"


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, started: float) -> None:
        self.seconds[name] = round(time.perf_counter() - started, 3)


def write_json(path: Path, data: dict) -> None:
    """Deterministic JSON (sorted keys, UTF-8), written atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def write_table(frame: pl.DataFrame, path_without_suffix: Path) -> None:
    """CSV (UTF-8 with BOM, so Excel shows Hangul) and Parquet, each written atomically."""
    for suffix in (".csv", ".parquet"):
        final = path_without_suffix.with_suffix(suffix)
        tmp = final.with_suffix(suffix + ".tmp")
        if suffix == ".csv":
            frame.write_csv(tmp, include_bom=True)
        else:
            frame.write_parquet(tmp, statistics=False)
        os.replace(tmp, final)


def _merge_timings(out_dir: Path, seconds: dict[str, float]) -> None:
    path = out_dir / "timings.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, {**old, **seconds})


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
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(round_dir).with_overrides(budget_krw=budget_krw, time_limit_s=time_limit_s)
    validated = intake.read_round(round_dir, config)
    intake.save_validated(validated, out_dir / INTAKE_DIR)
    quality = data_quality(validated)
    write_json(out_dir / "quality.json", {"intake": quality})
    _merge_timings(out_dir, {"validate": round(time.perf_counter() - started, 3)})
    return quality


def score(out_dir: Path) -> dict:
    started = time.perf_counter()
    validated = intake.load_validated(out_dir / INTAKE_DIR)
    scores = scoring.score_applications(validated.applications, validated.reviews, validated.config)
    tmp = out_dir / (SCORES_FILE + ".tmp")
    scores.write_parquet(tmp, statistics=False)
    os.replace(tmp, out_dir / SCORES_FILE)
    _merge_timings(out_dir, {"score": round(time.perf_counter() - started, 3)})
    described = scores["score"].describe()
    return {"scored": scores.height,
            "score_min": scores["score"].min(), "score_median": scores["score"].median(),
            "score_max": scores["score"].max(), "rows": described.height}


def _versions() -> dict[str, str]:
    names = ("voucher-allocation", "ortools", "polars", "pyarrow", "numpy")
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _quota_costs(problem, solution, config: RoundConfig) -> tuple[dict[str, int | None], list[str]]:
    """Objective lost to each quota: re-solve without it (exact when both are optimal).

    When the round is solved by the LP-guided method (large rounds) the cost is the
    difference of the Lagrangian dual (LP) bounds without and with the quota, found in a few
    warm-started dual iterations instead of a full re-solve: an LP-based estimate, said so in
    a warning.
    """
    costs: dict[str, int | None] = {}
    warnings: list[str] = []
    strategy = solving.choose_strategy(problem, config.solver.strategy)
    if strategy == "lp_guided" and problem.cover_names:
        import math

        import numpy as np

        from allocation import solving_dual
        base = solving_dual.dual_prices(problem)
        R = len(problem.capacity)
        for q, name in enumerate(problem.cover_names):
            relaxed_problem = without_quota(problem, q)
            lam0 = np.delete(base.dual.lam, R + q)
            relaxed = solving_dual.dual_prices(relaxed_problem, lam0=lam0)
            solving_dual.forget(relaxed_problem)
            costs[name] = max(int(math.floor(relaxed.dual.bound - base.dual.bound)), 0)
            if solution.objective == 0:
                full = solving.solve(relaxed_problem, strategy=strategy,
                                     time_limit_s=config.solver.time_limit_s,
                                     workers=config.solver.workers, seed=config.solver.seed)
                if full.objective > 0:
                    warnings.append(
                        f"Quota '{name}' alone forces an empty allocation: without it "
                        f"{int((full.choice >= 0).sum())} applications could be funded. Check its "
                        f"min_share against the eligible applications in its group.")
        warnings.append(
            "Quota costs are LP-based estimates (difference of the dual bounds with and without "
            "each quota), not exact re-solves: this round is solved by the LP-guided method.")
        return costs, warnings
    for q, name in enumerate(problem.cover_names):
        relaxed = solving.solve(without_quota(problem, q), strategy=config.solver.strategy,
                                time_limit_s=config.solver.time_limit_s,
                                workers=config.solver.workers, seed=config.solver.seed)
        costs[name] = max(relaxed.objective - solution.objective, 0)
        if solution.objective == 0 and relaxed.objective > 0:
            warnings.append(
                f"Quota '{name}' alone forces an empty allocation: without it "
                f"{int((relaxed.choice >= 0).sum())} applications could be funded. Check its "
                f"min_share against the eligible applications in its group.")
    return costs, warnings


def _degenerate_warnings(model, config: RoundConfig) -> list[str]:
    """Limits that make the round degenerate, in words an officer understands."""
    out = []
    n = model.problem.n_items
    if n == 0:
        out.append("No eligible application reaches the minimum score "
                   f"{config.award.min_score}: nothing can be funded.")
        return out
    if config.round.budget_krw == 0:
        out.append("The budget is ₩0: nothing can be funded.")
    for quota in config.quotas:
        members = int(model.quota_groups[quota.name].sum())
        if quota.min_share > 0 and members == 0:
            out.append(f"Quota '{quota.name}' requires {quota.min_share:.0%} of the awarded budget to go "
                       f"to its group, but no eligible application at or above the minimum score "
                       f"belongs to it: the quota forces an empty allocation.")
    if sum(q.min_share for q in config.quotas) > 1 and len(config.quotas) > 1:
        out.append("The quotas' minimum shares add up to more than 100%: they can only all hold "
                   "if the groups overlap.")
    if not model.problem.allowed.any():
        out.append("No application can be funded at any level within the company cap, the budget "
                   "and the GPU capacity.")
    return out


def allocate(out_dir: Path) -> dict:
    """Solve, explain and write outcomes.csv/.parquet, awards.csv/.parquet, solution.json."""
    timer = StageTimer()
    started = time.perf_counter()
    validated = intake.load_validated(out_dir / INTAKE_DIR)
    config = validated.config
    capacity, reserve = validated.capacity, None
    if config.lifecycle.reserve_share > 0:   # the first allocation leaves the reserve alone (lifecycle)
        from allocation.lifecycle import hold_back_reserve
        config, capacity, reserve = hold_back_reserve(config, capacity)
    scores = pl.read_parquet(out_dir / SCORES_FILE)
    model = build_model(validated.applications, validated.requests, capacity, scores, config)
    timer.record("build_model", started)

    started = time.perf_counter()
    solution = solving.solve(model.problem, strategy=config.solver.strategy,
                             time_limit_s=config.solver.time_limit_s,
                             workers=config.solver.workers, seed=config.solver.seed)
    timer.record("solve", started)
    problems = model.problem.violations(solution.choice)
    if problems:  # never publish an infeasible allocation
        raise RuntimeError(f"solver returned an infeasible allocation: {problems}")

    started = time.perf_counter()
    lp = solving.solve_lp_relaxation(model.problem) if model.problem.n_items else None
    row_duals = lp.row_duals if lp is not None else None
    explanation = explain_items(model, solution.choice, row_duals,
                                lp.cover_duals if lp is not None else None)
    quota_costs, quota_warnings = _quota_costs(model.problem, solution, config)
    limits = limits_report(model, solution, explanation, quota_costs,
                           {q.name: q.min_share for q in config.quotas}, row_duals)
    items = item_outcomes(model, solution.choice, explanation, config)
    outcomes = build_outcomes(validated.applications, scores, items, config)
    awards = build_awards(model, solution.choice)
    timer.record("explain", started)

    if outcomes.height != validated.applications.height:  # counts in = counts out, always
        raise RuntimeError(f"{validated.applications.height} applications in, {outcomes.height} outcomes out")
    write_table(outcomes, out_dir / "outcomes")
    write_table(awards, out_dir / "awards")
    summary = summarise(outcomes, awards, model, solution, config)
    report = {
        "round_id": config.round.id,
        "status": solution.status,
        "objective": solution.objective,
        "objective_unit": "sum of score (centipoints) x awarded KRW",
        "bound": solution.bound,
        "gap": solution.gap,
        "lp_bound": None if lp is None else lp.bound,
        "solver": {"name": solution.solver, "strategy": config.solver.strategy,
                   "workers": config.solver.workers, "seed": config.solver.seed,
                   "deterministic_time_limit": config.solver.time_limit_s},
        "summary": summary,
        "limits": limits,
        "warnings": _degenerate_warnings(model, config) + quota_warnings,
        "input_sha256": validated.input_hashes,
        "versions": _versions(),
    }
    if reserve is not None:   # held back for refills and upheld appeals (allocation.lifecycle)
        report["reserve"] = reserve
    write_json(out_dir / "solution.json", report)
    quality_path = out_dir / "quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else {}
    quality["outcomes"] = {"by_status": summary["by_status"], "by_reason": summary["by_reason"]}
    write_json(quality_path, quality)
    _merge_timings(out_dir, {**timer.seconds, "solver_deterministic_time": solution.deterministic_time,
                             "solver_wall_seconds": round(solution.wall_seconds, 3)})
    return report


def summarise(outcomes: pl.DataFrame, awards: pl.DataFrame, model, solution, config: RoundConfig) -> dict:
    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    funded_scores = awarded["score"]
    by_type = {t: int(h) for t, h in awards.group_by("gpu_type").agg(pl.col("gpu_hours").sum())
               .sort("gpu_type").iter_rows()}
    capacity = dict(zip(model.gpu_types, model.problem.capacity[:-1].tolist()))
    requested_cost = int(model.cost[:, -1].sum()) if model.problem.n_items else 0
    return {
        "applications": outcomes.height,
        "by_status": {s: int((outcomes["status"] == s).sum()) for s in schema.STATUSES},
        "by_reason": dict(sorted(outcomes.group_by("reason").len().iter_rows())),
        "funded": awarded.height,
        "awarded_krw": int(awarded["awarded_krw"].sum()),
        "copay_krw": int(awarded["copay_krw"].sum()),
        "cost_krw": int(awarded["cost_krw"].sum()),
        "budget_krw": config.round.budget_krw,
        "budget_used_share": (round(int(awarded["awarded_krw"].sum()) / config.round.budget_krw, 6)
                              if config.round.budget_krw else None),
        "requested_cost_krw_selectable": requested_cost,
        "gpu_hours_awarded": by_type,
        "gpu_hours_capacity": {t: int(c) for t, c in capacity.items()},
        "gpu_utilisation": {t: (round(by_type.get(t, 0) / c, 6) if c else None) for t, c in capacity.items()},
        "score_cutoff": None if funded_scores.is_empty() else float(funded_scores.min()),
        "proven_optimal": solution.status == "optimal",
        "gap": solution.gap,
    }


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

