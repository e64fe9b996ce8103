"""The one finishing path of every run: solve, explain, and write the run folder's results.

``voucher allocate`` (allocation.rounds.allocate) and refills/appeals
(allocation.rounds.lifecycle.refill) both come through here, so outcomes.csv/.parquet,
awards.csv/.parquet, solution.json and quality.json are written by one piece of code:

    decide(model, ...)        solve (one dispatch), check, explain -> Decided
    write_results(out_dir, …) the files, from a Decided and the outcomes to publish
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl

from allocation import files, schema
from allocation.config import RoundConfig
from allocation.errors import RoundError
from allocation.explain.outcomes import build_awards, build_outcomes, item_outcomes
from allocation.explain.reasons import ItemExplanation, explain_items, limits_report
from allocation.intake import ValidatedRound
from allocation.model.build import ModelData
from allocation.solve.dispatch import RoundSolve, solve_round

OBJECTIVE_UNIT = "sum of score (centipoints) x awarded KRW"
# Solver facts worth keeping in solution.json (Solution.details has more, for benchmarks)
_DETAIL_KEYS = ("stopped_by", "dual_iterations", "dual_converged")


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, started: float) -> None:
        self.seconds[name] = round(time.perf_counter() - started, 3)


@dataclass
class Decided:
    """A solved and explained round, before anything is written."""

    model: ModelData
    solved: RoundSolve
    explanation: ItemExplanation
    limits: dict
    outcomes: pl.DataFrame
    awards: pl.DataFrame

    @property
    def solution(self):
        return self.solved.solution


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("voucher-allocation", "ortools", "polars", "pyarrow", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def degenerate_warnings(model: ModelData, config: RoundConfig) -> list[str]:
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


def decide(model: ModelData, validated: ValidatedRound, scores: pl.DataFrame, config: RoundConfig,
           timer: StageTimer, *, fixed: dict[int, int] | None = None) -> Decided:
    """Solve (the round's strategy; CP-SAT with fixed awards for refills), check every limit,
    explain every outcome. RoundError when a refill cannot keep its fixed awards."""
    started = time.perf_counter()
    solved = solve_round(model.problem, config.solver, fixed=fixed)
    solution = solved.solution
    timer.record("solve", started)
    if fixed is not None and solution.status == "no_solution":
        raise RoundError(
            "the refill has no feasible allocation: with the accepted and pending awards kept, the "
            "quotas cannot hold over the whole round (or the solver found no solution within "
            f"{config.solver.time_limit_s} s). Nothing was published.")
    problems = model.problem.violations(solution.choice)
    if fixed and any(int(solution.choice[i]) != o for i, o in fixed.items()):
        problems.append("a kept award was changed")
    if problems:   # never publish an infeasible allocation
        raise RuntimeError(f"solver returned an infeasible allocation: {problems}")

    started = time.perf_counter()
    lp = solved.lp
    row_duals = lp.row_duals if lp is not None else None
    explanation = explain_items(model, solution.choice, row_duals,
                                lp.cover_duals if lp is not None else None)
    limits = limits_report(model, solution, explanation, solved.quota_costs,
                           {q.name: q.min_share for q in config.quotas}, row_duals)
    items = item_outcomes(model, solution.choice, explanation, config)
    outcomes = build_outcomes(validated.applications, scores, items, config)
    awards = build_awards(model, solution.choice)
    timer.record("explain", started)
    if outcomes.height != validated.applications.height:   # counts in = counts out, always
        raise RuntimeError(f"{validated.applications.height} applications in, {outcomes.height} outcomes out")
    return Decided(model=model, solved=solved, explanation=explanation, limits=limits,
                   outcomes=outcomes, awards=awards)


def summarise(outcomes: pl.DataFrame, awards: pl.DataFrame, model: ModelData, solution,
              config: RoundConfig) -> dict:
    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    funded_scores = awarded["score"]
    by_type = {t: int(h) for t, h in awards.group_by("gpu_type").agg(pl.col("gpu_hours").sum())
               .sort("gpu_type").iter_rows()}
    per_row = model.problem.capacity[:-1]
    if model.months:   # GPU capacity by month: rows are (type, month), type-major
        per_row = per_row.reshape(len(model.gpu_types), len(model.months)).sum(axis=1)
    capacity = dict(zip(model.gpu_types, per_row.tolist()))
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
        **({"gpu_by_month": by_month(awards, model)} if model.months else {}),
    }


def by_month(awards: pl.DataFrame, model: ModelData) -> dict[str, dict[str, dict]]:
    """GPU capacity by month: per type and month, hours awarded, on offer and the share used."""
    got = {(t, m): int(h) for t, m, h in awards.group_by("gpu_type", "month").agg(pl.col("gpu_hours").sum())
           .iter_rows()}
    caps = model.problem.capacity[:-1].reshape(len(model.gpu_types), len(model.months))
    return {t: {m: {"awarded": got.get((t, m), 0), "capacity": int(caps[i, j]),
                    "utilisation": round(got.get((t, m), 0) / int(caps[i, j]), 6) if caps[i, j] else None}
                for j, m in enumerate(model.months)}
            for i, t in enumerate(model.gpu_types)}


def write_results(out_dir: Path, decided: Decided, outcomes: pl.DataFrame, validated: ValidatedRound,
                  config: RoundConfig, timer: StageTimer, *, extra: dict | None = None,
                  timing_prefix: str = "") -> dict:
    """outcomes.csv/.parquet, awards.csv/.parquet, solution.json, quality.json, timings.json.

    outcomes: decided.outcomes, or what a lifecycle run made of them. extra: more top-level
    entries of solution.json (the reserve, the lifecycle summary). Returns solution.json's content.
    """
    out_dir = Path(out_dir)
    solution, solved = decided.solution, decided.solved
    files.write_table(outcomes, out_dir / files.OUTCOMES)
    files.write_table(decided.awards, out_dir / files.AWARDS)
    summary = summarise(outcomes, decided.awards, decided.model, solution, config)
    lp = solved.lp
    report = {
        "round_id": config.round.id,
        "status": solution.status,
        "objective": solution.objective,
        "objective_unit": OBJECTIVE_UNIT,
        "bound": solution.bound,
        "gap": solution.gap,
        "lp_bound": None if lp is None else lp.bound,
        "solver": {"name": solution.solver, "strategy": solved.strategy,
                   "strategy_configured": config.solver.strategy,
                   "workers": config.solver.workers, "seed": config.solver.seed,
                   "deterministic_time_limit": config.solver.time_limit_s,
                   "deterministic_time": solution.deterministic_time,
                   "quota_costs": solved.quota_costs_method,
                   **{k: _plain(solution.details[k]) for k in _DETAIL_KEYS if k in solution.details}},
        "summary": summary,
        "limits": decided.limits,
        "warnings": degenerate_warnings(decided.model, config) + solved.warnings,
        "input_sha256": validated.input_hashes,
        "versions": package_versions(),
        **(extra or {}),
    }
    files.write_json(out_dir / files.SOLUTION, report)
    files.merge_quality(out_dir, "outcomes", {"by_status": summary["by_status"],
                                              "by_reason": summary["by_reason"]})
    files.merge_timings(out_dir, {**{f"{timing_prefix}{k}": v for k, v in timer.seconds.items()},
                                  **{f"{timing_prefix}solve_{k}": v for k, v in solved.seconds.items()},
                                  "solver_deterministic_time": solution.deterministic_time,
                                  "solver_wall_seconds": round(solution.wall_seconds, 3)})
    return report


def _plain(value):
    """numpy scalars -> Python (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value
