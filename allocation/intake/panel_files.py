"""The review panel's tables: reviewers, conflicts of interest, assignments (issue 18).

All three are optional tables of the round folder (``allocation.schema``: REVIEWERS, CONFLICTS,
ASSIGNMENTS; .csv, .xlsx or .parquet), read with the same readers and cell checks as the round's
own tables. They are policy, like capacity: a conflict or an assignment that cannot be read
could let a conflicted review count, so any bad row stops the run with every problem listed
(file, row as in Excel, column, what is wrong) — never a traceback, never a dropped row.

Who may not review what (``conflict_pairs``): a conflicts row naming the application, or its
company's business number; and every application of a company a reviewer lists among their
affiliations (by business number, or by company name ignoring case and spacing).

At scoring time (``exclude_reviews``, called by intake when conflicts or assignments are in the
round folder) a review by a conflicted reviewer, or by a reviewer not assigned to the application,
does not count: it becomes an issue of the reviews file (EXCLUDED_REVIEW_CODES) and leaves the
reviews; an application left with too few reviewers becomes ``missing_reviews``, its reason
naming the excluded reviews, and is on the re-assignment list (``reassign_list``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from allocation import files, schema, text
from allocation.errors import RoundError
from allocation.identifiers import business_no_is_valid_expr
from allocation.intake.tables import (APP_ID, SOURCE_ROW, check_cells, duplicate_issues,
                                      issues_frame, optional_table_path, raise_issues,
                                      read_table)

REVIEWER_ID = "reviewer_id"
_EMPTY_LIST = pl.List(pl.String)


def panel_path(round_dir: Path, spec: schema.TableSpec) -> Path | None:
    """The optional panel table's file in the round folder (None when absent)."""
    return optional_table_path(round_dir, spec.stem)


def has_review_rules(round_dir: Path) -> bool:
    """True when reviews are checked against conflicts or assignments at scoring time."""
    return any(panel_path(round_dir, spec) is not None for spec in (schema.CONFLICTS, schema.ASSIGNMENTS))


def split_list(column: str, lower: bool = True) -> pl.Expr:
    """A ';'-separated cell as a sorted list of distinct, trimmed, non-empty items."""
    value = pl.col(column).str.to_lowercase() if lower else pl.col(column)
    items = value.fill_null("").str.split(schema.LIST_SEPARATOR).list.eval(
        pl.element().str.strip_chars().filter(pl.element() != ""))
    return items.list.unique().list.sort().cast(_EMPTY_LIST)


def name_key(expr: pl.Expr) -> pl.Expr:
    """Company names compared ignoring case and spacing."""
    return expr.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def business_key(expr: pl.Expr) -> pl.Expr:
    """XXX-XX-XXXXX when the text is a 10-digit number with optional dashes, else null."""
    digits = expr.str.replace_all("-", "", literal=True)
    return (pl.when(digits.str.contains(r"^\d{10}$"))
            .then(pl.concat_str([digits.str.slice(0, 3), digits.str.slice(3, 2), digits.str.slice(5)],
                                separator="-")))


def _where_forbidden(value: str) -> str:
    found = text.first_forbidden(value)
    return f"{found[1]} at character {found[0]}" if found else "?"


def list_cell_issues(frame: pl.DataFrame, columns: tuple[str, ...], file: str, app_id: pl.Expr) -> pl.DataFrame:
    """bad_character / too_long issues of optional list columns (their values are never echoed)."""
    found = []
    for column in columns:
        raw = pl.col(column)
        bad = frame.filter(raw.is_not_null() & raw.str.contains(text.FORBIDDEN_PATTERN))
        found.append(issues_frame(bad, file, column, "bad_character", pl.format(
            "{} contains an invisible or control character ({}); retype the value without it",
            pl.lit(column), raw.map_elements(_where_forbidden, return_dtype=pl.String)), app_id))
        long = frame.filter(raw.is_not_null() & (raw.str.len_chars() > 1000))
        found.append(issues_frame(long, file, column, "too_long", pl.format(
            "{} is too long: {} characters, at most 1000 allowed", pl.lit(column), raw.str.len_chars()), app_id))
    return pl.concat(found)


def _with_optional(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in columns if c not in frame.columns)


def read_reviewers(path: Path) -> tuple[pl.DataFrame, str]:
    """reviewer_id, max_load, expertise (list), affiliations (list, as written), source_row."""
    frame, digest = read_table(path, schema.REVIEWERS)
    frame = _with_optional(frame, schema.REVIEWERS_OPTIONAL)
    file = path.name
    typed, issues = check_cells(frame, schema.REVIEWERS, file, date.today(), pl.lit(None))
    issues = pl.concat([issues, duplicate_issues(frame, schema.REVIEWERS, file, "duplicate_id",
                                                 REVIEWER_ID, pl.lit(None)),
                        list_cell_issues(frame, schema.REVIEWERS_OPTIONAL, file, pl.lit(None))])
    raise_issues(file, issues, "the panel")
    if typed.is_empty():
        raise RoundError(f"{file}: no reviewers; add one row per reviewer.")
    return typed.select(REVIEWER_ID, "max_load", split_list("expertise").alias("expertise"),
                        split_list("affiliations", lower=False).alias("affiliations"), SOURCE_ROW), digest


def read_conflicts(path: Path, reviewer_ids: pl.Series | None, app_ids: pl.Series) -> tuple[pl.DataFrame, str]:
    """reviewer_id, application_id, business_no (XXX-XX-XXXXX), reason, source_row."""
    frame, digest = read_table(path, schema.CONFLICTS)
    frame = _with_optional(frame, schema.CONFLICTS_OPTIONAL)
    file = path.name
    typed, cell_issues = check_cells(frame, schema.CONFLICTS, file, date.today(), pl.col(APP_ID))
    no_target = frame.filter(pl.col(APP_ID).is_null() & pl.col("business_no").is_null())
    bad_no = frame.filter(pl.col("business_no").is_not_null() & ~business_no_is_valid_expr("business_no"))
    unknown_app = frame.filter(pl.col(APP_ID).is_not_null() & ~pl.col(APP_ID).is_in(app_ids.implode()))
    found = [cell_issues,
             issues_frame(no_target, file, APP_ID, "missing_value", pl.lit(
                 "the row names neither an application_id nor a business_no; give one of them"),
                 pl.lit(None)),
             issues_frame(bad_no, file, "business_no", "bad_checksum", pl.format(
                 "business_no '{}' is not a valid business registration number", pl.col("business_no")),
                 pl.lit(None)),
             issues_frame(unknown_app, file, APP_ID, "unknown_application", pl.format(
                 "application_id '{}' does not match any application of the round", pl.col(APP_ID)),
                 pl.lit(None))]
    if reviewer_ids is not None:
        unknown = frame.filter(pl.col(REVIEWER_ID).is_not_null()
                               & ~pl.col(REVIEWER_ID).is_in(reviewer_ids.implode()))
        found.append(issues_frame(unknown, file, REVIEWER_ID, "unknown_reviewer", pl.format(
            "reviewer_id '{}' is not in the reviewers table", pl.col(REVIEWER_ID)), pl.lit(None)))
    raise_issues(file, pl.concat(found), "the panel")
    return typed.select(REVIEWER_ID, APP_ID, business_key(pl.col("business_no")).alias("business_no"),
                        "conflict_reason", SOURCE_ROW), digest


def read_assignments(path: Path, app_ids: pl.Series) -> tuple[pl.DataFrame, str]:
    """application_id, reviewer_id (extra columns dropped), source_row."""
    frame, digest = read_table(path, schema.ASSIGNMENTS)
    file = path.name
    typed, issues = check_cells(frame, schema.ASSIGNMENTS, file, date.today(), pl.col(APP_ID))
    unknown = frame.filter(pl.col(APP_ID).is_not_null() & ~pl.col(APP_ID).is_in(app_ids.implode()))
    issues = pl.concat([issues, issues_frame(unknown, file, APP_ID, "unknown_application", pl.format(
        "application_id '{}' does not match any application of the round", pl.col(APP_ID)), pl.col(APP_ID))])
    raise_issues(file, issues, "scoring")
    return typed.select(APP_ID, REVIEWER_ID, SOURCE_ROW).unique([APP_ID, REVIEWER_ID], keep="first",
                                                              maintain_order=True), digest


def conflict_pairs(apps: pl.DataFrame, reviewers: pl.DataFrame | None,
                   conflicts: pl.DataFrame | None) -> pl.DataFrame:
    """Every (application_id, reviewer_id) that may not be reviewed, with a reason (first found).

    apps: application_id, business_no (normalised, null if invalid), company_name.
    """
    apps = apps.select(APP_ID, "business_no", "company_name").filter(pl.col(APP_ID).is_not_null())
    found = [pl.DataFrame(schema={APP_ID: pl.String, REVIEWER_ID: pl.String, "reason": pl.String})]
    if conflicts is not None:
        found.append(conflicts.filter(pl.col(APP_ID).is_not_null()).select(
            APP_ID, REVIEWER_ID, pl.format("conflicts row {}: {}", SOURCE_ROW, "conflict_reason").alias("reason")))
        by_company = conflicts.filter(pl.col(APP_ID).is_null() & pl.col("business_no").is_not_null())
        found.append(by_company.drop(APP_ID).join(apps.filter(pl.col("business_no").is_not_null()),
                                     on="business_no", how="inner").select(
            APP_ID, REVIEWER_ID, pl.format("conflicts row {}: {} (business_no {})", SOURCE_ROW, "conflict_reason",
                                           "business_no").alias("reason")))
    if reviewers is not None:
        tokens = (reviewers.select(REVIEWER_ID, pl.col("affiliations").alias("token")).explode("token")
                  .filter(pl.col("token").is_not_null())
                  .with_columns(business_key(pl.col("token")).alias("business_no"),
                                name_key(pl.col("token")).alias("name")))
        found.append(tokens.filter(pl.col("business_no").is_not_null())
                     .join(apps.filter(pl.col("business_no").is_not_null()), on="business_no")
                     .select(APP_ID, REVIEWER_ID, pl.format("affiliation with business_no {}",
                                                            "business_no").alias("reason")))
        named = apps.filter(pl.col("company_name").is_not_null()).with_columns(
            name_key(pl.col("company_name")).alias("name"))
        found.append(tokens.filter(pl.col("business_no").is_null()).join(named, on="name")
                     .select(APP_ID, REVIEWER_ID, pl.format("affiliation with {}", "company_name")
                             .alias("reason")))
    return pl.concat(found).unique([APP_ID, REVIEWER_ID], keep="first", maintain_order=True)


def read_review_rules(round_dir: Path, apps: pl.DataFrame
                      ) -> tuple[pl.DataFrame | None, pl.DataFrame | None, dict[str, str]]:
    """(conflicted pairs or None, assignments or None, {file: sha256}) of the round folder."""
    hashes: dict[str, str] = {}
    app_ids = apps[APP_ID].drop_nulls()
    reviewers = conflicts = pairs = assigned = None
    path = panel_path(round_dir, schema.REVIEWERS)
    if path is not None:
        reviewers, hashes[path.name] = read_reviewers(path)
    path = panel_path(round_dir, schema.CONFLICTS)
    if path is not None:
        conflicts, hashes[path.name] = read_conflicts(
            path, None if reviewers is None else reviewers[REVIEWER_ID], app_ids)
    if conflicts is not None or reviewers is not None:
        pairs = conflict_pairs(apps, reviewers, conflicts)
    path = panel_path(round_dir, schema.ASSIGNMENTS)
    if path is not None:
        assigned, hashes[path.name] = read_assignments(path, app_ids)
    return pairs, assigned, hashes


def exclude_reviews(round_dir: Path, apps: pl.DataFrame, reviews: pl.DataFrame, reviews_file: str
                    ) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """(reviews that count, one issue per excluded review row, hashes of the panel files read).

    Without conflicts and assignments in the round folder every review counts and nothing is read.
    """
    if not has_review_rules(round_dir):
        return reviews, issues_frame(reviews.clear(), reviews_file, None, "", pl.lit(""), pl.lit(None)), {}
    pairs, assigned, hashes = read_review_rules(round_dir, apps)
    flag = "__panel_excluded"
    marked = reviews.with_columns(pl.lit(None, pl.String).alias(flag), pl.lit(None, pl.String).alias("reason_"))
    if pairs is not None:
        marked = (marked.drop("reason_").join(pairs.rename({"reason": "reason_"}), on=[APP_ID, REVIEWER_ID],
                                              how="left", maintain_order="left")
                  .with_columns(pl.when(pl.col("reason_").is_not_null())
                                .then(pl.lit("conflicted_review")).alias(flag)))
    if assigned is not None:
        marked = (marked.join(assigned.select(APP_ID, REVIEWER_ID, pl.lit(True).alias("__assigned")),
                              on=[APP_ID, REVIEWER_ID], how="left", maintain_order="left")
                  .with_columns(pl.when(pl.col(flag).is_null() & pl.col("__assigned").is_null())
                                .then(pl.lit("unassigned_review")).otherwise(pl.col(flag)).alias(flag))
                  .drop("__assigned"))
    excluded = marked.filter(pl.col(flag).is_not_null())
    assignments_file = next((name for name in hashes if name.startswith(schema.ASSIGNMENTS.stem + ".")), "")
    message = (pl.when(pl.col(flag) == "conflicted_review")
               .then(pl.format("review by reviewer '{}' of application '{}' does not count: conflict of "
                               "interest ({})", REVIEWER_ID, APP_ID, "reason_"))
               .otherwise(pl.format("review by reviewer '{}' does not count: not assigned to application "
                                    "'{}' in {}", REVIEWER_ID, APP_ID, pl.lit(assignments_file))))
    issues = issues_frame(excluded, reviews_file, REVIEWER_ID, pl.col(flag), message, pl.col(APP_ID))
    kept = marked.filter(pl.col(flag).is_null()).drop(flag, "reason_")
    return kept, issues, hashes


def apply_exclusions(applications: pl.DataFrame, issues: pl.DataFrame,
                     excluded: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add the excluded-review issues; an application that became missing_reviews names them in
    its reason_detail (the officer re-assigns those)."""
    if excluded.is_empty():
        return applications, issues
    text = pl.format("{} row {} [{}]: {}", "file", "row", "column", "message")
    per_app = (excluded.sort("row").group_by(APP_ID, maintain_order=True)
               .agg(text.alias("__excluded")).with_columns(pl.col("__excluded").list.join("; ")))
    missing = pl.col(schema.REASON) == "missing_reviews"
    applications = (applications.join(per_app, on=APP_ID, how="left", maintain_order="left")
                    .with_columns(pl.when(missing & pl.col("__excluded").is_not_null())
                                  .then(pl.concat_str([schema.REASON_DETAIL, "__excluded"], separator="; "))
                                  .otherwise(pl.col(schema.REASON_DETAIL)).alias(schema.REASON_DETAIL))
                    .drop("__excluded"))
    issues = pl.concat([issues, excluded]).sort("file", "row", "column", "code", "message", nulls_last=False)
    return applications, issues


def reassign_list(applications: pl.DataFrame, issues: pl.DataFrame) -> pl.DataFrame:
    """Applications left with too few reviewers because reviews were excluded: one row each with
    the excluded reviewers and why (for the officer to re-assign)."""
    excluded = issues.filter(pl.col("code").is_in(list(schema.EXCLUDED_REVIEW_CODES)))
    reviewers = (excluded.with_columns(pl.col("message").str.extract(r"reviewer '([^']*)'", 1).alias(REVIEWER_ID))
                 .group_by(APP_ID, maintain_order=True)
                 .agg(pl.col(REVIEWER_ID).unique(maintain_order=True).str.join(schema.LIST_SEPARATOR)
                      .alias("excluded_reviewers"),
                      pl.col("code").unique(maintain_order=True).str.join(schema.LIST_SEPARATOR)
                      .alias("excluded_because")))
    short = applications.filter(pl.col(schema.REASON) == "missing_reviews").select(
        APP_ID, pl.col(SOURCE_ROW).alias("applications_row"), pl.col(schema.REASON_DETAIL).alias("detail"))
    # column names intake does not reserve: the file is `voucher assign --reassign`'s input
    return short.join(reviewers, on=APP_ID, how="inner", maintain_order="left").select(
        APP_ID, "applications_row", "excluded_reviewers", "excluded_because", "detail")


def write_reassign_list(applications: pl.DataFrame, issues: pl.DataFrame, out_dir: Path) -> None:
    """intake/reassign.csv, only when an application was left short by excluded reviews."""
    if not issues.filter(pl.col("code").is_in(list(schema.EXCLUDED_REVIEW_CODES))).is_empty():
        files.write_csv(reassign_list(applications, issues), Path(out_dir) / files.REASSIGN_CSV)
