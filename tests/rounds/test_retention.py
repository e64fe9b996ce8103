"""Personal data removed when no longer needed (allocation.rounds.retention, voucher purge)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allocation import files
from allocation.config import RetentionSection
from allocation.errors import RoundError
from allocation.publish import audit, lookup
from allocation.publish.verify import cross_check, verify_round
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round
from allocation.rounds.retention import (Cutoffs, plan_by_policy, plan_purge, purge, retention_policy,
                                         run_retention)
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
    return {"runs": runs, "pub": pub, "v1": pub / ROUND_ID / "v1", "round": round_dir, "other": other}


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


# --- the retention policy (round.toml [retention]), dates injected ----------------------------

def _published_on(pub: Path) -> dt.date:
    """The date v1's signed manifest states (what the policy counts from)."""
    return dt.date.fromisoformat(files.read_json(pub / ROUND_ID / "v1" / files.MANIFEST)["published_at"][:10])


def _policy(round_dir: Path, **days) -> None:
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[retention]\n" + "".join(f"{k} = {v}\n" for k, v in days.items()))


def test_cutoffs_keep_each_kind_for_its_days_and_no_longer():
    policy = RetentionSection(lookup_files_days=30, run_folders_days=10, round_folder_days=None)
    cut = Cutoffs.from_policy(policy, dt.date(2027, 3, 31))
    assert (cut.lookup_files, cut.run_folders, cut.round_folder) == (dt.date(2027, 3, 1), dt.date(2027, 3, 21), None)
    assert Cutoffs.before(dt.date(2027, 1, 1)).round_folder is None
    assert Cutoffs.before(dt.date(2027, 1, 1), round_folder=True).round_folder == dt.date(2027, 1, 1)
    assert RetentionSection().lookup_files_days == 90 and RetentionSection().round_folder_days is None


def test_policy_removes_only_what_is_past_due(published):
    _policy(published["round"], lookup_files_days=30, run_folders_days=10, round_folder_days=60)
    day = _published_on(published["pub"])
    plan = lambda offset: plan_by_policy(ROUND_ID, published["pub"], published["runs"], [published["round"]],  # noqa: E731
                                         day + dt.timedelta(days=offset))
    on_30 = plan(30)            # the last day the lookup files are kept
    assert on_30.summary()["run_folders"] == ["rehearsal"]      # last written long ago
    assert on_30.lookup_files == {} and on_30.round_folders == {} and not on_30.closed
    assert on_30.policy["source"] == "round.toml of round folder round"
    assert any("round folder round stays" in n for n in on_30.notes)
    assert plan(31).summary()["lookup_files"]["v1"] > 1         # due the day after
    assert plan(60).round_folders == {}                         # the round is still open on day 60
    on_61 = plan(61)
    assert on_61.closed and on_61.kept_run_folder is None
    assert on_61.summary()["run_folders"] == ["official", "rehearsal"]   # the newest one goes with the round
    assert sorted(on_61.summary()["round_folder_files"]["round"]) == [
        "README.md", "applications.csv", "requests.csv", "reviews.csv"]
    # never the other round's run folder, whatever the date
    assert all(p.parent.name == "round" for p in on_61.run_folders)
    # nothing changed by planning
    assert (published["runs"] / "round" / "rehearsal").is_dir() and (published["round"] / "applications.csv").is_file()


def test_policy_comes_from_the_round_folder_else_the_run_folder_else_defaults(published, tmp_path):
    _policy(published["round"], lookup_files_days=7)
    assert retention_policy([published["round"]])[0].lookup_files_days == 7
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "round.toml").write_text((published["round"] / "round.toml").read_text().replace(
        "lookup_files_days = 7", "lookup_files_days = 40\nround_folder_days = 400"))
    merged, source = retention_policy([published["round"], copy])
    assert (merged.lookup_files_days, merged.round_folder_days) == (40, None) and "longest" in source
    official = published["runs"] / "round" / "official"
    assert retention_policy([], official) == (RetentionSection(), "round.toml in force in the newest version's run folder")
    assert retention_policy([])[1].startswith("defaults")
    (copy / "round.toml").write_text("[round]\nid = 1 = 2")
    with pytest.raises(RoundError, match="not valid TOML"):   # never guessed
        retention_policy([copy])


def test_scheduled_policy_run_applies_what_is_due_and_records_it(published):
    _policy(published["round"], lookup_files_days=30, run_folders_days=10, round_folder_days=60)
    day = _published_on(published["pub"])
    rounds_root = published["round"].parent
    actor = {"via": "airflow", "triggered_by": "airflow", "scheduled": True, "dag_id": "personal_data_retention",
             "run_id": "scheduled__x"}
    quiet = run_retention(published["pub"], published["runs"], rounds_root, as_of=day, apply=True, actor=actor)
    assert quiet["failed"] == {} and set(quiet["rounds"]) == {ROUND_ID}
    assert quiet["rounds"][ROUND_ID]["removed"]                  # the rehearsal run folder was due
    trail = audit.read(published["pub"], ROUND_ID)
    assert trail[-1]["kind"] == "purge" and trail[-1]["roles"]["triggered"] == "system"
    assert trail[-1]["as_of"] == day.isoformat() and trail[-1]["removed"]["run_folders"] == 1
    again = run_retention(published["pub"], published["runs"], rounds_root, as_of=day, apply=True, actor=actor)
    assert not again["rounds"][ROUND_ID]["removed"]              # nothing due: nothing recorded
    assert len(audit.read(published["pub"], ROUND_ID)) == len(trail)
    closing = run_retention(published["pub"], published["runs"], rounds_root, as_of=day + dt.timedelta(days=61),
                            apply=True, actor=actor)
    assert closing["rounds"][ROUND_ID]["closed"] and closing["rounds"][ROUND_ID]["round_folder_files"] == 4
    assert not (published["runs"] / "round" / "official").exists() and not (published["v1"] / "r").exists()
    assert (published["runs"] / "other" / "run").is_dir()
    assert sorted(p.name for p in published["round"].iterdir()) == ["PURGED.txt", "capacity.csv", "round.toml"]
    assert verify_round(published["pub"] / ROUND_ID)["ok"] and cross_check(published["pub"] / ROUND_ID)["ok"]


def test_round_folder_purge_leaves_a_note_and_validate_says_so(published):
    before = _published_on(published["pub"]) + dt.timedelta(days=1)
    plan = plan_purge(ROUND_ID, published["pub"], published["runs"], before, round_folders=[published["round"]])
    s = plan.summary()
    assert s["closed"] and sorted(s["round_folder_files"]["round"]) == [
        "README.md", "applications.csv", "requests.csv", "reviews.csv"]
    assert (published["round"] / "applications.csv").is_file()     # a plan removes nothing
    entry = purge(plan, published["pub"])
    assert entry["removed"]["round_folder_files"] == 4 and entry["closed"]
    kept = sorted(p.name for p in published["round"].iterdir())
    assert kept == ["PURGED.txt", "capacity.csv", "round.toml"]
    note = (published["round"] / "PURGED.txt").read_text(encoding="utf-8")
    assert note.startswith(f"This round folder was purged on {dt.date.today()}")
    assert "applications.csv" in note and "round.toml" in note
    # the public line counts; the officers' line names the folder and files
    assert str(published["round"]) not in audit.trail_path(published["pub"], ROUND_ID).read_text()
    officer = audit.read_officer(published["pub"], ROUND_ID)[-1]
    assert officer["round_folders"][str(published["round"].resolve())] == [
        "README.md", "applications.csv", "requests.csv", "reviews.csv"]
    validate = subprocess.run([sys.executable, "-m", "allocation", "validate", str(published["round"])],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert validate.returncode == 2 and "this round folder was purged" in validate.stderr, validate.stderr
    assert "This round folder was purged on" in validate.stderr and "missing" not in validate.stderr
    # purging again finds nothing to remove and records nothing
    again = plan_purge(ROUND_ID, published["pub"], published["runs"], before, round_folders=[published["round"]])
    assert again.empty and purge(again, published["pub"]) is None


def test_a_round_folder_of_another_round_is_refused(published):
    with pytest.raises(RoundError, match="is for round '2026-R9'"):
        plan_purge(ROUND_ID, published["pub"], published["runs"], dt.date(2030, 1, 1),
                   round_folders=[published["other"]])
    assert (published["other"] / "applications.csv").is_file()


def test_round_folder_stays_while_the_round_is_open(published):
    plan = plan_purge(ROUND_ID, published["pub"], published["runs"], _published_on(published["pub"]),
                      round_folders=[published["round"]])
    assert not plan.closed and plan.round_folders == {} and plan.kept_run_folder.name == "official"
    assert any("stays" in n for n in plan.notes)


def test_voucher_purge_policy_and_round_folder_dry_run(published):
    _policy(published["round"], round_folder_days=0)
    as_of = (_published_on(published["pub"]) + dt.timedelta(days=1)).isoformat()
    base = [sys.executable, "-m", "allocation", "purge", ROUND_ID, "--publish-root", str(published["pub"]),
            "--runs-root", str(published["runs"])]
    dry = subprocess.run([*base, "--policy", "--as-of", as_of, "--round-folder", str(published["round"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "round folder round: 4 file(s): README.md, applications.csv, requests.csv, reviews.csv" in dry.stdout
    assert "the round is closed" in dry.stdout and "Dry run: nothing was removed" in dry.stdout
    assert (published["round"] / "applications.csv").is_file()
    both = subprocess.run([*base, "--policy", "--before", as_of], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "either --before DATE or --policy" in both.stderr
