"""What-if scenarios (allocation.rounds.whatif) on the sample round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from allocation.config import load_config
from allocation.errors import RoundError
from allocation.rounds.allocate import run_round
from allocation.rounds.whatif import parse_scenario, run_whatif

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "rounds" / "sample"
SCENARIOS = ["budget=+10%", "quota.non_capital=0.6", "min_score=85"]


@pytest.fixture(scope="module")
def whatif(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("whatif")
    return out, run_whatif(SAMPLE, out, SCENARIOS)


def awarded(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "outcomes.parquet").filter(pl.col("status") == "awarded")


def test_the_base_scenario_is_voucher_allocate(whatif, tmp_path):
    out, rows = whatif
    run_round(SAMPLE, tmp_path / "allocate")
    for name in ("outcomes.csv", "awards.csv", "outcomes.parquet", "awards.parquet"):
        assert (out / "base" / name).read_bytes() == (tmp_path / "allocate" / name).read_bytes(), name
    assert rows[0]["scenario"] == "base" and rows[0]["gained"] == rows[0]["lost"] == 0


def test_each_scenario_applies_its_policy(whatif):
    out, rows = whatif
    base, budget, quota, score = rows
    assert [r["scenario"] for r in rows[1:]] == SCENARIOS
    # budget +10 %: the budget grows by exactly 10 %, and a proven optimum cannot get worse
    assert budget["budget_krw"] == round(base["budget_krw"] * 1.1)
    assert budget["status"] == base["status"] == "optimal" and budget["objective"] >= base["objective"]
    assert budget["awarded_krw"] > base["budget_krw"]            # it uses the extra money
    # the quota's share holds at the new minimum
    assert quota["quota_shares"]["non_capital"] >= 0.6 > base["quota_shares"]["non_capital"]
    # nobody below the new minimum score is funded
    funded = awarded(out / "scenario-3")
    assert funded.height == score["funded"] and funded["score"].min() >= 85
    assert awarded(out / "base")["score"].min() < 85             # the scenario really changed something


def test_gained_and_lost_are_counted_against_the_base(whatif):
    out, rows = whatif
    base_ids = set(awarded(out / "base")["application_id"])
    changes = pl.read_csv(out / "whatif_changes.csv")
    for k, row in enumerate(rows[1:], 1):
        ids = set(awarded(out / f"scenario-{k}")["application_id"])
        assert (row["gained"], row["lost"]) == (len(ids - base_ids), len(base_ids - ids))
        listed = changes.filter(pl.col("scenario") == row["scenario"])
        assert (ids ^ base_ids) <= set(listed["application_id"])
    table = json.loads((out / "whatif.json").read_text())
    assert [r["funded"] for r in table["scenarios"]] == [r["funded"] for r in rows]
    assert "| budget=+10% |" in (out / "whatif.md").read_text()


@pytest.mark.parametrize("text, message", [
    ("budget=+ten%", "not a valid value for budget"),
    ("quota.nope=0.3", "no quota named 'nope'"),
    ("quota.non_capital=1.5", "less than or equal to 1"),
    ("colour=blue", "unknown setting 'colour'"),
    ("budget", "is not setting=value"),
])
def test_a_bad_scenario_is_one_clear_error(text, message, tmp_path):
    with pytest.raises(RoundError, match=message):
        parse_scenario(text).apply(load_config(SAMPLE))
    result = subprocess.run([sys.executable, "-m", "allocation", "whatif", str(SAMPLE), "--out",
                             str(tmp_path / "o"), "--scenario", text], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "scenario" in result.stderr


def test_scenarios_solve_with_the_capped_time_limit_and_the_base_with_the_rounds(whatif):
    from allocation.rounds.whatif import SCENARIO_TIME_LIMIT_S
    out, _ = whatif
    base = json.loads((out / "base" / "solution.json").read_text())["solver"]
    assert base["deterministic_time_limit"] == load_config(SAMPLE).solver.time_limit_s > SCENARIO_TIME_LIMIT_S
    for k in range(1, len(SCENARIOS) + 1):
        solver = json.loads((out / f"scenario-{k}" / "solution.json").read_text())["solver"]
        assert solver["deterministic_time_limit"] == SCENARIO_TIME_LIMIT_S
