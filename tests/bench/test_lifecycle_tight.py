"""bench.lifecycle (refills and appeals at scale) and bench.tight (tight-quota small rounds)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from bench import lifecycle, tight
from bench.synthetic import build_round


@pytest.fixture
def bench_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VOUCHER_BENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_quota_shares_option_sets_both_minimum_shares():
    text = build_round(40, seed=1, quota_shares=(0.85, 0.6)).config_text
    assert "min_share = 0.85" in text and "min_share = 0.60" in text


def test_lifecycle_bench_runs_checks_and_catches_a_changed_kept_award(bench_data):
    res = lifecycle.run_size(300, 1, 5, 3, ["refill", "appeal"])
    for kind in ("refill", "appeal"):
        run = res[kind][0]
        assert "wall" in run, run
        assert run["checks"]["kept_identical"] and run["checks"]["limits_hold"]
        assert run["released"] > 0 and run["checks"]["kept"] > 0
    assert res["appeal"][0]["appeals_upheld"] == 3
    lines = lifecycle.table({300: res}) + lifecycle.verdicts({300: res})
    assert any("| refill |" in line for line in lines) and any("300 appeal" in line for line in lines)
    # a kept award's line changed in the run folder: the check fails
    base = bench_data / "lifecycle_300"
    out = base / "out_refill"
    awards = pl.read_parquet(out / "awards.parquet")
    state = json.loads((out / "lifecycle.json").read_text())
    state_kept = next(s["application_id"] for s in state["awards"] if s["state"] == "accepted")
    awards.with_columns(gpu_hours=pl.when(pl.col("application_id") == state_kept)
                        .then(pl.col("gpu_hours") + 1).otherwise(pl.col("gpu_hours"))) \
        .write_parquet(out / "awards.parquet")
    with pytest.raises(AssertionError):
        lifecycle.check_round(base / "round_refill", base / "allocate", out)


def test_tight_bench_row_against_the_exact_optimum(bench_data):
    row = tight.measure(40, 1, (0.85, 0.6), highs_limit=60)
    assert row["highs"]["status"] == "Optimal"
    assert row["ours"]["objective"] == row["highs"]["objective"]
    lines = tight.table([row])
    assert "Target" in "\n".join(lines) and lines[2].startswith("| 40, 0.85,0.6, 1 |")
