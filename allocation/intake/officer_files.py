"""The officers' files after publication: responses, appeals and replacement reviews.

They sit in the round folder (``allocation.files``: responses.csv, appeals.csv,
replacement_reviews.*) and use the same readers and cell checks as the round's own tables
(``allocation.intake.tables``). Unlike those, any bad row stops the lifecycle run: every problem
is listed in one RoundError (file, row as in Excel, column, what is wrong), so an officer fixes
the file once.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from allocation import files, schema
from allocation.config import RoundConfig
from allocation.errors import RoundError
from allocation.intake.tables import (APP_ID, check_cells, duplicate_issues, issues_frame,
                                      optional_table_path, raise_issues, read_table)

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _table_file(round_dir: Path, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RoundError(f"{name!r}: give a plain file name inside the round folder")
    path = Path(round_dir) / name
    if path.suffix not in schema.TABLE_EXTENSIONS:
        raise RoundError(f"{path}: use a .csv, .xlsx or .parquet file")
    if not path.is_file():
        raise RoundError(f"{path}: file not found")
    return path


def _membership_issues(frame: pl.DataFrame, file: str, bad: pl.Expr, code: str,
                       message: pl.Expr) -> pl.DataFrame:
    return issues_frame(frame.filter(pl.col(APP_ID).is_not_null() & bad), file, APP_ID, code,
                          message, pl.col(APP_ID))


def _read_with_common_checks(round_dir: Path, name: str, spec, known_ids: set[str],
                             optional: tuple[str, ...] = ()):
    """Read a lifecycle table (missing optional columns added empty) and find the issues every
    such table shares: bad cells, duplicate rows, unknown application ids.

    Returns (frame, typed, file name, digest, known ids as a list literal, [issue frames]).
    """
    path = _table_file(round_dir, name)
    frame, digest = read_table(path, spec)
    file = path.name
    for column in optional:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(column))
    typed, cell_issues = check_cells(frame, spec, file, date.today(), pl.col(APP_ID))
    known = pl.Series(sorted(known_ids), dtype=pl.String).implode()
    common = [
        cell_issues,
        duplicate_issues(frame, spec, file, "duplicate_row", APP_ID, pl.col(APP_ID)),
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
        round_dir, name, schema.RESPONSES, known_ids)
    award = pl.Series(sorted(awardees), dtype=pl.String).implode()
    issues = pl.concat([
        *common,
        _membership_issues(frame, file, pl.col(APP_ID).is_in(known) & ~pl.col(APP_ID).is_in(award),
                           "not_awardee",
                           pl.format("application '{}' was not awarded in {}; only awardees respond",
                                     pl.col(APP_ID), pl.lit(previous_label))),
    ])
    raise_issues(file, issues, "the refill")
    return typed.select(APP_ID, "response", "responded_on", schema.SOURCE_ROW), digest


def _bool_cell(column: str) -> tuple[pl.Expr, pl.Expr]:
    raw = pl.col(column).str.to_lowercase()
    value = pl.when(raw.is_in(list(_TRUE))).then(True).when(raw.is_in(list(_FALSE))).then(False)
    return value, raw.is_not_null() & value.is_null()


def read_appeals(round_dir: Path, name: str, known_ids: set[str]) -> tuple[pl.DataFrame, str]:
    """Validated appeals (application_id, decision, note, make_eligible, source_row), file hash."""
    frame, typed, file, digest, _, common = _read_with_common_checks(
        round_dir, name, schema.APPEALS, known_ids, optional=schema.APPEALS_OPTIONAL)
    eligible_value, bad_bool = _bool_cell("make_eligible")
    issues = pl.concat([
        *common,
        issues_frame(frame.filter(bad_bool), file, "make_eligible", "bad_boolean",
                       pl.format("make_eligible '{}' is not true/false (yes/no, 1/0 also accepted)",
                                 pl.col("make_eligible")), pl.col(APP_ID)),
        issues_frame(typed.filter((pl.col("decision") == schema.REJECTED) & eligible_value.fill_null(False)),
                       file, "make_eligible", "rejected_with_correction",
                       pl.format("appeal of '{}' is rejected but asks make_eligible; a rejected "
                                 "appeal changes nothing", pl.col(APP_ID)), pl.col(APP_ID)),
    ])
    raise_issues(file, issues, "the appeal")
    out = typed.with_columns(eligible_value.fill_null(False).alias("make_eligible"))
    return out.select(APP_ID, "decision", "note", "make_eligible", schema.SOURCE_ROW), digest


def replacement_file(round_dir: Path) -> Path | None:
    return optional_table_path(round_dir, files.REPLACEMENT_REVIEWS)


def read_replacement_reviews(path: Path, upheld: set[str], config: RoundConfig
                             ) -> tuple[pl.DataFrame, str]:
    """Review rows (reviews columns) replacing all reviews of applications with an upheld appeal."""
    frame, digest = read_table(path, schema.REVIEWS)
    file = path.name
    typed, issues = check_cells(frame, schema.REVIEWS, file, date.today(), pl.col(APP_ID))
    ups = pl.Series(sorted(upheld), dtype=pl.String).implode()
    weighted = list(config.scoring.weights)
    issues = pl.concat([
        issues,
        duplicate_issues(frame, schema.REVIEWS, file, "duplicate_row", None, pl.col(APP_ID)),
        _membership_issues(frame, file, ~pl.col(APP_ID).is_in(ups), "no_upheld_appeal",
                           pl.format("application '{}' has no upheld appeal in the appeals file; only "
                                     "upheld appeals replace reviews", pl.col(APP_ID))),
        issues_frame(frame.filter(pl.col("criterion").is_not_null()
                                    & ~pl.col("criterion").is_in(weighted)),
                       file, "criterion", "unknown_criterion",
                       pl.format("criterion '{}' is not weighted in round.toml (known: {})",
                                 pl.col("criterion"), pl.lit(", ".join(sorted(weighted)))), pl.col(APP_ID)),
    ])
    raise_issues(file, issues, "the appeal")
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
