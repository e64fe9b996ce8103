"""What-if scenarios: the round solved under other policies, side by side, before approval.

    voucher whatif ROUND --out OUT --scenario budget=+10% --scenario quota.non_capital=0.3 \\
                                   --scenario min_score=65,max_krw_per_company=200000000

A scenario is one or more settings separated by commas:

    budget=+10% | budget=-5% | budget=6000000000     the budget (relative, or in KRW)
    quota.<name>=0.3                                 a quota's minimum share (the quota must exist)
    min_score=65                                     the minimum score
    max_krw_per_company=200000000                    the per-company cap
    copay_share=0.3                                  the SME co-payment share

The round is validated and scored once (OUT/base is exactly what `voucher allocate` writes);
each scenario is solved and explained the same way into OUT/scenario-<k>/ (outcomes, awards,
solution.json), with at most SCENARIO_TIME_LIMIT_S deterministic seconds of solver time (its gap
is in the table). OUT/whatif.json, whatif.md and whatif.csv hold the side-by-side totals (funded,
budget and GPU use, objective, quota shares, applicants gained and lost against the base);
OUT/whatif_changes.csv lists, for officers only, every applicant whose status or award differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from allocation import files, intake, schema
from allocation.config import RoundConfig, load_config
from allocation.errors import RoundError
from allocation.rounds.allocate import allocate_with, run_round
from allocation.text import markdown_cell

WHATIF_JSON, WHATIF_MD, WHATIF_CSV, WHATIF_CHANGES = "whatif.json", "whatif.md", "whatif.csv", "whatif_changes.csv"
# Each scenario is solved with at most this many deterministic seconds (the round's own limit when
# lower): a what-if is a comparison before approval, and its gap is in the table. At 10k
# applications the large-round polish otherwise takes its full 10 s (17-31 s wall per scenario on
# 2 cores); with 5 the scenarios of bench.whatif took 3-13 s and stayed within 1e-5 of their bounds.
SCENARIO_TIME_LIMIT_S = 5.0
BASE = "base"
_SETTING = re.compile(r"^\s*([a-z_]+(?:\.[A-Za-z0-9_-]+)?)\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class Scenario:
    label: str                      # as the officer wrote it
    settings: tuple[tuple[str, str], ...]

    def apply(self, config: RoundConfig) -> RoundConfig:
        """The round's policy with this scenario's settings; RoundError names a bad one."""
        data = config.model_dump(by_alias=True)
        for key, value in self.settings:
            try:
                if key == "budget":
                    data["round"]["budget_krw"] = _budget(value, config.round.budget_krw)
                elif key == "min_score":
                    data["award"]["min_score"] = float(value)
                elif key == "max_krw_per_company":
                    data["award"]["max_krw_per_company"] = int(value.replace("_", ""))
                elif key == "copay_share":
                    data["round"]["copay_share"] = float(value)
                elif key.startswith("quota."):
                    name = key.removeprefix("quota.")
                    quota = next((q for q in data["quota"] if q["name"] == name), None)
                    if quota is None:
                        known = ", ".join(q["name"] for q in data["quota"]) or "none"
                        raise RoundError(f"scenario '{self.label}': no quota named '{name}' (quotas: {known})")
                    quota["min_share"] = float(value)
                else:
                    raise RoundError(f"scenario '{self.label}': unknown setting '{key}' (use budget, "
                                     f"quota.<name>, min_score, max_krw_per_company or copay_share)")
            except ValueError:
                raise RoundError(f"scenario '{self.label}': '{value}' is not a valid value for {key}") from None
        try:
            return RoundConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RoundError(f"scenario '{self.label}': {where}: {first['msg']}") from None


def _scenario_solver(config: RoundConfig) -> RoundConfig:
    """A scenario's policy with the solver's time limit capped at SCENARIO_TIME_LIMIT_S."""
    limit = min(float(config.solver.time_limit_s), SCENARIO_TIME_LIMIT_S)
    return config.model_copy(update={"solver": config.solver.model_copy(update={"time_limit_s": limit})})


def _budget(value: str, current: int) -> int:
    if value.endswith("%"):
        change = float(value[:-1])
        return int(round(current * (100 + change) / 100))
    return int(value.replace("_", ""))


def parse_scenario(text: str) -> Scenario:
    settings = []
    for part in text.split(","):
        match = _SETTING.match(part)
        if not match:
            raise RoundError(f"scenario '{text}': '{part.strip()}' is not setting=value "
                             f"(e.g. budget=+10%, quota.non_capital=0.3, min_score=65)")
        settings.append((match.group(1), match.group(2)))
    return Scenario(label=text.strip(), settings=tuple(settings))


def _row(label: str, report: dict) -> dict:
    s = report["summary"]
    return {
        "scenario": label, "status": report["status"], "gap": report["gap"],
        "funded": s["funded"], "awarded_krw": s["awarded_krw"], "budget_krw": s["budget_krw"],
        "budget_used_share": s["budget_used_share"], "objective": report["objective"],
        "gpu_utilisation": s["gpu_utilisation"],
        "quota_shares": {q["quota"]: q["share"] for q in report["limits"]["quotas"]},
        "score_cutoff": s["score_cutoff"],
    }


def _changes(base: pl.DataFrame, other: pl.DataFrame, label: str) -> tuple[pl.DataFrame, int, int]:
    """Every applicant whose status or award differs (officers only), and gained/lost counts."""
    cols = ["status", "award_fraction", "awarded_krw"]
    joined = base.select("source_row", "application_id", "company_name", *cols).join(
        other.select("source_row", *[pl.col(c).alias(f"{c}_scenario") for c in cols]), on="source_row")
    changed = joined.filter(pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_scenario")) for c in cols]))
    awarded = schema.STATUS_AWARDED
    gained = changed.filter((pl.col("status") != awarded) & (pl.col("status_scenario") == awarded)).height
    lost = changed.filter((pl.col("status") == awarded) & (pl.col("status_scenario") != awarded)).height
    return changed.with_columns(scenario=pl.lit(label)), gained, lost


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def render_markdown(rows: list[dict]) -> str:
    gpus = sorted({g for r in rows for g in r["gpu_utilisation"]})
    quotas = sorted({q for r in rows for q in r["quota_shares"]})
    head = ["scenario", "funded", "gained", "lost", "awarded", "budget used", *[f"{g} used" for g in gpus],
            *[f"quota {q}" for q in quotas], "objective vs base", "solver"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_objective = rows[0]["objective"] or 1
    for r in rows:
        cells = [markdown_cell(r["scenario"]), f"{r['funded']:,}", str(r["gained"]), str(r["lost"]),
                 f"₩{r['awarded_krw']:,} of ₩{r['budget_krw']:,}", _pct(r["budget_used_share"]),
                 *[_pct(r["gpu_utilisation"].get(g)) for g in gpus],
                 *[_pct(r["quota_shares"].get(q)) for q in quotas],
                 f"{100 * r['objective'] / base_objective:.2f} %", f"{r['status']} (gap {r['gap']:.1e})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def check_scenarios(round_dir: Path, scenarios: list[str], *, budget_krw: int | None = None,
                    time_limit_s: float | None = None) -> list[Scenario]:
    """Every scenario parsed and applied to the round's policy before anything is solved
    (RoundError names the first bad one, in plain words)."""
    parsed = [parse_scenario(s) for s in scenarios]
    policy = load_config(Path(round_dir)).with_overrides(budget_krw=budget_krw, time_limit_s=time_limit_s)
    for scenario in parsed:
        scenario.apply(policy)
    return parsed


def solve_scenarios(base_dir: Path, out_dir: Path, parsed: list[Scenario], *, base_report: dict | None = None,
                    on_stage=None) -> list[dict]:
    """Each scenario solved against an allocated run folder (base_dir, as `voucher allocate`
    writes it) into out_dir/scenario-<k>/; writes the side-by-side files into out_dir."""
    base_dir, out_dir = Path(base_dir), files.private_dir(Path(out_dir))
    notify = on_stage or (lambda name: None)
    base_report = base_report or files.read_json(base_dir / files.SOLUTION)
    validated = intake.load_validated(base_dir / files.INTAKE)
    scores = pl.read_parquet(base_dir / files.SCORES)
    configs = [_scenario_solver(s.apply(validated.config)) for s in parsed]
    base_outcomes = pl.read_parquet(base_dir / files.OUTCOMES_PARQUET)
    base_folder = BASE if base_dir == out_dir / BASE else "(this run)"
    rows = [{**_row(BASE, base_report), "gained": 0, "lost": 0, "folder": base_folder}]
    changes = []
    for k, (scenario, config) in enumerate(zip(parsed, configs), 1):
        notify(f"scenario {k}: {scenario.label}")
        folder = files.private_dir(out_dir / f"scenario-{k}")
        report = allocate_with(folder, validated, scores, config)
        changed, gained, lost = _changes(base_outcomes, pl.read_parquet(folder / files.OUTCOMES_PARQUET),
                                         scenario.label)
        changes.append(changed)
        rows.append({**_row(scenario.label, report), "gained": gained, "lost": lost, "folder": folder.name})
    files.write_json(out_dir / WHATIF_JSON, {"round_id": base_report["round_id"], "scenarios": rows})
    files.write_text(out_dir / WHATIF_MD, render_markdown(rows))
    flat = pl.DataFrame([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows])
    files.write_csv(flat, out_dir / WHATIF_CSV)
    if changes:
        files.write_csv(pl.concat(changes), out_dir / WHATIF_CHANGES)
    return rows


def run_whatif(round_dir: Path, out_dir: Path, scenarios: list[str], *, budget_krw: int | None = None,
               time_limit_s: float | None = None, on_stage=None) -> list[dict]:
    """The base (as `voucher allocate`) and every scenario; returns the side-by-side rows."""
    out_dir = files.private_dir(Path(out_dir))
    parsed = check_scenarios(round_dir, scenarios, budget_krw=budget_krw, time_limit_s=time_limit_s)
    base_dir = out_dir / BASE
    base_report = run_round(Path(round_dir), base_dir, budget_krw=budget_krw, time_limit_s=time_limit_s,
                            on_stage=on_stage)
    return solve_scenarios(base_dir, out_dir, parsed, base_report=base_report, on_stage=on_stage)


def solve_for_run(round_dir: Path, run_dir: Path, scenarios: list[str] | None, *,
                  budget_krw: int | None = None, time_limit_s: float | None = None) -> list[dict] | None:
    """The round DAG's what-if step: each scenario solved against the run's own allocation into
    run_dir/whatif/ (None: no scenario asked). The scenarios were checked by validate already;
    they are checked again here (cheap) so a changed round.toml cannot slip through."""
    if not scenarios:
        return None
    parsed = check_scenarios(round_dir, list(scenarios), budget_krw=budget_krw, time_limit_s=time_limit_s)
    return solve_scenarios(run_dir, Path(run_dir) / files.WHATIF_DIR, parsed)


def read_whatif(folder: Path) -> dict | None:
    """The side-by-side totals written by solve_scenarios (None: no what-if in this folder)."""
    path = Path(folder) / WHATIF_JSON
    return files.read_json(path) if path.is_file() else None
