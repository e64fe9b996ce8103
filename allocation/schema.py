"""Single source of truth for the round folder: files, columns, types, codes.

Every other module takes column names, enums and reason codes from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# --- Domain enums -----------------------------------------------------------

REGIONS: tuple[str, ...] = (
    "Seoul", "Busan", "Daegu", "Incheon", "Gwangju", "Daejeon", "Ulsan", "Sejong",
    "Gyeonggi", "Gangwon", "Chungbuk", "Chungnam", "Jeonbuk", "Jeonnam",
    "Gyeongbuk", "Gyeongnam", "Jeju",
)
CAPITAL_REGIONS: tuple[str, ...] = ("Seoul", "Gyeonggi", "Incheon")
COMPANY_SIZES: tuple[str, ...] = ("micro", "small", "medium")

STATUS_AWARDED = "awarded"
STATUS_WAITLISTED = "waitlisted"
STATUS_NOT_SELECTED = "not_selected"
STATUS_INELIGIBLE = "ineligible"
STATUSES: tuple[str, ...] = (
    STATUS_AWARDED, STATUS_WAITLISTED, STATUS_NOT_SELECTED, STATUS_INELIGIBLE,
)

# --- Input tables -------------------------------------------------------------

# Column kinds understood by intake: how a raw string cell is parsed and checked.
ID = "id"            # non-empty trimmed string
TEXT = "text"        # non-empty string
INT = "int"          # integer (bounds per column)
NUMBER = "number"    # float
DATE = "date"        # ISO date YYYY-MM-DD (Excel datetimes at midnight accepted)
ENUM = "enum"        # one of a fixed set
MONTH = "month"      # calendar month YYYY-MM


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str
    min_value: float | None = None   # INT / NUMBER: inclusive lower bound
    max_value: float | None = None   # INT / NUMBER: inclusive upper bound
    choices: tuple[str, ...] = ()    # ENUM
    min_length: int = 1              # ID / TEXT
    max_length: int = 200            # ID / TEXT: longer is an issue (absurd lengths never reach outputs)


@dataclass(frozen=True)
class TableSpec:
    stem: str                        # file name without extension
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]             # must be unique per row

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


APPLICATIONS = TableSpec(
    stem="applications",
    columns=(
        ColumnSpec("application_id", ID, max_length=64),
        ColumnSpec("business_no", ID),          # checked by identifiers.is_valid_business_no
        ColumnSpec("company_name", TEXT),
        ColumnSpec("company_size", ENUM, choices=COMPANY_SIZES),
        ColumnSpec("region", ENUM, choices=REGIONS),
        ColumnSpec("founded_on", DATE),
        ColumnSpec("prior_awards", INT, min_value=0),
        ColumnSpec("project_title", TEXT, max_length=500),
        ColumnSpec("receipt_code", TEXT, min_length=8, max_length=128),
    ),
    key=("application_id",),
)
REQUESTS = TableSpec(
    stem="requests",
    columns=(
        ColumnSpec("application_id", ID),
        ColumnSpec("gpu_type", ID),
        ColumnSpec("gpu_hours", INT, min_value=1),
    ),
    key=("application_id", "gpu_type"),
)
REVIEWS = TableSpec(
    stem="reviews",
    columns=(
        ColumnSpec("application_id", ID),
        ColumnSpec("reviewer_id", ID),
        ColumnSpec("criterion", ID),
        ColumnSpec("score", NUMBER, min_value=0, max_value=100),
    ),
    key=("application_id", "reviewer_id", "criterion"),
)
CAPACITY = TableSpec(
    stem="capacity",
    columns=(
        ColumnSpec("gpu_type", ID),
        ColumnSpec("gpu_hours", INT, min_value=0),
        ColumnSpec("krw_per_gpu_hour", INT, min_value=1),
    ),
    key=("gpu_type",),
)
TABLES: tuple[TableSpec, ...] = (APPLICATIONS, REQUESTS, REVIEWS, CAPACITY)

# GPU capacity by month (issue 18), read by allocation.intake.months. Optional: a round without
# these columns behaves exactly as before. capacity may carry `month` (YYYY-MM) on every row:
# the hours on offer per GPU type and month (one row per type and month, consecutive months,
# the same price in every month of a type). applications may then carry `duration_months`
# (default 1) and `earliest_start` / `latest_start` (YYYY-MM; default: the first month, and the
# last month in which the project still ends within the capacity months). The month columns
# are on applications, not requests: a project runs once, and all its GPU types run over the
# same months. An award of h hours of a type over d months gets floor(h / d) hours in each of
# its first d - 1 months and the remainder h - (d - 1) * floor(h / d) in its last month.
CAPACITY_MONTH = "month"
CAPACITY_MONTHLY = TableSpec(
    stem="capacity",
    columns=(*CAPACITY.columns, ColumnSpec(CAPACITY_MONTH, MONTH)),
    key=("gpu_type", CAPACITY_MONTH),
)
DURATION_MONTHS, EARLIEST_START, LATEST_START = "duration_months", "earliest_start", "latest_start"
APPLICATION_MONTHS = TableSpec(     # optional columns of applications; empty cells take defaults
    stem="applications",
    columns=(ColumnSpec(DURATION_MONTHS, INT, min_value=1, max_value=120),
             ColumnSpec(EARLIEST_START, MONTH), ColumnSpec(LATEST_START, MONTH)),
    key=("application_id",),
)
START_MONTH = "start_month"        # outcomes (month rounds only): the first month of the award

# Officers' files after publication (allocation.intake.officer_files). Optional columns of
# appeals: note, make_eligible (true/false, yes/no, 1/0).
ACCEPTED, DECLINED = "accepted", "declined"
UPHELD, REJECTED = "upheld", "rejected"
RESPONSES = TableSpec(
    stem="responses",
    columns=(ColumnSpec("application_id", ID),
             ColumnSpec("response", ENUM, choices=(ACCEPTED, DECLINED)),
             ColumnSpec("responded_on", DATE)),
    key=("application_id",))
APPEALS = TableSpec(
    stem="appeals",
    columns=(ColumnSpec("application_id", ID),
             ColumnSpec("decision", ENUM, choices=(UPHELD, REJECTED))),
    key=("application_id",))
APPEALS_OPTIONAL = ("note", "make_eligible")
TABLE_EXTENSIONS: tuple[str, ...] = (".csv", ".xlsx", ".parquet")

# Review panel (issue 18): optional tables of the round folder, read by
# allocation.intake.panel_files. Lists in a cell (expertise, affiliations, topic_tags) are
# separated by ';'. reviewers: optional columns expertise (topic tags), affiliations (business
# numbers or company names of the reviewer's employers, current and former). conflicts: each row
# names the application_id or the business_no (all that company's applications) the reviewer may
# not review. assignments: who reviews what (written by `voucher assign`); when it is in the round
# folder, a review by a reviewer not assigned to the application does not count.
REVIEWERS = TableSpec(
    stem="reviewers",
    columns=(ColumnSpec("reviewer_id", ID, max_length=64), ColumnSpec("max_load", INT, min_value=0)),
    key=("reviewer_id",))
REVIEWERS_OPTIONAL = ("expertise", "affiliations")
CONFLICTS = TableSpec(
    stem="conflicts",
    columns=(ColumnSpec("reviewer_id", ID, max_length=64), ColumnSpec("conflict_reason", TEXT)),
    key=("reviewer_id", "application_id", "business_no"))
CONFLICTS_OPTIONAL = ("application_id", "business_no")   # at least one of them on every row
ASSIGNMENTS = TableSpec(
    stem="assignments",
    columns=(ColumnSpec("application_id", ID), ColumnSpec("reviewer_id", ID, max_length=64)),
    key=("application_id", "reviewer_id"))
# `voucher assign --reassign FILE`: the applications to give new reviewers (intake/reassign.csv)
REASSIGN = TableSpec(stem="reassign", columns=(ColumnSpec("application_id", ID),), key=("application_id",))
TOPIC_TAGS = "topic_tags"          # optional column of applications
LIST_SEPARATOR = ";"
PANEL_TABLES: tuple[TableSpec, ...] = (REVIEWERS, CONFLICTS, ASSIGNMENTS)
# Review rows intake sets aside when conflicts or assignments are in the round folder (issues of
# the reviews file; the application stays eligible if enough other reviews remain).
EXCLUDED_REVIEW_CODES: dict[str, str] = {
    "conflicted_review": "the reviewer has a conflict of interest with the application",
    "unassigned_review": "the reviewer was not assigned to the application",
}
CONFIG_FILE = "round.toml"

# Typed dtypes after intake (columns that failed to parse are null).
POLARS_TYPES: dict[str, pl.DataType] = {
    ID: pl.String(), TEXT: pl.String(), ENUM: pl.String(),
    INT: pl.Int64(), NUMBER: pl.Float64(), DATE: pl.Date(), MONTH: pl.String(),
}

# Columns intake adds to every table: the row as the officer sees it in the file
# (header = row 1, first data row = row 2; the same in Excel).
SOURCE_ROW = "source_row"
# Columns intake adds to applications.
ELIGIBLE = "eligible"
REASON = "reason"                  # primary reason code (first in priority order)
REASON_DETAIL = "reason_detail"    # human sentence(s), English
# Never leaves the officer's side (outcomes, public files): the applicant's secret.
SECRET_COLUMNS: tuple[str, ...] = ("receipt_code",)

# --- Reason codes -------------------------------------------------------------

# Ineligibility (intake). Order = priority when several apply.
INELIGIBLE_REASONS: dict[str, str] = {
    "missing_application_id": "the application has no application_id",
    "duplicate_application_id": "the application_id appears on more than one row",
    "invalid_field": "a required field is missing or malformed",
    "invalid_business_no": "the business registration number fails the checksum",
    "no_request": "the application requests no GPU-hours",
    "invalid_request": "a GPU request row of this application is invalid",
    "missing_reviews": "the panel reviews for this application are incomplete",
    "invalid_review": "a review row of this application is invalid",
}
# Outcomes of eligible applications (allocation / explanation).
OUTCOME_REASONS: dict[str, str] = {
    "funded": "funded at the full requested amount",
    "funded_partially": "funded at a reduced level",
    "below_min_score": "the score is below the round's minimum score",
    "budget_exhausted": "the programme budget is used up",
    "capacity_exhausted": "GPU capacity of a requested type is used up",   # as capacity_<GPU>_exhausted
    "company_cap": "the per-company award cap is reached",
    "quota": "funding it would break a minimum-share quota",
    "not_optimal": "other applications give more merit for the same resources",
    "request_too_small": "no award level grants even one whole GPU-hour of the request",
    # After publication (allocation.lifecycle): awards released, never re-funded.
    "declined": "the applicant declined the published award",
    "lapsed": "the published award was not accepted by the deadline",
}


def capacity_reason(gpu_type: str) -> str:
    return f"capacity_{gpu_type}_exhausted"


# --- Output tables ------------------------------------------------------------

OUTCOMES_SCHEMA: dict[str, pl.DataType] = {
    "application_id": pl.String(),
    "source_row": pl.Int64(),
    "company_name": pl.String(),
    "business_no": pl.String(),
    "region": pl.String(),
    "status": pl.String(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
    "waitlist_rank": pl.Int64(),
    "award_fraction": pl.Float64(),
    "cost_krw": pl.Int64(),
    "awarded_krw": pl.Int64(),
    "copay_krw": pl.Int64(),
    "reason": pl.String(),
    "score_needed": pl.Float64(),
    "reason_detail": pl.String(),
}
AWARDS_SCHEMA: dict[str, pl.DataType] = {
    "application_id": pl.String(),
    "gpu_type": pl.String(),
    "gpu_hours": pl.Int64(),
    "krw": pl.Int64(),
}
SCORES_SCHEMA: dict[str, pl.DataType] = {
    "application_id": pl.String(),
    "raw_score": pl.Float64(),        # weighted mean of raw panel scores
    "calibrated_score": pl.Float64(), # weighted mean of reviewer-calibrated scores
    "bonus": pl.Float64(),
    "score": pl.Float64(),            # calibrated + bonus, rounded to 2 decimals
}
