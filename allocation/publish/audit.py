"""Audit trail of a round: a public trail anyone can check, and the officers' trail bound to it.

PUBLIC — ``PUBLISH_ROOT/<round_id>/audit.jsonl``, served with the round: one JSON line per
publication (initial allocation, refill, appeal; an approval of an unchanged result, kind
"unchanged") and per purge of personal data (kind "purge"). A line says what happened and in
which *role* it was done — ``officer`` (triggered in Airflow by a named user), ``approver``
(the recorded Approve), ``operator`` (the command line, or a purge started by hand), ``system``
(a scheduled or unattended run) — with the as-of date, input hashes, a solver summary and a diff
summary. It never holds an account name or a server path, unless round.toml opts in
(``[publish] show_staff_names = true``: the accounts that triggered and approved, under
``"staff"``; still no path).

OFFICERS' — ``files.officer_root(PUBLISH_ROOT)/<round_id>.audit.jsonl`` (next to the publish
root, folder 0700, file 0600, never served): one line per public line with the full detail —
account names (Airflow user, approver id; the local account for the command line), the run
folder, the Airflow DAG and run id, the paths a purge removed. Each carries ``public_sha256``,
the sha256 of the public line it belongs to, and the public line carries ``officer_sha256``, the
sha256 of the officers' detail with a random salt (so it reveals nothing guessable). ``voucher
verify ROUND --officer-trail`` checks that the two trails match one to one
(allocation.publish.verify.cross_check).

Both are append-only hash chains: every line carries ``prev_hash``, the sha256 of the previous
line's exact text (``GENESIS`` for the first), and each published version's signed manifest
pins the sha256 of its own public line. Editing, deleting, reordering or inserting a line breaks
the chain or a pinned hash; a line that does not parse is an error, never skipped (RoundError
naming the first break; ``voucher verify`` reports it). Lines are appended under the
publisher's round lock: the officers' line first, then the public one.

LEGACY — a round first published before this split keeps its trail where it was,
``PUBLISH_ROOT/<round_id>.audit.jsonl`` (its early lines name accounts and the run folder; the
signed manifests pin their hashes, so they cannot be redacted without breaking verification).
Later lines of such a round go to the same file in the public form above, with officers' lines
as for any round; a legacy line is its own detail.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import secrets
from pathlib import Path

from allocation import files
from allocation.errors import RoundError

CLI = "cli"
AIRFLOW = "airflow"
GENESIS = "0" * 64          # prev_hash of the first line
PURGE = "purge"             # kind of an entry recording personal data removed (allocation.rounds.retention)
FORMAT = 2                  # "format" of every line written since the public/officers' split
# fields of an officers' line that bind it to its public line (outside the detail's commitment)
BINDING_KEYS = ("format", "round_id", "public_sha256", "kind", "version", "prev_hash")
OFFICER, APPROVER, OPERATOR, SYSTEM = "officer", "approver", "operator", "system"
ROLES = (OFFICER, APPROVER, OPERATOR, SYSTEM)
# what an actor dict (allocation.rounds.approval.approved_actor, DAGs, cli_actor) may carry;
# all of it goes to the officers' line only
ACTOR_KEYS = ("via", "triggered_by", "approved_by", "approver_id", "approved_at", "approved_fingerprint",
              "four_eyes", "dag_id", "run_id", "account", "scheduled", "trigger_role")


# --- where the trails are ---------------------------------------------------------------

def trail_path(publish_root: Path, round_id: str) -> Path:
    """The round's public trail: PUBLISH_ROOT/<round_id>/audit.jsonl, or the legacy
    PUBLISH_ROOT/<round_id>.audit.jsonl of a round whose trail started there."""
    legacy = Path(publish_root) / f"{round_id}{files.AUDIT_SUFFIX}"
    return legacy if legacy.is_file() else Path(publish_root) / round_id / files.AUDIT_TRAIL


audit_path = trail_path   # the name of earlier callers


def officer_path(publish_root: Path, round_id: str) -> Path:
    """The round's officers' trail (files.officer_root: next to the publish root, 0700)."""
    return files.officer_root(publish_root) / f"{round_id}{files.AUDIT_SUFFIX}"


# --- reading ----------------------------------------------------------------------------

def line_hash(line: str) -> str:
    """sha256 of one line's exact text (without its newline)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def read_chain(path: Path) -> list[tuple[str, dict]]:
    """[(line text, entry)] of one trail file, oldest first, after checking the whole chain;
    RoundError at the first broken, unparsable or unchained line. No file: []."""
    path = Path(path)
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


def read_lines(publish_root: Path, round_id: str) -> list[tuple[str, dict]]:
    """The public trail's [(line text, entry)], oldest first, the chain checked."""
    return read_chain(trail_path(publish_root, round_id))


def read(publish_root: Path, round_id: str) -> list[dict]:
    """Every public entry, oldest first, the chain checked (RoundError at the first break)."""
    return [entry for _, entry in read_lines(publish_root, round_id)]


def read_officer(publish_root: Path, round_id: str) -> list[dict]:
    """Every officers' entry, oldest first, the chain checked."""
    return [entry for _, entry in read_chain(officer_path(publish_root, round_id))]


def is_legacy(entry: dict) -> bool:
    """A public line from before the split: it carries its own detail (names, run folder)."""
    return entry.get("format") != FORMAT


def detailed(publish_root: Path, round_id: str) -> list[tuple[str, dict, dict]]:
    """[(public line, public entry, detail)], oldest first: detail is the officers' line bound
    to the public line ({} when there is none), or the legacy line itself. Both chains checked."""
    officer = {e.get("public_sha256"): e for _, e in read_chain(officer_path(publish_root, round_id))}
    return [(text, entry, entry if is_legacy(entry) else officer.get(line_hash(text), {}))
            for text, entry in read_lines(publish_root, round_id)]


# --- writing ----------------------------------------------------------------------------

def _chained(path: Path, entry: dict) -> str:
    lines = read_chain(path)
    previous = line_hash(lines[-1][0]) if lines else GENESIS
    return json.dumps({**entry, "prev_hash": previous}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def _append(path: Path, line: str, mode: int) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def prepare_line(publish_root: Path, round_id: str, entry: dict) -> str:
    """The public line that appends entry to the chain (prev_hash set); nothing is written."""
    return _chained(trail_path(publish_root, round_id), entry)


def _canonical(data: dict) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def commitment(officer_entry: dict) -> str:
    """sha256 of an officers' line's detail (everything but BINDING_KEYS), salt included: what
    its public line records as ``officer_sha256``."""
    return hashlib.sha256(_canonical({k: v for k, v in officer_entry.items()
                                      if k not in BINDING_KEYS}).encode("utf-8")).hexdigest()


def prepare(publish_root: Path, round_id: str, entry: dict, detail: dict) -> tuple[str, str]:
    """(public line, officers' line) that append entry and its detail to the two chains; nothing
    is written. The two are bound both ways: the officers' line records the public line's
    sha256, the public line the sha256 of the salted detail (``officer_sha256``; the random salt
    keeps anyone from confirming a guessed name or path against it), so neither side can be
    edited or swapped without the cross-check noticing."""
    salted = {**detail, "salt": secrets.token_hex(16)}
    line = prepare_line(publish_root, round_id, {**entry, "format": FORMAT, "officer_sha256": commitment(salted)})
    officer = {**salted, "format": FORMAT, "round_id": round_id, "public_sha256": line_hash(line),
               "kind": entry.get("kind"), "version": entry.get("version")}
    return line, _chained(officer_path(publish_root, round_id), officer)


def append_line(publish_root: Path, round_id: str, line: str, officer_line: str | None = None) -> None:
    """Append one prepared public line (and first its officers' line), flushed and fsynced.
    Callers hold the round's publish lock. The public trail is world-readable (it is served);
    the officers' trail is 0600 in its 0700 folder."""
    if officer_line is not None:
        folder = files.private_dir(files.officer_root(publish_root))
        _append(folder / f"{round_id}{files.AUDIT_SUFFIX}", officer_line, files.PRIVATE_FILE)
    path = trail_path(publish_root, round_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _append(path, line, 0o644)


def append(publish_root: Path, round_id: str, entry: dict) -> str:
    """Append one public entry as it is (no officers' line); returns its line's hash. Callers
    hold the publish lock. Use :func:`record` for anything an actor did."""
    line = prepare_line(publish_root, round_id, entry)
    append_line(publish_root, round_id, line)
    return line_hash(line)


def record(publish_root: Path, round_id: str, public: dict, detail: dict) -> str:
    """Append a public entry and its officers' line (detail); returns the public line's hash."""
    line, officer_line = prepare(publish_root, round_id, public, detail)
    append_line(publish_root, round_id, line, officer_line)
    return line_hash(line)


# --- who acted: roles for the public line, names for the officers' ----------------------

def _account() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):   # no login name and no passwd entry (some containers)
        return "unknown"


def cli_actor() -> dict:
    """The command line: the local account that ran it is named in the officers' trail only."""
    return {"via": CLI, "triggered_by": CLI, "approved_by": CLI, "account": _account()}


def roles(actor: dict) -> dict:
    """{"triggered": role, "approved": role or None} of an actor (see the module docstring)."""
    if actor.get("via") != AIRFLOW:
        return {"triggered": OPERATOR, "approved": OPERATOR if actor.get("approved_by") else None}
    if actor.get("scheduled"):
        triggered = SYSTEM
    elif actor.get("trigger_role") in ROLES:
        triggered = actor["trigger_role"]
    else:
        named = actor.get("triggered_by") not in (None, "", "unknown", AIRFLOW)
        triggered = OFFICER if named else SYSTEM
    return {"triggered": triggered, "approved": APPROVER if actor.get("approved_by") else None}


def public_actor(actor: dict, *, show_staff_names: bool = False) -> dict:
    """What the public line says about who acted: roles, whether four eyes held, when it was
    approved and what — and the account names only when the round opts in."""
    public = {"via": actor.get("via") if actor.get("via") in (AIRFLOW, CLI) else CLI, "roles": roles(actor),
              **{k: actor[k] for k in ("four_eyes", "approved_at", "approved_fingerprint") if actor.get(k)}}
    if show_staff_names:
        public["staff"] = {k: str(actor.get("account") if actor.get("via") == CLI else actor.get(k) or "")
                           for k in ("triggered_by", "approved_by") if actor.get(k)}
    return public


def officer_detail(actor: dict, **more) -> dict:
    """The officers' line: every actor field, plus more (run folder, purged paths …)."""
    return {**{k: actor[k] for k in ACTOR_KEYS if actor.get(k) is not None},
            "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **more}


def purged_lookup_versions(entries: list[dict]) -> set[int]:
    """Versions whose lookup files a recorded purge removed."""
    return {int(v[1:]) for e in entries if e.get("kind") == PURGE
            for v in (e.get("removed") or {}).get("lookup_files", {})}
