"""Intake: reading round folders, per-cell issues, eligibility, fatal errors, save/load."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from polars.testing import assert_frame_equal

from allocation import schema
from allocation.config import parse_config
from allocation.errors import RoundError
from allocation.identifiers import complete_business_no
from allocation.intake import config_to_toml, load_validated, read_round, save_validated
from allocation.intake.tables import ISSUES_SCHEMA

TOML = """\
[round]
id = "test-2025"
budget_krw = 100000000
copay_share = 0.2

[award]
levels = [0.5, 1.0]
max_krw_per_company = 50000000
min_score = 0

[scoring]
weights = {{ tech = 0.6, impact = 0.4 }}
min_reviewers = {min_reviewers}
"""


def app(i: int, **changes: str) -> dict[str, str]:
    row = {
        "application_id": f"A{i}", "business_no": complete_business_no(f"12345678{i}"),
        "company_name": f"Company {i}", "company_size": "small", "region": "Seoul",
        "founded_on": "2020-01-02", "prior_awards": "0", "project_title": "LLM fine-tuning",
        "receipt_code": f"RC-{i:06d}-QX7K-M2ZP",   # 60+ bits: no weak_receipt_code issue
    }
    return row | changes


def base_tables() -> dict[str, list[dict[str, str]]]:
    return {
        "applications": [app(1), app(2), app(3)],
        "requests": [
            {"application_id": "A1", "gpu_type": "H100", "gpu_hours": "100"},
            {"application_id": "A1", "gpu_type": "A100", "gpu_hours": "50"},
            {"application_id": "A2", "gpu_type": "H100", "gpu_hours": "200"},
            {"application_id": "A3", "gpu_type": "A100", "gpu_hours": "10"},
        ],
        "reviews": [
            {"application_id": f"A{i}", "reviewer_id": r, "criterion": c, "score": "70"}
            for i in (1, 2, 3) for r in ("R1", "R2") for c in ("tech", "impact")
        ],
        "capacity": [
            {"gpu_type": "H100", "gpu_hours": "1000", "krw_per_gpu_hour": "3000"},
            {"gpu_type": "A100", "gpu_hours": "1000", "krw_per_gpu_hour": "2000"},
        ],
    }


def csv_text(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def make_round(tmp_path: Path, min_reviewers: int = 1, **tables) -> Path:
    """A round folder: base tables as CSV, overridden by rows (list), text (str) or bytes."""
    folder = tmp_path / "round"
    folder.mkdir()
    (folder / "round.toml").write_text(TOML.format(min_reviewers=min_reviewers), encoding="utf-8")
    for stem, content in (base_tables() | tables).items():
        if content is None:
            continue
        if isinstance(content, list):
            content = csv_text(content)
        path = folder / f"{stem}.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def with_rows(stem: str, rows_change) -> dict:
    rows = base_tables()[stem]
    return {stem: rows_change(rows)}


def one_issue(v, **where) -> dict:
    found = v.issues.filter(*[pl.col(k) == val for k, val in where.items()])
    assert found.height == 1, f"expected one issue {where}, got:\n{v.issues}"
    return found.row(0, named=True)


def application(v, source_row: int) -> dict:
    return v.applications.filter(pl.col("source_row") == source_row).row(0, named=True)


def assert_ineligible(v, source_row: int, reason: str) -> dict:
    assert v.applications.height == 3, "applications are never dropped"
    row = application(v, source_row)
    assert row["eligible"] is False
    assert row["reason"] == reason
    assert row["reason_detail"]
    return row


# --- A valid round -----------------------------------------------------------------


def test_valid_round_reads_with_schema_types(tmp_path):
    v = read_round(make_round(tmp_path))
    assert v.issues.is_empty()
    assert v.issues.schema == pl.Schema(ISSUES_SCHEMA)
    apps = v.applications
    # the receipt code leaves intake as its lookup master (allocation.intake.receipt)
    assert apps.columns == [*(c for c in schema.APPLICATIONS.required if c != "receipt_code"),
                            "source_row", "eligible", "reason", "reason_detail",
                            "lookup_master", "code_millibits", "code_iterations"]
    for col in schema.APPLICATIONS.columns:
        if col.name != "receipt_code":
            assert apps.schema[col.name] == schema.POLARS_TYPES[col.kind]
    assert apps["lookup_master"].is_not_null().all()
    assert apps.schema["source_row"] == pl.Int64 and apps.schema["eligible"] == pl.Boolean
    assert apps["source_row"].to_list() == [2, 3, 4]
    assert apps["eligible"].to_list() == [True, True, True]
    assert apps["reason"].null_count() == 3 and apps["reason_detail"].null_count() == 3
    assert apps["founded_on"][0].isoformat() == "2020-01-02"
    assert v.requests.columns == ["application_id", "gpu_type", "gpu_hours", "source_row"]
    assert v.requests.schema["gpu_hours"] == pl.Int64 and v.requests.height == 4
    assert v.reviews.schema["score"] == pl.Float64 and v.reviews.height == 12
    assert v.capacity.columns == ["gpu_type", "gpu_hours", "krw_per_gpu_hour"]
    assert v.capacity["gpu_type"].to_list() == ["A100", "H100"]
    assert v.files == {s: f"{s}.csv" for s in ("applications", "requests", "reviews", "capacity")}
    assert list(v.input_hashes) == sorted([*(f"{s}.csv" for s in v.files), "round.toml"])
    assert all(len(h) == 64 for h in v.input_hashes.values())
    assert v.config.round.id == "test-2025"


def test_read_is_deterministic_and_accepts_str_path(tmp_path):
    folder = make_round(tmp_path, **with_rows("applications", lambda r: r + [app(1)]))
    first, second = read_round(str(folder)), read_round(folder)
    for name in ("applications", "requests", "reviews", "capacity", "issues"):
        assert_frame_equal(getattr(first, name), getattr(second, name))


def test_whitespace_trimmed_case_normalised_and_blank_lines_skipped(tmp_path):
    rows = [app(1, company_name="  Padded  ", region="seoul", company_size="SMALL",
                business_no=complete_business_no("123456781").replace("-", "")), app(2), app(3)]
    text = csv_text(rows).replace("\nA2", "\n\n  A2  ") + "\n\n"
    v = read_round(make_round(tmp_path, applications=text))
    assert v.issues.is_empty()
    assert v.applications["source_row"].to_list() == [2, 4, 5]   # blank row 3 is not data
    first = application(v, 2)
    assert first["company_name"] == "Padded" and first["region"] == "Seoul"
    assert first["company_size"] == "small"
    assert first["business_no"] == complete_business_no("123456781")   # XXX-XX-XXXXX
    assert application(v, 4)["application_id"] == "A2"


# --- Bad cells in applications -----------------------------------------------------


@pytest.mark.parametrize("column, value, code, reason", [
    ("company_name", "", "missing_value", "invalid_field"),
    ("application_id", "", "missing_value", "missing_application_id"),
    ("prior_awards", "two", "bad_integer", "invalid_field"),
    ("prior_awards", "-1", "out_of_range", "invalid_field"),
    ("founded_on", "2020/13/01", "bad_date", "invalid_field"),
    ("founded_on", "2999-01-01", "out_of_range", "invalid_field"),
    ("region", "Mars", "unknown_value", "invalid_field"),
    ("company_size", "huge", "unknown_value", "invalid_field"),
    ("receipt_code", "abc", "too_short", "invalid_field"),
    ("business_no", "123-45-6789X", "bad_checksum", "invalid_business_no"),
])
def test_bad_application_cell(tmp_path, column, value, code, reason):
    folder = make_round(tmp_path, **with_rows(
        "applications", lambda r: [r[0], r[1] | {column: value}, r[2]]))
    v = read_round(folder)
    issue = one_issue(v, file="applications.csv", row=3, column=column)
    assert issue["code"] == code
    row = assert_ineligible(v, 3, reason)
    if column == "receipt_code":      # no code, no master
        assert row["lookup_master"] is None and row["code_millibits"] is None
    else:
        assert row[column] is None, "a failed cell is null in the typed table"
    assert "applications.csv row 3 [" + column + "]" in row["reason_detail"]
    if value and column != "receipt_code":
        assert value in issue["message"] and value in row["reason_detail"]
    assert v.applications.filter(pl.col("source_row") != 3)["eligible"].all()


def test_bad_checksum_message_and_secret_not_echoed(tmp_path):
    good = complete_business_no("123456782")
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    folder = make_round(tmp_path, **with_rows("applications", lambda r: [
        r[0], r[1] | {"business_no": bad, "receipt_code": "SECRET1"}, r[2]]))
    v = read_round(folder)
    assert one_issue(v, column="business_no")["code"] == "bad_checksum"
    assert bad in one_issue(v, column="business_no")["message"]
    assert "SECRET1" not in one_issue(v, column="receipt_code")["message"]
    row = assert_ineligible(v, 3, "invalid_field")   # invalid_field outranks invalid_business_no
    assert "bad_checksum" not in row["reason_detail"] and bad in row["reason_detail"]
    assert "SECRET1" not in row["reason_detail"]


def test_unknown_value_names_allowed_values(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "applications", lambda r: [r[0], r[1], r[2] | {"region": "Mars"}])))
    message = one_issue(v, code="unknown_value")["message"]
    assert "'Mars'" in message and "Seoul" in message and "Jeju" in message


def test_several_problems_listed_primary_by_priority(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows("applications", lambda r: [
        r[0], r[1] | {"application_id": "", "region": "Mars", "prior_awards": "x"}, r[2]])))
    row = assert_ineligible(v, 3, "missing_application_id")
    assert row["reason_detail"].count("; ") == 2
    assert "Mars" in row["reason_detail"] and "'x'" in row["reason_detail"]


def test_duplicate_application_id_marks_every_row(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "applications", lambda r: [r[0], r[1], r[1] | {"company_name": "Other"}])))
    dups = v.issues.filter(pl.col("code") == "duplicate_id")
    assert dups["row"].to_list() == [3, 4]
    assert dups["file"].unique().to_list() == ["applications.csv"]
    assert dups["column"].unique().to_list() == ["application_id"]
    assert "(3, 4)" in dups["message"][0]
    assert_ineligible(v, 3, "duplicate_application_id")
    assert_ineligible(v, 4, "duplicate_application_id")
    assert application(v, 2)["eligible"] is True


def test_founded_on_excel_midnight_datetime_accepted(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows("applications", lambda r: [
        r[0] | {"founded_on": "2019-05-06 00:00:00"}, r[1], r[2]])))
    assert v.issues.is_empty()
    assert application(v, 2)["founded_on"].isoformat() == "2019-05-06"


# --- Bad request rows ------------------------------------------------------------


@pytest.mark.parametrize("column, value, code", [
    ("gpu_hours", "ten", "bad_integer"),
    ("gpu_hours", "0", "out_of_range"),
    ("gpu_hours", "", "missing_value"),
    ("gpu_type", "TPU", "unknown_gpu_type"),
])
def test_bad_request_row(tmp_path, column, value, code):
    folder = make_round(tmp_path, **with_rows(
        "requests", lambda r: [r[0], r[1] | {column: value}, r[2], r[3]]))
    v = read_round(folder)
    issue = one_issue(v, file="requests.csv", row=3, column=column)
    assert issue["code"] == code and issue["application_id"] == "A1"
    if value:
        assert f"'{value}'" in issue["message"]
    row = assert_ineligible(v, 2, "invalid_request")
    assert "requests.csv row 3 [" + column + "]" in row["reason_detail"]
    assert 3 not in v.requests["source_row"].to_list()
    assert v.requests.height == 3, "valid requests of ineligible applications stay"


def test_unknown_gpu_type_lists_known_types(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "requests", lambda r: r[:3] + [r[3] | {"gpu_type": "TPU"}])))
    assert "A100, H100" in one_issue(v, code="unknown_gpu_type")["message"]


def test_duplicate_request_rows(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "requests", lambda r: r + [r[0] | {"gpu_hours": "5"}])))
    dups = v.issues.filter(pl.col("code") == "duplicate_row")
    assert dups["file"].unique().to_list() == ["requests.csv"]
    assert dups["row"].to_list() == [2, 6] and dups["column"].is_null().all()
    assert_ineligible(v, 2, "invalid_request")
    assert v.requests["source_row"].to_list() == [3, 4, 5]


def test_request_for_unknown_application_is_rejected(tmp_path):
    extra = {"application_id": "A9", "gpu_type": "H100", "gpu_hours": "1"}
    v = read_round(make_round(tmp_path, **with_rows("requests", lambda r: r + [extra])))
    issue = one_issue(v, file="requests.csv", row=6, column="application_id")
    assert issue["code"] == "unknown_application" and issue["application_id"] is None
    assert "'A9'" in issue["message"]
    assert "A9" not in v.requests["application_id"].to_list()
    assert v.applications["eligible"].all()


def test_no_request(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows("requests", lambda r: r[:3])))
    issue = one_issue(v, code="no_request")
    assert (issue["file"], issue["row"], issue["column"]) == ("applications.csv", 4, None)
    assert issue["application_id"] == "A3"
    assert_ineligible(v, 4, "no_request")


def test_only_request_invalid_gives_no_request_first_and_lists_both(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "requests", lambda r: r[:3] + [r[3] | {"gpu_hours": "-5"}])))
    row = assert_ineligible(v, 4, "no_request")
    assert "requests.csv row 5 [gpu_hours]" in row["reason_detail"]
    assert "no valid GPU request" in row["reason_detail"]


# --- Bad review rows -------------------------------------------------------------


@pytest.mark.parametrize("column, value, code", [
    ("score", "abc", "bad_number"),
    ("score", "101", "out_of_range"),
    ("score", "nan", "bad_number"),
    ("reviewer_id", "", "missing_value"),
    ("criterion", "beauty", "unknown_criterion"),
])
def test_bad_review_row(tmp_path, column, value, code):
    v = read_round(make_round(tmp_path, **with_rows(
        "reviews", lambda r: [r[0] | {column: value}] + r[1:])))
    issue = one_issue(v, file="reviews.csv", row=2, column=column)
    assert issue["code"] == code and issue["application_id"] == "A1"
    row = assert_ineligible(v, 2, "invalid_review")   # R2 still covers the criterion
    assert "reviews.csv row 2 [" + column + "]" in row["reason_detail"]
    assert v.reviews.height == 11


def test_unknown_criterion_names_weighted_criteria(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows(
        "reviews", lambda r: [r[0] | {"criterion": "beauty"}] + r[1:])))
    message = one_issue(v, code="unknown_criterion")["message"]
    assert "'beauty'" in message and "impact, tech" in message


def test_duplicate_review_rows(tmp_path):
    v = read_round(make_round(tmp_path, **with_rows("reviews", lambda r: r + [r[4]])))
    dups = v.issues.filter(pl.col("code") == "duplicate_row")
    assert dups["row"].to_list() == [6, 14] and dups["file"].unique().to_list() == ["reviews.csv"]
    assert_ineligible(v, 3, "invalid_review")


def test_review_for_unknown_application(tmp_path):
    extra = {"application_id": "X", "reviewer_id": "R1", "criterion": "tech", "score": "5"}
    v = read_round(make_round(tmp_path, **with_rows("reviews", lambda r: r + [extra])))
    issue = one_issue(v, code="unknown_application")
    assert (issue["file"], issue["row"], issue["column"]) == ("reviews.csv", 14, "application_id")
    assert v.applications["eligible"].all() and v.reviews.height == 12


def test_missing_reviews(tmp_path):
    # min 2 reviewers; A3 loses R2 on 'impact'
    v = read_round(make_round(tmp_path, min_reviewers=2, **with_rows(
        "reviews", lambda r: [x for x in r if not (x["application_id"] == "A3"
                                                   and x["reviewer_id"] == "R2"
                                                   and x["criterion"] == "impact")])))
    issue = one_issue(v, code="missing_reviews")
    assert (issue["file"], issue["row"], issue["column"]) == ("applications.csv", 4, None)
    assert "'impact'" in issue["message"] and "has 1 reviewer" in issue["message"]
    assert "at least 2" in issue["message"]
    assert_ineligible(v, 4, "missing_reviews")


# --- Encodings and formats -------------------------------------------------------


def test_cp949_csv_with_hangul(tmp_path):
    rows = [app(1, company_name="주식회사 한빛"), app(2, company_name="(주)가나다랩"), app(3)]
    v = read_round(make_round(tmp_path, applications=csv_text(rows).encode("cp949")))
    assert v.issues.is_empty()
    assert v.applications["company_name"].to_list()[:2] == ["주식회사 한빛", "(주)가나다랩"]


def test_utf8_bom_csv(tmp_path):
    rows = [app(1, company_name="한빛 AI"), app(2), app(3)]
    text = csv_text(rows).replace("\n", "\r\n")   # Windows line endings too
    v = read_round(make_round(tmp_path, applications=b"\xef\xbb\xbf" + text.encode()))
    assert v.issues.is_empty()
    assert v.applications.columns[0] == "application_id"
    assert v.applications["company_name"][0] == "한빛 AI"


def test_xlsx_with_date_and_number_cells(tmp_path):
    folder = make_round(tmp_path, applications=None)
    book = xlsxwriter.Workbook(str(folder / "applications.xlsx"))
    sheet, date_format = book.add_worksheet(), book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, list(schema.APPLICATIONS.required) + ["memo"])
    for r, row in enumerate([app(1), app(2), app(3, region="Mars")]):
        excel_row = r + 1 if r < 2 else r + 2          # leave Excel row 4 blank
        for c, (name, value) in enumerate(row.items()):
            if name == "founded_on":
                sheet.write_datetime(excel_row, c, datetime(2018, 3, 4), date_format)
            elif name == "prior_awards":
                sheet.write_number(excel_row, c, 2)
            else:
                sheet.write_string(excel_row, c, value)
    sheet.write_string(1, len(row), "note 1")
    book.close()
    v = read_round(folder)
    assert v.files["applications"] == "applications.xlsx"
    assert "applications.xlsx" in v.input_hashes
    apps = v.applications
    assert apps["source_row"].to_list() == [2, 3, 5]
    assert [d.isoformat() for d in apps["founded_on"]] == ["2018-03-04"] * 3
    assert apps["prior_awards"].to_list() == [2, 2, 2]
    assert apps["memo"].to_list() == ["note 1", None, None]
    issue = one_issue(v, code="unknown_value")
    assert (issue["file"], issue["row"], issue["column"]) == ("applications.xlsx", 5, "region")
    assert_ineligible(v, 5, "invalid_field")


def test_parquet_table(tmp_path):
    folder = make_round(tmp_path, requests=None)
    pl.DataFrame({
        "application_id": ["A1", "A2", "A3", "A3"],
        "gpu_type": ["H100", "H100", "A100", "H100"],
        "gpu_hours": [100, 200, 10, 0],
    }).write_parquet(folder / "requests.parquet")
    v = read_round(folder)
    assert v.files["requests"] == "requests.parquet"
    assert v.requests["gpu_hours"].to_list() == [100, 200, 10]
    issue = one_issue(v, file="requests.parquet")
    assert (issue["row"], issue["column"], issue["code"]) == (5, "gpu_hours", "out_of_range")


def test_extra_columns_carried_through(tmp_path):
    apps = [app(1, memo="call back"), app(2, memo=""), app(3, memo="x")]
    requests = [r | {"note": "n"} for r in base_tables()["requests"]]
    v = read_round(make_round(tmp_path, applications=apps, requests=requests))
    assert v.applications["memo"].to_list() == ["call back", None, "x"]
    assert v.applications.columns.index("memo") == len(schema.APPLICATIONS.required) - 1   # minus receipt_code
    assert v.applications.schema["memo"] == pl.String
    assert v.requests["note"].to_list() == ["n"] * 4


# --- Fatal errors ----------------------------------------------------------------


def fatal(folder) -> str:
    with pytest.raises(RoundError) as info:
        read_round(folder)
    return str(info.value)


def test_round_folder_missing(tmp_path):
    assert "not found" in fatal(tmp_path / "nope")


def test_table_file_missing(tmp_path):
    message = fatal(make_round(tmp_path, reviews=None))
    assert "reviews" in message and "reviews.csv, reviews.xlsx, reviews.parquet" in message


def test_two_files_for_one_table(tmp_path):
    folder = make_round(tmp_path)
    pl.DataFrame({"gpu_type": ["H100"]}).write_parquet(folder / "capacity.parquet")
    message = fatal(folder)
    assert "capacity.csv" in message and "capacity.parquet" in message


def test_required_column_missing(tmp_path):
    rows = [{"application_id": "A1", "gpu_type": "H100", "hours": "1"}]
    message = fatal(make_round(tmp_path, requests=rows))
    assert "requests.csv" in message and "gpu_hours" in message
    assert "columns found: application_id, gpu_type, hours" in message


def test_duplicate_column_name(tmp_path):
    message = fatal(make_round(tmp_path, capacity="gpu_type,gpu_type,gpu_hours,krw_per_gpu_hour\n"))
    assert "capacity.csv" in message and "gpu_type" in message


def test_reserved_column_name(tmp_path):
    apps = [app(1, eligible="yes")]
    message = fatal(make_round(tmp_path, applications=apps))
    assert "applications.csv" in message and "eligible" in message


def test_undecodable_csv(tmp_path):
    message = fatal(make_round(tmp_path, reviews=b"application_id,\xff\xfe\xff\n"))
    assert "reviews.csv" in message and "UTF-8" in message and "CP949" in message


def test_malformed_csv(tmp_path):
    message = fatal(make_round(tmp_path, capacity="gpu_type,gpu_hours,krw_per_gpu_hour\na,1,2,3\n"))
    assert "capacity.csv" in message and "CSV" in message


def test_empty_csv(tmp_path):
    assert "requests.csv" in fatal(make_round(tmp_path, requests=""))


@pytest.mark.parametrize("ext", [".xlsx", ".parquet"])
def test_unreadable_binary_file(tmp_path, ext):
    folder = make_round(tmp_path, applications=None)
    (folder / f"applications{ext}").write_bytes(b"this is not a real file")
    assert f"applications{ext}" in fatal(folder)


def test_capacity_without_rows(tmp_path):
    message = fatal(make_round(tmp_path, capacity="gpu_type,gpu_hours,krw_per_gpu_hour\n"))
    assert "capacity.csv" in message and "no data rows" in message


def test_every_bad_capacity_row_listed(tmp_path):
    rows = [{"gpu_type": "H100", "gpu_hours": "lots", "krw_per_gpu_hour": "3000"},
            {"gpu_type": "A100", "gpu_hours": "10", "krw_per_gpu_hour": "0"},
            {"gpu_type": "", "gpu_hours": "10", "krw_per_gpu_hour": "5"}]
    message = fatal(make_round(tmp_path, capacity=rows))
    assert "capacity.csv row 2 [gpu_hours]" in message and "'lots'" in message
    assert "capacity.csv row 3 [krw_per_gpu_hour]" in message and "'0'" in message
    assert "capacity.csv row 4 [gpu_type]" in message
    assert "3 problem(s)" in message


def test_duplicate_gpu_type_in_capacity(tmp_path):
    rows = base_tables()["capacity"] + [base_tables()["capacity"][0]]
    message = fatal(make_round(tmp_path, capacity=rows))
    assert "capacity.csv row 2 [gpu_type]" in message and "row 4" in message and "H100" in message


def test_missing_round_toml_is_fatal_unless_config_given(tmp_path):
    folder = make_round(tmp_path)
    config = read_round(folder).config
    (folder / "round.toml").unlink()
    assert "round.toml" in fatal(folder)
    v = read_round(folder, config)
    assert "round.toml" not in v.input_hashes and v.config == config


# --- Save / load -------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    folder = make_round(tmp_path, applications=[
        app(1, memo="메모"), app(2, region="Mars", memo=""), app(3, founded_on="2999-01-01")])
    v = read_round(folder)
    assert not v.issues.is_empty()
    save_validated(v, tmp_path / "out")
    back = load_validated(tmp_path / "out")
    for name in ("applications", "requests", "reviews", "capacity", "issues"):
        assert_frame_equal(getattr(back, name), getattr(v, name))
    assert back.config == v.config
    assert back.input_hashes == v.input_hashes and back.files == v.files
    assert (tmp_path / "out" / "issues.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_load_validated_incomplete_folder(tmp_path):
    with pytest.raises(RoundError, match="applications.parquet"):
        load_validated(tmp_path)


def test_config_to_toml_round_trip_with_quotas_and_bonus():
    config = parse_config("""
[round]
id = "r1"
name = "2025 \\"GPU\\" 바우처"
budget_krw = 5
copay_share = 0.25
[award]
levels = [0.5, 0.75, 1.0]
max_krw_per_company = 10
[scoring]
weights = { "기술성" = 0.5, impact = 0.5 }
bonus = { first_time = 2.5, non_capital_q = 1.0 }
[[quota]]
name = "non_capital_q"
regions_not_in = ["Seoul", "Gyeonggi"]
min_share = 0.3
[solver]
time_limit_s = 5.0
[lifecycle]
opens = "2025-01-01"
""")
    assert parse_config(config_to_toml(config)) == config


@pytest.mark.parametrize("stem, header", [
    ("applications", ",".join(app(1)) + "\n"),
    ("requests", "application_id,gpu_type,gpu_hours\n"),
])
def test_header_only_applications_or_requests_stop_the_round(tmp_path, stem, header):
    with pytest.raises(RoundError, match=rf"{stem}\.csv: the file has a header but no data rows"):
        read_round(make_round(tmp_path, **{stem: header}))


def test_budget_override_below_one_is_refused(valid_toml):
    config = parse_config(valid_toml)
    for bad in (0, -5):
        with pytest.raises(RoundError, match="at least 1"):
            config.with_overrides(budget_krw=bad)
    with pytest.raises(RoundError, match="budget_krw"):
        parse_config(valid_toml.replace("budget_krw = 5_000_000_000", "budget_krw = 0"))
