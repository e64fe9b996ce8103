"""The personal_data_retention DAG: dry run by default, then a purge recorded in the audit trail."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from allocation.publish import audit
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round
from bench.synthetic import generate_round

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_dry_run_then_purge(dagbag, own_publish_root, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("VOUCHER_RUNS_ROOT", str(runs))
    round_dir = generate_round(tmp_path / "round", 12, seed=2)
    run_round(round_dir, runs / "round" / "old")
    run_round(round_dir, runs / "round" / "new")
    stamp = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp()
    for path in [runs / "round" / "old", *(runs / "round" / "old").rglob("*")]:
        os.utime(path, (stamp, stamp))
    publish(runs / "round" / "new", own_publish_root, lookup_iterations=100_000)
    dag = dagbag.dags["personal_data_retention"]
    conf = {"round_id": "2026-R1", "before": (dt.date.today() + dt.timedelta(days=1)).isoformat()}

    dry = dag.test(run_conf={**conf, "apply": False})
    assert dry.state == "success"
    assert (runs / "round" / "old").is_dir() and (own_publish_root / "2026-R1" / "v1" / "r").is_dir()

    done = dag.test(run_conf={**conf, "apply": True})
    assert done.state == "success"
    assert not (runs / "round" / "old").exists() and (runs / "round" / "new").is_dir()
    assert not (own_publish_root / "2026-R1" / "v1" / "r").exists()
    entry = audit.read(own_publish_root, "2026-R1")[-1]
    assert entry["kind"] == "purge" and entry["via"] == "airflow" and entry["dag_id"] == "personal_data_retention"


def test_unknown_round_fails_with_a_plain_message(dagbag, own_publish_root):
    run = dagbag.dags["personal_data_retention"].test(
        run_conf={"round_id": "NOPE", "before": "2026-06-30", "apply": False})
    assert run.state == "failed"
