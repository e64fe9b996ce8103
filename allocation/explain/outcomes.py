"""One outcome per input application, with a reason; the award lines per GPU type."""

from __future__ import annotations

import numpy as np
import polars as pl

from allocation import schema
from allocation.config import RoundConfig
from allocation.explain.reasons import ItemExplanation
from allocation.identifiers import mask_business_no
from allocation.model.build import ModelData


def _krw(x: int) -> str:
    return f"₩{x:,}"


def _blocker_sentence(code: str, quotas: list[str], business_no: str, config: RoundConfig,
                      nobody_funded: bool = False) -> str:
    # nobody funded: the limit went to no one else; it is too small for this application
    if code == "budget_exhausted":
        return ("nobody was funded: the programme budget is too small for this application"
                if nobody_funded else "the programme budget is used up")
    if code.startswith("capacity_") and "@" in code:   # by month: capacity_H100@2026-05_exhausted
        gpu, month = code.removeprefix("capacity_").removesuffix("_exhausted").split("@", 1)
        return (f"nobody was funded: the {gpu} GPU-hours on offer in {month} are too few for this "
                f"application" if nobody_funded else f"{gpu} in {month} is full")
    if code.startswith("capacity_"):
        gpu = code.removeprefix('capacity_').removesuffix('_exhausted')
        return (f"nobody was funded: the {gpu} GPU-hours on offer are too few for this application"
                if nobody_funded else f"{gpu} GPU-hours are used up")
    if code == "company_cap":
        return (f"company {mask_business_no(business_no)} would exceed the "
                f"{_krw(config.award.max_krw_per_company)} per-company cap")
    if code == "quota":
        shares = {q.name: q.min_share for q in config.quotas}
        return "; ".join(f"the '{name}' quota would fall below {shares[name]:.0%} of the awarded budget"
                         for name in quotas)
    if code == "request_too_small":
        return "no award level of the round grants even one whole GPU-hour of the request"
    if code == "not_optimal":
        return "the solver stopped before proving optimality"
    return schema.OUTCOME_REASONS.get(code, code)


def item_outcomes(model: ModelData, choice: np.ndarray, explanation: ItemExplanation,
                  config: RoundConfig) -> pl.DataFrame:
    """Status, money and reason for every selectable application (model items)."""
    n = model.problem.n_items
    items = np.arange(n)
    funded = choice >= 0
    opt = np.maximum(choice, 0)
    top = explanation.next_option < 0
    pick = lambda a: np.where(funded, a[items, opt], 0).astype(np.int64)  # noqa: E731
    fraction = np.where(funded, np.array(model.levels + (0.0,))[model.level_of(choice)], 0.0)

    # Waitlist: best applications that could still get more (not fully funded, next step not
    # forbidden on its own), by score, then id.
    not_full = ~(funded & top) & ~explanation.forbidden
    order = np.lexsort((model.application_ids, -model.scores))
    waitlist_rank = np.zeros(n, dtype=np.int64)
    candidates = order[not_full[order]][: config.award.waitlist_size]
    waitlist_rank[candidates] = np.arange(1, len(candidates) + 1)

    # Vectorised: the sentences depend on the item only through its blocker pattern (a few
    # distinct ones), its business number (company_cap sentences), its score and score_needed.
    pattern, patterns = explanation.pattern, list(explanation.patterns)
    n_pat = len(patterns)
    reason_of = np.array([codes[0] if codes else "not_optimal" for codes, _ in patterns] or [""],
                         dtype=object)
    has_cap = np.array([("company_cap" in codes) for codes, _ in patterns] or [False], bool)
    # why = "; ".join(sentences); the company_cap sentence is the only item-specific one:
    # split each pattern's text around it (it appears at most once)
    marker = "\x00"
    why_parts = []
    for codes, quotas in patterns:
        text = "; ".join(marker if c == "company_cap" else
                         _blocker_sentence(c, list(quotas), "", config, not funded.any()) for c in codes)
        before, _, after = text.partition(marker)
        why_parts.append((before, after))
    why_before = np.array([b for b, _ in why_parts] or [""], dtype=object)
    why_after = np.array([a for _, a in why_parts] or [""], dtype=object)
    pat = pattern if n else np.zeros(0, np.int64)
    cap_items = np.flatnonzero(has_cap[pat]) if n_pat else np.zeros(0, np.int64)
    cap_text = np.full(n, "", dtype=object)
    if len(cap_items):
        cap_text[cap_items] = [_blocker_sentence("company_cap", [], b, config)
                               for b in model.business_nos[cap_items].tolist()]

    def fmt(values: np.ndarray, spec: str) -> np.ndarray:
        """format(v, spec) per element, computed once per distinct value."""
        if len(values) == 0:
            return np.zeros(0, dtype=object)
        uniq, inv = np.unique(values, return_inverse=True)
        return np.array([format(v, spec) for v in uniq.tolist()], dtype=object)[inv.reshape(-1)]

    score_txt = fmt(model.scores.astype(float), ".2f")
    frac_txt = fmt(fraction.astype(float), ".0%")
    needed = explanation.score_needed
    has_needed = ~np.isnan(needed)
    hint = np.full(n, "", dtype=object)
    if has_needed.any():
        hint[has_needed] = ("; a score of about " + fmt(needed[has_needed].astype(float), ".2f")
                            + " would have been needed at the current clearing prices")
    why = (why_before[pat] + cap_text + why_after[pat]) if n else np.zeros(0, dtype=object)

    full = funded & top
    partial = funded & ~top
    statuses = np.where(full | partial, schema.STATUS_AWARDED,
                        np.where(waitlist_rank > 0, schema.STATUS_WAITLISTED, schema.STATUS_NOT_SELECTED))
    reasons = np.where(full, "funded", np.where(partial, "funded_partially",
                                                reason_of[pat] if n else np.zeros(0, dtype=object)))
    details = np.empty(n, dtype=object)
    if full.any():
        details[full] = "funded at " + frac_txt[full] + " of the request (score " + score_txt[full] + ")"
    if partial.any():
        details[partial] = ("funded at " + frac_txt[partial]
                            + " of the request; a larger share is not possible because " + why[partial])
    rest = ~funded
    if rest.any():
        details[rest] = "not funded (score " + score_txt[rest] + ") because " + why[rest] + hint[rest]
    statuses = statuses.astype(str).tolist() if n else []
    reasons = reasons.astype(str).tolist() if n else []
    details = details.tolist()
    starts = np.array(model.months, dtype=object)[model.start_of(choice)] if model.months else None
    months = ({schema.START_MONTH: [m if f else None for m, f in zip(starts.tolist(), funded.tolist())]}
              if model.months else {})
    return pl.DataFrame({
        "application_id": model.application_ids.astype(str),
        **{k: pl.Series(v, dtype=pl.String) for k, v in months.items()},
        "status": statuses,
        "award_fraction": fraction.astype(float),
        "cost_krw": pick(model.cost),
        "awarded_krw": pick(model.awarded),
        "copay_krw": pick(model.copay),
        "reason": reasons,
        "score_needed": explanation.score_needed.astype(float),
        "reason_detail": details,
        "waitlist_rank": waitlist_rank,
    }).with_columns(waitlist_rank=pl.when(pl.col("waitlist_rank") > 0).then(pl.col("waitlist_rank")))


def build_outcomes(applications: pl.DataFrame, scores: pl.DataFrame, items: pl.DataFrame,
                   config: RoundConfig) -> pl.DataFrame:
    """Every input row exactly once, in input order (OUTCOMES_SCHEMA)."""
    ranked = scores.select("application_id", "score").with_columns(
        rank=pl.struct(pl.col("score").neg(), "application_id").rank("ordinal").cast(pl.Int64))
    eligible = pl.col(schema.ELIGIBLE)
    in_model = pl.col("status").is_not_null()
    min_score = config.award.min_score
    merged = (
        applications.join(ranked, on="application_id", how="left", nulls_equal=False)
        .join(items.rename({"reason": "item_reason", "reason_detail": "item_detail"}),
              on="application_id", how="left", nulls_equal=False)
        .with_columns(
            score=pl.when(eligible).then(pl.col("score")),
            rank=pl.when(eligible).then(pl.col("rank")),
        )
        .with_columns(
            status=pl.when(~eligible).then(pl.lit(schema.STATUS_INELIGIBLE))
            .when(in_model).then(pl.col("status"))
            .otherwise(pl.lit(schema.STATUS_NOT_SELECTED)),
            reason=pl.when(~eligible).then(pl.col(schema.REASON))
            .when(in_model).then(pl.col("item_reason"))
            .otherwise(pl.lit("below_min_score")),
            reason_detail=pl.when(~eligible).then(pl.col(schema.REASON_DETAIL))
            .when(in_model).then(pl.col("item_detail"))
            .otherwise(pl.format("score {} is below the round's minimum score {}",
                                 pl.col("score").round(2), pl.lit(min_score))),
            score_needed=pl.when(eligible & ~in_model).then(pl.lit(float(min_score)))
            .otherwise(pl.col("score_needed")),
            award_fraction=pl.col("award_fraction").fill_null(0.0),
            cost_krw=pl.col("cost_krw").fill_null(0),
            awarded_krw=pl.col("awarded_krw").fill_null(0),
            copay_krw=pl.col("copay_krw").fill_null(0),
        )
        .sort(schema.SOURCE_ROW)
    )
    if schema.START_MONTH in items.columns:   # GPU capacity by month: the award's first month
        return merged.select([*schema.OUTCOMES_SCHEMA, schema.START_MONTH]).cast(
            schema.OUTCOMES_SCHEMA | {schema.START_MONTH: pl.String()})
    return merged.select(list(schema.OUTCOMES_SCHEMA)).cast(schema.OUTCOMES_SCHEMA)


def build_awards(model: ModelData, choice: np.ndarray) -> pl.DataFrame:
    """One line per awarded application and GPU type: hours and their full cost (by month:
    per application, GPU type and month, schema.AWARDS_SCHEMA plus `month` after gpu_type)."""
    if model.months:
        return _monthly_awards(model, choice)
    funded = np.nonzero(choice >= 0)[0]
    hours = model.hours[funded, choice[funded]]                  # (k, T)
    rows, types = np.nonzero(hours > 0)
    return pl.DataFrame({
        "application_id": model.application_ids[funded][rows].astype(str),
        "gpu_type": np.array(model.gpu_types, dtype=str)[types] if len(types) else np.array([], str),
        "gpu_hours": hours[rows, types].astype(np.int64),
        "krw": (hours[rows, types] * model.prices[types]).astype(np.int64),
    }, schema=schema.AWARDS_SCHEMA).sort("application_id", "gpu_type")


def _monthly_awards(model: ModelData, choice: np.ndarray) -> pl.DataFrame:
    per_month = model.month_hours(choice)                         # (n, T, M)
    rows, types, months = np.nonzero(per_month > 0)
    hours = per_month[rows, types, months]
    columns = {"application_id": pl.String(), "gpu_type": pl.String(), "month": pl.String(),
               "gpu_hours": pl.Int64(), "krw": pl.Int64()}
    return pl.DataFrame({
        "application_id": model.application_ids[rows].astype(str),
        "gpu_type": np.array(model.gpu_types, dtype=str)[types] if len(types) else np.array([], str),
        "month": np.array(model.months, dtype=str)[months] if len(months) else np.array([], str),
        "gpu_hours": hours.astype(np.int64),
        "krw": (hours * model.prices[types]).astype(np.int64),
    }, schema=columns).sort("application_id", "gpu_type", "month")
