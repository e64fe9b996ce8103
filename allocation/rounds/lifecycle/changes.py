"""What a refill or appeal changed: outcomes of released awards, the officers' changes table
and report, and the public summary (aggregates and new awardees only)."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import polars as pl

from allocation import files, intake, schema
from allocation.config import RoundConfig
from allocation.explain.reasons import ItemExplanation
from allocation.model.build import ModelData
from allocation.model.money import award_money, hours_in_month
from allocation.rounds.lifecycle.states import RELEASED, S_DECLINED, S_LAPSED

APP_ID = "application_id"


def _krw(x) -> str:
    return f"₩{int(x):,}"


def lifecycle_outcomes(outcomes: pl.DataFrame, state: dict, protected: dict[str, str],
                       released_states: dict[str, str]) -> pl.DataFrame:
    """Released awards get their reason; protected ones leave the waitlist; ranks renumbered."""
    info = {s[APP_ID]: s for s in state["awards"]}
    released = sorted(released_states)
    protected = sorted(protected)

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
            {a: released_states[a] for a in released}, default=None, return_dtype=pl.String))
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
    if schema.START_MONTH in out.columns:   # GPU capacity by month: the award's first month
        return out.select([*schema.OUTCOMES_SCHEMA, schema.START_MONTH]).cast(
            schema.OUTCOMES_SCHEMA | {schema.START_MONTH: pl.String()})
    return out.select(list(schema.OUTCOMES_SCHEMA)).cast(schema.OUTCOMES_SCHEMA)



def _release_note(s: dict) -> str:
    if s["note"]:
        return s["note"]
    if s["state"] == S_DECLINED:
        return f"declined on {s['responded_on']}"
    return f"no acceptance by the deadline {s['deadline']}"


def changes(out_dir: Path, state: dict, outcomes: pl.DataFrame, awards: pl.DataFrame,
            model: ModelData, limits: dict, explanation: ItemExplanation, config: RoundConfig):
    """(public summary, officer changes table, officer report markdown)."""
    info = {s[APP_ID]: s for s in state["awards"]}
    prev_awarded = {a for a, s in info.items() if s["current"]}
    now = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    gained = sorted(set(now[APP_ID].to_list()) - prev_awarded)
    newly_released = sorted(a for a, s in info.items() if s["current"] and s["state"] in RELEASED)

    # resources freed by the releases (at their published level) and used by the new awards
    prev_path = out_dir / files.PREVIOUS_OUTCOMES
    previous = pl.read_parquet(prev_path) if prev_path.is_file() else None
    validated = intake.load_validated(out_dir / files.INTAKE)
    requests = validated.requests
    price = dict(zip(model.gpu_types, model.prices.tolist()))

    # requested hours of the released applications, grouped once (a filter per application took
    # minutes at a million applications)
    asked: dict[str, dict[str, int]] = {}
    for app_id, gpu, h in requests.filter(pl.col(APP_ID).is_in(newly_released)) \
            .select(APP_ID, "gpu_type", "gpu_hours").iter_rows():
        asked.setdefault(app_id, {})[gpu] = h

    def released_money(app_id: str, fraction: float) -> tuple[dict[str, int], int]:
        """GPU-hours and awarded KRW of a released award at its published level."""
        hours, _, _, awarded = award_money(asked.get(app_id, {}), price,
                                           Fraction(str(fraction)), config.copay_fraction)
        return hours, awarded

    freed_hours: Counter = Counter()
    freed_krw = 0
    for a in newly_released:
        h, krw = released_money(a, info[a]["award_fraction"] or 0)
        freed_hours.update(h)
        freed_krw += krw
    new_lines = awards.filter(pl.col(APP_ID).is_in(gained))
    new_hours = dict(new_lines.group_by("gpu_type").agg(pl.col("gpu_hours").sum()).iter_rows())
    if model.months:   # GPU capacity by month: freed and new hours per "type@month" row
        apps = validated.applications
        durations = (dict(zip(apps[APP_ID].to_list(), apps[schema.DURATION_MONTHS].fill_null(1).to_list()))
                     if schema.DURATION_MONTHS in apps.columns else {})
        freed_hours, new_hours = _by_month(model, info, newly_released, durations, released_money, new_lines)
    new_krw = int(now.filter(pl.col(APP_ID).is_in(gained))["awarded_krw"].sum() or 0)

    # what stays unused and why: blockers of the applications still not funded
    unfunded = outcomes.filter(pl.col("status").is_in([schema.STATUS_WAITLISTED, schema.STATUS_NOT_SELECTED])
                               & ~pl.col("reason").is_in(["below_min_score", S_DECLINED, S_LAPSED]))
    unfunded_ids = set(unfunded[APP_ID].drop_nulls().to_list())
    index = {a: i for i, a in enumerate(model.application_ids.tolist())}
    pattern, patterns = explanation.pattern, explanation.patterns
    resources = []
    for row in limits["rows"]:
        name = row["limit"]
        gpu = name.removeprefix("gpu:") if name.startswith("gpu:") else None
        gpu_type = None if gpu is None else gpu.split("@")[0]    # by month: "H100@2026-05"
        candidates = [a for a in unfunded_ids if a in index and
                      (gpu is None or model.requested_hours[index[a], model.gpu_types.index(gpu_type)] > 0)]
        reasons = Counter(code for a in candidates for code in patterns[pattern[index[a]]][0])
        if row["slack"] <= 0:
            why = "fully used"
        elif not candidates:
            why = ("no eligible application above the minimum score is left unfunded"
                   + ("" if gpu is None else f" that requests {gpu_type}"))
        else:
            top = ", ".join(f"{c} ({n})" for c, n in reasons.most_common(3)) or "not_optimal"
            why = f"{len(candidates)} unfunded application(s) cannot use it: blocked by {top}"
        resources.append({
            "limit": name, "capacity": row["capacity"], "used": row["used"], "unused": row["slack"],
            "freed_by_releases": freed_krw if gpu is None else int(freed_hours.get(gpu, 0)),
            "used_by_new_awards": new_krw if gpu is None else int(new_hours.get(gpu, 0)),
            "why_unused": why})
    upheld = [a for a in state["appeals"] if a["decision"] == schema.UPHELD]
    # Public: totals only. No split of the released awards into declined and lapsed, and no
    # counts of award states: with the two award lists, they would tell who declined.
    public = {
        "kind": state["kind"], "as_of": state["as_of"],
        "previous_version": state["previous"]["version"], "previous": state["previous"]["label"],
        "released": len(newly_released), "released_krw": freed_krw,
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
    lines += ["", f"## Effect on every applicant ({moved.height} changed, full table in {files.CHANGES}.csv)", "",
              "| application | change | status | waitlist rank | score |", "|---|---|---|---|---|"]
    lines += [f"| {r[APP_ID]} | {r['change']} | {r['old_status']} → {r['status']} | "
              f"{r['old_waitlist_rank']} → {r['waitlist_rank']} | {r['old_score']} → {r['score']} |"
              for r in moved.iter_rows(named=True)]
    if not state["reallocate"]:
        lines += ["", "Nothing was released and no appeal was upheld: the previous awards are kept exactly."]
    return public, table, "\n".join(lines) + "\n"


def _by_month(model: ModelData, info: dict, released: list[str], durations: dict[str, int],
              released_money, new_lines: pl.DataFrame) -> tuple[Counter, dict[str, int]]:
    """GPU capacity by month: hours freed by the releases (at their published level and start
    month, spread by money.hours_in_month) and used by the new awards, per "type@month"."""
    freed: Counter = Counter()
    for a in released:
        start = info[a].get(schema.START_MONTH)
        if start not in model.months:
            continue
        hours, _ = released_money(a, info[a]["award_fraction"] or 0)
        d, s = int(durations.get(a) or 1), model.months.index(start)
        for gpu, h in hours.items():
            for m in range(s, min(s + d, len(model.months))):
                freed[f"{gpu}@{model.months[m]}"] += int(hours_in_month(h, d, m - s))
    new = {f"{g}@{m}": int(h) for g, m, h in
           new_lines.group_by("gpu_type", "month").agg(pl.col("gpu_hours").sum()).iter_rows()}
    return freed, new
