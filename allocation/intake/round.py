"""Intake: read a round folder, check every cell, and say exactly what is wrong where.

Fatal problems (missing folder, file or column, unreadable file, any bad capacity row)
raise RoundError with one message. Everything else becomes a row of `issues`;
applications are never dropped, only marked ineligible with a reason.
All checks are vectorised polars expressions, so a million applications take seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from allocation import files, schema
from allocation.config import RoundConfig, load_config
from allocation.errors import RoundError
from allocation.intake.panel_files import apply_exclusions, exclude_reviews, write_reassign_list
from allocation.intake import receipt
from allocation.intake.months import capacity_months, check_application_months, monthly_capacity_issues
from allocation.intake.tables import (ADDED, APP_ID, ISSUES_SCHEMA, SOURCE_ROW, TMP, check_cells,
                                      duplicate_issues, issues_frame, read_table,
                                      rows_without_issues, cell_text, table_path)

_APP = f"{TMP}app"   # dense integer index of a distinct application_id


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
    lookup_salt: str = ""        # hex: the round's PBKDF2 salt of the lookup masters (intake.receipt)



# --- Tables ------------------------------------------------------------------------


def _validate_capacity(frame: pl.DataFrame, file: str, today: date) -> pl.DataFrame:
    """Capacity is policy: any problem stops the round."""
    if frame.is_empty():
        raise RoundError(f"{file}: no data rows; the round needs at least one GPU type "
                         f"with gpu_hours and krw_per_gpu_hour.")
    if schema.CAPACITY_MONTH in frame.columns:   # GPU capacity by month (intake.months)
        typed, issues = monthly_capacity_issues(frame, file, today)
    else:
        typed, issues = check_cells(frame, schema.CAPACITY, file, today, pl.lit(None))
        issues = pl.concat([issues, duplicate_issues(frame, schema.CAPACITY, file,
                                                      "duplicate_row", "gpu_type", pl.lit(None))])
    if not issues.is_empty():
        lines = [f"  - {file} row {r['row']} [{r['column']}]: {r['message']} ({r['code']})"
                 for r in issues.sort("row", "column", "code").iter_rows(named=True)]
        raise RoundError(f"{file}: {len(lines)} problem(s) in the GPU capacity table; capacity "
                         f"is round policy, so the round cannot run until it is fixed:\n"
                         + "\n".join(lines))
    return typed.drop(SOURCE_ROW).sort("gpu_type", *([schema.CAPACITY_MONTH]
                                                      if schema.CAPACITY_MONTH in typed.columns else []))


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
    typed, cell_issues = check_cells(frame, spec, file, today, app_id)
    found = [cell_issues, duplicate_issues(frame, spec, file, "duplicate_row", None, app_id)]
    unknown = frame.filter(pl.col(APP_ID).is_not_null() & ~known_app)
    found.append(issues_frame(unknown, file, APP_ID, "unknown_application", pl.format(
        "{} does not match any application in {}", cell_text(APP_ID), pl.lit(apps_file)), app_id))
    for column, code, allowed, source in membership:
        listed = ", ".join(allowed.sort().to_list())
        bad = frame.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed.implode()))
        found.append(issues_frame(bad, file, column, code, pl.format(
            "{} is not in {} (known: {})", cell_text(column), pl.lit(source), pl.lit(listed)), app_id))
    issues = pl.concat(found)
    return rows_without_issues(typed, issues), issues


def _no_request_issues(apps: pl.DataFrame, app_index: pl.DataFrame, requests: pl.DataFrame,
                       file: str, requests_file: str) -> pl.DataFrame:
    counts = np.bincount(requests[_APP].to_numpy(), minlength=app_index.height)
    lacking = app_index.filter(pl.Series(counts == 0))[APP_ID]
    return issues_frame(apps.filter(pl.col(APP_ID).is_in(lacking.implode())), file, None, "no_request",
                   pl.format("application '{}' has no valid GPU request in {}",
                             pl.col(APP_ID), pl.lit(requests_file)), pl.col(APP_ID))


def _missing_review_issues(apps: pl.DataFrame, app_index: pl.DataFrame, reviews: pl.DataFrame,
                           config: RoundConfig, file: str, reviews_file: str) -> pl.DataFrame:
    """One issue per application and weighted criterion with too few distinct reviewers."""
    criteria, need, n = list(config.scoring.weights), config.scoring.min_reviewers, f"{TMP}n"
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
    return issues_frame(found, file, None, "missing_reviews", pl.format(
        "application '{}' has {} reviewer(s) on criterion '{}' in {}; round.toml requires "
        "at least {}", pl.col(APP_ID), pl.col(n), pl.col("criterion"), pl.lit(reviews_file),
        pl.lit(need)), pl.col(APP_ID))


def _mark_eligibility(apps: pl.DataFrame, issues: pl.DataFrame,
                      file_names: dict[str, str]) -> pl.DataFrame:
    """eligible / reason / reason_detail from every issue that concerns an application."""
    apps_file = file_names["applications"]
    code, file = pl.col("code"), pl.col("file")
    reason = (pl.when(file == file_names["requests"]).then(pl.lit("invalid_request"))
              .when(file == file_names["reviews"]).then(pl.lit("invalid_review"))
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
    file_names: dict[str, str] = {}
    raw: dict[str, pl.DataFrame] = {}
    for spec in schema.TABLES:
        path = table_path(round_dir, spec)
        raw[spec.stem], hashes[path.name] = read_table(path, spec)
        file_names[spec.stem] = path.name
    for stem in ("applications", "requests"):
        if raw[stem].is_empty():
            raise RoundError(f"{file_names[stem]}: the file has a header but no data rows; a round "
                             f"needs at least one {'application' if stem == 'applications' else 'GPU request'}.")
    if (round_dir / schema.CONFIG_FILE).is_file():
        hashes[schema.CONFIG_FILE] = hashlib.sha256(
            (round_dir / schema.CONFIG_FILE).read_bytes()).hexdigest()

    capacity = _validate_capacity(raw["capacity"], file_names["capacity"], today)
    apps_file = file_names["applications"]
    apps, app_issues = check_cells(raw["applications"], schema.APPLICATIONS, apps_file,
                                    today, pl.col(APP_ID))
    duplicate_ids = duplicate_issues(raw["applications"], schema.APPLICATIONS, apps_file,
                                      "duplicate_id", APP_ID, pl.col(APP_ID))
    apps, month_issues = check_application_months(apps, apps_file, file_names["capacity"],
                                                  capacity_months(capacity))
    app_index = _app_index(apps)
    requests, request_issues = _validate_links(
        raw["requests"], schema.REQUESTS, file_names["requests"], today, app_index, apps_file,
        [("gpu_type", "unknown_gpu_type", capacity["gpu_type"], file_names["capacity"])])
    weighted = pl.Series(list(config.scoring.weights), dtype=pl.String)
    reviews, review_issues = _validate_links(
        raw["reviews"], schema.REVIEWS, file_names["reviews"], today, app_index, apps_file,
        [("criterion", "unknown_criterion", weighted, f"{schema.CONFIG_FILE} [scoring.weights]")])
    # review panel (issue 18): reviews by conflicted or unassigned reviewers do not count
    reviews, excluded, panel_hashes = exclude_reviews(round_dir, apps, reviews, file_names["reviews"])
    hashes.update(panel_hashes)
    issues = (pl.concat([
        app_issues, duplicate_ids, request_issues, review_issues,
        *([month_issues] if month_issues.height else []),
        _no_request_issues(apps, app_index, requests, apps_file, file_names["requests"]),
        _missing_review_issues(apps, app_index, reviews, config, apps_file, file_names["reviews"]),
    ]).sort("file", "row", "column", "code", "message", nulls_last=False))
    marked, issues = apply_exclusions(_mark_eligibility(apps, issues, file_names), issues, excluded)
    # receipt codes stop here: each becomes its lookup master (intake.receipt); a weak code is
    # reported (no public file) but does not make the application ineligible
    salt = receipt.round_salt(config.round.id, hashes[apps_file])
    applications = receipt.seal_codes(_ordered(marked, schema.APPLICATIONS, ADDED), config.round.id, salt)
    weak = receipt.weak_rows(applications)
    if weak.height:
        issues = pl.concat([issues, issues_frame(
            weak, apps_file, "receipt_code", "weak_receipt_code",
            pl.format("receipt code of about {} bits; at least {} bits are needed for the lookup's "
                      "floor of {} GPU-years: this applicant gets no lookup file (issue a new code: "
                      "voucher codes)", pl.col(receipt.MILLIBITS_COLUMN) // 1000,
                      pl.lit(receipt.MIN_CLASS_BITS), pl.lit(receipt.FLOOR_GPU_YEARS)),
            pl.col(APP_ID))]).sort("file", "row", "column", "code", "message", nulls_last=False)
    return ValidatedRound(
        config=config, applications=applications,
        requests=_ordered(requests.drop(_APP), schema.REQUESTS),
        reviews=_ordered(reviews.drop(_APP), schema.REVIEWS),
        capacity=_ordered(capacity, schema.CAPACITY, ()), issues=issues,
        input_hashes=dict(sorted(hashes.items())), files=file_names, lookup_salt=salt.hex())


# --- Saving and loading ----------------------------------------------------------



def save_validated(v: ValidatedRound, out_dir: Path) -> None:
    """Parquet per table, issues.csv (UTF-8 with BOM for Excel), intake.json, round.toml."""
    out_dir = files.private_dir(Path(out_dir))
    for stem in files.INTAKE_TABLES:
        files.write_parquet(getattr(v, stem), out_dir / f"{stem}.parquet")
    files.write_csv(v.issues, out_dir / files.ISSUES_CSV)
    meta = {"input_hashes": v.input_hashes, "files": v.files, "lookup_salt": v.lookup_salt}
    files.write_text(out_dir / files.INTAKE_META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    weak = (receipt.weak_rows(v.applications).select(APP_ID, SOURCE_ROW, receipt.MILLIBITS_COLUMN)
            if receipt.MILLIBITS_COLUMN in v.applications.columns else pl.DataFrame())
    if weak.height:    # officers' list: who needs a new code (never the code itself)
        files.write_csv(weak.with_columns(bits=pl.col(receipt.MILLIBITS_COLUMN) / 1000,
                                          needed_bits=pl.lit(receipt.MIN_CLASS_BITS))
                        .drop(receipt.MILLIBITS_COLUMN), out_dir / files.WEAK_CODES_CSV)
    files.write_text(out_dir / schema.CONFIG_FILE, config_to_toml(v.config))
    write_reassign_list(v.applications, v.issues, out_dir)   # review panel: only when reviews were excluded


def load_validated(out_dir: Path) -> ValidatedRound:
    out_dir = Path(out_dir)
    needed = [*(f"{s}.parquet" for s in files.INTAKE_TABLES), files.ISSUES_CSV, files.INTAKE_META,
              schema.CONFIG_FILE]
    missing = [name for name in needed if not (out_dir / name).is_file()]
    if missing:
        raise RoundError(f"{out_dir}: not a complete intake result; missing {', '.join(missing)}.")
    tables = {s: pl.read_parquet(out_dir / f"{s}.parquet") for s in files.INTAKE_TABLES}
    meta = json.loads((out_dir / files.INTAKE_META).read_text(encoding="utf-8"))
    issues = pl.read_csv(out_dir / files.ISSUES_CSV, schema=ISSUES_SCHEMA)
    return ValidatedRound(config=load_config(out_dir), issues=issues,
                          input_hashes=meta["input_hashes"], files=meta["files"],
                          lookup_salt=meta.get("lookup_salt", ""), **tables)


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
