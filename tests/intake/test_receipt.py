"""Receipt codes at intake: the strength grade, the floor, masters instead of codes, weak codes."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from allocation.intake import load_validated, read_round, receipt, save_validated
from bench.synthetic import generate_round

ROOT = Path(__file__).resolve().parents[2]
YEAR = 365.25 * 86_400


def test_every_class_meets_the_floor_and_weaker_codes_cannot():
    """At the stated GPU rate, guessing a code of each class costs >= 100 GPU-years on average;
    a code one bit below the weakest class would need more than MAX_ITERATIONS."""
    assert receipt.GPU_ITERATIONS_PER_S == 11_157_200 * 999          # hashcat mode 10900, RTX 5090
    for bits, iterations in receipt.CLASSES:
        assert iterations <= receipt.MAX_ITERATIONS
        years = 2 ** (bits - 1) * iterations / receipt.GPU_ITERATIONS_PER_S / YEAR
        assert years >= receipt.FLOOR_GPU_YEARS, (bits, iterations, years)
        assert receipt.guess_cost_gpu_years(bits * 1000, iterations) >= 100
    weakest = receipt.MIN_CLASS_BITS
    assert receipt.required_iterations(weakest - 1) > receipt.MAX_ITERATIONS
    assert [b for b, _ in receipt.CLASSES] == list(range(weakest, 61))
    assert receipt.floor_json()["classes"][0] == {"min_millibits": weakest * 1000,
                                                   "iterations": receipt.CLASSES[0][1]}


@pytest.mark.parametrize("code, alphabet, milli, cls", [
    ("12345678", "digits", 8 * 3321, None),                          # 26.6 bits: weak
    ("12345678901234", "digits", 14 * 3321, 46),
    ("I8VVHKUFS4", "alphanumeric", 10 * 5169, 51),                   # the sample round's codes
    ("i8vv-hkuf s4", "alphanumeric", 10 * 5169, 51),                 # case, spaces, hyphens ignored
    ("abcdefghijk", "letters", 11 * 4700, 51),
    ("ABCD-2345-JKMN", "base32", 12 * 5000, 60),
    ("CJ3X-YNXK-DV5S-40H0", "base32", 16 * 5000, 60),                # voucher codes: 80 bits
    ("pa$$w0rd!", "ascii", 9 * 6066, 54),
    ("가나다라마바사아", "other", 8 * 6066, 48),                        # graded as printable ASCII
])
def test_strength_grade(code, alphabet, milli, cls):
    norm = receipt.normalise_code(code)
    assert receipt.alphabet_of(norm)[0] == alphabet
    assert receipt.millibits(code) == milli
    assert receipt.strength_class(milli) == cls
    assert receipt.iterations_for(code) == (None if cls is None else dict(receipt.CLASSES)[cls])


def test_ids_and_codes_normalise_the_same_way():
    assert receipt.normalise_id("  r1-000001\t") == "R1-000001"
    assert receipt.normalise_id("ｒ１-０００００１") == "R1-000001"               # NFKC (full width)
    assert receipt.normalise_code(" cj3x-ynxk dv5s-40h0 ") == "CJ3XYNXKDV5S40H0"
    salt = bytes(16)
    assert receipt.master(salt, "R", " r1-1 ", "abcd-2345-jkmn", 100) == \
        receipt.master(salt, "R", "R1-1", "ABCD2345JKMN", 100)


def test_voucher_codes_issues_strong_grouped_codes(tmp_path):
    run = subprocess.run([sys.executable, "-m", "allocation", "codes", "50"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    codes = run.stdout.split()
    assert len(codes) == len(set(codes)) == 50
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set(code.replace("-", "")) <= set(receipt.CROCKFORD)       # no I, L, O, U
        assert receipt.millibits(code) >= 60_000 and receipt.strength_class(receipt.millibits(code)) == 60
    out = tmp_path / "codes.csv"
    run = subprocess.run([sys.executable, "-m", "allocation", "codes", "3", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert out.stat().st_mode & 0o077 == 0 and out.read_text().splitlines()[0] == "receipt_code"


@pytest.fixture(scope="module")
def weak_round(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A 40-application synthetic round where 3 codes are weak (pass intake, below the floor)."""
    folder = generate_round(tmp_path_factory.mktemp("weak") / "round", 40, seed=5)
    path = folder / "applications.csv"
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    weak = {rows[0]["application_id"]: "12345678", rows[1]["application_id"]: "abcdefgh",
            rows[2]["application_id"]: "00000000000"}
    for row in rows:
        row["receipt_code"] = weak.get(row["application_id"], row["receipt_code"])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder, {r["application_id"]: r["receipt_code"] for r in rows}


def test_intake_keeps_masters_not_codes(weak_round, tmp_path):
    folder, codes = weak_round
    v = read_round(folder)
    save_validated(v, tmp_path / "intake")
    apps = pl.read_parquet(tmp_path / "intake" / "applications.parquet")
    assert "receipt_code" not in apps.columns
    assert {receipt.MASTER_COLUMN, receipt.MILLIBITS_COLUMN, receipt.ITERATIONS_COLUMN} <= set(apps.columns)
    # no code, in any case, anywhere in the run folder's intake
    blob = b"".join(p.read_bytes() for p in (tmp_path / "intake").iterdir())
    strong = [c for c in codes.values() if receipt.iterations_for(c)]
    assert strong and not [c for c in strong if c.encode() in blob or c.lower().encode() in blob]
    # the master is the documented PBKDF2 of the code with the round salt and the class iterations
    meta = json.loads((tmp_path / "intake" / "intake.json").read_text())
    salt = bytes.fromhex(meta["lookup_salt"])
    app_hash = v.input_hashes["applications.csv"]
    assert salt == receipt.round_salt(v.config.round.id, app_hash)
    row = apps.filter(pl.col(receipt.ITERATIONS_COLUMN).is_not_null()).row(0, named=True)
    code = codes[row["application_id"]]
    assert row[receipt.MASTER_COLUMN] == hashlib.pbkdf2_hmac(
        "sha256", receipt.normalise_code(code).encode(),
        salt + v.config.round.id.encode() + b"\x00" + row["application_id"].upper().encode(),
        row[receipt.ITERATIONS_COLUMN], 32)
    # the same applications file gives the same masters (refills and reruns)
    again = read_round(folder).applications
    assert again[receipt.MASTER_COLUMN].to_list() == apps[receipt.MASTER_COLUMN].to_list()
    assert load_validated(tmp_path / "intake").lookup_salt == meta["lookup_salt"]


def test_weak_codes_are_reported_and_listed_for_the_officer(weak_round, tmp_path):
    folder, codes = weak_round
    v = read_round(folder)
    save_validated(v, tmp_path / "intake")
    weak_ids = {a for a, c in codes.items() if receipt.iterations_for(c) is None}
    assert len(weak_ids) == 3
    issues = v.issues.filter(pl.col("code") == "weak_receipt_code")
    assert set(issues["application_id"]) == weak_ids
    assert (issues["column"] == "receipt_code").all()
    assert issues["message"].str.contains("no lookup file").all()
    for code in ("12345678", "abcdefgh", "00000000000"):
        assert not issues["message"].str.contains(code, literal=True).any()     # never echoed
    # a weak code is the programme's problem, not a reason to refuse the application
    apps = v.applications.filter(pl.col("application_id").is_in(list(weak_ids)))
    assert apps["eligible"].all() and apps[receipt.MASTER_COLUMN].is_null().all()
    listed = pl.read_csv(tmp_path / "intake" / "weak_receipt_codes.csv")
    assert set(listed["application_id"]) == weak_ids
    assert set(listed.columns) == {"application_id", "source_row", "bits", "needed_bits"}
    assert (listed["needed_bits"] == receipt.MIN_CLASS_BITS).all() and (listed["bits"] < 45).all()
