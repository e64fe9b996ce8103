"""GPU capacity by month (issue 18): the optional month columns of capacity and applications.

A round whose capacity table has no ``month`` column is a single-period round and nothing here
changes it. With months, capacity holds one row per GPU type and month (consecutive months,
one price per type), and applications may carry ``duration_months``, ``earliest_start`` and
``latest_start`` (schema.APPLICATION_MONTHS; empty cells take the defaults). Problems of the
capacity table stop the round (capacity is policy); problems of an application's month cells
make that application ineligible (invalid_field) with an issue naming file, row and column.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from allocation import schema
from allocation.errors import RoundError
from allocation.intake.tables import APP_ID, SOURCE_ROW, check_cells, duplicate_issues, issues_frame

MONTH = schema.CAPACITY_MONTH


def month_number(month: str) -> int:
    """'2026-05' -> 2026 * 12 + 4 (consecutive months are consecutive numbers)."""
    year, mon = month.split("-")
    return int(year) * 12 + int(mon) - 1


def month_name(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def capacity_months(capacity: pl.DataFrame) -> tuple[str, ...]:
    """The round's capacity months in order; () for a single-period round."""
    if MONTH not in capacity.columns:
        return ()
    return tuple(sorted(set(capacity[MONTH].to_list())))


def monthly_capacity_issues(frame: pl.DataFrame, file: str, today: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed capacity with months and its issues: cells, duplicate (gpu_type, month), a row
    without a month among rows with one, a price that changes between months, a month missing
    for a type, months that are not consecutive."""
    spec = schema.CAPACITY_MONTHLY
    typed, cells = check_cells(frame, spec, file, today, pl.lit(None))
    if frame[MONTH].is_null().any() and frame[MONTH].is_not_null().any():
        cells = cells.with_columns(message=pl.when((pl.col("column") == MONTH) & (pl.col("code") == "missing_value"))
                                   .then(pl.lit("month is empty, but other rows carry a month: give every row "
                                                "a month (YYYY-MM) or remove the month column"))
                                   .otherwise(pl.col("message")))
    found = [cells, duplicate_issues(frame, spec, file, "duplicate_row", MONTH, pl.lit(None))]
    good = typed.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in spec.required))
    if good.height:
        first_price = pl.col("krw_per_gpu_hour").sort_by(SOURCE_ROW).first().over("gpu_type")
        changed = good.filter(pl.col("krw_per_gpu_hour") != first_price)
        found.append(issues_frame(changed, file, "krw_per_gpu_hour", "price_changes", pl.format(
            "krw_per_gpu_hour {} differs from an earlier row of gpu_type '{}' ({}); a GPU type has one "
            "price in every month", pl.col("krw_per_gpu_hour"), pl.col("gpu_type"),
            first_price), pl.lit(None)))
        numbers = sorted({month_number(m) for m in good[MONTH].to_list()})
        wanted = set(range(numbers[0], numbers[-1] + 1))
        gaps = sorted(wanted - set(numbers))
        if gaps:
            after = good.filter(pl.col(MONTH) == month_name(min(n for n in numbers if n > gaps[0])))
            found.append(issues_frame(after.head(1), file, MONTH, "month_gap", pl.lit(
                f"capacity months must be consecutive: {month_name(gaps[0])} is missing (add its rows, "
                f"with gpu_hours 0 if nothing is on offer)"), pl.lit(None)))
        have = good.group_by("gpu_type").agg(pl.col(MONTH).unique(), pl.col(SOURCE_ROW).min())
        months = [month_name(n) for n in numbers]
        for gpu, got, row in have.sort("gpu_type").iter_rows():
            missing = [m for m in months if m not in set(got)]
            if missing:
                found.append(issues_frame(pl.DataFrame({SOURCE_ROW: [row]}), file, MONTH, "month_missing",
                                          pl.lit(f"gpu_type '{gpu}' has no row for month(s) "
                                                 f"{', '.join(missing)}; every GPU type needs a row for "
                                                 f"every capacity month (gpu_hours 0 if none)"), pl.lit(None)))
    return typed, pl.concat(found)


def check_application_months(apps: pl.DataFrame, file: str, capacity_file: str,
                             months: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """applications with typed month columns, and one issue per bad month cell of an application
    (bad format, start window outside the capacity months, duration longer than the months
    offered, window that cannot hold the project). Nothing changes when there are no months."""
    present = [c for c in schema.APPLICATION_MONTHS.required if c in apps.columns]
    if not months:
        if present:
            raise RoundError(f"{file}: column(s) {', '.join(present)} plan the project by month, but "
                             f"{capacity_file} has no month column; add the month column (YYYY-MM) to "
                             f"{capacity_file} or remove these columns.")
        return apps, pl.DataFrame()
    if not present:
        return apps, pl.DataFrame()
    spec = schema.TableSpec(stem=file, columns=tuple(schema.APPLICATION_MONTHS.column(c) for c in present),
                            key=(APP_ID,))
    typed, cells = check_cells(apps, spec, file, date.today(), pl.col(APP_ID))
    cells = cells.filter(pl.col("code") != "missing_value")      # empty = the default
    first, last, count = months[0], months[-1], len(months)
    span = f"{first}..{last}"
    duration = (pl.col(schema.DURATION_MONTHS) if schema.DURATION_MONTHS in present else pl.lit(None, pl.Int64))
    found = [cells]
    if schema.DURATION_MONTHS in present:
        long = typed.filter(duration > count)
        found.append(issues_frame(long, file, schema.DURATION_MONTHS, "duration_too_long", pl.format(
            "duration_months {} is longer than the {} capacity months ({})", duration, pl.lit(count),
            pl.lit(span)), pl.col(APP_ID)))
    fits = duration.fill_null(1) <= count
    month_set = pl.lit(pl.Series(list(months), dtype=pl.String)).implode()
    for column in (schema.EARLIEST_START, schema.LATEST_START):
        if column not in present:
            continue
        outside = typed.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(month_set))
        found.append(issues_frame(outside, file, column, "month_outside", pl.format(
            "{} '{}' is outside the capacity months ({})", pl.lit(column), pl.col(column), pl.lit(span)),
            pl.col(APP_ID)))
    # within the months: can the window hold the project?
    number = {m: i for i, m in enumerate(months)}
    index = lambda c: pl.col(c).replace_strict(number, default=None, return_dtype=pl.Int64)  # noqa: E731
    last_start = pl.lit(count) - duration.fill_null(1)
    if schema.EARLIEST_START in present:
        late = typed.filter(fits & (index(schema.EARLIEST_START) > last_start))
        found.append(issues_frame(late, file, schema.EARLIEST_START, "window_too_late", pl.format(
            "a project of {} month(s) starting in {} or later ends after the last capacity month {}",
            duration.fill_null(1), pl.col(schema.EARLIEST_START), pl.lit(last)), pl.col(APP_ID)))
    if schema.EARLIEST_START in present and schema.LATEST_START in present:
        crossed = typed.filter(index(schema.EARLIEST_START) > index(schema.LATEST_START))
        found.append(issues_frame(crossed, file, schema.LATEST_START, "window_empty", pl.format(
            "latest_start {} is before earliest_start {}", pl.col(schema.LATEST_START),
            pl.col(schema.EARLIEST_START)), pl.col(APP_ID)))
    issues = pl.concat(found)
    bad_rows = issues.select(pl.col("row"), pl.col("column"))
    # a bad month cell is dropped (null) in the typed frame: the row is ineligible anyway
    for column in present:
        rows = bad_rows.filter(pl.col("column") == column)["row"]
        typed = typed.with_columns(pl.when(pl.col(SOURCE_ROW).is_in(rows.implode())).then(None)
                                   .otherwise(pl.col(column)).alias(column))
    return typed, issues


def start_windows(apps: pl.DataFrame, months: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per application (in the frame's order): duration, first and last allowed start index
    (numpy int64 arrays), with the defaults: 1 month, from the first month to the last start
    that still ends within the capacity months."""
    count = len(months)
    number = {m: i for i, m in enumerate(months)}
    duration = (apps[schema.DURATION_MONTHS].fill_null(1) if schema.DURATION_MONTHS in apps.columns
                else pl.Series([1] * apps.height, dtype=pl.Int64)).to_numpy().astype(np.int64)

    def index(column: str, default):
        if column not in apps.columns:
            return default
        got = apps[column].replace_strict(number, default=None, return_dtype=pl.Int64)
        return got.fill_null(-1).to_numpy().astype(np.int64)
    last_fit = count - duration
    earliest = index(schema.EARLIEST_START, np.zeros(apps.height, np.int64))
    earliest = np.where(earliest < 0, 0, earliest)
    latest = index(schema.LATEST_START, last_fit)
    latest = np.where(latest < 0, last_fit, np.minimum(latest, last_fit))
    return duration, earliest, latest
