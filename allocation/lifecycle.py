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
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl

from allocation import intake, pipeline, schema, solving
from allocation.config import RoundConfig, load_config
from allocation.errors import RoundError
from allocation.explaining import _patterns, explain_items, limits_report, without_quota
from allocation.modeling import ModelData, build_model
from allocation.outcomes import build_awards, build_outcomes, item_outcomes

APP_ID = "application_id"
RESPONSES_FILE = "responses.csv"
APPEALS_FILE = "appeals.csv"
REPLACEMENT_REVIEWS_STEM = "replacement_reviews"
STATE_FILE = "lifecycle.json"
PUBLIC_FILE = "lifecycle_public.json"
CHANGES_FILE = "changes.csv"
REPORT_FILE = "lifecycle_report.md"

ACCEPTED, DECLINED = "accepted", "declined"
UPHELD, REJECTED = "upheld", "rejected"
# Award states after the responses, as of a date.
S_ACCEPTED, S_PENDING, S_DECLINED, S_LAPSED = "accepted", "pending", "declined", "lapsed"
PROTECTED = (S_ACCEPTED, S_PENDING)
RELEASED = (S_DECLINED, S_LAPSED)

RESPONSES = schema.TableSpec(
    stem="responses",
    columns=(schema.ColumnSpec(APP_ID, schema.ID),
             schema.ColumnSpec("response", schema.ENUM, choices=(ACCEPTED, DECLINED)),
             schema.ColumnSpec("responded_on", schema.DATE)),
    key=(APP_ID,))
APPEALS = schema.TableSpec(
    stem="appeals",
    columns=(schema.ColumnSpec(APP_ID, schema.ID),
             schema.ColumnSpec("decision", schema.ENUM, choices=(UPHELD, REJECTED))),
    key=(APP_ID,))
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


# --- Reserve (first allocation) -----------------------------------------------------

def hold_back_reserve(config: RoundConfig, capacity: pl.DataFrame
                      ) -> tuple[RoundConfig, pl.DataFrame, dict]:
    """The config and capacity the FIRST allocation may use, and what is held back.

    floor((1 - reserve_share) × budget) and floor((1 - reserve_share) × hours) per GPU type,
    in exact rational arithmetic.
    """
    share = Fraction(str(config.lifecycle.reserve_share))
    keep = 1 - share
    budget = config.round.budget_krw
    usable_budget = budget * keep.numerator // keep.denominator
    hours = capacity["gpu_hours"].to_list()
    usable_hours = [h * keep.numerator // keep.denominator for h in hours]
    reduced = capacity.with_columns(pl.Series("gpu_hours", usable_hours, dtype=capacity["gpu_hours"].dtype))
    data = config.model_dump(by_alias=True)
    data["round"]["budget_krw"] = usable_budget
    held = {"share": config.lifecycle.reserve_share, "budget_krw": budget - usable_budget,
            "budget_krw_total": budget,
            "gpu_hours": {g: h - u for g, h, u in zip(capacity["gpu_type"].to_list(), hours, usable_hours)},
            "note": "held back for refills and upheld appeals; the first allocation cannot use it"}
    return RoundConfig.model_validate(data), reduced, held


# --- Reading officer files ----------------------------------------------------------

def _table_file(round_dir: Path, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RoundError(f"{name!r}: give a plain file name inside the round folder")
    path = Path(round_dir) / name
    if path.suffix not in schema.TABLE_EXTENSIONS:
        raise RoundError(f"{path}: use a .csv, .xlsx or .parquet file")
    if not path.is_file():
        raise RoundError(f"{path}: file not found")
    return path


def _read(path: Path, spec: schema.TableSpec) -> tuple[pl.DataFrame, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RoundError(f"{path}: cannot read the file ({exc.strerror}).") from None
    frame = intake._tidy(intake._READERS[path.suffix](data, path.name), spec, path.name)
    return frame, hashlib.sha256(data).hexdigest()


def _raise_issues(file: str, issues: pl.DataFrame, what: str) -> None:
    if issues.is_empty():
        return
    lines = [f"  - {file} row {r['row']}" + (f" [{r['column']}]" if r["column"] else "")
             + f": {r['message']} ({r['code']})"
             for r in issues.unique().sort("row", "column", "code", nulls_last=False).iter_rows(named=True)]
    raise RoundError(f"{file}: {len(lines)} problem(s); {what} cannot run until they are fixed "
                     f"(rows as in Excel, header = row 1):\n" + "\n".join(lines))


def _membership_issues(frame: pl.DataFrame, file: str, bad: pl.Expr, code: str,
                       message: pl.Expr) -> pl.DataFrame:
    return intake._issues(frame.filter(pl.col(APP_ID).is_not_null() & bad), file, APP_ID, code,
                          message, pl.col(APP_ID))


def _read_with_common_checks(round_dir: Path, name: str, spec, known_ids: set[str],
                             optional: tuple[str, ...] = ()):
    """Read a lifecycle table (missing optional columns added empty) and find the issues every
    such table shares: bad cells, duplicate rows, unknown application ids.

    Returns (frame, typed, file name, digest, known ids as a list literal, [issue frames]).
    """
    path = _table_file(round_dir, name)
    frame, digest = _read(path, spec)
    file = path.name
    for column in optional:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(column))
    typed, cell_issues = intake._check_cells(frame, spec, file, date.today(), pl.col(APP_ID))
    known = pl.Series(sorted(known_ids), dtype=pl.String).implode()
    common = [
        cell_issues,
        intake._duplicate_issues(frame, spec, file, "duplicate_row", APP_ID, pl.col(APP_ID)),
        _membership_issues(frame, file, ~pl.col(APP_ID).is_in(known), "unknown_application",
                           pl.format("application_id '{}' does not match any application of the round",
                                     pl.col(APP_ID))),
    ]
    return frame, typed, file, digest, known, common


def read_responses(round_dir: Path, name: str, known_ids: set[str], awardees: set[str],
                   previous_label: str) -> tuple[pl.DataFrame, str]:
    """Validated responses (application_id, response, responded_on, source_row) and file hash.

    Every bad row is listed in one RoundError: bad cells (empty id, unknown response value,
    bad date), duplicates, unknown application ids, responses from non-awardees.
    """
    frame, typed, file, digest, known, common = _read_with_common_checks(
        round_dir, name, RESPONSES, known_ids)
    award = pl.Series(sorted(awardees), dtype=pl.String).implode()
    issues = pl.concat([
        *common,
        _membership_issues(frame, file, pl.col(APP_ID).is_in(known) & ~pl.col(APP_ID).is_in(award),
                           "not_awardee",
                           pl.format("application '{}' was not awarded in {}; only awardees respond",
                                     pl.col(APP_ID), pl.lit(previous_label))),
    ])
    _raise_issues(file, issues, "the refill")
    return typed.select(APP_ID, "response", "responded_on", schema.SOURCE_ROW), digest


def _bool_cell(column: str) -> tuple[pl.Expr, pl.Expr]:
    raw = pl.col(column).str.to_lowercase()
    value = pl.when(raw.is_in(list(_TRUE))).then(True).when(raw.is_in(list(_FALSE))).then(False)
    return value, raw.is_not_null() & value.is_null()


def read_appeals(round_dir: Path, name: str, known_ids: set[str]) -> tuple[pl.DataFrame, str]:
    """Validated appeals (application_id, decision, note, make_eligible, source_row), file hash."""
    frame, typed, file, digest, _, common = _read_with_common_checks(
        round_dir, name, APPEALS, known_ids, optional=("note", "make_eligible"))
    eligible_value, bad_bool = _bool_cell("make_eligible")
    issues = pl.concat([
        *common,
        intake._issues(frame.filter(bad_bool), file, "make_eligible", "bad_boolean",
                       pl.format("make_eligible '{}' is not true/false (yes/no, 1/0 also accepted)",
                                 pl.col("make_eligible")), pl.col(APP_ID)),
        intake._issues(typed.filter((pl.col("decision") == REJECTED) & eligible_value.fill_null(False)),
                       file, "make_eligible", "rejected_with_correction",
                       pl.format("appeal of '{}' is rejected but asks make_eligible; a rejected "
                                 "appeal changes nothing", pl.col(APP_ID)), pl.col(APP_ID)),
    ])
    _raise_issues(file, issues, "the appeal")
    out = typed.with_columns(eligible_value.fill_null(False).alias("make_eligible"))
    return out.select(APP_ID, "decision", "note", "make_eligible", schema.SOURCE_ROW), digest


def _replacement_file(round_dir: Path) -> Path | None:
    found = [Path(round_dir) / f"{REPLACEMENT_REVIEWS_STEM}{ext}" for ext in schema.TABLE_EXTENSIONS
             if (Path(round_dir) / f"{REPLACEMENT_REVIEWS_STEM}{ext}").is_file()]
    if len(found) > 1:
        raise RoundError(f"{round_dir}: {' and '.join(p.name for p in found)}: keep exactly one "
                         f"replacement reviews file")
    return found[0] if found else None


def read_replacement_reviews(path: Path, upheld: set[str], config: RoundConfig
                             ) -> tuple[pl.DataFrame, str]:
    """Review rows (reviews columns) replacing all reviews of applications with an upheld appeal."""
    frame, digest = _read(path, schema.REVIEWS)
    file = path.name
    typed, issues = intake._check_cells(frame, schema.REVIEWS, file, date.today(), pl.col(APP_ID))
    ups = pl.Series(sorted(upheld), dtype=pl.String).implode()
    weighted = list(config.scoring.weights)
    issues = pl.concat([
        issues,
        intake._duplicate_issues(frame, schema.REVIEWS, file, "duplicate_row", None, pl.col(APP_ID)),
        _membership_issues(frame, file, ~pl.col(APP_ID).is_in(ups), "no_upheld_appeal",
                           pl.format("application '{}' has no upheld appeal in the appeals file; only "
                                     "upheld appeals replace reviews", pl.col(APP_ID))),
        intake._issues(frame.filter(pl.col("criterion").is_not_null()
                                    & ~pl.col("criterion").is_in(weighted)),
                       file, "criterion", "unknown_criterion",
                       pl.format("criterion '{}' is not weighted in round.toml (known: {})",
                                 pl.col("criterion"), pl.lit(", ".join(sorted(weighted)))), pl.col(APP_ID)),
    ])
    _raise_issues(file, issues, "the appeal")
    # enough distinct reviewers per weighted criterion for each replaced application
    need = config.scoring.min_reviewers
    short = []
    for app_id in sorted(set(typed[APP_ID].drop_nulls().to_list())):
        rows = typed.filter(pl.col(APP_ID) == app_id)
        for criterion in weighted:
            n = rows.filter(pl.col("criterion") == criterion)["reviewer_id"].n_unique()
            if n < need:
                short.append(f"  - {file}: application '{app_id}' has {n} reviewer(s) on criterion "
                             f"'{criterion}'; round.toml requires at least {need}")
    if short:
        raise RoundError(f"{file}: replacement reviews are incomplete; the appeal cannot run:\n"
                         + "\n".join(short))
    return typed.select(*schema.REVIEWS.required, schema.SOURCE_ROW), digest


# --- The previous version -------------------------------------------------------------

@dataclass
class Previous:
    """What was published (or allocated) before this lifecycle run."""

    round_id: str
    label: str                          # "v2" or the run folder, for messages
    version: int | None                 # published version number (None: a run folder)
    source: Path
    awards: dict[str, float]            # application_id -> award_fraction, awardees now
    offered: dict[str, str | None]      # awardee -> as-of date of the version that first offered it
    ever_awarded: set[str]              # awardees of any earlier version
    outcomes: pl.DataFrame | None = None   # full outcomes (officer side) when known
    out_dir: Path | None = None


def _published_versions(round_root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in round_root.glob("v*")
                  if p.is_dir() and p.name[1:].isdigit() and (p / "manifest.json").is_file())


def _load_published(version_dir: Path) -> Previous:
    from allocation import audit, publishing
    problems = publishing.verify(version_dir)
    if problems:
        raise RoundError(f"{version_dir} does not match its manifest ({', '.join(problems[:3])}); "
                         f"refusing to build on a tampered version")
    manifest = json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))
    round_id, version = manifest["round_id"], int(manifest["version"])
    round_root = version_dir.parent
    per_version: dict[int, dict[str, float]] = {}
    as_of: dict[int, str | None] = {}
    for v in _published_versions(round_root):
        if v > version:
            continue
        frame = pl.read_parquet(round_root / f"v{v}" / "awards_public.parquet")
        per_version[v] = dict(zip(frame[APP_ID].to_list(), frame["award_fraction"].to_list()))
        m = json.loads((round_root / f"v{v}" / "manifest.json").read_text(encoding="utf-8"))
        as_of[v] = (m.get("lifecycle") or {}).get("as_of")
    awards = per_version[version]
    offered = {}
    for app_id in awards:
        first = version
        while first - 1 in per_version and app_id in per_version[first - 1]:
            first -= 1
        offered[app_id] = as_of.get(first)
    ever = set().union(*per_version.values())
    outcomes = out_dir = None
    for entry in audit.read(round_root.parent, round_id):
        if entry.get("version") == version and entry.get("out_dir"):
            candidate = Path(entry["out_dir"])
            if (candidate / "outcomes.parquet").is_file():
                out_dir, outcomes = candidate, pl.read_parquet(candidate / "outcomes.parquet")
    return Previous(round_id=round_id, label=f"v{version}", version=version, source=version_dir,
                    awards=awards, offered=offered, ever_awarded=ever, outcomes=outcomes, out_dir=out_dir)


def _load_run_folder(out_dir: Path) -> Previous:
    sol = json.loads((out_dir / "solution.json").read_text(encoding="utf-8"))
    outcomes = pl.read_parquet(out_dir / "outcomes.parquet")
    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    awards = dict(zip(awarded[APP_ID].to_list(), awarded["award_fraction"].to_list()))
    offered: dict[str, str | None] = {a: None for a in awards}
    ever = set(awards)
    state_path = out_dir / STATE_FILE
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        offered = {a: state["next"]["offered"].get(a) for a in awards}
        ever = set(state["next"]["ever_awarded"])
    return Previous(round_id=sol["round_id"], label=str(out_dir), version=None, source=out_dir,
                    awards=awards, offered=offered, ever_awarded=ever, outcomes=outcomes,
                    out_dir=out_dir)


def load_previous(path: Path | str) -> Previous:
    """A run folder (OUT of allocate or of a lifecycle run), a published version folder
    (PUBLISH_ROOT/<round>/v<N>) or a published round folder (its latest version)."""
    path = Path(path)
    if (path / "outcomes.parquet").is_file() and (path / "solution.json").is_file():
        return _load_run_folder(path)
    if (path / "manifest.json").is_file() and (path / "awards_public.parquet").is_file():
        return _load_published(path)
    versions = _published_versions(path) if path.is_dir() else []
    if versions:
        return _load_published(path / f"v{versions[-1]}")
    raise RoundError(f"{path}: not a run folder (outcomes.parquet, solution.json), a published "
                     f"version (manifest.json) nor a published round folder (v1, v2, …)")


# --- Award states -----------------------------------------------------------------------

def _deadline(config: RoundConfig, offered_as_of: str | None) -> date | None:
    accept_by = config.lifecycle.accept_by
    if offered_as_of is None:
        return accept_by
    own = date.fromisoformat(offered_as_of) + timedelta(days=config.lifecycle.accept_within_days)
    return max(own, accept_by) if accept_by else own


def award_states(previous: Previous, responses: pl.DataFrame | None, config: RoundConfig,
                 as_of: date) -> list[dict]:
    """State of every award ever made in the round, as of a date.

    accepted  acceptance dated on or before as_of and on or before the award's deadline
    declined  decline dated on or before as_of (also for awards released earlier)
    lapsed    no acceptance by the deadline (as_of after it), or an acceptance after it
    pending   no response yet, deadline not passed (or no deadline)
    Responses dated after as_of are not counted (state "as of").
    """
    by_id = {}
    if responses is not None:
        by_id = {r[APP_ID]: r for r in responses.iter_rows(named=True)}
    states = []
    for app_id in sorted(previous.ever_awarded):
        r = by_id.get(app_id)
        counted = r is not None and r["responded_on"] <= as_of
        current = app_id in previous.awards
        deadline = _deadline(config, previous.offered.get(app_id)) if current else None
        note = ""
        if not current:   # released by an earlier version: stays released
            state = S_DECLINED if counted and r["response"] == DECLINED else S_LAPSED
            note = f"released before {previous.label}"
        elif counted and r["response"] == DECLINED:
            state = S_DECLINED
        elif counted and (deadline is None or r["responded_on"] <= deadline):
            state = S_ACCEPTED
        elif counted:
            state, note = S_LAPSED, f"accepted on {r['responded_on']} after the deadline {deadline}"
        elif deadline is not None and as_of > deadline:
            state = S_LAPSED
        else:
            state = S_PENDING
        if r is not None and not counted:
            note = f"response dated {r['responded_on']} is after the as-of date {as_of}: not counted"
        states.append({
            APP_ID: app_id, "state": state, "current": current,
            "award_fraction": previous.awards.get(app_id),
            "offered_as_of": previous.offered.get(app_id) if current else None,
            "deadline": deadline.isoformat() if deadline else None,
            "response": r["response"] if r is not None else None,
            "responded_on": r["responded_on"].isoformat() if r is not None else None,
            "note": note,
        })
    return states


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
    quality = pipeline.validate(round_dir, out_dir, budget_krw=budget_krw, time_limit_s=time_limit_s)
    validated = intake.load_validated(out_dir / pipeline.INTAKE_DIR)
    config = validated.config
    if config.round.id != previous.round_id:
        raise RoundError(f"{round_dir}: round id {config.round.id!r} does not match the previous "
                         f"version's round {previous.round_id!r} ({previous.source})")
    apps = validated.applications
    known = set(apps[APP_ID].drop_nulls().to_list())
    hashes = dict(validated.input_hashes)

    responses_name = _existing(round_dir, responses, RESPONSES_FILE)
    resp = None
    if responses_name:
        resp, hashes[responses_name] = read_responses(round_dir, responses_name, known,
                                                      previous.ever_awarded, previous.label)
    appeals_name = _existing(round_dir, appeals, APPEALS_FILE)
    if require_appeals and not appeals_name:
        raise RoundError(f"{round_dir}: no {APPEALS_FILE}; an appeal run needs the appeals file")
    appeal_rows: list[dict] = []
    if appeals_name:
        table, hashes[appeals_name] = read_appeals(round_dir, appeals_name, known)
        appeal_rows = [{**r, "effect": ""} for r in table.iter_rows(named=True)]
        apps, reviews, replaced_hash = _apply_appeals(round_dir, validated, appeal_rows)
        if replaced_hash:
            hashes.update(replaced_hash)
        validated = replace(validated, applications=apps, reviews=reviews)
    validated = replace(validated, input_hashes=dict(sorted(hashes.items())))
    intake.save_validated(validated, out_dir / pipeline.INTAKE_DIR)

    states = award_states(previous, resp, config, as_of)
    upheld = [a for a in appeal_rows if a["decision"] == UPHELD]
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
    pipeline.write_json(out_dir / STATE_FILE, state)
    if previous.outcomes is not None:
        previous.outcomes.write_parquet(out_dir / "previous_outcomes.parquet")
    return {"kind": kind, "as_of": as_of.isoformat(), "previous": previous.label,
            "applications": quality["applications"], "eligible": int(apps[schema.ELIGIBLE].sum()),
            **state["counts"], "appeals_upheld": len(upheld),
            "appeals_rejected": len(appeal_rows) - len(upheld)}


def _apply_appeals(round_dir: Path, validated: intake.ValidatedRound, appeals: list[dict]):
    """Upheld appeals change the validated tables; rejected ones are only recorded."""
    apps, reviews = validated.applications, validated.reviews
    upheld = {a[APP_ID]: a for a in appeals if a["decision"] == UPHELD}
    hashes = {}
    replaced: set[str] = set()
    path = _replacement_file(round_dir)
    if upheld and path is not None:
        rows, hashes[path.name] = read_replacement_reviews(path, set(upheld), validated.config)
        replaced = set(rows[APP_ID].to_list())
        extras = [c for c in reviews.columns if c not in rows.columns]
        rows = rows.with_columns([pl.lit(None, reviews.schema[c]).alias(c) for c in extras])
        reviews = pl.concat([reviews.filter(~pl.col(APP_ID).is_in(sorted(replaced))),
                             rows.select(reviews.columns).cast(reviews.schema)])
    problems = []
    for a in appeals:
        if a["decision"] != UPHELD:
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
                            f"replacement reviews ({REPLACEMENT_REVIEWS_STEM}.csv) or make_eligible = true")
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
    state = json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
    validated = intake.load_validated(out_dir / pipeline.INTAKE_DIR)
    config = validated.config
    scores = pl.read_parquet(out_dir / pipeline.SCORES_FILE)
    protected = {s[APP_ID]: s["state"] for s in state["awards"] if s["state"] in PROTECTED}
    released = {s[APP_ID]: s["state"] for s in state["awards"] if s["state"] in RELEASED}
    fraction = {s[APP_ID]: s["award_fraction"] for s in state["awards"] if s["state"] in PROTECTED}
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
        options = [l for l, level in enumerate(model.levels) if abs(level - fraction[app_id]) < 1e-9]
        if not options:
            raise RoundError(f"award of {app_id} was published at {fraction[app_id]:.0%}, which is not "
                             f"an award level of round.toml any more ({list(model.levels)})")
        if not model.problem.allowed[index[app_id], options[0]]:
            raise RoundError(f"award of {app_id} at {fraction[app_id]:.0%} no longer fits the round's "
                             f"limits (capacity, budget or company cap were lowered?)")
        fixed[index[app_id]] = options[0]
    if not state["reallocate"]:   # nothing changed: keep the previous awards exactly
        for i in range(model.problem.n_items):
            fixed.setdefault(i, -1)
    return RefillModel(model=model, fixed=fixed, protected=protected, released=released,
                       reallocate=state["reallocate"], scores=scores)


def _restricted(problem, fixed: dict[int, int]):
    """The problem with fixed items limited to their option (for the LP prices)."""
    allowed = problem.allowed.copy()
    for i, o in fixed.items():
        allowed[i, :] = False
        if o >= 0:
            allowed[i, o] = True
    return replace(problem, allowed=allowed, value=np.where(allowed, problem.value, 0))


def _krw(x) -> str:
    return f"₩{int(x):,}"


def allocate(out_dir: Path) -> dict:
    """Solve the refill, explain it, write the same files as pipeline.allocate plus the
    lifecycle outputs. RoundError when the round cannot be kept feasible."""
    out_dir = Path(out_dir)
    timer = pipeline.StageTimer()
    started = time.perf_counter()
    state = json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
    validated = intake.load_validated(out_dir / pipeline.INTAKE_DIR)
    config = validated.config
    rm = build_refill_model(out_dir)
    model, problem, fixed = rm.model, rm.model.problem, rm.fixed
    timer.record("build_model", started)

    started = time.perf_counter()
    hint = np.full(problem.n_items, -1, np.int64)
    for i, o in fixed.items():
        hint[i] = o
    solve_args = dict(time_limit_s=config.solver.time_limit_s, workers=config.solver.workers,
                      seed=config.solver.seed)
    solution = solving.solve_cpsat(problem, hint=hint, fixed=fixed, **solve_args)
    timer.record("solve", started)
    if solution.status == "no_solution":
        raise RoundError(
            "the refill has no feasible allocation: with the accepted and pending awards kept, the "
            "quotas cannot hold over the whole round (or the solver found no solution within "
            f"{config.solver.time_limit_s} s). Nothing was published.")
    problems = problem.violations(solution.choice)
    if problems or any(int(solution.choice[i]) != o for i, o in fixed.items()):
        raise RuntimeError(f"solver returned an allocation that breaks the round or a fixed award: {problems}")

    started = time.perf_counter()
    lp = solving.solve_lp_relaxation(_restricted(problem, fixed)) if problem.n_items else None
    row_duals = lp.row_duals if lp is not None else None
    explanation = explain_items(model, solution.choice, row_duals, lp.cover_duals if lp is not None else None)
    quota_costs = {}
    for q, name in enumerate(problem.cover_names):
        relaxed = solving.solve_cpsat(without_quota(problem, q), hint=solution.choice, fixed=fixed, **solve_args)
        quota_costs[name] = max(relaxed.objective - solution.objective, 0)
    limits = limits_report(model, solution, explanation, quota_costs,
                           {q.name: q.min_share for q in config.quotas}, row_duals)
    items = item_outcomes(model, solution.choice, explanation, config)
    outcomes = build_outcomes(validated.applications, rm.scores, items, config)
    outcomes = _lifecycle_outcomes(outcomes, state, rm)
    awards = build_awards(model, solution.choice)
    timer.record("explain", started)
    if outcomes.height != validated.applications.height:
        raise RuntimeError(f"{validated.applications.height} applications in, {outcomes.height} outcomes out")

    pipeline.write_table(outcomes, out_dir / "outcomes")
    pipeline.write_table(awards, out_dir / "awards")
    summary = pipeline.summarise(outcomes, awards, model, solution, config)
    public, changes, report_md = _changes(out_dir, state, outcomes, awards, model, solution, limits,
                                          explanation, config)
    report = {
        "round_id": config.round.id, "status": solution.status, "objective": solution.objective,
        "objective_unit": "sum of score (centipoints) x awarded KRW", "bound": solution.bound,
        "gap": solution.gap, "lp_bound": None if lp is None else lp.bound,
        "solver": {"name": solution.solver, "strategy": "cpsat (fixed awards)",
                   "workers": config.solver.workers, "seed": config.solver.seed,
                   "deterministic_time_limit": config.solver.time_limit_s},
        "summary": summary, "limits": limits,
        "warnings": pipeline._degenerate_warnings(model, config),
        "input_sha256": validated.input_hashes, "versions": pipeline._versions(),
        "lifecycle": public,
    }
    pipeline.write_json(out_dir / "solution.json", report)
    quality_path = out_dir / "quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else {}
    quality["outcomes"] = {"by_status": summary["by_status"], "by_reason": summary["by_reason"]}
    pipeline.write_json(quality_path, quality)

    awarded_now = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)[APP_ID].to_list()
    previous_offered = {s[APP_ID]: s["offered_as_of"] for s in state["awards"] if s["state"] in PROTECTED}
    state["next"] = {
        "offered": {a: previous_offered.get(a, state["as_of"]) if a in previous_offered else state["as_of"]
                    for a in awarded_now},
        "ever_awarded": sorted(set(s[APP_ID] for s in state["awards"]) | set(awarded_now)),
    }
    state["result"] = {"gained": public["gained"], "solver_status": solution.status,
                       "objective": solution.objective}
    pipeline.write_json(out_dir / STATE_FILE, state)
    pipeline.write_json(out_dir / PUBLIC_FILE, public)
    pipeline.write_table(changes, out_dir / "changes")
    (out_dir / REPORT_FILE).write_text(report_md, encoding="utf-8")
    pipeline._merge_timings(out_dir, {**{f"refill_{k}": v for k, v in timer.seconds.items()},
                                      "solver_deterministic_time": solution.deterministic_time})
    return report


def _lifecycle_outcomes(outcomes: pl.DataFrame, state: dict, rm: RefillModel) -> pl.DataFrame:
    """Released awards get their reason; protected ones leave the waitlist; ranks renumbered."""
    info = {s[APP_ID]: s for s in state["awards"]}
    released = sorted(rm.released)
    protected = sorted(rm.protected)

    def detail(app_id: str) -> str:
        s = info[app_id]
        if s["state"] == S_DECLINED:
            return (f"the award published at {s['award_fraction'] or 0:.0%} was declined"
                    + (f" on {s['responded_on']}" if s["responded_on"] else "")
                    + "; declined awards are not re-funded")
        why = s["note"] or (f"no acceptance by the deadline {s['deadline']}" if s["deadline"]
                            else "released")
        return f"the published award lapsed: {why}"

    details = {a: detail(a) for a in released}
    is_rel = pl.col(APP_ID).is_in(released).fill_null(False)
    out = outcomes.with_columns(
        status=pl.when(is_rel).then(pl.lit(schema.STATUS_NOT_SELECTED)).otherwise(pl.col("status")),
        reason=pl.when(is_rel).then(pl.col(APP_ID).replace_strict(
            {a: rm.released[a] for a in released}, default=None, return_dtype=pl.String))
        .otherwise(pl.col("reason")),
        reason_detail=pl.when(is_rel).then(pl.col(APP_ID).replace_strict(
            details, default=None, return_dtype=pl.String)).otherwise(pl.col("reason_detail")),
        score_needed=pl.when(is_rel).then(None).otherwise(pl.col("score_needed")),
        waitlist_rank=pl.when(is_rel | pl.col(APP_ID).is_in(protected).fill_null(False))
        .then(None).otherwise(pl.col("waitlist_rank")),
    )
    ranked = out.with_row_index("__i").filter(pl.col("waitlist_rank").is_not_null()).sort("waitlist_rank")
    new_rank = dict(zip(ranked["__i"].to_list(), range(1, ranked.height + 1)))
    out = out.with_row_index("__i").with_columns(
        waitlist_rank=pl.col("__i").replace_strict(new_rank, default=None, return_dtype=pl.Int64)).drop("__i")
    out = out.with_columns(
        status=pl.when((pl.col("status") == schema.STATUS_WAITLISTED) & pl.col("waitlist_rank").is_null())
        .then(pl.lit(schema.STATUS_NOT_SELECTED)).otherwise(pl.col("status")))
    return out.select(list(schema.OUTCOMES_SCHEMA)).cast(schema.OUTCOMES_SCHEMA)


def _release_note(s: dict) -> str:
    if s["note"]:
        return s["note"]
    if s["state"] == S_DECLINED:
        return f"declined on {s['responded_on']}"
    return f"no acceptance by the deadline {s['deadline']}"


def _changes(out_dir: Path, state: dict, outcomes: pl.DataFrame, awards: pl.DataFrame,
             model: ModelData, solution, limits: dict, explanation, config: RoundConfig):
    """(public summary, officer changes table, officer report markdown)."""
    info = {s[APP_ID]: s for s in state["awards"]}
    prev_awarded = {a for a, s in info.items() if s["current"]}
    now = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    gained = sorted(set(now[APP_ID].to_list()) - prev_awarded)
    newly_released = sorted(a for a, s in info.items() if s["current"] and s["state"] in RELEASED)

    # resources freed by the releases (at their published level) and used by the new awards
    prev_path = out_dir / "previous_outcomes.parquet"
    previous = pl.read_parquet(prev_path) if prev_path.is_file() else None
    requests = intake.load_validated(out_dir / pipeline.INTAKE_DIR).requests
    price = dict(zip(model.gpu_types, model.prices.tolist()))
    copay = config.copay_fraction

    def hours_of(app_id: str, fraction: float) -> dict[str, int]:
        f = Fraction(str(fraction))
        req = requests.filter(pl.col(APP_ID) == app_id)
        return {g: h * f.numerator // f.denominator for g, h in zip(req["gpu_type"], req["gpu_hours"])}

    def money(hours: dict[str, int]) -> int:
        cost = sum(h * price.get(g, 0) for g, h in hours.items())
        return cost - (2 * cost * copay.numerator + copay.denominator) // (2 * copay.denominator)

    freed_hours: Counter = Counter()
    freed_krw = 0
    for a in newly_released:
        h = hours_of(a, info[a]["award_fraction"] or 0)
        freed_hours.update(h)
        freed_krw += money(h)
    new_lines = awards.filter(pl.col(APP_ID).is_in(gained))
    new_hours = dict(new_lines.group_by("gpu_type").agg(pl.col("gpu_hours").sum()).iter_rows())
    new_krw = int(now.filter(pl.col(APP_ID).is_in(gained))["awarded_krw"].sum() or 0)

    # what stays unused and why: blockers of the applications still not funded
    unfunded = outcomes.filter(pl.col("status").is_in([schema.STATUS_WAITLISTED, schema.STATUS_NOT_SELECTED])
                               & ~pl.col("reason").is_in(["below_min_score", S_DECLINED, S_LAPSED]))
    unfunded_ids = set(unfunded[APP_ID].drop_nulls().to_list())
    index = {a: i for i, a in enumerate(model.application_ids.tolist())}
    pattern, patterns = _patterns(explanation)
    resources = []
    for row in limits["rows"]:
        name = row["limit"]
        gpu = name.removeprefix("gpu:") if name.startswith("gpu:") else None
        candidates = [a for a in unfunded_ids if a in index and
                      (gpu is None or model.requested_hours[index[a], model.gpu_types.index(gpu)] > 0)]
        reasons = Counter(code for a in candidates for code in patterns[pattern[index[a]]][0])
        if row["slack"] <= 0:
            why = "fully used"
        elif not candidates:
            why = ("no eligible application above the minimum score is left unfunded"
                   + ("" if gpu is None else f" that requests {gpu}"))
        else:
            top = ", ".join(f"{c} ({n})" for c, n in reasons.most_common(3)) or "not_optimal"
            why = f"{len(candidates)} unfunded application(s) cannot use it: blocked by {top}"
        resources.append({
            "limit": name, "capacity": row["capacity"], "used": row["used"], "unused": row["slack"],
            "freed_by_releases": freed_krw if gpu is None else int(freed_hours.get(gpu, 0)),
            "used_by_new_awards": new_krw if gpu is None else int(new_hours.get(gpu, 0)),
            "why_unused": why})
    upheld = [a for a in state["appeals"] if a["decision"] == UPHELD]
    public = {
        "kind": state["kind"], "as_of": state["as_of"],
        "previous_version": state["previous"]["version"], "previous": state["previous"]["label"],
        "award_states": state["counts"], "released": len(newly_released), "released_krw": freed_krw,
        "released_by_reason": dict(Counter(info[a]["state"] for a in newly_released)),
        "gained": len(gained), "gained_krw": new_krw,
        "appeals": {"upheld": len(upheld), "rejected": len(state["appeals"]) - len(upheld)},
        "reallocated": state["reallocate"], "resources": resources,
    }

    # officer table: every applicant, previous vs new
    cols = ["status", "reason", "award_fraction", "awarded_krw", "waitlist_rank", "score"]
    new = outcomes.select("source_row", APP_ID, "company_name", *cols)
    if previous is not None:
        old = previous.select("source_row", *[pl.col(c).alias(f"old_{c}") for c in cols])
        table = new.join(old, on="source_row", how="left")
    else:
        table = new.with_columns(
            old_status=pl.when(pl.col(APP_ID).is_in(sorted(prev_awarded))).then(pl.lit("awarded"))
            .otherwise(pl.lit("not awarded (previous outcome not available)")),
            **{f"old_{c}": pl.lit(None) for c in cols if c != "status"})
    table = table.with_columns(change=pl.when(pl.col(APP_ID).is_in(gained)).then(pl.lit("added"))
                               .when(pl.col(APP_ID).is_in(newly_released)).then(pl.lit("released"))
                               .when(pl.col("old_status") != pl.col("status")).then(pl.lit("status changed"))
                               .when(pl.col("old_waitlist_rank").cast(pl.Int64, strict=False)
                                     .ne_missing(pl.col("waitlist_rank"))).then(pl.lit("waitlist rank moved"))
                               .when(pl.col("old_score").cast(pl.Float64, strict=False)
                                     .ne_missing(pl.col("score"))).then(pl.lit("score changed"))
                               .otherwise(pl.lit("unchanged")))
    table = table.select("source_row", APP_ID, "company_name", "change",
                         *[x for c in cols for x in (f"old_{c}", c)])

    lines = [f"# Round {state['round_id']}: {state['kind']} as of {state['as_of']} "
             f"(previous: {state['previous']['label']})", "",
             "Awards: " + ", ".join(f"{k} {v}" for k, v in state["counts"].items()), ""]
    if newly_released:
        lines += ["## Released (capacity freed)", "", "| application | state | published share | note |",
                  "|---|---|---:|---|"]
        lines += [f"| {a} | {info[a]['state']} | {(info[a]['award_fraction'] or 0):.0%} | "
                  f"{_release_note(info[a])} |" for a in newly_released]
        lines += ["", f"Freed: {_krw(freed_krw)}; GPU-hours "
                  + (", ".join(f"{g} {h:,}" for g, h in sorted(freed_hours.items())) or "-"), ""]
    if gained:
        g_rows = now.filter(pl.col(APP_ID).is_in(gained)).sort("score", descending=True)
        lines += ["## Added", "", "| application | company | score | share | awarded |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r[APP_ID]} | {r['company_name']} | {r['score']:.2f} | {r['award_fraction']:.0%} | "
                  f"{_krw(r['awarded_krw'])} |" for r in g_rows.iter_rows(named=True)]
        lines.append("")
    if state["appeals"]:
        lines += ["## Appeals", "", "| application | decision | effect | note |", "|---|---|---|---|"]
        lines += [f"| {a[APP_ID]} | {a['decision']} | {a['effect']} | {a['note'] or ''} |"
                  for a in state["appeals"]]
        lines.append("")
    lines += ["## Capacity re-used and unused", "",
              "| limit | capacity | used | freed by releases | used by new awards | unused | why unused |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['limit']} | {r['capacity']:,} | {r['used']:,} | {r['freed_by_releases']:,} | "
              f"{r['used_by_new_awards']:,} | {r['unused']:,} | {r['why_unused']} |" for r in resources]
    moved = table.filter(pl.col("change") != "unchanged")
    lines += ["", f"## Effect on every applicant ({moved.height} changed, full table in {CHANGES_FILE})", "",
              "| application | change | status | waitlist rank | score |", "|---|---|---|---|---|"]
    lines += [f"| {r[APP_ID]} | {r['change']} | {r['old_status']} → {r['status']} | "
              f"{r['old_waitlist_rank']} → {r['waitlist_rank']} | {r['old_score']} → {r['score']} |"
              for r in moved.iter_rows(named=True)]
    if not state["reallocate"]:
        lines += ["", "Nothing was released and no appeal was upheld: the previous awards are kept exactly."]
    return public, table, "\n".join(lines) + "\n"


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
    pipeline.score(Path(out_dir))
    notify("allocate")
    report = allocate(Path(out_dir))
    report["prepare"] = prep
    return report


def summary_markdown(report: dict, out_dir: Path) -> str:
    """What the approving officer reads: the allocation summary and the lifecycle changes."""
    text = (Path(out_dir) / REPORT_FILE).read_text(encoding="utf-8")
    lc = report["lifecycle"]
    s = report["summary"]
    head = [f"### Round {report['round_id']}: {lc['kind']} as of {lc['as_of']} ready for approval", "",
            f"- released {lc['released']} award(s) ({_krw(lc['released_krw'])}), added {lc['gained']} "
            f"({_krw(lc['gained_krw'])}); appeals upheld {lc['appeals']['upheld']}, rejected "
            f"{lc['appeals']['rejected']}",
            f"- funded {s['funded']}, awarded {_krw(s['awarded_krw'])} of {_krw(s['budget_krw'])}; "
            f"solver {report['status']}, gap {report['gap']:.2e}", "",
            "**Approve** publishes the next version; **Reject** publishes nothing.", ""]
    return "\n".join(head) + text


def cli_lifecycle(round_dir: Path, previous: Path, out_dir: Path, *, as_of: str | None = None,
                  responses: str | None = None, appeals: str | None = None,
                  require_appeals: bool = False, time_limit_s: float | None = None) -> int:
    """`voucher refill` / `voucher appeal`: run, print the officer summary; exit code 0.

    RoundError (exit 2) for any bad input: responses/appeals files, previous version, infeasible refill.
    """
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise RoundError(f"--as-of {as_of!r}: not a date YYYY-MM-DD") from None
    report = run_lifecycle(Path(round_dir), Path(previous), Path(out_dir), as_of=day, responses=responses,
                           appeals=appeals, require_appeals=require_appeals, time_limit_s=time_limit_s)
    print(summary_markdown(report, Path(out_dir)))
    print(f"Results: {Path(out_dir) / 'outcomes.csv'}, {Path(out_dir) / CHANGES_FILE}, "
          f"{Path(out_dir) / REPORT_FILE}")
    return 0
