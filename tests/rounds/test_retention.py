"""Personal data removed when no longer needed (allocation.rounds.retention, voucher purge)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allocation.publish import audit, lookup
from allocation.publish.verify import verify_round
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round
from allocation.rounds.retention import plan_purge, purge
from bench.synthetic import generate_round

ROOT = Path(__file__).resolve().parents[2]
ROUND_ID = "2026-R1"
LONG_AGO = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp()


def _age(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (LONG_AGO, LONG_AGO))


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A round with two run folders (an old rehearsal and the one published as v1), a run folder
    of another round, and v1 in the publish root."""
    round_dir = generate_round(tmp_path / "round", 12, seed=2)
    other = generate_round(tmp_path / "other", 12, seed=3)
    (other / "round.toml").write_text((other / "round.toml").read_text().replace('id = "2026-R1"', 'id = "2026-R9"'))
    runs = tmp_path / "runs"
    run_round(round_dir, runs / "round" / "rehearsal")
    run_round(round_dir, runs / "round" / "official")
    run_round(other, runs / "other" / "run")
    for folder in (runs / "round" / "rehearsal", runs / "other" / "run"):
        _age(folder)
    pub = tmp_path / "pub"
    publish(runs / "round" / "official", pub)
    return {"runs": runs, "pub": pub, "v1": pub / ROUND_ID / "v1"}


def test_dry_run_lists_what_would_go_and_removes_nothing(published):
    before = dt.date.today() + dt.timedelta(days=1)
    plan = plan_purge(ROUND_ID, published["pub"], published["runs"], before)
    s = plan.summary()
    assert s["run_folders"] == ["rehearsal"]                  # not the published one, not another round's
    assert s["kept_run_folder"] == "official"
    assert s["lookup_files"]["v1"] > 1 and s["bytes"] > 0
    assert (published["runs"] / "round" / "rehearsal").is_dir() and (published["v1"] / "r").is_dir()
    # a date before v1 was published: its lookup files stay
    assert plan_purge(ROUND_ID, published["pub"], published["runs"], dt.date(2026, 1, 1)).lookup_files == {}


def test_purge_removes_personal_data_keeps_public_lists_and_records_it(published):
    before = dt.date.today() + dt.timedelta(days=1)
    entry = purge(plan_purge(ROUND_ID, published["pub"], published["runs"], before), published["pub"])
    assert not (published["runs"] / "round" / "rehearsal").exists()
    assert (published["runs"] / "round" / "official").is_dir() and (published["runs"] / "other" / "run").is_dir()
    assert not (published["v1"] / "r").exists() and not (published["v1"] / "lookup.json").exists()
    for name in ("awards_public.csv", "report.html", "manifest.json", "manifest.sig"):
        assert (published["v1"] / name).is_file(), name
    trail = audit.read(published["pub"], ROUND_ID)
    assert trail[-1]["kind"] == "purge" and trail[-1]["removed"]["run_folders"] == 1
    assert entry["removed"]["lookup_files"] == trail[-1]["removed"]["lookup_files"]
    # the signed version still verifies: the lookup files went by a recorded purge
    assert verify_round(published["pub"] / ROUND_ID)["problems"] == []
    # ... and nothing else may go missing
    (published["v1"] / "awards_public.csv").unlink()
    problems = verify_round(published["pub"] / ROUND_ID)["problems"]
    assert problems and "awards_public.csv" in problems[0]


def test_lookup_files_missing_without_a_recorded_purge_is_a_break(published):
    shutil.rmtree(published["v1"] / "r")
    assert verify_round(published["pub"] / ROUND_ID)["problems"]


def test_voucher_purge_is_a_dry_run_unless_asked(published):
    base = [sys.executable, "-m", "allocation", "purge", ROUND_ID, "--publish-root", str(published["pub"]),
            "--runs-root", str(published["runs"]), "--before", (dt.date.today() + dt.timedelta(days=1)).isoformat()]
    dry = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "Dry run: nothing was removed" in dry.stdout, dry.stderr
    assert (published["runs"] / "round" / "rehearsal").is_dir()
    done = subprocess.run([*base, "--apply"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Removed" in done.stdout, done.stderr
    assert not (published["runs"] / "round" / "rehearsal").exists()
    bad = subprocess.run([*base[:-1], "yesterday"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not a date" in bad.stderr
