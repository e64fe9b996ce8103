"""Reading one input table and checking its cells: the building blocks of intake.

Every reader returns strings (so CSV, Excel and Parquet are checked alike); every check is a
vectorised polars expression and turns a bad cell into one issue row (ISSUES_SCHEMA) naming
the file, the row as the officer sees it (header = row 1), the column and what is wrong.
Used for the round's own tables (``allocation.intake.round``) and for the officers' files
after publication (``allocation.intake.officer_files``).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from allocation import files, schema, text
from allocation.errors import RoundError
from allocation.identifiers import business_no_is_valid_expr

APP_ID = "application_id"
SOURCE_ROW = schema.SOURCE_ROW
ISSUES_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(), "row": pl.Int64(), "column": pl.String(),
    "code": pl.String(), "message": pl.String(), "application_id": pl.String(),
}
# Columns intake adds; an input file may not bring its own.
ADDED = (SOURCE_ROW, schema.ELIGIBLE, schema.REASON, schema.REASON_DETAIL)
TMP = "__intake_"   # prefix of temporary columns


# --- Reading files ---------------------------------------------------------------


def purged_notice(round_dir: Path) -> str | None:
    """The first line of a purged round folder's note (allocation.rounds.retention), or None."""
    note = Path(round_dir) / files.PURGED_NOTE
    if not note.is_file():
        return None
    lines = note.read_text(encoding="utf-8", errors="replace").splitlines()
    return text.terminal(lines[0]) if lines else "This round folder was purged."


def table_path(round_dir: Path, spec: schema.TableSpec) -> Path:
    found = [round_dir / f"{spec.stem}{ext}" for ext in schema.TABLE_EXTENSIONS
             if (round_dir / f"{spec.stem}{ext}").is_file()]
    accepted = ", ".join(f"{spec.stem}{ext}" for ext in schema.TABLE_EXTENSIONS)
    if not found and (notice := purged_notice(round_dir)):
        raise RoundError(f"{round_dir}: this round folder was purged: its applicant data is gone after "
                         f"the retention period, so there is nothing to validate or allocate.\n"
                         f"  {notice}\n  (See {files.PURGED_NOTE} in the folder for what was removed.)")
    if not found:
        raise RoundError(f"{round_dir}: the {spec.stem} table is missing.\n"
                         f"  Add exactly one of: {accepted}")
    if len(found) > 1:
        raise RoundError(f"{round_dir}: the {spec.stem} table is there more than once: "
                         f"{' and '.join(p.name for p in found)}.\n"
                         f"  Keep exactly one of: {accepted}")
    return found[0]


def first_line(exc: Exception) -> str:
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
        raise RoundError(f"{file}: not a readable CSV file: {first_line(exc)}") from None


def _read_xlsx(data: bytes, file: str) -> pl.DataFrame:
    try:   # every cell as a string; keep empty rows so row numbers match Excel
        return pl.read_excel(io.BytesIO(data), engine="calamine", infer_schema_length=0,
                             drop_empty_rows=False, raise_if_empty=False)
    except Exception as exc:   # fastexcel raises its own exception types
        raise RoundError(f"{file}: cannot read the Excel workbook: {first_line(exc)}") from None


def _read_parquet(data: bytes, file: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise RoundError(f"{file}: cannot read the parquet file: {first_line(exc)}") from None
    for name, dtype in frame.schema.items():   # same checks as CSV: start from strings
        try:
            frame = frame.with_columns(pl.col(name).cast(pl.String))
        except pl.exceptions.PolarsError:
            raise RoundError(f"{file}: column '{name}' has type {dtype}, which cannot be "
                             f"read as text; use plain numbers, dates or strings.") from None
    return frame


READERS = {".csv": _read_csv, ".xlsx": _read_xlsx, ".parquet": _read_parquet}


def tidy(frame: pl.DataFrame, spec: schema.TableSpec, file: str) -> pl.DataFrame:
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
    reserved = [n for n in names if n in ADDED]
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


def cell_text(name: str) -> pl.Expr:
    """'column 'value'' for messages; secrets (receipt_code) are never echoed."""
    if name in schema.SECRET_COLUMNS:
        return pl.lit(f"{name} (value hidden)")
    return pl.format("{} '{}'", pl.lit(name), pl.col(name))


def _where_forbidden(value: str) -> str:
    found = text.first_forbidden(value)
    return f"{found[1]} at character {found[0]}" if found else "?"


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


def _parse_month(raw: pl.Expr) -> pl.Expr:
    """YYYY-MM (months 01-12); Excel turns '2026-05' into the date 2026-05-01, also accepted."""
    return raw.str.extract(r"^(\d{4}-(?:0[1-9]|1[0-2]))(?:-01(?:[ T]00:00(?::00(?:\.0+)?)?)?)?$", 1)


def _column_rules(col: schema.ColumnSpec, typed: str, today: date) -> tuple[pl.Expr, list[_Rule]]:
    """The typed value of a non-empty cell and the rules it must pass, in order."""
    raw, value, shown = pl.col(col.name), pl.col(typed), cell_text(col.name)
    # first: control and invisible formatting characters (never echoed back: the message names
    # the character and its position instead of repeating the value)
    rules: list[_Rule] = [_Rule("bad_character", raw.str.contains(text.FORBIDDEN_PATTERN), pl.format(
        "{} contains an invisible or control character ({}); retype the value without it",
        pl.lit(col.name), raw.map_elements(_where_forbidden, return_dtype=pl.String)))]
    if col.kind in (schema.ID, schema.TEXT):
        parsed = raw
        rules.append(_Rule("too_long", raw.str.len_chars() > col.max_length, pl.format(
            "{} is too long: {} characters, at most {} allowed",
            pl.lit(col.name), raw.str.len_chars(), pl.lit(col.max_length))))
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
    elif col.kind == schema.MONTH:
        parsed = _parse_month(raw)
        rules.append(_Rule("bad_month", value.is_null(), pl.format(
            "{} is not a month in the form YYYY-MM", shown)))
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


def issues_frame(frame: pl.DataFrame, file: str, column: str | None, code: str | pl.Expr,
            message: pl.Expr, app_id: pl.Expr) -> pl.DataFrame:
    """Issue rows (ISSUES_SCHEMA) for every row of `frame`."""
    code = pl.lit(code) if isinstance(code, str) else code
    return frame.select(
        pl.lit(file, pl.String).alias("file"), pl.col(SOURCE_ROW).alias("row"),
        pl.lit(column, pl.String).alias("column"), code.cast(pl.String).alias("code"),
        message.cast(pl.String).alias("message"), app_id.cast(pl.String).alias("application_id"))


def check_cells(frame: pl.DataFrame, spec: schema.TableSpec, file: str, today: date,
                 app_id: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed frame (null where a cell failed) and one issue per failed cell."""
    typed_name = {c.name: f"{TMP}typed_{c.name}" for c in spec.columns}
    code_name = {c.name: f"{TMP}code_{c.name}" for c in spec.columns}
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
        found.append(issues_frame(frame.filter(code.is_not_null()), file, col.name, code,
                             message, app_id))
    typed = frame.with_columns(
        pl.when(pl.col(code_name[c]).is_null()).then(pl.col(typed_name[c])).alias(c)
        for c in spec.required)
    return typed.drop(list(typed_name.values()) + list(code_name.values())), pl.concat(found)


def duplicate_issues(frame: pl.DataFrame, spec: schema.TableSpec, file: str, code: str,
                      column: str | None, app_id: pl.Expr) -> pl.DataFrame:
    """Every row whose (complete) key appears on more than one row."""
    key, hashed = list(spec.key), f"{TMP}hash"
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
        pl.len().alias(f"{TMP}n"),
        pl.col(SOURCE_ROW).sort().cast(pl.String).str.join(", ").alias(f"{TMP}rows"))
    dups = dups.join(rows, on=key, how="left", maintain_order="left")
    what = pl.concat_str([pl.format("{} '{}'", pl.lit(k), pl.col(k)) for k in key], separator=", ")
    message = pl.format("{} appears on {} rows ({}); it must appear only once",
                        what, pl.col(f"{TMP}n"), pl.col(f"{TMP}rows"))
    return issues_frame(dups, file, column, code, message, app_id)


def rows_without_issues(frame: pl.DataFrame, issues: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~pl.col(SOURCE_ROW).is_in(issues["row"].unique().implode()))




def read_table(path: Path, spec: schema.TableSpec) -> tuple[pl.DataFrame, str]:
    """One table file, tidied (trimmed strings, source_row), and the sha256 of its bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RoundError(f"{path}: cannot read the file ({exc.strerror}).") from None
    frame = tidy(READERS[Path(path).suffix](data, Path(path).name), spec, Path(path).name)
    return frame, hashlib.sha256(data).hexdigest()


def raise_issues(file: str, issues: pl.DataFrame, what: str) -> None:
    """For tables where any bad row stops the run (officers' files, the panel's): one RoundError
    listing every problem (file, row as in Excel, column, message, code)."""
    if issues.is_empty():
        return
    lines = [f"  - {file} row {r['row']}" + (f" [{r['column']}]" if r["column"] else "")
             + f": {r['message']} ({r['code']})"
             for r in issues.unique().sort("row", "column", "code", nulls_last=False).iter_rows(named=True)]
    raise RoundError(f"{file}: {len(lines)} problem(s); {what} cannot run until they are fixed "
                     f"(rows as in Excel, header = row 1):\n" + "\n".join(lines))


def optional_table_path(round_dir: Path, stem: str) -> Path | None:
    """An optional table's file in the round folder (<stem>.csv/.xlsx/.parquet), None when absent;
    RoundError when it is there more than once."""
    found = [Path(round_dir) / f"{stem}{ext}" for ext in schema.TABLE_EXTENSIONS
             if (Path(round_dir) / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise RoundError(f"{round_dir}: the {stem} table is there more than once: "
                         f"{' and '.join(p.name for p in found)}; keep exactly one.")
    return found[0] if found else None
