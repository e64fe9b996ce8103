"""Audit trail of a round: one JSON line per published version, append-only.

``PUBLISH_ROOT/<round_id>.audit.jsonl`` (next to the round folder, not inside it: a round folder
holds immutable versions only). Each line records the version, what kind of publication it was
(initial allocation, refill, appeal), who triggered and who approved it (the Airflow user when
run through Airflow, "cli" otherwise), the as-of date, input hashes, a solver summary and a diff
summary. Lines are only ever appended (under the publisher's round lock), never rewritten.

The round report renders the trail as a timeline (allocation.publish.report). Airflow tasks
pass who triggered and approved (dags/voucher_common.audit_actor); the command line is "cli".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from allocation import files

CLI = "cli"


def audit_path(publish_root: Path, round_id: str) -> Path:
    return Path(publish_root) / f"{round_id}{files.AUDIT_SUFFIX}"


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
