"""Publish a solved round: PUBLISH_ROOT/<round_id>/v<N>/, immutable and atomic.

A version is written into a hidden temporary folder (``.v<N>-…``) and renamed into place, so
readers never see a half-written version. Publishing the same result again is a no-op; a
changed result becomes v<N+1>. Publishers of one round are serialised by a lock file; a hidden
folder left by a publisher that died is removed by the next one. manifest.json holds the
sha256 of every file in the version (sub-folders included, as POSIX relative paths), the input
hashes and the solver report (without the business numbers it names).

A version holds:

* ``awards_public.{csv,xlsx,parquet,html}`` — awardees only, business numbers masked;
* ``report.html`` — the round report, aggregates only (allocation.report);
* ``index.html``, ``lookup.json``, ``r/<hex>.json`` — the applicant lookup: one encrypted,
  same-size file per application (allocation.lookup);
* ``manifest.json``.
"""

from __future__ import annotations

import copy
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from allocation import files
from allocation.errors import RoundError
from allocation.publish import audit, lookup, report, signing
from allocation.publish.award_list import public_award_list, write_award_list
from allocation.publish.diff import lifecycle_changes, public_diff, write_changes
from allocation.publish.manifest import rel_name, sha256_file


def _round_info(out_dir: Path, report_json: dict) -> tuple[str, float | None]:
    cfg = report.round_config(out_dir)
    name = cfg.get("round", {}).get("name", "") or report_json["round_id"]
    return name, cfg.get("award", {}).get("min_score")


def _write_version(out_dir: Path, target: Path, report_json: dict, version: int = 1,
                   timeline: list[dict] | None = None, changes: dict | None = None,
                   stamp: float = 0.0, workers: int | None = None,
                   previous: Path | None = None) -> dict:
    """Every public file of the version into target; returns the lookup counts. previous: the
    round's latest version (its unchanged lookup files are reused, allocation.publish.lookup)."""
    round_id = report_json["round_id"]
    round_name, min_score = _round_info(out_dir, report_json)
    plan = lookup.prepare_lookup(out_dir, target, round_id, round_name=round_name, min_score=min_score,
                                 stamp=stamp, previous=previous, state_dirs=lookup_state_dirs(out_dir))
    # the lookup files are sealed by worker processes while this process writes the rest
    with ThreadPoolExecutor(max_workers=1) as background:
        sealing = background.submit(
            lookup.run_lookup_chunks, out_dir, len(plan["chunks"]), workers=workers,
            serial=lookup.is_small(plan))
        try:
            _write_pages(out_dir, target, report_json, version, round_id, round_name, timeline, changes)
        finally:
            sealing.result()      # waits; re-raises a sealing error
    return lookup.finalize_lookup(out_dir)


def _write_pages(out_dir: Path, target: Path, report_json: dict, version: int, round_id: str,
                 round_name: str, timeline: list[dict] | None, changes: dict | None) -> None:
    write_award_list(out_dir, target, round_id, round_name, version)
    extra = {k: v for k, v in (("timeline", timeline), ("changes", changes)) if v}
    (target / files.REPORT_HTML).write_text(report.render_report(out_dir, version, **extra), encoding="utf-8")
    script = (report.TEMPLATES / "lookup.js").read_text(encoding="utf-8")
    (target / files.LOOKUP_PAGE).write_text(
        report.environment().get_template("index.html.j2").render(
            title=f"컴퓨팅 바우처 선정 결과 — {round_id}", round_name=round_name, version=version,
            script=script, csp_extra=report.script_csp(script)),
        encoding="utf-8")


def lookup_state_dirs(out_dir: Path) -> list[Path]:
    """Run folders that may hold the lookup state of the round's latest version: this one (a
    republish), then the run a refill or appeal was computed from (lifecycle.json)."""
    out_dir = Path(out_dir)
    dirs = [out_dir]
    path = out_dir / files.LIFECYCLE_STATE
    if path.is_file():
        prev = (json.loads(path.read_text(encoding="utf-8")).get("previous") or {}).get("out_dir")
        if prev:
            dirs.append(Path(prev))
    return dirs


def result_fingerprint(out_dir: Path) -> str:
    """What a version stands for: the inputs, the decided outcomes and awards, and the solver
    report (solution.json). The approval text leads with it; publish refuses a result whose
    fingerprint is not the approved one."""
    out_dir = Path(out_dir)
    digest = hashlib.sha256()
    for name in (files.OUTCOMES_PARQUET, files.AWARDS_PARQUET, files.SOLUTION):
        digest.update(sha256_file(out_dir / name).encode())
    report_json = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    digest.update(json.dumps(report_json["input_sha256"], sort_keys=True).encode())
    return digest.hexdigest()


def public_solver_report(report_json: dict) -> dict:
    """solution.json without what names a company (the business numbers at the company cap)."""
    public = {k: copy.deepcopy(report_json[k]) for k in (
        "status", "objective", "objective_unit", "bound", "lp_bound", "gap", "solver", "summary",
        "limits", "warnings", "versions") if k in report_json}
    caps = public.get("limits", {}).get("company_caps")
    if isinstance(caps, dict):
        caps.pop("business_nos", None)
    return public


def _fsync_tree(folder: Path, paths: list[Path]) -> None:
    """fsync the version's own files one by one; the r/ files (up to millions) with one sync."""
    os.sync()
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    for sub in sorted({p.parent for p in paths} | {folder, folder / files.LOOKUP_DIR}):
        if sub.is_dir():
            _fsync_dir(sub)


def _own_files(folder: Path) -> list[Path]:
    """Every file of a version except the r/ files (listed in r.sha256 instead)."""
    found = []
    for dirpath, dirnames, names in os.walk(folder):
        if dirpath == str(folder):     # r/ (up to millions of files) is not walked at all
            dirnames[:] = [d for d in dirnames if d != files.LOOKUP_DIR]
        found += [Path(dirpath) / name for name in names]
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def round_lock(publish_root: Path, round_id: str):
    """One publisher per round at a time (advisory lock; released if the process dies)."""
    with open(publish_root / files.PUBLISH_LOCK.format(round_id=round_id), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale(round_root: Path) -> None:
    """Hidden temporary folders left by a publisher that died (we hold the lock)."""
    for stale in round_root.glob(".v*-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def publish(out_dir: Path, publish_root: Path, *, lookup_iterations: int | None = None,
            actor: dict | None = None, allow_empty: bool = False, lookup_workers: int | None = None,
            signing_key: Path | str | None = None, demo: bool = False) -> dict:
    """Publish the allocation in out_dir; returns {"round_id", "version", "path", "created"}.

    lookup_iterations: ignored (kept for old callers): the PBKDF2 iterations follow each receipt
    code's strength class and are paid once per round at intake (allocation.intake.receipt).
    lookup_workers: processes that seal the lookup files (default: the usable cores, at most 8).
    actor: who triggered and approved this publication, for the audit trail
    ({"via", "triggered_by", "approved_by", ...}; default: the command line): the public trail
    gets roles, the officers' trail the names and the run folder (allocation.publish.audit).
    allow_empty: publish a result that funds nobody (refused otherwise: RoundError).
    signing_key: the Ed25519 private key file (default $VOUCHER_SIGNING_KEY; none: RoundError).
    manifest.json is signed (manifest.sig); the public key is PUBLISH_ROOT/<round>/signing_key.pub.
    demo: a demonstration (``./run demo``): every page carries a DEMO banner and the manifest says
    ``"demo": true``; refused into a publish root that holds official (non-demo) versions.
    An unchanged result publishes nothing ("created": False, the latest version kept) but its
    approval is still appended to the audit trail (kind "unchanged").

    Every new version is appended to the round's audit trail (allocation.audit). A lifecycle
    result (allocation.lifecycle: refill or appeal) is published with ``changes.json`` and
    ``changes.md`` (what changed against the previous version, aggregates and new awardees only)
    and is refused when another version was published after the one it was computed against.
    """
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    report_json = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    round_id = report_json.get("round_id")
    files.inside(publish_root, files.round_id_path_part(round_id))   # never a path outside the root
    if not int((report_json.get("summary") or {}).get("funded") or 0) and not allow_empty:
        raise RoundError(f"round {round_id}: this result funds nobody (0 awards). Publishing it tells "
                         f"every applicant they were not funded; if that is really intended, publish "
                         f"with allow_empty (voucher publish --allow-empty, DAG param allow_empty). "
                         f"Nothing was published.")
    key = signing.load_private_key(signing_key, publish_root)
    round_root = publish_root / round_id
    round_root.mkdir(parents=True, exist_ok=True)
    fingerprint = result_fingerprint(out_dir)
    with round_lock(publish_root, round_id):
        _remove_stale(round_root)
        _check_public_key(round_root, key)
        versions = files.list_versions(round_root)
        if versions:
            latest = round_root / files.version_name(versions[-1])
            manifest = json.loads((latest / files.MANIFEST).read_text(encoding="utf-8"))
            if bool(manifest.get("demo")) != demo:
                raise RoundError(f"{round_root} holds {'demo' if manifest.get('demo') else 'official'} versions; "
                                 f"a {'demo' if demo else 'official'} result is never published next to "
                                 f"them. Nothing was published.")
            if manifest.get("result_fingerprint") == fingerprint:
                # nothing new to publish; the approval of this unchanged result is still recorded
                stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                entry, detail = _audit_entry(out_dir, report_json, versions[-1], stamp,
                                             _lifecycle_public(out_dir), actor)
                entry.update(kind="unchanged", note=f"unchanged: v{versions[-1]} kept")
                audit.record(publish_root, round_id, entry, detail)
                return {"round_id": round_id, "version": versions[-1], "path": str(latest),
                        "created": False, "message": f"unchanged: v{versions[-1]} kept"}
        version = (versions[-1] + 1) if versions else 1
        # --- lifecycle and audit (allocation.lifecycle / allocation.audit) ---
        lifecycle_public = _lifecycle_public(out_dir)
        expected = (lifecycle_public or {}).get("previous_version")
        if expected is not None and versions and versions[-1] != expected:
            raise RoundError(f"round {round_id}: v{versions[-1]} was published after this "
                             f"{lifecycle_public['kind']} was computed against v{expected}; "
                             f"run it again against v{versions[-1]}. Nothing was published.")
        previous_dir = round_root / files.version_name(versions[-1]) if versions else None
        published_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        entry, detail = _audit_entry(out_dir, report_json, version, published_at, lifecycle_public, actor)
        history = audit.read(publish_root, round_id)
        timeline = history + [entry] if (history or version > 1) else None
        # --- end lifecycle and audit ---
        tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=round_root))
        try:
            changes = None
            if lifecycle_public is not None:
                new_awards = public_award_list(out_dir)
                changes = lifecycle_changes(lifecycle_public, previous_dir, new_awards, version)
                entry["diff"] = changes["diff"]
            elif previous_dir is not None:
                entry["diff"] = public_diff(pl.read_parquet(previous_dir / files.AWARDS_PUBLIC_PARQUET),
                                            public_award_list(out_dir))["diff"]
            stamp = time.time()   # one timestamp for every file: mtimes tell nothing about write order
            counts = _write_version(out_dir, tmp, report_json, version, timeline, changes,
                                    stamp, lookup_workers, previous_dir)
            if changes is not None:
                write_changes(tmp, changes)
            if demo:
                _mark_demo(tmp)
            line, officer_line = audit.prepare(publish_root, round_id, entry, detail)   # the chains checked
            file_hashes = {rel_name(p, tmp): sha256_file(p) for p in _own_files(tmp)}
            manifest = {"round_id": round_id, "version": version, "files": file_hashes,
                        "published_at": published_at,
                        "result_fingerprint": fingerprint, "input_sha256": report_json["input_sha256"],
                        "solver": {k: report_json[k] for k in ("status", "objective", "bound", "gap",
                                                               "solver")},
                        "solver_report": public_solver_report(report_json),
                        "lookup": counts,
                        # the audit line of this version, pinned by the signature
                        "audit": {"trail": audit.trail_path(publish_root, round_id)
                                  .relative_to(publish_root).as_posix(),
                                  "line_sha256": audit.line_hash(line)},
                        "signing_key_sha256": signing.key_id(key)}
            if demo:
                manifest["demo"] = True
            if lifecycle_public is not None:
                manifest["lifecycle"] = lifecycle_public
            manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
                              + "\n").encode("utf-8")
            (tmp / files.MANIFEST).write_bytes(manifest_bytes)
            (tmp / files.SIGNATURE).write_bytes(signing.sign(key, manifest_bytes))
            own = _own_files(tmp)
            for path in own:      # (the r/ files got the same stamp from the sealing workers)
                os.utime(path, (stamp, stamp))
            for sub in [tmp, *sorted(p for p in tmp.iterdir() if p.is_dir())]:
                os.chmod(sub, 0o755)
            _fsync_tree(tmp, own)
            target = round_root / files.version_name(version)
            try:
                os.rename(tmp, target)   # atomic; fails if v<N> appeared meanwhile
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise RuntimeError(f"{target} appeared while publishing (another publisher "
                                       f"without the lock?); nothing was changed") from exc
                raise
            _fsync_dir(round_root)
            audit.append_line(publish_root, round_id, line, officer_line)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return {"round_id": round_id, "version": version, "path": str(target), "created": True,
            "message": f"published v{version}" + (" (DEMO)" if demo else "")}


DEMO_BANNER = ('<p class="demo" role="alert"><strong>DEMO</strong> — 시연용 결과입니다. 공식 발표가 아닙니다. '
               '<span class="en">Demonstration only: not an official result of this round.</span></p>')


def _mark_demo(folder: Path) -> None:
    """A DEMO banner at the top of every page of a demo version."""
    for page in sorted(folder.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        marked = text.replace("<body>", "<body>\n" + DEMO_BANNER, 1)
        if marked == text:
            marked = DEMO_BANNER + "\n" + text
        page.write_text(marked, encoding="utf-8")


def _check_public_key(round_root: Path, key) -> None:
    """PUBLISH_ROOT/<round>/signing_key.pub: written by the first publication; every later one
    must be signed by the same key."""
    path = round_root / files.SIGNING_KEY_PUB
    pem = signing.public_pem(key)
    if not path.is_file():
        path.write_bytes(pem)
        os.chmod(path, 0o644)
    elif path.read_bytes() != pem:
        raise RoundError(f"{path} is not the public key of this signing key: the round's versions "
                         f"were signed with another key (or the public key was replaced). Nothing "
                         f"was published.")


# --- Lifecycle changes and audit entries (allocation.lifecycle, allocation.audit) ---------

def _lifecycle_public(out_dir: Path) -> dict | None:
    path = out_dir / files.LIFECYCLE_PUBLIC
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _audit_entry(out_dir: Path, report_json: dict, version: int, published_at: str,
                 lifecycle_public: dict | None, actor: dict | None) -> tuple[dict, dict]:
    """(public audit entry, officers' detail): the public one names roles only — account names
    too when round.toml opts in ([publish] show_staff_names) — and never the run folder."""
    summary = report_json.get("summary", {})
    who = actor or audit.cli_actor()
    show_names = bool((report.round_config(out_dir).get("publish") or {}).get("show_staff_names"))
    return {
        "round_id": report_json["round_id"], "version": version, "published_at": published_at,
        "kind": (lifecycle_public or {}).get("kind", "allocation"),
        "as_of": (lifecycle_public or {}).get("as_of"),
        "previous_version": (lifecycle_public or {}).get("previous_version",
                                                          version - 1 if version > 1 else None),
        **audit.public_actor(who, show_staff_names=show_names),
        "input_sha256": report_json.get("input_sha256", {}),
        "solver": {k: report_json.get(k) for k in ("status", "objective", "gap")},
        "summary": {k: summary.get(k) for k in ("funded", "awarded_krw", "budget_krw")},
        "appeals": (lifecycle_public or {}).get("appeals"),
        "released": (lifecycle_public or {}).get("released"),
        "diff": None,
    }, audit.officer_detail(who, out_dir=str(Path(out_dir).resolve()))
