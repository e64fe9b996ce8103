"""Personal data removed when it is no longer needed (PIPA: keep it only as long as its purpose).

    voucher purge ROUND_ID --publish-root P [--runs-root R] --before 2026-06-30 [--apply]

What goes, for one round, as of a date (the end of the appeal window):
* run folders (RUNS_ROOT/<round folder>/<run>/, the officers' copies of every application,
  scores and outcomes) last written before the date — except the run folder the newest published
  version came from, which a later refill or appeal still builds on;
* the sealed per-applicant lookup files (r/, lookup.json) of every version published before the
  date: applicants have had their answer, and nothing else depends on them.
What stays: the signed public award lists, reports and manifests, and the audit trail, which
records every purge (what was removed, by whom). `voucher verify` accepts lookup files removed
by a recorded purge and nothing else.

Dry run by default: it says what it would remove; --apply removes it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from allocation import files
from allocation.errors import RoundError
from allocation.config import load_config
from allocation.publish import audit
from allocation.publish.version import round_lock


@dataclass
class PurgePlan:
    round_id: str
    before: dt.date
    run_folders: list[Path] = field(default_factory=list)
    kept_run_folder: Path | None = None
    lookup_files: dict[int, list[Path]] = field(default_factory=dict)   # version -> files

    @property
    def bytes(self) -> int:
        paths = [p for folder in self.run_folders for p in folder.rglob("*") if p.is_file()]
        paths += [p for found in self.lookup_files.values() for p in found]
        return sum(p.stat().st_size for p in paths)

    def summary(self) -> dict:
        return {"round_id": self.round_id, "before": self.before.isoformat(),
                "run_folders": [p.name for p in self.run_folders],
                "kept_run_folder": self.kept_run_folder.name if self.kept_run_folder else None,
                "lookup_files": {f"v{v}": len(found) for v, found in sorted(self.lookup_files.items())},
                "bytes": self.bytes}


def _run_round_id(folder: Path) -> str | None:
    """The round a run folder belongs to (its solution.json, or the round.toml it validated)."""
    solution = folder / files.SOLUTION
    if solution.is_file():
        return files.read_json(solution).get("round_id")
    try:
        return load_config(folder / files.INTAKE).round.id
    except RoundError:   # a run that failed before its round.toml was saved
        return None


def _last_written(folder: Path) -> dt.date:
    stamps = [p.stat().st_mtime for p in [folder, *folder.rglob("*")]]
    return dt.datetime.fromtimestamp(max(stamps), dt.timezone.utc).date()


def plan_purge(round_id: str, publish_root: Path, runs_root: Path | None, before: dt.date) -> PurgePlan:
    """What a purge of one round as of `before` removes (nothing is changed)."""
    round_id = files.round_id_path_part(round_id)
    publish_root = Path(publish_root)
    round_root = publish_root / round_id
    versions = files.list_versions(round_root)
    if not versions:
        raise RoundError(f"{round_root}: round {round_id} has no published version; nothing to purge")
    entries = audit.read(publish_root, round_id)
    published = {e["version"]: e for e in entries if e.get("kind") != audit.PURGE and e.get("version")}
    plan = PurgePlan(round_id=round_id, before=before)
    newest = published.get(versions[-1], {})
    if newest.get("out_dir"):
        plan.kept_run_folder = Path(newest["out_dir"]).resolve()
    if runs_root is not None and Path(runs_root).is_dir():
        for folder in sorted(p for p in Path(runs_root).glob("*/*") if p.is_dir()):
            if folder.resolve() == plan.kept_run_folder or _run_round_id(folder) != round_id:
                continue
            if _last_written(folder) < before:
                plan.run_folders.append(folder)
    for v in versions:
        published_on = (published.get(v, {}).get("published_at") or "")[:10]
        if not published_on or dt.date.fromisoformat(published_on) >= before:
            continue
        version_dir = round_root / files.version_name(v)
        found = sorted(p for p in version_dir.rglob("*") if p.is_file()
                       and files.is_lookup_file(p.relative_to(version_dir).as_posix()))
        if found:
            plan.lookup_files[v] = found
    return plan


def purge(plan: PurgePlan, publish_root: Path, *, actor: dict | None = None) -> dict:
    """Remove what the plan lists and record it in the audit trail; returns the recorded entry."""
    publish_root = Path(publish_root)
    summary = plan.summary()
    with round_lock(publish_root, plan.round_id):
        for folder in plan.run_folders:
            shutil.rmtree(folder)
        for v, found in plan.lookup_files.items():
            for path in found:
                path.unlink(missing_ok=True)
            lookup_dir = files.inside(publish_root, plan.round_id, files.version_name(v), files.LOOKUP_DIR)
            if lookup_dir.is_dir():   # the emptied shard folders, deepest first, then r/ itself
                for folder in sorted((p for p in lookup_dir.rglob("*") if p.is_dir()),
                                     key=lambda p: -len(p.parts)) + [lookup_dir]:
                    if not any(folder.iterdir()):
                        folder.rmdir()
        who = actor or audit.cli_actor()
        entry = {"kind": audit.PURGE, "round_id": plan.round_id, "before": summary["before"],
                 "purged_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "removed": {"run_folders": len(plan.run_folders), "lookup_files": summary["lookup_files"],
                             "bytes": summary["bytes"]},
                 **{k: who.get(k) for k in ("via", "triggered_by", "dag_id", "run_id") if k in who}}
        audit.append(publish_root, plan.round_id, entry)
    return entry
