"""The voucher command as an officer runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.synthetic import generate_round

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "rounds" / "sample"


def voucher(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "allocation", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_allocate_sample_round_prints_summary_and_is_optimal(tmp_path):
    result = voucher("allocate", SAMPLE, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("Funded:", "budget used", "GPU-hours", "H100", "proven optimal", "gap"):
        assert needle in out, needle
    report = json.loads((tmp_path / "out" / "solution.json").read_text())
    assert report["status"] == "optimal" and report["gap"] == 0.0
    assert report["summary"]["by_status"]["ineligible"] >= 5
    assert (tmp_path / "out" / "outcomes.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_validate_sample_lists_bad_rows_with_file_row_column():
    result = voucher("validate", SAMPLE)
    assert result.returncode == 0, result.stderr
    assert "applications.csv" in result.stdout and "bad_checksum" in result.stdout
    assert "requests.csv" in result.stdout and "reviews.csv" in result.stdout
    assert voucher("validate", SAMPLE, "--strict").returncode == 1


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: (d / "capacity.csv").unlink(), "capacity"),
    (lambda d: (d / "round.toml").write_text("[round\n"), "not valid TOML"),
    (lambda d: (d / "capacity.csv").write_text("gpu_type,gpu_hours,krw_per_gpu_hour\n"), "capacity"),
    (lambda d: (d / "requests.csv").write_text("application_id,gpu_type\nX,H100\n"), "gpu_hours"),
])
def test_broken_round_is_one_clear_error_without_traceback(tmp_path, breakage, expected):
    broken = tmp_path / "round"
    shutil.copytree(SAMPLE, broken)
    breakage(broken)
    result = voucher("allocate", broken, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_round_folder(tmp_path):
    result = voucher("validate", tmp_path / "nope")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "round folder not found" in result.stderr and "round.toml: missing" not in result.stderr


def test_generated_round_allocates(tmp_path):
    generate_round(tmp_path / "g", 40, seed=7)
    result = voucher("allocate", tmp_path / "g", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr


def test_publish_lookup_and_diff_commands(tmp_path):
    out, pub = tmp_path / "out", tmp_path / "pub"
    assert voucher("allocate", SAMPLE, "--out", out).returncode == 0
    result = voucher("publish", out, "--publish-root", pub)
    assert result.returncode == 0 and "v1" in result.stdout, result.stderr
    index = json.loads((pub / "index.json").read_text(encoding="utf-8"))   # the CLI refreshes it too
    assert index["rounds"]["2026-R1"]["latest"] == 1
    import polars as pl
    apps = pl.read_csv(SAMPLE / "applications.csv", encoding="cp949", infer_schema=False)   # codes: round folder only
    outcomes = pl.read_parquet(out / "outcomes.parquet")
    awarded = outcomes.filter(pl.col("status") == "awarded")["application_id"][0]
    code = apps.filter(pl.col("application_id") == awarded)["receipt_code"][0]
    found = voucher("lookup", awarded, "--published", pub / "2026-R1", "--code", code, "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["status"] == "awarded"
    wrong = voucher("lookup", awarded, "--published", pub / "2026-R1", "--code", "WRONGCODE99")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    missing = voucher("lookup", awarded, "--published", tmp_path / "nowhere", "--code", code)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    diff = voucher("diff", pub / "2026-R1" / "v1", pub / "2026-R1" / "v1")
    assert diff.returncode == 0, diff.stderr


def test_refill_command_after_a_decline(tmp_path):
    import polars as pl
    generate_round(tmp_path / "r", 60, seed=3)
    assert voucher("allocate", tmp_path / "r", "--out", tmp_path / "v1").returncode == 0
    outcomes = pl.read_parquet(tmp_path / "v1" / "outcomes.parquet")
    decliner = outcomes.filter(pl.col("status") == "awarded").sort("awarded_krw")["application_id"][-1]
    (tmp_path / "r" / "responses.csv").write_text(
        f"application_id,response,responded_on\n{decliner},declined,2026-01-05\n", encoding="utf-8")
    result = voucher("refill", tmp_path / "r", "--previous", tmp_path / "v1", "--out", tmp_path / "v2",
                     "--as-of", "2026-01-06")
    assert result.returncode == 0, result.stderr
    after = pl.read_parquet(tmp_path / "v2" / "outcomes.parquet")
    assert after.filter(pl.col("application_id") == decliner)["reason"][0] == "declined"
    (tmp_path / "r" / "responses.csv").write_text(
        "application_id,response,responded_on\nNOPE,maybe,yesterday\n", encoding="utf-8")
    bad = voucher("refill", tmp_path / "r", "--previous", tmp_path / "v1", "--out", tmp_path / "v3")
    assert bad.returncode == 2 and "responses.csv" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("budget", ["0", "-1"])
def test_budget_zero_or_negative_is_refused_with_exit_2(tmp_path, budget):
    result = voucher("allocate", SAMPLE, "--out", tmp_path / "out", "--budget-krw", budget)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "at least 1" in result.stderr and "Traceback" not in result.stderr


def test_header_only_requests_file_is_exit_2_naming_the_file(tmp_path):
    broken = tmp_path / "round"
    shutil.copytree(SAMPLE, broken)
    (broken / "requests.csv").write_text("application_id,gpu_type,gpu_hours\n", encoding="utf-8")
    result = voucher("allocate", broken, "--out", tmp_path / "out")
    assert result.returncode == 2 and "requests.csv" in result.stderr and "no data rows" in result.stderr


def test_empty_result_is_published_only_with_allow_empty(tmp_path):
    out, pub = tmp_path / "out", tmp_path / "pub"
    result = voucher("allocate", SAMPLE, "--out", out, "--budget-krw", "1")   # funds nobody
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "solution.json").read_text())["summary"]["funded"] == 0
    refused = voucher("publish", out, "--publish-root", pub)
    assert refused.returncode == 2 and "funds nobody" in refused.stderr and "--allow-empty" in refused.stderr
    assert not (pub / "2026-R1").exists() or not any((pub / "2026-R1").glob("v*"))
    allowed = voucher("publish", out, "--publish-root", pub, "--allow-empty")
    assert allowed.returncode == 0 and "v1" in allowed.stdout, allowed.stderr
