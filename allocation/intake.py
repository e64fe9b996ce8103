"""Intake: read a round folder, check every cell, and say exactly what is wrong where.

Fatal problems (missing folder, file or column, unreadable file, any bad capacity row)
raise RoundError with one message. Everything else becomes a row of `issues`;
applications are never dropped, only marked ineligible with a reason.
All checks are vectorised polars expressions, so a million applications take seconds.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from allocation import schema
from allocation.config import RoundConfig, load_config
from allocation.errors import RoundError
from allocation.identifiers import business_no_is_valid_expr

APP_ID = "application_id"
SOURCE_ROW = schema.SOURCE_ROW
ISSUES_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(), "row": pl.Int64(), "column": pl.String(),
    "code": pl.String(), "message": pl.String(), "application_id": pl.String(),
}
ISSUE_CODES: dict[str, str] = {
    "missing_value": "a required cell is empty",
    "bad_integer": "not a whole number",
    "bad_number": "not a number",
    "out_of_range": "a number outside its bounds, or a founding date in the future",
    "bad_date": "not a date YYYY-MM-DD",
    "unknown_value": "not one of the allowed values",
    "too_short": "shorter than required",
    "bad_checksum": "business registration number fails the checksum",
    "duplicate_id": "application_id on several rows",
    "duplicate_row": "the same key on several rows of requests/reviews/capacity",
    "unknown_application": "refers to an application_id not in applications",
    "unknown_gpu_type": "gpu_type not in capacity",
    "unknown_criterion": "criterion not weighted in round.toml",
    "no_request": "the application has no valid GPU request",
    "missing_reviews": "too few reviewers on a weighted criterion",
}
# Columns intake adds; an input file may not bring its own.
_ADDED = (SOURCE_ROW, schema.ELIGIBLE, schema.REASON, schema.REASON_DETAIL)
_TMP = "__intake_"   # prefix of temporary columns
_APP = f"{_TMP}app"   # dense integer index of a distinct application_id


@dataclass
class ValidatedRound:
    config: RoundConfig
    applications: pl.DataFrame   # all rows, typed, + source_row, eligible, reason, reason_detail
    requests: pl.DataFrame       # valid rows of existing applications, + source_row
    reviews: pl.DataFrame        # valid rows of existing applications, + source_row
    capacity: pl.DataFrame       # typed, sorted by gpu_type
    issues: pl.DataFrame         # ISSUES_SCHEMA, sorted by file, row, column, code
    input_hashes: dict[str, str]  # file name -> sha256 hex
    files: dict[str, str]        # table stem -> file name read


# --- Reading files ---------------------------------------------------------------


def _table_path(round_dir: Path, spec: schema.TableSpec) -> Path:
    found = [round_dir / f"{spec.stem}{ext}" for ext in schema.TABLE_EXTENSIONS
             if (round_dir / f"{spec.stem}{ext}").is_file()]
    accepted = ", ".join(f"{spec.stem}{ext}" for ext in schema.TABLE_EXTENSIONS)
    if not found:
        raise RoundError(f"{round_dir}: the {spec.stem} table is missing.\n"
                         f"  Add exactly one of: {accepted}")
    if len(found) > 1:
        raise RoundError(f"{round_dir}: the {spec.stem} table is there more than once: "
                         f"{' and '.join(p.name for p in found)}.\n"
                         f"  Keep exactly one of: {accepted}")
    return found[0]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_csv(data: bytes, file: str) -> pl.DataFrame:
    data = data.removeprefix(codecs.BOM_UTF8)
    try:   # polars would silently replace bad bytes in the header: decode here first
        data.decode("utf-8")
    except UnicodeDecodeError:   # Korean Windows Excel exports CP949
        try:
            data = data.decode("cp949").encode("utf-8")
        except UnicodeDecodeError as bad:
            raise RoundError(
                f"{file}: cannot decode the file: it is neither UTF-8 nor CP949 text "
                f"(unreadable byte at position {bad.start}).\n"
                f"  Save it again from Excel as 'CSV UTF-8'.") from None
    try:
        return pl.read_csv(data, infer_schema=False, raise_if_empty=True)
    except pl.exceptions.NoDataError:
        raise RoundError(f"{file}: the file is empty; it needs a header row.") from None
    except pl.exceptions.PolarsError as exc:
        raise RoundError(f"{file}: not a readable CSV file: {_first_line(exc)}") from None


def _read_xlsx(data: bytes, file: str) -> pl.DataFrame:
    try:   # every cell as a string; keep empty rows so row numbers match Excel
        return pl.read_excel(io.BytesIO(data), engine="calamine", infer_schema_length=0,
                             drop_empty_rows=False, raise_if_empty=False)
    except Exception as exc:   # fastexcel raises its own exception types
        raise RoundError(f"{file}: cannot read the Excel workbook: {_first_line(exc)}") from None


def _read_parquet(data: bytes, file: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise RoundError(f"{file}: cannot read the parquet file: {_first_line(exc)}") from None
    for name, dtype in frame.schema.items():   # same checks as CSV: start from strings
        try:
            frame = frame.with_columns(pl.col(name).cast(pl.String))
        except pl.exceptions.PolarsError:
            raise RoundError(f"{file}: column '{name}' has type {dtype}, which cannot be "
                             f"read as text; use plain numbers, dates or strings.") from None
    return frame


_READERS = {".csv": _read_csv, ".xlsx": _read_xlsx, ".parquet": _read_parquet}


def _tidy(frame: pl.DataFrame, spec: schema.TableSpec, file: str) -> pl.DataFrame:
    """Trimmed strings (empty = null), source_row added, blank rows dropped, columns checked."""
    names = [str(name).strip() for name in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1} |
                      {m.group(1) for n in names if (m := re.fullmatch(r"(.*)_duplicated_\d+", n))
                       and m.group(1) in names})
    if repeated:
        raise RoundError(f"{file}: column(s) {', '.join(repeated)} appear more than once "
                         f"in the header; every column name must be unique.")
    missing = [c for c in spec.required if c not in names]
    if missing:
        raise RoundError(f"{file}: required column(s) missing: {', '.join(missing)}\n"
                         f"  columns found: {', '.join(names) or '(none)'}\n"
                         f"  columns required: {', '.join(spec.required)}")
    reserved = [n for n in names if n in _ADDED]
    if reserved:
        raise RoundError(f"{file}: column(s) {', '.join(reserved)} are added by intake; "
                         f"rename them in the input file.")
    trimmed = [pl.col(old).cast(pl.String).str.strip_chars().alias(new)
               for old, new in zip(frame.columns, names)]
    frame = frame.select(trimmed).with_columns(
        [pl.when(pl.col(n) != "").then(pl.col(n)).alias(n) for n in names]
        + [pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias(SOURCE_ROW)])
    # Fully blank rows (e.g. trailing empty lines) are not data; row numbers stay as in the file.
    blank = ~pl.any_horizontal(pl.col(names).is_not_null()) if names else pl.lit(False)
    return frame.filter(~blank) if frame.select(blank.any()).item() else frame


# --- Checking cells ----------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    code: str
    failed: pl.Expr    # true where the cell breaks the rule (cell is non-empty)
    message: pl.Expr   # sentence; evaluated on failing rows only


def _shown(name: str) -> pl.Expr:
    """'column 'value'' for messages; secrets (receipt_code) are never echoed."""
    if name in schema.SECRET_COLUMNS:
        return pl.lit(f"{name} (value hidden)")
    return pl.format("{} '{}'", pl.lit(name), pl.col(name))


def _bounds_text(col: schema.ColumnSpec) -> str:
    if col.max_value is None:
        return f"must be at least {col.min_value:g}"
    if col.min_value is None:
        return f"must be at most {col.max_value:g}"
    return f"must be between {col.min_value:g} and {col.max_value:g}"


def _parse_int(raw: pl.Expr) -> pl.Expr:
    """'12', '+12', '1,200' and '12.0' (Excel/parquet floats) are whole numbers."""
    plain = (pl.when(raw.str.contains(r"^[+-]?\d{1,3}(,\d{3})+(\.0*)?$"))
             .then(raw.str.replace_all(",", "", literal=True)).otherwise(raw))
    return plain.str.extract(r"^([+-]?\d+)(?:\.0*)?$", 1).str.to_integer(strict=False)


def _parse_number(raw: pl.Expr) -> pl.Expr:
    number = raw.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number)


def _parse_date(raw: pl.Expr) -> pl.Expr:
    """ISO date; Excel's midnight datetimes ('2020-01-02 00:00:00') are accepted."""
    day = raw.str.extract(r"^(\d{4}-\d{1,2}-\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$", 1)
    return day.str.to_date("%Y-%m-%d", strict=False)


def _column_rules(col: schema.ColumnSpec, typed: str, today: date) -> tuple[pl.Expr, list[_Rule]]:
    """The typed value of a non-empty cell and the rules it must pass, in order."""
    raw, value, shown = pl.col(col.name), pl.col(typed), _shown(col.name)
    rules: list[_Rule] = []
    if col.kind in (schema.ID, schema.TEXT):
        parsed = raw
        if col.min_length > 1:
            rules.append(_Rule("too_short", raw.str.len_chars() < col.min_length, pl.format(
                "{} is too short: {} characters, at least {} needed",
                shown, raw.str.len_chars(), pl.lit(col.min_length))))
        if col.name == "business_no":   # checksum; valid numbers normalised to XXX-XX-XXXXX
            digits = raw.str.replace_all("-", "", literal=True)
            parsed = pl.concat_str([digits.str.slice(0, 3), digits.str.slice(3, 2),
                                    digits.str.slice(5)], separator="-")
            rules.append(_Rule("bad_checksum", ~business_no_is_valid_expr(col.name), pl.format(
                "{} is not a valid business registration number "
                "(10 digits XXX-XX-XXXXX with a correct check digit)", shown)))
    elif col.kind == schema.ENUM:   # case-insensitive, stored in canonical spelling
        parsed = raw.str.to_lowercase().replace_strict(
            {c.lower(): c for c in col.choices}, default=None, return_dtype=pl.String)
        rules.append(_Rule("unknown_value", value.is_null(), pl.format(
            "{} is not one of the allowed values: {}", shown, pl.lit(", ".join(col.choices)))))
    elif col.kind == schema.DATE:
        parsed = _parse_date(raw)
        rules.append(_Rule("bad_date", value.is_null(), pl.format(
            "{} is not a date in the form YYYY-MM-DD", shown)))
        if col.name == "founded_on":
            rules.append(_Rule("out_of_range", value > today, pl.format(
                "{} is in the future (today is {})", shown, pl.lit(today.isoformat()))))
    elif col.kind in (schema.INT, schema.NUMBER):
        integer = col.kind == schema.INT
        parsed = _parse_int(raw) if integer else _parse_number(raw)
        rules.append(_Rule("bad_integer" if integer else "bad_number", value.is_null(), pl.format(
            "{} is not {}", shown, pl.lit("a whole number" if integer else "a number"))))
        low = value < col.min_value if col.min_value is not None else pl.lit(False)
        high = value > col.max_value if col.max_value is not None else pl.lit(False)
        rules.append(_Rule("out_of_range", low | high, pl.format(
            "{} is out of range: {}", shown, pl.lit(_bounds_text(col)))))
    else:
        raise ValueError(f"unknown column kind {col.kind!r}")
    return parsed.cast(schema.POLARS_TYPES[col.kind]), rules


def _issues(frame: pl.DataFrame, file: str, column: str | None, code: str | pl.Expr,
            message: pl.Expr, app_id: pl.Expr) -> pl.DataFrame:
    """Issue rows (ISSUES_SCHEMA) for every row of `frame`."""
    code = pl.lit(code) if isinstance(code, str) else code
    return frame.select(
        pl.lit(file, pl.String).alias("file"), pl.col(SOURCE_ROW).alias("row"),
        pl.lit(column, pl.String).alias("column"), code.cast(pl.String).alias("code"),
        message.cast(pl.String).alias("message"), app_id.cast(pl.String).alias("application_id"))


def _check_cells(frame: pl.DataFrame, spec: schema.TableSpec, file: str, today: date,
                 app_id: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed frame (null where a cell failed) and one issue per failed cell."""
    typed_name = {c.name: f"{_TMP}typed_{c.name}" for c in spec.columns}
    code_name = {c.name: f"{_TMP}code_{c.name}" for c in spec.columns}
    rules = {}
    parsed = []
    for col in spec.columns:
        expr, rules[col.name] = _column_rules(col, typed_name[col.name], today)
        parsed.append(expr.alias(typed_name[col.name]))
    codes = []
    for col in spec.columns:   # first failing rule wins: one issue per cell
        code = pl.when(pl.col(col.name).is_null()).then(pl.lit("missing_value"))
        for rule in rules[col.name]:
            code = code.when(rule.failed).then(pl.lit(rule.code))
        codes.append(code.otherwise(None).alias(code_name[col.name]))
    frame = frame.lazy().with_columns(parsed).with_columns(codes).collect()

    found = []
    for col in spec.columns:
        code = pl.col(code_name[col.name])
        message = pl.when(code == "missing_value").then(pl.lit(f"{col.name} is empty"))
        for rule in rules[col.name]:
            message = message.when(code == rule.code).then(rule.message)
        found.append(_issues(frame.filter(code.is_not_null()), file, col.name, code,
                             message, app_id))
    typed = frame.with_columns(
        pl.when(pl.col(code_name[c]).is_null()).then(pl.col(typed_name[c])).alias(c)
        for c in spec.required)
    return typed.drop(list(typed_name.values()) + list(code_name.values())), pl.concat(found)


def _duplicate_issues(frame: pl.DataFrame, spec: schema.TableSpec, file: str, code: str,
                      column: str | None, app_id: pl.Expr) -> pl.DataFrame:
    """Every row whose (complete) key appears on more than one row."""
    key, hashed = list(spec.key), f"{_TMP}hash"
    # Pre-filter on a 64-bit hash of the key (sorting numbers is far cheaper than grouping
    # millions of strings), then check the few candidates exactly.
    frame = frame.with_columns(pl.struct(key).hash().alias(hashed))
    ordered = frame[hashed].sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    complete = pl.all_horizontal(pl.col(k).is_not_null() for k in key)
    dups = (frame.filter(pl.col(hashed).is_in(repeated.implode()))
            .filter(complete & (pl.len().over(key) > 1)))
    if dups.is_empty():
        return pl.DataFrame(schema=ISSUES_SCHEMA)
    rows = dups.group_by(key).agg(
        pl.len().alias(f"{_TMP}n"),
        pl.col(SOURCE_ROW).sort().cast(pl.String).str.join(", ").alias(f"{_TMP}rows"))
    dups = dups.join(rows, on=key, how="left", maintain_order="left")
    what = pl.concat_str([pl.format("{} '{}'", pl.lit(k), pl.col(k)) for k in key], separator=", ")
    message = pl.format("{} appears on {} rows ({}); it must appear only once",
                        what, pl.col(f"{_TMP}n"), pl.col(f"{_TMP}rows"))
    return _issues(dups, file, column, code, message, app_id)


def _rows_without_issues(frame: pl.DataFrame, issues: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~pl.col(SOURCE_ROW).is_in(issues["row"].unique().implode()))


# --- Tables ------------------------------------------------------------------------


def _validate_capacity(frame: pl.DataFrame, file: str, today: date) -> pl.DataFrame:
    """Capacity is policy: any problem stops the round."""
    if frame.is_empty():
        raise RoundError(f"{file}: no data rows; the round needs at least one GPU type "
                         f"with gpu_hours and krw_per_gpu_hour.")
    typed, issues = _check_cells(frame, schema.CAPACITY, file, today, pl.lit(None))
    issues = pl.concat([issues, _duplicate_issues(frame, schema.CAPACITY, file,
                                                  "duplicate_row", "gpu_type", pl.lit(None))])
    if not issues.is_empty():
        lines = [f"  - {file} row {r['row']} [{r['column']}]: {r['message']} ({r['code']})"
                 for r in issues.sort("row", "column", "code").iter_rows(named=True)]
        raise RoundError(f"{file}: {len(lines)} problem(s) in the GPU capacity table; capacity "
                         f"is round policy, so the round cannot run until it is fixed:\n"
                         + "\n".join(lines))
    return typed.drop(SOURCE_ROW).sort("gpu_type")


def _app_index(apps: pl.DataFrame) -> pl.DataFrame:
    """Each distinct application_id with a dense integer index, for fast counting."""
    return (apps.select(APP_ID).drop_nulls().unique(maintain_order=True)
            .with_row_index(_APP).with_columns(pl.col(_APP).cast(pl.Int64)))


def _validate_links(frame: pl.DataFrame, spec: schema.TableSpec, file: str, today: date,
                    app_index: pl.DataFrame, apps_file: str,
                    membership: list[tuple[str, str, pl.Series, str]],
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Requests or reviews: cell checks, duplicates, unknown application and unknown
    values (membership: column, code, allowed values, where they are defined).
    Valid rows keep the application's index (_APP)."""
    frame = frame.join(app_index, on=APP_ID, how="left", maintain_order="left")
    known_app = pl.col(_APP).is_not_null()
    app_id = pl.when(known_app).then(pl.col(APP_ID))   # issues name existing applications only
    typed, cell_issues = _check_cells(frame, spec, file, today, app_id)
    found = [cell_issues, _duplicate_issues(frame, spec, file, "duplicate_row", None, app_id)]
    unknown = frame.filter(pl.col(APP_ID).is_not_null() & ~known_app)
    found.append(_issues(unknown, file, APP_ID, "unknown_application", pl.format(
        "{} does not match any application in {}", _shown(APP_ID), pl.lit(apps_file)), app_id))
    for column, code, allowed, source in membership:
        listed = ", ".join(allowed.sort().to_list())
        bad = frame.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed.implode()))
        found.append(_issues(bad, file, column, code, pl.format(
            "{} is not in {} (known: {})", _shown(column), pl.lit(source), pl.lit(listed)), app_id))
    issues = pl.concat(found)
    return _rows_without_issues(typed, issues), issues


def _no_request_issues(apps: pl.DataFrame, app_index: pl.DataFrame, requests: pl.DataFrame,
                       file: str, requests_file: str) -> pl.DataFrame:
    counts = np.bincount(requests[_APP].to_numpy(), minlength=app_index.height)
    lacking = app_index.filter(pl.Series(counts == 0))[APP_ID]
    return _issues(apps.filter(pl.col(APP_ID).is_in(lacking.implode())), file, None, "no_request",
                   pl.format("application '{}' has no valid GPU request in {}",
                             pl.col(APP_ID), pl.lit(requests_file)), pl.col(APP_ID))


def _missing_review_issues(apps: pl.DataFrame, app_index: pl.DataFrame, reviews: pl.DataFrame,
                           config: RoundConfig, file: str, reviews_file: str) -> pl.DataFrame:
    """One issue per application and weighted criterion with too few distinct reviewers."""
    criteria, need, n = list(config.scoring.weights), config.scoring.min_reviewers, f"{_TMP}n"
    # Valid reviews have a weighted criterion and a unique (application, reviewer, criterion),
    # so counting rows per (application, criterion) slot counts distinct reviewers.
    slot = reviews.select(pl.col(_APP) * len(criteria) + pl.col("criterion").replace_strict(
        {c: i for i, c in enumerate(criteria)}, return_dtype=pl.Int64)).to_series()
    counts = np.bincount(slot.to_numpy(), minlength=app_index.height * len(criteria))
    short = np.flatnonzero(counts < need)
    found = (pl.DataFrame({_APP: short // len(criteria), n: counts[short]},
                          schema={_APP: pl.Int64, n: pl.Int64})
             .with_columns(pl.Series("criterion", criteria, pl.String)
                           .gather(short % len(criteria)))
             .join(app_index, on=_APP, maintain_order="left")
             .join(apps.select(APP_ID, SOURCE_ROW), on=APP_ID, maintain_order="left"))
    return _issues(found, file, None, "missing_reviews", pl.format(
        "application '{}' has {} reviewer(s) on criterion '{}' in {}; round.toml requires "
        "at least {}", pl.col(APP_ID), pl.col(n), pl.col("criterion"), pl.lit(reviews_file),
        pl.lit(need)), pl.col(APP_ID))


def _mark_eligibility(apps: pl.DataFrame, issues: pl.DataFrame,
                      files: dict[str, str]) -> pl.DataFrame:
    """eligible / reason / reason_detail from every issue that concerns an application."""
    apps_file = files["applications"]
    code, file = pl.col("code"), pl.col("file")
    reason = (pl.when(file == files["requests"]).then(pl.lit("invalid_request"))
              .when(file == files["reviews"]).then(pl.lit("invalid_review"))
              .when((code == "missing_value") & (pl.col("column") == APP_ID))
              .then(pl.lit("missing_application_id"))
              .when(code == "duplicate_id").then(pl.lit("duplicate_application_id"))
              .when(code == "bad_checksum").then(pl.lit("invalid_business_no"))
              .when(code.is_in(["no_request", "missing_reviews"])).then(code)
              .otherwise(pl.lit("invalid_field")))
    rank = reason.replace_strict({r: i for i, r in enumerate(schema.INELIGIBLE_REASONS)},
                                 return_dtype=pl.Int64)
    where = pl.when(pl.col("column").is_not_null()).then(pl.format(" [{}]", pl.col("column")))
    text = pl.concat_str([file, pl.lit(" row "), pl.col("row").cast(pl.String),
                          where.otherwise(pl.lit("")), pl.lit(": "), pl.col("message")])
    tagged = issues.with_columns(reason.alias("reason"), rank.alias("rank"), text.alias("text"))
    own = tagged.filter(file == apps_file).with_columns(pl.col("row").alias(SOURCE_ROW))
    foreign = (tagged.filter((file != apps_file) & pl.col(APP_ID).is_not_null())
               .join(apps.filter(pl.col(APP_ID).is_not_null()).select(APP_ID, SOURCE_ROW),
                     on=APP_ID, maintain_order="left"))
    # Issues come sorted by file, row, column...; a stable sort puts each application's
    # highest-priority problem first (one global sort, not one per group).
    per_app = (pl.concat([own, foreign], how="diagonal")
               .sort(SOURCE_ROW, "rank", maintain_order=True)
               .group_by(SOURCE_ROW, maintain_order=True)
               .agg(pl.col("reason").first().alias(schema.REASON), pl.col("text"))
               .select(SOURCE_ROW, schema.REASON,
                       pl.col("text").list.join("; ").alias(schema.REASON_DETAIL)))
    return (apps.join(per_app, on=SOURCE_ROW, how="left", maintain_order="left")
            .with_columns(pl.col(schema.REASON).is_null().alias(schema.ELIGIBLE)))


def _ordered(frame: pl.DataFrame, spec: schema.TableSpec,
             tail: tuple[str, ...] = (SOURCE_ROW,)) -> pl.DataFrame:
    """Schema columns first, then extra input columns, then intake's own."""
    extras = [c for c in frame.columns if c not in spec.required and c not in tail]
    return frame.select([*spec.required, *extras, *[c for c in tail if c in frame.columns]])


def read_round(round_dir: Path | str, config: RoundConfig | None = None) -> ValidatedRound:
    """Read and check a round folder; raises RoundError only when the round cannot run."""
    round_dir = Path(round_dir)
    if not round_dir.is_dir():
        raise RoundError(f"{round_dir}: round folder not found (or not a folder).")
    config = load_config(round_dir) if config is None else config
    today = date.today()
    hashes: dict[str, str] = {}
    files: dict[str, str] = {}
    raw: dict[str, pl.DataFrame] = {}
    for spec in schema.TABLES:
        path = _table_path(round_dir, spec)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RoundError(f"{path}: cannot read the file ({exc.strerror}).") from None
        hashes[path.name] = hashlib.sha256(data).hexdigest()
        files[spec.stem] = path.name
        raw[spec.stem] = _tidy(_READERS[path.suffix](data, path.name), spec, path.name)
    if (round_dir / schema.CONFIG_FILE).is_file():
        hashes[schema.CONFIG_FILE] = hashlib.sha256(
            (round_dir / schema.CONFIG_FILE).read_bytes()).hexdigest()

    capacity = _validate_capacity(raw["capacity"], files["capacity"], today)
    apps_file = files["applications"]
    apps, app_issues = _check_cells(raw["applications"], schema.APPLICATIONS, apps_file,
                                    today, pl.col(APP_ID))
    duplicate_ids = _duplicate_issues(raw["applications"], schema.APPLICATIONS, apps_file,
                                      "duplicate_id", APP_ID, pl.col(APP_ID))
    app_index = _app_index(apps)
    requests, request_issues = _validate_links(
        raw["requests"], schema.REQUESTS, files["requests"], today, app_index, apps_file,
        [("gpu_type", "unknown_gpu_type", capacity["gpu_type"], files["capacity"])])
    weighted = pl.Series(list(config.scoring.weights), dtype=pl.String)
    reviews, review_issues = _validate_links(
        raw["reviews"], schema.REVIEWS, files["reviews"], today, app_index, apps_file,
        [("criterion", "unknown_criterion", weighted, f"{schema.CONFIG_FILE} [scoring.weights]")])
    issues = (pl.concat([
        app_issues, duplicate_ids, request_issues, review_issues,
        _no_request_issues(apps, app_index, requests, apps_file, files["requests"]),
        _missing_review_issues(apps, app_index, reviews, config, apps_file, files["reviews"]),
    ]).sort("file", "row", "column", "code", "message", nulls_last=False))
    applications = _ordered(_mark_eligibility(apps, issues, files), schema.APPLICATIONS, _ADDED)
    return ValidatedRound(
        config=config, applications=applications,
        requests=_ordered(requests.drop(_APP), schema.REQUESTS),
        reviews=_ordered(reviews.drop(_APP), schema.REVIEWS),
        capacity=_ordered(capacity, schema.CAPACITY, ()), issues=issues,
        input_hashes=dict(sorted(hashes.items())), files=files)


# --- Saving and loading ----------------------------------------------------------

_TABLE_OUTPUTS = ("applications", "requests", "reviews", "capacity")
_ISSUES_FILE, _META_FILE = "issues.csv", "intake.json"


def save_validated(v: ValidatedRound, out_dir: Path) -> None:
    """Parquet per table, issues.csv (UTF-8 with BOM for Excel), intake.json, round.toml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem in _TABLE_OUTPUTS:
        getattr(v, stem).write_parquet(out_dir / f"{stem}.parquet")
    v.issues.write_csv(out_dir / _ISSUES_FILE, include_bom=True)
    meta = {"input_hashes": v.input_hashes, "files": v.files}
    (out_dir / _META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    (out_dir / schema.CONFIG_FILE).write_text(config_to_toml(v.config), encoding="utf-8")


def load_validated(out_dir: Path) -> ValidatedRound:
    out_dir = Path(out_dir)
    needed = [*(f"{s}.parquet" for s in _TABLE_OUTPUTS), _ISSUES_FILE, _META_FILE,
              schema.CONFIG_FILE]
    missing = [name for name in needed if not (out_dir / name).is_file()]
    if missing:
        raise RoundError(f"{out_dir}: not a complete intake result; missing {', '.join(missing)}.")
    tables = {s: pl.read_parquet(out_dir / f"{s}.parquet") for s in _TABLE_OUTPUTS}
    meta = json.loads((out_dir / _META_FILE).read_text(encoding="utf-8"))
    issues = pl.read_csv(out_dir / _ISSUES_FILE, schema=ISSUES_SCHEMA)
    return ValidatedRound(config=load_config(out_dir), issues=issues,
                          input_hashes=meta["input_hashes"], files=meta["files"], **tables)


# --- round.toml writer (the standard library reads TOML but cannot write it) ------


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)   # also 'inf' / 'nan', as in TOML
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _toml_lines(table: dict, path: tuple[str, ...] = ()) -> list[str]:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if v is not None and not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in table.items():
        name = ".".join(_toml_key(k) for k in (*path, key))
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_toml_lines(value, (*path, key))]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{name}]]", *_toml_lines(item, (*path, key))]
    return lines


def config_to_toml(config: RoundConfig) -> str:
    """round.toml text that parses back to an equal RoundConfig."""
    return "\n".join(_toml_lines(config.model_dump(by_alias=True))).lstrip() + "\n"
