"""Intake of GPU capacity by month: the optional month columns, and what is wrong where."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest

from allocation.errors import RoundError
from allocation.identifiers import complete_business_no
from allocation.intake import read_round

TOML = """\
[round]
id = "months-2026"
budget_krw = 100000000
copay_share = 0.2

[award]
levels = [0.5, 1.0]
max_krw_per_company = 50000000
min_score = 0

[scoring]
weights = { tech = 1.0 }
min_reviewers = 1
"""
MONTHS = ("2026-11", "2026-12", "2027-01")


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    columns = list(dict.fromkeys(c for row in rows for c in row))
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _app(i: int, **extra: str) -> dict[str, str]:
    return {"application_id": f"A{i}", "business_no": complete_business_no(f"12345678{i}"),
            "company_name": f"Company {i}", "company_size": "small", "region": "Seoul",
            "founded_on": "2020-01-02", "prior_awards": "0", "project_title": "LLM",
            "receipt_code": f"RC-{i:06d}-QX7K-M2ZP", **extra}


def _capacity(months=MONTHS, changes=None) -> list[dict]:
    rows = [{"gpu_type": g, "gpu_hours": "1000", "krw_per_gpu_hour": p, "month": m}
            for g, p in (("H100", "3000"), ("A100", "2000")) for m in months]
    for (row, column), value in (changes or {}).items():
        rows[row][column] = value
    return rows


def make_round(tmp_path: Path, apps: list[dict], capacity: list[dict]) -> Path:
    folder = tmp_path / "round"
    folder.mkdir()
    (folder / "round.toml").write_text(TOML)
    ids = [a["application_id"] for a in apps]
    tables = {
        "applications": apps, "capacity": capacity,
        "requests": [{"application_id": a, "gpu_type": "H100", "gpu_hours": "90"} for a in ids],
        "reviews": [{"application_id": a, "reviewer_id": "R1", "criterion": "tech", "score": "70"} for a in ids],
    }
    for stem, rows in tables.items():
        (folder / f"{stem}.csv").write_text(_csv(rows))
    return folder


def _months(**cells) -> dict[str, str]:
    return {"duration_months": "", "earliest_start": "", "latest_start": ""} | cells


def test_month_columns_are_read_and_typed(tmp_path):
    apps = [_app(1, **_months(duration_months="2", earliest_start="2026-12")),
            _app(2, **_months(latest_start="2026-11-01 00:00:00"))]   # Excel's date for a month
    v = read_round(make_round(tmp_path, apps, _capacity()))
    assert v.issues.is_empty()
    assert v.capacity.columns == ["gpu_type", "gpu_hours", "krw_per_gpu_hour", "month"]
    assert v.capacity["month"].to_list() == list(MONTHS) * 2
    a = v.applications.sort("application_id")
    assert a["duration_months"].to_list() == [2, None]        # empty = default (1 month)
    assert a["earliest_start"].to_list() == ["2026-12", None]
    assert a["latest_start"].to_list() == [None, "2026-11"]
    assert a["eligible"].to_list() == [True, True]


@pytest.mark.parametrize(("cells", "column", "code", "words"), [
    ({"earliest_start": "2026-13"}, "earliest_start", "bad_month", "YYYY-MM"),
    ({"latest_start": "Dec 2026"}, "latest_start", "bad_month", "YYYY-MM"),
    ({"earliest_start": "2026-10"}, "earliest_start", "month_outside", "outside the capacity months"),
    ({"latest_start": "2027-02"}, "latest_start", "month_outside", "2026-11..2027-01"),
    ({"duration_months": "4"}, "duration_months", "duration_too_long", "longer than the 3 capacity months"),
    ({"duration_months": "0"}, "duration_months", "out_of_range", "out of range"),
    ({"duration_months": "2", "earliest_start": "2027-01"}, "earliest_start", "window_too_late",
     "ends after the last capacity month 2027-01"),
    ({"earliest_start": "2026-12", "latest_start": "2026-11"}, "latest_start", "window_empty", "before"),
])
def test_bad_month_cells_make_the_application_ineligible(tmp_path, cells, column, code, words):
    v = read_round(make_round(tmp_path, [_app(1), _app(2, **_months(**cells))], _capacity()))
    issue = v.issues.filter(pl.col("application_id") == "A2").row(0, named=True)
    assert (issue["file"], issue["row"], issue["column"], issue["code"]) == ("applications.csv", 3, column, code)
    assert words in issue["message"]
    status = dict(v.applications.select("application_id", "eligible").iter_rows())
    assert status == {"A1": True, "A2": False}
    assert v.applications.filter(pl.col("application_id") == "A2")["reason"].item() == "invalid_field"


@pytest.mark.parametrize(("changes", "months", "words"), [
    ({(1, "month"): ""}, MONTHS, "row 3 [month]: month is empty, but other rows carry a month"),
    ({(1, "month"): "2026/12"}, MONTHS, "row 3 [month]: month '2026/12' is not a month in the form YYYY-MM"),
    ({(1, "month"): "2026-11"}, MONTHS, "row 3 [month]: gpu_type 'H100', month '2026-11' appears on 2 rows"),
    ({(4, "krw_per_gpu_hour"): "2500"}, MONTHS, "row 6 [krw_per_gpu_hour]: krw_per_gpu_hour 2500 differs"),
    ({}, ("2026-11", "2027-01"), "capacity months must be consecutive: 2026-12 is missing"),
    ({(5, "month"): "2027-02"}, MONTHS, "gpu_type 'A100' has no row for month(s) 2027-01"),
])
def test_bad_monthly_capacity_stops_the_round(tmp_path, changes, months, words):
    with pytest.raises(RoundError) as err:
        read_round(make_round(tmp_path, [_app(1)], _capacity(months, changes)))
    assert "capacity.csv" in str(err.value) and words in str(err.value)


def test_month_columns_without_capacity_months_stop_the_round(tmp_path):
    capacity = [{k: v for k, v in row.items() if k != "month"} for row in _capacity(("2026-11",))]
    with pytest.raises(RoundError, match=r"applications.csv: column\(s\) duration_months plan the project "
                                         r"by month, but capacity.csv has no month column"):
        read_round(make_round(tmp_path, [_app(1, duration_months="2")], capacity))


def test_a_round_without_months_is_unchanged(tmp_path):
    capacity = [{k: v for k, v in row.items() if k != "month"} for row in _capacity(("2026-11",))]
    v = read_round(make_round(tmp_path, [_app(1)], capacity))
    assert v.capacity.columns == ["gpu_type", "gpu_hours", "krw_per_gpu_hour"]
    assert "duration_months" not in v.applications.columns and v.issues.is_empty()
