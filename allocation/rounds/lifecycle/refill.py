"""After publication: acceptances, declines, lapses, refills and appeals.

A round does not end at publication. Awardees accept or decline (``responses.csv`` in the round
folder); awards not accepted by the deadline lapse; the capacity they free goes to the remaining
eligible applications; upheld appeals (``appeals.csv``, ``replacement_reviews.csv``) change the
inputs. Each such step is a *lifecycle run* that produces the same files as ``voucher allocate``
in an OUT folder, published as the next version:

  validate (round folder + upheld appeals) → score → refill allocate → approve → publish v<N+1>

The refill solves the full model of the round with every award of the previous version that is
accepted, or still pending inside its deadline, fixed to its published option (never reduced,
never moved), and every declined or lapsed award removed for good (the same as fixing it to
"none": declined applicants are not re-funded). Budget, GPU capacity, company caps and quotas
therefore hold over the whole round, and the freed resources go where the objective says.
The reserve (``[lifecycle] reserve_share``) that the first allocation could not use is
available to lifecycle runs.

A lifecycle run only re-allocates when something changed (an award released or an appeal
upheld); otherwise it keeps the previous awards exactly (rejected appeals and acceptances are
recorded, nothing else changes).

OUT/ additionally holds:
  lifecycle.json         decisions (state of every award, appeals applied), the award state
                         for the next run, as-of date, previous version
  lifecycle_public.json  the public part of the above: aggregates only (published as changes.*)
  changes.csv            officer view: every applicant, previous vs new status and award
  lifecycle_report.md    officer view: released, added, capacity re-used, unused and why

Modules: previous (what the run builds on), states (award states as of a date), refill (this
file: prepare and allocate), changes (what changed, for officers and the public).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import polars as pl

from allocation import files, intake, schema
from allocation.errors import RoundError
from allocation.intake.officer_files import (read_appeals, read_replacement_reviews, read_responses,
                                             replacement_file)
from allocation.model.build import ModelData, build_model
from allocation.rounds import allocate as stages
from allocation.rounds.lifecycle.changes import changes, lifecycle_outcomes
from allocation.rounds.lifecycle.previous import load_previous
from allocation.rounds.lifecycle.states import (PROTECTED, RELEASED, S_ACCEPTED, S_DECLINED, S_LAPSED,
                                                S_PENDING, award_states)
from allocation.rounds.results import StageTimer, decide, write_results

APP_ID = "application_id"


# --- Stage 1: prepare (validate + responses + appeals) -------------------------------------

def _existing(round_dir: Path, name: str | None, default: str) -> str | None:
    """Another name than the default must exist; the default name is used when the file is there."""
    if name and name != default:
        return name
    return default if (Path(round_dir) / default).is_file() else None


def prepare(round_dir: Path, previous_path: Path, out_dir: Path, *, as_of: date | None = None,
            responses: str | None = None, appeals: str | None = None, require_appeals: bool = False,
            budget_krw: int | None = None, time_limit_s: float | None = None) -> dict:
    """Validate the round folder, the responses and the appeals; apply upheld appeals to the
    validated tables in OUT/intake; write OUT/lifecycle.json. RoundError for any bad input."""
    round_dir, out_dir = Path(round_dir), Path(out_dir)
    as_of = as_of or date.today()
    previous = load_previous(previous_path)
    quality = stages.validate(round_dir, out_dir, budget_krw=budget_krw, time_limit_s=time_limit_s)
    validated = intake.load_validated(out_dir / files.INTAKE)
    config = validated.config
    if config.round.id != previous.round_id:
        raise RoundError(f"{round_dir}: round id {config.round.id!r} does not match the previous "
                         f"version's round {previous.round_id!r} ({previous.source})")
    apps = validated.applications
    known = set(apps[APP_ID].drop_nulls().to_list())
    hashes = dict(validated.input_hashes)

    responses_name = _existing(round_dir, responses, files.RESPONSES)
    resp = None
    if responses_name:
        resp, hashes[responses_name] = read_responses(round_dir, responses_name, known,
                                                      previous.ever_awarded, previous.label)
    appeals_name = _existing(round_dir, appeals, files.APPEALS)
    if require_appeals and not appeals_name:
        raise RoundError(f"{round_dir}: no {files.APPEALS}; an appeal run needs the appeals file")
    appeal_rows: list[dict] = []
    if appeals_name:
        table, hashes[appeals_name] = read_appeals(round_dir, appeals_name, known)
        appeal_rows = [{**r, "effect": ""} for r in table.iter_rows(named=True)]
        apps, reviews, replaced_hash = _apply_appeals(round_dir, validated, appeal_rows)
        if replaced_hash:
            hashes.update(replaced_hash)
        validated = replace(validated, applications=apps, reviews=reviews)
    validated = replace(validated, input_hashes=dict(sorted(hashes.items())))
    intake.save_validated(validated, out_dir / files.INTAKE)

    states = award_states(previous, resp, config, as_of)
    upheld = [a for a in appeal_rows if a["decision"] == schema.UPHELD]
    counts = Counter(s["state"] for s in states if s["current"])
    newly_released = [s for s in states if s["current"] and s["state"] in RELEASED]
    kind = "appeal" if upheld else "refill"
    state = {
        "kind": kind, "as_of": as_of.isoformat(), "round_id": config.round.id,
        "previous": {"label": previous.label, "version": previous.version, "source": str(previous.source),
                     "out_dir": str(previous.out_dir) if previous.out_dir else None,
                     "awardees": len(previous.awards)},
        "files": {"responses": responses_name, "appeals": appeals_name},
        "awards": states,
        "counts": {k: counts.get(k, 0) for k in (S_ACCEPTED, S_PENDING, S_DECLINED, S_LAPSED)},
        "newly_released": len(newly_released),
        "appeals": [{APP_ID: a[APP_ID], "decision": a["decision"], "note": a["note"],
                     "make_eligible": a["make_eligible"], "effect": a["effect"]} for a in appeal_rows],
        "reallocate": bool(newly_released or upheld),
    }
    files.write_json(out_dir / files.LIFECYCLE_STATE, state)
    if previous.outcomes is not None:
        files.write_parquet(previous.outcomes, out_dir / files.PREVIOUS_OUTCOMES)
    return {"kind": kind, "as_of": as_of.isoformat(), "previous": previous.label,
            "applications": quality["applications"], "eligible": int(apps[schema.ELIGIBLE].sum()),
            **state["counts"], "appeals_upheld": len(upheld),
            "appeals_rejected": len(appeal_rows) - len(upheld)}


def _apply_appeals(round_dir: Path, validated: intake.ValidatedRound, appeals: list[dict]):
    """Upheld appeals change the validated tables; rejected ones are only recorded."""
    apps, reviews = validated.applications, validated.reviews
    upheld = {a[APP_ID]: a for a in appeals if a["decision"] == schema.UPHELD}
    hashes = {}
    replaced: set[str] = set()
    path = replacement_file(round_dir)
    if upheld and path is not None:
        rows, hashes[path.name] = read_replacement_reviews(path, set(upheld), validated.config)
        replaced = set(rows[APP_ID].to_list())
        extras = [c for c in reviews.columns if c not in rows.columns]
        rows = rows.with_columns([pl.lit(None, reviews.schema[c]).alias(c) for c in extras])
        reviews = pl.concat([reviews.filter(~pl.col(APP_ID).is_in(sorted(replaced))),
                             rows.select(reviews.columns).cast(reviews.schema)])
    problems = []
    for a in appeals:
        if a["decision"] != schema.UPHELD:
            a["effect"] = "rejected: recorded, nothing changes"
            continue
        app_id = a[APP_ID]
        row = apps.filter(pl.col(APP_ID) == app_id)
        if row.height != 1:
            problems.append(f"  - appeal of '{app_id}': the id is on {row.height} rows of applications; "
                            f"correct the applications file instead")
            continue
        effects = []
        if app_id in replaced:
            effects.append("reviews replaced")
        eligible, reason = row[schema.ELIGIBLE][0], row[schema.REASON][0]
        if a["make_eligible"]:
            missing = [c for c in ("business_no", "region", "company_size", "prior_awards")
                       if row[c][0] is None]
            if missing:
                problems.append(f"  - appeal of '{app_id}': make_eligible cannot repair invalid "
                                f"field(s) {', '.join(missing)}; correct the applications file instead")
                continue
            if not eligible:
                effects.append(f"made eligible (was ineligible: {reason})")
            eligible = True
        elif not eligible and app_id in replaced and reason in ("missing_reviews", "invalid_review"):
            effects.append(f"eligible with the replacement reviews (was ineligible: {reason})")
            eligible = True
        if not effects:
            problems.append(f"  - appeal of '{app_id}' is upheld but changes nothing: add its "
                            f"replacement reviews ({files.REPLACEMENT_REVIEWS}.csv) or make_eligible = true")
            continue
        a["effect"] = "; ".join(effects)
        if eligible:
            apps = apps.with_columns(
                pl.when(pl.col(APP_ID) == app_id).then(True).otherwise(pl.col(schema.ELIGIBLE))
                .alias(schema.ELIGIBLE),
                *[pl.when(pl.col(APP_ID) == app_id).then(None).otherwise(pl.col(c)).alias(c)
                  for c in (schema.REASON, schema.REASON_DETAIL)])
    if problems:
        raise RoundError("appeals cannot be applied:\n" + "\n".join(problems))
    return apps, reviews, hashes



# --- Stage 3: refill allocation -----------------------------------------------------------

@dataclass
class RefillModel:
    model: ModelData
    fixed: dict[int, int]               # item -> option (protected awards)
    protected: dict[str, str]           # application_id -> accepted | pending
    released: dict[str, str]            # application_id -> declined | lapsed
    reallocate: bool
    scores: pl.DataFrame = field(repr=False, default=None)


def build_refill_model(out_dir: Path) -> RefillModel:
    """The full model of the round, with protected awards fixed and released ones removed."""
    out_dir = Path(out_dir)
    state = files.read_json(out_dir / files.LIFECYCLE_STATE)
    validated = intake.load_validated(out_dir / files.INTAKE)
    config = validated.config
    scores = pl.read_parquet(out_dir / files.SCORES)
    protected = {s[APP_ID]: s["state"] for s in state["awards"] if s["state"] in PROTECTED}
    released = {s[APP_ID]: s["state"] for s in state["awards"] if s["state"] in RELEASED}
    fraction = {s[APP_ID]: s["award_fraction"] for s in state["awards"] if s["state"] in PROTECTED}
    start = {s[APP_ID]: s.get(schema.START_MONTH) for s in state["awards"] if s["state"] in PROTECTED}
    apps = validated.applications
    not_eligible = sorted(set(apps.filter(~pl.col(schema.ELIGIBLE))[APP_ID].drop_nulls()) & set(protected))
    if not_eligible:
        raise RoundError(f"protected award(s) {', '.join(not_eligible)} are now ineligible; an "
                         f"accepted award cannot be taken back by a refill — fix the inputs")
    # A protected award stays in the model even if a recalibration moved its score under the
    # minimum (its objective term is a constant: it is fixed).
    floor = float(config.award.min_score)
    model_scores = scores.with_columns(
        pl.when(pl.col(APP_ID).is_in(sorted(protected)) & (pl.col("score") < floor))
        .then(pl.lit(floor)).otherwise(pl.col("score")).alias("score"))
    model = build_model(apps.filter(~pl.col(APP_ID).is_in(sorted(released)).fill_null(True)),
                        validated.requests, validated.capacity, model_scores, config)
    index = {a: i for i, a in enumerate(model.application_ids.tolist())}
    fixed: dict[int, int] = {}
    for app_id in sorted(protected):
        if app_id not in index:
            raise RoundError(f"protected award {app_id} is not selectable in this run")
        options = [o for o, level in enumerate(model.option_level.tolist())
                   if abs(model.levels[level] - fraction[app_id]) < 1e-9]
        if not options:
            raise RoundError(f"award of {app_id} was published at {fraction[app_id]:.0%}, which is not "
                             f"an award level of round.toml any more ({list(model.levels)})")
        if model.months:   # GPU capacity by month: the accepted award keeps its months
            options = [o for o in options if model.months[model.option_start[o]] == start[app_id]]
            if not options:
                raise RoundError(f"award of {app_id} starts in {start[app_id]}, which is not a capacity "
                                 f"month of the round any more ({model.months[0]}..{model.months[-1]})")
        if not model.problem.allowed[index[app_id], options[0]]:
            raise RoundError(f"award of {app_id} at {fraction[app_id]:.0%} no longer fits the round's "
                             f"limits (capacity, budget or company cap were lowered?)")
        fixed[index[app_id]] = options[0]
    if not state["reallocate"]:   # nothing changed: keep the previous awards exactly
        for i in range(model.problem.n_items):
            fixed.setdefault(i, -1)
    return RefillModel(model=model, fixed=fixed, protected=protected, released=released,
                       reallocate=state["reallocate"], scores=scores)



def allocate(out_dir: Path) -> dict:
    """Solve the refill, explain it, write the same files as an allocation (one finishing path,
    allocation.rounds.results) plus the lifecycle outputs. RoundError when the round cannot be
    kept feasible."""
    out_dir = Path(out_dir)
    timer = StageTimer()
    started = time.perf_counter()
    state = files.read_json(out_dir / files.LIFECYCLE_STATE)
    validated = intake.load_validated(out_dir / files.INTAKE)
    config = validated.config
    rm = build_refill_model(out_dir)
    timer.record("build_model", started)
    decided = decide(rm.model, validated, rm.scores, config, timer, fixed=rm.fixed)
    outcomes = lifecycle_outcomes(decided.outcomes, state, rm.protected, rm.released)
    public, table, report_md = changes(out_dir, state, outcomes, decided.awards, rm.model,
                                       decided.limits, decided.explanation, config)
    report = write_results(out_dir, decided, outcomes, validated, config, timer,
                           extra={"lifecycle": public}, timing_prefix="refill_")

    solution = decided.solution
    awarded_now = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)[APP_ID].to_list()
    previous_offered = {s[APP_ID]: s["offered_as_of"] for s in state["awards"] if s["state"] in PROTECTED}
    state["next"] = {
        "offered": {a: previous_offered.get(a, state["as_of"]) if a in previous_offered else state["as_of"]
                    for a in awarded_now},
        "ever_awarded": sorted(set(s[APP_ID] for s in state["awards"]) | set(awarded_now)),
    }
    state["result"] = {"gained": public["gained"], "solver_status": solution.status,
                       "objective": solution.objective}
    files.write_json(out_dir / files.LIFECYCLE_STATE, state)
    files.write_json(out_dir / files.LIFECYCLE_PUBLIC, public)
    files.write_table(table, out_dir / files.CHANGES)
    files.write_text(out_dir / files.LIFECYCLE_REPORT, report_md)
    return report


# --- All stages (CLI) ---------------------------------------------------------------------

def run_lifecycle(round_dir: Path, previous: Path, out_dir: Path, *, as_of: date | None = None,
                  responses: str | None = None, appeals: str | None = None,
                  require_appeals: bool = False, budget_krw: int | None = None,
                  time_limit_s: float | None = None, on_stage=None) -> dict:
    notify = on_stage or (lambda name: None)
    notify("validate")
    prep = prepare(round_dir, previous, out_dir, as_of=as_of, responses=responses, appeals=appeals,
                   require_appeals=require_appeals, budget_krw=budget_krw, time_limit_s=time_limit_s)
    notify("score")
    stages.score(Path(out_dir))
    notify("allocate")
    report = allocate(Path(out_dir))
    report["prepare"] = prep
    return report
