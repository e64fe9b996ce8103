"""Audit trail of a round: one JSON line per published version, append-only.

``PUBLISH_ROOT/<round_id>.audit.jsonl`` (next to the round folder, not inside it: a round folder
holds immutable versions only). Each line records the version, what kind of publication it was
(initial allocation, refill, appeal), who triggered and who approved it (the Airflow user when
run through Airflow, "cli" otherwise), the as-of date, input hashes, a solver summary and a diff
summary. Lines are only ever appended (under the publisher's round lock), never rewritten.

The round report renders the trail as a timeline (allocation.report).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

AUDIT_SUFFIX = ".audit.jsonl"
CLI = "cli"


def audit_path(publish_root: Path, round_id: str) -> Path:
    return Path(publish_root) / f"{round_id}{AUDIT_SUFFIX}"


def read(publish_root: Path, round_id: str) -> list[dict]:
    """Every entry, oldest first (a torn last line from a crash is skipped)."""
    path = audit_path(publish_root, round_id)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def append(publish_root: Path, round_id: str, entry: dict) -> None:
    """Append one entry (one line, flushed and fsynced). Callers hold the round's publish lock."""
    path = audit_path(publish_root, round_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def cli_actor() -> dict:
    return {"via": CLI, "triggered_by": CLI, "approved_by": CLI}


def actor_from_airflow_context(context) -> dict:
    """Who triggered the DAG run and who answered its `approve` step (Human-in-the-loop)."""
    run = context.get("dag_run")
    ti = context.get("ti")
    triggered = getattr(run, "triggering_user_name", None) or getattr(run, "run_type", None) or "airflow"
    approved = None
    if ti is not None:
        try:
            decision = ti.xcom_pull(task_ids="approve")
        except Exception:   # no approve task in this DAG, or no XCom backend reachable
            decision = None
        if isinstance(decision, dict):
            user = decision.get("responded_by_user") or {}
            approved = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user)
            if decision.get("chosen_options"):
                approved = f"{approved} ({', '.join(decision['chosen_options'])})"
    return {"via": "airflow", "triggered_by": str(triggered),
            "approved_by": approved or "approval not recorded (task marked success)",
            "dag_id": getattr(run, "dag_id", None), "run_id": getattr(run, "run_id", None)}


def current_actor() -> dict:
    """Who publishes when the caller names nobody: the command line.

    Airflow tasks pass their actor explicitly (dags/voucher_common.audit_actor); this package
    never imports Airflow.
    """
    return cli_actor()
