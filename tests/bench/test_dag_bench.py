"""bench/dag.py: per-task seconds and peak RSS from Airflow's task_instance records."""

from __future__ import annotations

import sqlite3

from bench.dag import task_rows


def _db(path, rows):
    with sqlite3.connect(path / "airflow.db") as db:
        db.execute("CREATE TABLE task_instance (dag_id TEXT, task_id TEXT, map_index INTEGER, state TEXT, "
                   "start_date TEXT, end_date TEXT)")
        db.executemany("INSERT INTO task_instance VALUES (?, ?, ?, ?, ?, ?)", rows)


def test_task_windows_mapped_tasks_and_rss_peaks(tmp_path):
    # epoch 1_000_000_000 = 2001-09-09 01:46:40 UTC
    _db(tmp_path, [
        ("allocation_round", "validate", -1, "success", "2001-09-09 01:46:40", "2001-09-09 01:46:50"),
        ("allocation_round", "seal", 0, "success", "2001-09-09 01:46:52", "2001-09-09 01:46:55"),
        ("allocation_round", "seal", 1, "success", "2001-09-09 01:46:53", "2001-09-09 01:47:00"),
        ("allocation_round", "approve", -1, "skipped", None, None),
        ("other_dag", "validate", -1, "failed", "2001-09-09 01:46:40", "2001-09-09 01:50:00"),
    ])
    t0 = 1_000_000_000
    samples = [(t0 + 1, 2**30), (t0 + 9, 3 * 2**30), (t0 + 11, 9 * 2**30), (t0 + 14, 2**29), (t0 + 19, 2**31), (t0 + 40, 5 * 2**30)]
    rows = task_rows(tmp_path, samples)
    assert [r["task"] for r in rows] == ["validate", "seal", "approve"]   # start order, unstarted last
    validate, seal, approve = rows
    assert (validate["seconds"], validate["peak_rss_gib"], validate["map_indexes"]) == (10.0, 3.0, 0)
    # mapped: first start to last end, both map indexes, the sample between the tasks not counted
    assert (seal["seconds"], seal["peak_rss_gib"], seal["map_indexes"]) == (8.0, 2.0, 2)
    assert approve["state"] == "skipped" and approve["seconds"] is None and approve["peak_rss_gib"] is None
