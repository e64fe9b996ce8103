"""The personal_data_retention DAG: a manual trigger is a dry run by default; the daily scheduled
run applies each round's retention policy (round.toml [retention]) as of its date and records
what it removed in the audit trails."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from allocation import files
from allocation.publish import audit
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round
from bench.synthetic import generate_round

pytestmark = pytest.mark.usefixtures("airflow_db")
MANUAL = {"round_id": "", "before": "", "round_folder": False, "apply": False}   # the form's defaults


def _as_scheduled(monkeypatch) -> None:
    """dag.test() always creates a manual run; make it create the run the scheduler would."""
    from sqlalchemy import select

    from airflow.models import dagrun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    def create(*, dag, run_id, logical_date, data_interval, run_after, conf, triggered_by,
               triggering_user_name, start_date, session):
        old = session.scalar(select(dagrun.DagRun).where(dagrun.DagRun.dag_id == dag.dag_id,
                                                         dagrun.DagRun.logical_date == logical_date))
        if old:
            session.delete(old)
            session.commit()
        return dag.create_dagrun(
            run_id=dagrun.DagRun.generate_run_id(run_type=DagRunType.SCHEDULED, logical_date=logical_date,
                                                 run_after=run_after),
            logical_date=logical_date, data_interval=data_interval, run_after=run_after, conf=conf,
            run_type=DagRunType.SCHEDULED, state=DagRunState.RUNNING,
            triggered_by=DagRunTriggeredByType.TIMETABLE, triggering_user_name=None,
            start_date=start_date, session=session)

    monkeypatch.setattr(dagrun, "get_or_create_dagrun", create)


def _age(folder) -> None:
    stamp = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp()
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (stamp, stamp))


def test_the_dag_runs_daily(dagbag):
    dag = dagbag.dags["personal_data_retention"]
    assert dag.timetable.expression == "0 3 * * *" and not dag.catchup
    assert dag.params["apply"] is False and dag.params["before"] == "" and dag.params["round_id"] == ""


def test_dry_run_then_purge(dagbag, own_publish_root, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("VOUCHER_RUNS_ROOT", str(runs))
    round_dir = generate_round(tmp_path / "round", 12, seed=2)
    run_round(round_dir, runs / "round" / "old")
    run_round(round_dir, runs / "round" / "new")
    _age(runs / "round" / "old")
    publish(runs / "round" / "new", own_publish_root, lookup_iterations=100_000)
    dag = dagbag.dags["personal_data_retention"]
    conf = {**MANUAL, "round_id": "2026-R1", "before": (dt.date.today() + dt.timedelta(days=1)).isoformat()}

    dry = dag.test(run_conf={**conf, "apply": False})
    assert dry.state == "success"
    assert (runs / "round" / "old").is_dir() and (own_publish_root / "2026-R1" / "v1" / "r").is_dir()

    done = dag.test(run_conf={**conf, "apply": True})
    assert done.state == "success"
    assert not (runs / "round" / "old").exists() and (runs / "round" / "new").is_dir()
    assert not (own_publish_root / "2026-R1" / "v1" / "r").exists()
    entry = audit.read(own_publish_root, "2026-R1")[-1]
    assert entry["kind"] == "purge" and entry["via"] == "airflow" and entry["roles"]["triggered"] == "operator"
    officer = audit.read_officer(own_publish_root, "2026-R1")[-1]
    assert officer["dag_id"] == "personal_data_retention" and officer["run_id"] == done.run_id
    assert officer["triggered_by"] == "dag_test" and "dag_test" not in audit.trail_path(own_publish_root, "2026-R1").read_text()


def test_scheduled_run_applies_each_rounds_policy(dagbag, own_publish_root, tmp_path, monkeypatch):
    runs, rounds = tmp_path / "runs", tmp_path / "rounds"
    monkeypatch.setenv("VOUCHER_RUNS_ROOT", str(runs))
    monkeypatch.setenv("VOUCHER_ROUNDS_ROOT", str(rounds))
    round_dir = generate_round(rounds / "r1", 12, seed=2)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[retention]\nlookup_files_days = 30\nrun_folders_days = 10\nround_folder_days = 60\n")
    run_round(round_dir, runs / "r1" / "rehearsal")
    run_round(round_dir, runs / "r1" / "official")
    _age(runs / "r1" / "rehearsal")
    publish(runs / "r1" / "official", own_publish_root, lookup_iterations=100_000)
    v1 = own_publish_root / "2026-R1" / "v1"
    published_on = dt.date.fromisoformat(files.read_json(v1 / files.MANIFEST)["published_at"][:10])
    dag = dagbag.dags["personal_data_retention"]

    def at(days: int) -> dt.datetime:
        return dt.datetime.combine(published_on + dt.timedelta(days=days), dt.time(3), tzinfo=dt.timezone.utc)

    # a manual trigger with the form's defaults: every round by its policy, but only a dry run
    manual = dag.test(run_conf=MANUAL, logical_date=at(61), run_after=at(61))
    assert manual.state == "success"
    assert (runs / "r1" / "rehearsal").is_dir() and (round_dir / "applications.csv").is_file() and (v1 / "r").is_dir()

    _as_scheduled(monkeypatch)
    # day 30: only the rehearsal run folder is due; the lookup files are kept their 30 days
    first = dag.test(run_conf=MANUAL, logical_date=at(30), run_after=at(30))
    assert first.state == "success" and first.run_type == "scheduled"
    assert not (runs / "r1" / "rehearsal").exists() and (runs / "r1" / "official").is_dir()
    assert (v1 / "r").is_dir() and (round_dir / "applications.csv").is_file()
    entry = audit.read(own_publish_root, "2026-R1")[-1]
    assert entry["kind"] == "purge" and entry["roles"]["triggered"] == "system"
    assert entry["as_of"] == (published_on + dt.timedelta(days=30)).isoformat()
    assert entry["removed"]["run_folders"] == 1 and entry["removed"]["lookup_files"] == {}
    # day 61: the lookup files, the round folder's applicant files and the last run folder
    second = dag.test(run_conf=MANUAL, logical_date=at(61), run_after=at(61))
    assert second.state == "success"
    assert not (v1 / "r").exists() and not (runs / "r1" / "official").exists()
    assert sorted(p.name for p in round_dir.iterdir()) == ["PURGED.txt", "capacity.csv", "round.toml"]
    trail = audit.read(own_publish_root, "2026-R1")
    assert trail[-1]["closed"] and trail[-1]["removed"]["round_folder_files"] == 4
    # day 62: nothing left to do, nothing recorded
    third = dag.test(run_conf=MANUAL, logical_date=at(62), run_after=at(62))
    assert third.state == "success" and len(audit.read(own_publish_root, "2026-R1")) == len(trail)


def test_unknown_round_fails_with_a_plain_message(dagbag, own_publish_root):
    run = dagbag.dags["personal_data_retention"].test(
        run_conf={**MANUAL, "round_id": "NOPE", "before": "2026-06-30"})
    assert run.state == "failed"
