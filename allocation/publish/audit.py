"""Audit trail of a round: one JSON line per published version, append-only and hash-chained.

``PUBLISH_ROOT/<round_id>.audit.jsonl`` (next to the round folder, not inside it: a round folder
holds immutable versions only). Each line records the version, what kind of publication it was
(initial allocation, refill, appeal), who triggered and who approved it (the Airflow user when
run through Airflow, "cli" otherwise), the as-of date, input hashes, a solver summary and a diff
summary. Lines are only ever appended (under the publisher's round lock), never rewritten.

Tamper evidence: every line carries ``prev_hash``, the sha256 of the previous line's exact text
(``GENESIS`` for the first), and each published version's signed manifest pins the sha256 of its
own line. Editing, deleting, reordering or inserting a line breaks the chain or a pinned hash;
a line that does not parse is an error, never skipped (:func:`read` raises RoundError naming the
first break; ``voucher verify`` reports it).

The round report renders the trail as a timeline (allocation.publish.report). Airflow tasks
pass who triggered and approved (allocation.rounds.approval.approved_actor, from the approval
Airflow recorded); the command line is "cli".
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from allocation import files
from allocation.errors import RoundError

CLI = "cli"
GENESIS = "0" * 64          # prev_hash of the first line
PURGE = "purge"             # kind of an entry recording personal data removed (allocation.rounds.retention)


def audit_path(publish_root: Path, round_id: str) -> Path:
    return Path(publish_root) / f"{round_id}{files.AUDIT_SUFFIX}"


def line_hash(line: str) -> str:
    """sha256 of one line's exact text (without its newline)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def read_lines(publish_root: Path, round_id: str) -> list[tuple[str, dict]]:
    """[(line text, entry)] oldest first, after checking the whole chain; RoundError at the
    first broken, unparsable or unchained line."""
    path = audit_path(publish_root, round_id)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise RoundError(f"{path}: the last line is incomplete (torn write or tampering)")
    found, previous = [], GENESIS
    for number, line in enumerate(text.split("\n")[:-1] if text else [], start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise RoundError(f"{path} line {number}: not a JSON record (unparsable line)") from None
        if not isinstance(entry, dict):
            raise RoundError(f"{path} line {number}: not a JSON object")
        if entry.get("prev_hash") != previous:
            raise RoundError(f"{path} line {number}: chain broken (prev_hash does not match line "
                             f"{number - 1}; a line was edited, removed or inserted)")
        found.append((line, entry))
        previous = line_hash(line)
    return found


def read(publish_root: Path, round_id: str) -> list[dict]:
    """Every entry, oldest first, the chain checked (RoundError at the first break)."""
    return [entry for _, entry in read_lines(publish_root, round_id)]


def prepare_line(publish_root: Path, round_id: str, entry: dict) -> str:
    """The line that appends entry to the chain (prev_hash set); nothing is written."""
    lines = read_lines(publish_root, round_id)
    previous = line_hash(lines[-1][0]) if lines else GENESIS
    return json.dumps({**entry, "prev_hash": previous}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def append_line(publish_root: Path, round_id: str, line: str) -> None:
    """Append one prepared line (flushed and fsynced). Callers hold the round's publish lock."""
    path = audit_path(publish_root, round_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def append(publish_root: Path, round_id: str, entry: dict) -> str:
    """Append one entry to the chain; returns its line's hash. Callers hold the publish lock."""
    line = prepare_line(publish_root, round_id, entry)
    append_line(publish_root, round_id, line)
    return line_hash(line)


def cli_actor() -> dict:
    return {"via": CLI, "triggered_by": CLI, "approved_by": CLI}


def purged_lookup_versions(entries: list[dict]) -> set[int]:
    """Versions whose lookup files a recorded purge removed."""
    return {int(v[1:]) for e in entries if e.get("kind") == PURGE
            for v in (e.get("removed") or {}).get("lookup_files", {})}
