"""Personal data removed when it is no longer needed (PIPA: keep it only as long as its purpose).

    voucher purge ROUND_ID --publish-root P [--runs-root R] --before DATE [--round-folder DIR] [--apply]
    voucher purge ROUND_ID --publish-root P [--runs-root R] --policy [--as-of DATE] [--round-folder DIR] [--apply]

What goes, for one round, each kind of data against its own cutoff date:
* run folders (RUNS_ROOT/<round folder>/<run>/, the officers' copies of every application,
  scores and outcomes) last written before the run-folder cutoff — except the run folder the
  newest published version came from, which a later refill or appeal still builds on, until the
  round is closed;
* the sealed per-applicant lookup files (r/, lookup.json) of every version published (the date
  its signed manifest states) before the lookup cutoff: applicants have had their answer;
* when the round is closed — its newest publication is before the round-folder cutoff, and only
  when a round folder is named (``--round-folder DIR``, the DAG's round folders) or the policy
  sets ``round_folder_days``: every file of the round folder except ``round.toml`` and
  ``capacity.*`` (the applicant-data tables — applications, requests, reviews, reviewers,
  conflicts, assignments, responses, appeals, replacement reviews — and whatever else was put
  there), replaced by ``PURGED.txt`` saying what was removed and when (``voucher validate`` then
  says the folder was purged); and the newest version's run folder (nothing builds on it any more).

``--before DATE`` sets every cutoff to DATE. The retention policy (round.toml ``[retention]``,
allocation.config.RetentionSection; the daily DAG) sets each to the as-of date minus its days,
so a scheduled run removes only what the policy says is past due.

What stays: the signed public award lists, reports and manifests, and both audit trails. Every
purge that removed something is recorded: the public line says how much went (counts), the
officers' line which paths. `voucher verify` accepts lookup files removed by a recorded purge
and nothing else. Dry run by default: it says what it would remove; --apply removes it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from allocation import files, schema
from allocation.config import DEFAULT_RETENTION, RetentionSection, load_config
from allocation.errors import RoundError
from allocation.publish import audit
from allocation.publish.version import round_lock

# what a round folder keeps after its purge: the policy, the capacity on offer (no personal data)
KEPT_IN_ROUND_FOLDER = (schema.CONFIG_FILE, files.PURGED_NOTE,
                        *(f"{schema.CAPACITY.stem}{ext}" for ext in schema.TABLE_EXTENSIONS))


@dataclass(frozen=True)
class Cutoffs:
    """Dates before which each kind of personal data goes (None: it stays)."""

    run_folders: dt.date | None
    lookup_files: dt.date | None
    round_folder: dt.date | None = None   # the round closes: round folder files, newest run folder

    @classmethod
    def before(cls, day: dt.date, *, round_folder: bool = False) -> "Cutoffs":
        return cls(day, day, day if round_folder else None)

    @classmethod
    def from_policy(cls, policy: RetentionSection, as_of: dt.date) -> "Cutoffs":
        """Kept for N days after the date named; due the day after."""
        def ago(days: int | None) -> dt.date | None:
            return None if days is None else as_of - dt.timedelta(days=days)
        return cls(ago(policy.run_folders_days), ago(policy.lookup_files_days), ago(policy.round_folder_days))

    def summary(self) -> dict:
        return {k: (v.isoformat() if v else None) for k, v in
                (("run_folders", self.run_folders), ("lookup_files", self.lookup_files),
                 ("round_folder", self.round_folder))}


@dataclass
class PurgePlan:
    round_id: str
    cutoffs: Cutoffs
    as_of: dt.date | None = None          # a policy run: the date the policy was applied at
    policy: dict | None = None            # a policy run: the days applied and where they came from
    run_folders: list[Path] = field(default_factory=list)
    kept_run_folder: Path | None = None
    lookup_files: dict[int, list[Path]] = field(default_factory=dict)   # version -> files
    round_folders: dict[Path, list[Path]] = field(default_factory=dict)  # round folder -> what goes
    closed: bool = False                  # the round is closed by this purge
    newest: tuple[int, dt.date] | None = None   # newest published version and its date
    notes: list[str] = field(default_factory=list)   # why something stays

    @property
    def before(self) -> dt.date | None:
        """The single date of a `--before` purge (None for a policy run)."""
        return None if self.policy else self.cutoffs.run_folders

    @property
    def empty(self) -> bool:
        return not (self.run_folders or self.lookup_files or any(self.round_folders.values()))

    @property
    def bytes(self) -> int:
        trees = [*self.run_folders, *(p for found in self.round_folders.values() for p in found)]
        paths = [p for t in trees for p in ([t] if t.is_file() or t.is_symlink() else t.rglob("*"))
                 if p.is_file() and not p.is_symlink()]
        paths += [p for found in self.lookup_files.values() for p in found]
        return sum(p.stat().st_size for p in paths)

    def summary(self) -> dict:
        """Names and counts (no server path): what the CLI, the DAG's XCom and logs show."""
        return {"round_id": self.round_id, "before": self.before.isoformat() if self.before else None,
                "as_of": self.as_of.isoformat() if self.as_of else None, "cutoffs": self.cutoffs.summary(),
                "policy": self.policy,
                "run_folders": [p.name for p in self.run_folders],
                "kept_run_folder": self.kept_run_folder.name if self.kept_run_folder else None,
                "lookup_files": {f"v{v}": len(found) for v, found in sorted(self.lookup_files.items())},
                "round_folder_files": {folder.name: sorted(p.name for p in found)
                                       for folder, found in self.round_folders.items()},
                "closed": self.closed, "notes": list(self.notes), "bytes": self.bytes}


# --- finding what belongs to a round --------------------------------------------------------

def _declared_round_id(folder: Path) -> str | None:
    """[round] id of a folder's round.toml, read leniently (None: no readable id)."""
    try:
        data = tomllib.loads((folder / schema.CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    round_table = data.get("round")
    return round_table.get("id") if isinstance(round_table, dict) else None


def round_folders_of(round_id: str, rounds_root: Path | None) -> list[Path]:
    """The round folders directly under rounds_root whose round.toml declares this round id."""
    if rounds_root is None or not Path(rounds_root).is_dir():
        return []
    return sorted(p for p in Path(rounds_root).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / schema.CONFIG_FILE).is_file()
                  and _declared_round_id(p) == round_id)


def published_rounds(publish_root: Path) -> list[str]:
    """Every round of the publish root with at least one published version."""
    root = Path(publish_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and files.list_versions(p))


def _run_round_id(folder: Path) -> str | None:
    """The round a run folder belongs to (its solution.json, or the round.toml it validated)."""
    solution = folder / files.SOLUTION
    if solution.is_file():
        return files.read_json(solution).get("round_id")
    return _declared_round_id(folder / files.INTAKE)


def _last_written(folder: Path) -> dt.date:
    stamps = [p.stat().st_mtime for p in [folder, *folder.rglob("*")]]
    return dt.datetime.fromtimestamp(max(stamps), dt.timezone.utc).date()


def _manifest(round_root: Path, version: int) -> dict:
    return files.read_json(round_root / files.version_name(version) / files.MANIFEST)


def _newest_run_folder(publish_root: Path, round_id: str, manifest: dict, version: int) -> Path | None:
    """The run folder the newest version was published from: the officers' detail of the public
    audit line its signed manifest pins (or the legacy line itself)."""
    pinned = (manifest.get("audit") or {}).get("line_sha256")
    details = audit.detailed(publish_root, round_id)
    found = next((d for text, _, d in details if audit.line_hash(text) == pinned), None)
    if not (found or {}).get("out_dir"):   # fall back to the newest line of that version
        found = next((d for _, e, d in reversed(details)
                      if e.get("version") == version and e.get("kind") != audit.PURGE and d.get("out_dir")), None)
    return Path(found["out_dir"]).resolve() if found else None


def round_folder_contents(folder: Path) -> list[Path]:
    """What a purge of the round folder removes: everything but KEPT_IN_ROUND_FOLDER."""
    return sorted(p for p in Path(folder).iterdir() if p.name not in KEPT_IN_ROUND_FOLDER)


# --- planning -------------------------------------------------------------------------------

def plan_purge(round_id: str, publish_root: Path, runs_root: Path | None, before: dt.date | None = None,
               *, cutoffs: Cutoffs | None = None, round_folders: list[Path] | tuple = (),
               as_of: dt.date | None = None, policy: dict | None = None) -> PurgePlan:
    """What a purge of one round removes (nothing is changed): everything older than `before`,
    or each kind of data against its own date (`cutoffs`). round_folders: the round's folders
    that may be purged when the round closes (each must declare this round id)."""
    round_id = files.round_id_path_part(round_id)
    if cutoffs is None:
        if before is None:
            raise RoundError("a purge needs a date (--before) or a retention policy")
        cutoffs = Cutoffs.before(before, round_folder=bool(round_folders))
    publish_root = Path(publish_root)
    round_root = publish_root / round_id
    versions = files.list_versions(round_root)
    if not versions:
        raise RoundError(f"{round_root}: round {round_id} has no published version; nothing to purge")
    plan = PurgePlan(round_id=round_id, cutoffs=cutoffs, as_of=as_of, policy=policy)
    manifests = {v: _manifest(round_root, v) for v in versions}
    published_on = {v: dt.date.fromisoformat(str(m.get("published_at") or "")[:10])
                    for v, m in manifests.items() if m.get("published_at")}
    newest = versions[-1]
    plan.newest = (newest, published_on[newest]) if newest in published_on else None
    plan.closed = bool(cutoffs.round_folder and plan.newest and plan.newest[1] < cutoffs.round_folder)
    newest_folder = _newest_run_folder(publish_root, round_id, manifests[newest], newest)
    if not plan.closed:
        plan.kept_run_folder = newest_folder
    _plan_run_folders(plan, runs_root, newest_folder)
    for v in versions:
        if cutoffs.lookup_files is None or v not in published_on or published_on[v] >= cutoffs.lookup_files:
            continue
        version_dir = round_root / files.version_name(v)
        found = sorted(p for p in version_dir.rglob("*") if p.is_file()
                       and files.is_lookup_file(p.relative_to(version_dir).as_posix()))
        if found:
            plan.lookup_files[v] = found
    _plan_round_folders(plan, round_folders)
    return plan


def _plan_run_folders(plan: PurgePlan, runs_root: Path | None, newest_folder: Path | None) -> None:
    if runs_root is None or not Path(runs_root).is_dir():
        return
    for folder in sorted(p for p in Path(runs_root).glob("*/*") if p.is_dir()):
        if _run_round_id(folder) != plan.round_id:
            continue
        if folder.resolve() == newest_folder:
            if plan.closed:
                plan.run_folders.append(folder)
            else:
                plan.notes.append(f"run folder {folder.name} kept: the newest version came from it "
                                  f"(refills and appeals build on it until the round is closed)")
        elif plan.cutoffs.run_folders is not None and _last_written(folder) < plan.cutoffs.run_folders:
            plan.run_folders.append(folder)


def _plan_round_folders(plan: PurgePlan, round_folders) -> None:
    for folder in (Path(f) for f in round_folders):
        if not (folder / schema.CONFIG_FILE).is_file():
            raise RoundError(f"{folder}: not a round folder ({schema.CONFIG_FILE} missing); nothing was removed")
        declared = _declared_round_id(folder)
        if declared != plan.round_id:
            raise RoundError(f"{folder}: its {schema.CONFIG_FILE} is for round {declared!r}, not "
                             f"{plan.round_id}; nothing was removed")
        if plan.cutoffs.round_folder is None:
            continue
        if not plan.closed:
            newest = f"v{plan.newest[0]}, published {plan.newest[1]}" if plan.newest else "unknown"
            plan.notes.append(f"round folder {folder.name} stays: the newest publication ({newest}) is not "
                              f"before {plan.cutoffs.round_folder}")
            continue
        found = round_folder_contents(folder)
        if found:
            plan.round_folders[folder] = found


# --- the retention policy (round.toml [retention]) --------------------------------------------

def retention_policy(round_folders: list[Path], run_folder: Path | None = None) -> tuple[RetentionSection, str]:
    """The policy of a round and where it came from: its round folder's round.toml (several
    folders of one round: the longest period of each), else the copy in force in the newest
    version's run folder, else the defaults. A round.toml that cannot be read stops the round
    (RoundError): a policy is never guessed."""
    if round_folders:
        found = [load_config(folder).retention_policy for folder in round_folders]
        if len(found) == 1:
            return found[0], f"round.toml of round folder {Path(round_folders[0]).name}"
        days = [p.round_folder_days for p in found]
        return RetentionSection(lookup_files_days=max(p.lookup_files_days for p in found),
                                run_folders_days=max(p.run_folders_days for p in found),
                                round_folder_days=None if None in days else max(days)), \
            f"round.toml of {len(found)} round folders (the longest period of each)"
    if run_folder is not None and (Path(run_folder) / files.INTAKE / schema.CONFIG_FILE).is_file():
        return load_config(Path(run_folder) / files.INTAKE).retention_policy, \
            "round.toml in force in the newest version's run folder"
    return DEFAULT_RETENTION, "defaults (no round folder found)"


def plan_by_policy(round_id: str, publish_root: Path, runs_root: Path | None, round_folders: list[Path],
                   as_of: dt.date) -> PurgePlan:
    """What the round's retention policy says is past due as of a date (nothing is changed)."""
    round_id = files.round_id_path_part(round_id)
    round_root = Path(publish_root) / round_id
    versions = files.list_versions(round_root)
    newest = None
    if versions:
        newest = _newest_run_folder(Path(publish_root), round_id, _manifest(round_root, versions[-1]), versions[-1])
    policy, source = retention_policy(round_folders, newest if newest and newest.is_dir() else None)
    return plan_purge(round_id, publish_root, runs_root, cutoffs=Cutoffs.from_policy(policy, as_of),
                      round_folders=round_folders, as_of=as_of,
                      policy={**policy.model_dump(), "source": source})


# --- removing ---------------------------------------------------------------------------------

def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _purged_note(plan: PurgePlan, folder: Path, removed: list[Path], day: dt.date) -> str:
    kept = sorted(p.name for p in folder.iterdir() if p.name in KEPT_IN_ROUND_FOLDER and p.name != files.PURGED_NOTE)
    why = (f"round.toml [retention] round_folder_days = {plan.policy['round_folder_days']}" if plan.policy
           else f"voucher purge --before {plan.cutoffs.round_folder}")
    newest = f"v{plan.newest[0]}, published {plan.newest[1]}" if plan.newest else "its newest version"
    return (f"This round folder was purged on {day}: the personal data of round {plan.round_id} was "
            f"removed after its retention period.\n"
            f"Removed ({len(removed)}): {', '.join(p.name for p in removed)}\n"
            f"Kept: {', '.join(kept)}\n"
            f"Why: the round's newest publication ({newest}) is before {plan.cutoffs.round_folder} ({why}).\n"
            f"The purge is recorded in the round's audit trail; the signed public award lists stay published.\n")


def purge(plan: PurgePlan, publish_root: Path, *, actor: dict | None = None,
          today: dt.date | None = None) -> dict | None:
    """Remove what the plan lists and record it in both audit trails; returns the public entry
    (None: the plan removes nothing, and nothing is recorded)."""
    if plan.empty:
        return None
    publish_root = Path(publish_root)
    summary = plan.summary()
    now = dt.datetime.now(dt.timezone.utc)
    day = today or plan.as_of or now.date()
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
        for folder, found in plan.round_folders.items():
            for path in found:
                _remove(path)
            note = folder / files.PURGED_NOTE
            earlier = note.read_text(encoding="utf-8") + "\n" if note.is_file() else ""
            files.write_text(note, earlier + _purged_note(plan, folder, found, day))
        who = actor or audit.cli_actor()
        entry = {"kind": audit.PURGE, "round_id": plan.round_id,
                 "before": summary["before"], "as_of": summary["as_of"], "cutoffs": summary["cutoffs"],
                 "policy": plan.policy, "closed": plan.closed,
                 "purged_at": now.isoformat(timespec="seconds"),
                 "removed": {"run_folders": len(plan.run_folders), "lookup_files": summary["lookup_files"],
                             "round_folder_files": sum(len(f) for f in plan.round_folders.values()),
                             "bytes": summary["bytes"]},
                 **audit.public_actor({k: v for k, v in who.items() if k != "approved_by"})}   # nobody approves a purge
        detail = audit.officer_detail(
            who, run_folders=[str(p.resolve()) for p in plan.run_folders],
            round_folders={str(f.resolve()): [p.name for p in found] for f, found in plan.round_folders.items()},
            kept_run_folder=str(plan.kept_run_folder) if plan.kept_run_folder else None)
        audit.record(publish_root, plan.round_id, entry, detail)
    return entry


# --- one retention run over a publish root (the daily DAG, a manual trigger) ------------------

def run_retention(publish_root: Path, runs_root: Path | None, rounds_root: Path | None, *, as_of: dt.date,
                  round_id: str | None = None, before: dt.date | None = None, round_folder: bool = False,
                  apply: bool = False, actor: dict | None = None) -> dict:
    """Every published round (or the one named): by its retention policy as of `as_of`, or —
    with `before` — everything older than that date (its round folders too if `round_folder`).
    Round folders are found under rounds_root by the round id their round.toml declares. Removes
    only with `apply`. A round that fails (RoundError) does not stop the others.

    Returns {"as_of", "applied", "rounds": {round id: counts}, "failed": {round id: message}}:
    counts and names only (no server path, no personal data), for logs and XCom."""
    ids = [files.round_id_path_part(round_id)] if round_id else published_rounds(publish_root)
    done: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for rid in ids:
        try:
            folders = round_folders_of(rid, rounds_root)
            if before is not None:
                plan = plan_purge(rid, publish_root, runs_root, before, round_folders=folders if round_folder else ())
            else:
                plan = plan_by_policy(rid, publish_root, runs_root, folders, as_of)
            s = plan.summary()
            recorded = purge(plan, publish_root, actor=actor, today=as_of) if apply else None
        except RoundError as exc:
            failed[rid] = str(exc)
            continue
        done[rid] = {"cutoffs": s["cutoffs"], "run_folders": len(s["run_folders"]), "lookup_files": s["lookup_files"],
                     "round_folder_files": sum(len(f) for f in s["round_folder_files"].values()),
                     "closed": s["closed"], "bytes": s["bytes"], "removed": recorded is not None}
    return {"as_of": as_of.isoformat(), "applied": apply, "rounds": done, "failed": failed}
