"""GPU capacity by month, end to end: a generated month round from its files to outcomes, awards
per month, the approval text, and a refill that keeps accepted awards' months."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from allocation.model.money import hours_in_month
from allocation.publish.lookup import lookup_result, write_lookup_files
from allocation.rounds import allocate as stages
from allocation.rounds.approval import approval_markdown
from allocation.rounds.lifecycle.refill import run_lifecycle
from bench.synthetic import generate_round


@pytest.fixture(scope="module")
def month_round(tmp_path_factory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("months")
    round_dir = generate_round(base / "round", 50, seed=11, months=4)
    report = stages.run_round(round_dir, base / "out", time_limit_s=5)
    return round_dir, base / "out", report


def test_every_type_month_limit_holds_recomputed_from_the_files(month_round):
    round_dir, out, report = month_round
    capacity = pl.read_csv(round_dir / "capacity.csv")
    apps = pl.read_parquet(out / "intake" / "applications.parquet")
    outcomes = pl.read_parquet(out / "outcomes.parquet")
    awards = pl.read_parquet(out / "awards.parquet")
    requests = pl.read_parquet(out / "intake" / "requests.parquet")
    assert awards.columns == ["application_id", "gpu_type", "month", "gpu_hours", "krw"]
    used = awards.group_by("gpu_type", "month").agg(pl.col("gpu_hours").sum())
    joined = capacity.join(used, on=["gpu_type", "month"], how="left").fill_null(0)
    assert (joined["gpu_hours_right"] <= joined["gpu_hours"]).all()
    assert report["summary"]["funded"] > 0
    months = sorted(capacity["month"].unique().to_list())
    awarded = outcomes.filter(pl.col("status") == "awarded")
    assert awarded["start_month"].null_count() == 0
    assert outcomes.filter(pl.col("status") != "awarded")["start_month"].null_count() == \
        outcomes.filter(pl.col("status") != "awarded").height
    # every award: within the application's window, its hours spread by the documented rule
    info = apps.join(awarded.select("application_id", "start_month", "award_fraction"), on="application_id")
    for row in info.iter_rows(named=True):
        d = row["duration_months"] or 1
        start = months.index(row["start_month"])
        if row["earliest_start"]:
            assert start >= months.index(row["earliest_start"])
        if row["latest_start"]:
            assert start <= months.index(row["latest_start"])
        assert start + d <= len(months)
        mine = awards.filter(pl.col("application_id") == row["application_id"])
        for gpu, total in mine.group_by("gpu_type").agg(pl.col("gpu_hours").sum()).iter_rows():
            asked = requests.filter((pl.col("application_id") == row["application_id"])
                                    & (pl.col("gpu_type") == gpu))["gpu_hours"].item()
            assert total <= asked
            for month, hours in mine.filter(pl.col("gpu_type") == gpu).select("month", "gpu_hours").iter_rows():
                assert hours == int(hours_in_month(total, d, months.index(month) - start))
    by_month = report["summary"]["gpu_by_month"]
    assert set(by_month) == set(capacity["gpu_type"]) and list(next(iter(by_month.values()))) == months


def test_approval_text_shows_use_per_type_and_month(month_round):
    _, out, report = month_round
    text = approval_markdown(report, out)
    months = list(next(iter(report["summary"]["gpu_by_month"].values())))
    assert "| GPU | " + " | ".join(months) + " |" in text


def test_refill_keeps_accepted_awards_months(month_round, tmp_path):
    round_dir, out, _ = month_round
    awarded = pl.read_parquet(out / "outcomes.parquet").filter(pl.col("status") == "awarded")
    ids = awarded["application_id"].to_list()
    responses = pl.DataFrame({"application_id": ids,
                              "response": ["declined" if i % 3 == 0 else "accepted" for i in range(len(ids))],
                              "responded_on": ["2026-02-01"] * len(ids)})
    folder = tmp_path / "round"
    folder.mkdir()
    for f in round_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    responses.write_csv(folder / "responses.csv")
    run_lifecycle(folder, out, tmp_path / "refill", as_of=date(2026, 2, 2), time_limit_s=5)
    after = pl.read_parquet(tmp_path / "refill" / "outcomes.parquet")
    accepted = responses.filter(pl.col("response") == "accepted")["application_id"]
    before = awarded.filter(pl.col("application_id").is_in(accepted.implode())).select(
        "application_id", "start_month", "award_fraction").sort("application_id")
    kept = after.filter(pl.col("application_id").is_in(accepted.implode())).select(
        "application_id", "start_month", "award_fraction").sort("application_id")
    assert before.equals(kept) and before.height > 0
    old_lines = pl.read_parquet(out / "awards.parquet").filter(pl.col("application_id").is_in(accepted.implode()))
    new_lines = pl.read_parquet(tmp_path / "refill" / "awards.parquet").filter(
        pl.col("application_id").is_in(accepted.implode()))
    assert old_lines.equals(new_lines)
    state = json.loads((tmp_path / "refill" / "lifecycle.json").read_text())
    assert all("start_month" in s for s in state["awards"])


def test_lookup_record_tells_the_applicant_their_start_month(month_round, tmp_path):
    round_dir, out, _ = month_round
    awarded = pl.read_parquet(out / "outcomes.parquet").filter(pl.col("status") == "awarded").row(0, named=True)
    code = pl.read_csv(round_dir / "applications.csv").filter(
        pl.col("application_id") == awarded["application_id"])["receipt_code"].item()
    write_lookup_files(out, tmp_path, "2026-R1", workers=1)
    record = lookup_result(tmp_path, awarded["application_id"], code)
    assert record["start_month"] == awarded["start_month"]
    hours = pl.read_parquet(out / "awards.parquet").filter(
        pl.col("application_id") == awarded["application_id"]).group_by("gpu_type").agg(pl.col("gpu_hours").sum())
    assert record["gpu_hours_awarded"] == dict(hours.iter_rows())
