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
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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


STAGED_MAX_AGE_S = 7 * 24 * 3600   # a staged version nobody completed within a week is removed


def _remove_stale(round_root: Path, latest: int | None = None) -> None:
    """Hidden folders left behind (we hold the lock): a dead in-process publisher's ``.v<N>-…``;
    a staged version (``.staged-v<N>-…``) that can never complete (v<N> or a later one exists)
    or that nobody completed within STAGED_MAX_AGE_S."""
    for stale in round_root.glob(".v*-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    now = time.time()
    for staged in round_root.glob(files.STAGED_PREFIX + "v*-*"):
        number = staged.name[len(files.STAGED_PREFIX) + 1:].split("-", 1)[0]
        superseded = latest is not None and number.isdigit() and int(number) <= latest
        if staged.is_dir() and (superseded or now - staged.stat().st_mtime > STAGED_MAX_AGE_S):
            shutil.rmtree(staged, ignore_errors=True)


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

    The same steps as stage_publication → write_staged_pages ∥ seal_staged_chunks →
    complete_publication (what the DAGs run as separate, mapped tasks), here in one call under
    one lock, the pages written while worker processes seal the lookup files.
    """
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    key = signing.load_private_key(signing_key, publish_root)
    round_id = _round_id(out_dir, publish_root)
    with round_lock(publish_root, round_id):
        stage = _stage(out_dir, publish_root, key, actor=actor, allow_empty=allow_empty, demo=demo,
                       separate=False)
        if "result" in stage:
            return stage["result"]
        try:
            with ThreadPoolExecutor(max_workers=1) as background:   # pages while workers seal
                sealing = background.submit(lookup.run_lookup_chunks, out_dir, stage["chunks"],
                                            workers=lookup_workers, serial=stage["small"])
                try:
                    write_staged_pages(out_dir)
                finally:
                    sealing.result()      # waits; re-raises a sealing error
            return _complete(out_dir, publish_root, key)
        finally:
            staged = Path(stage["staged"])
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)
            (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)


# --- A publication in separate steps (dags/voucher_publish.py runs them as tasks) -----------
#   stage_publication     checks, version number, audit entry, lookup plan; the staged folder
#   write_staged_pages    award lists, report, lookup page (beside the sealing)
#   seal_staged_chunks    lookup files of some chunks of the plan (mapped: any worker)
#   complete_publication  lookup listing, manifest, signature; renamed into place; audit line
# Only the first and the last take the round's lock. The last refuses when another version
# appeared since the first, or when the run folder's result is no longer the staged one.

def _round_id(out_dir: Path, publish_root: Path) -> str:
    """The run folder's round id, checked to be a plain folder name (never a path outside the
    publish root) before anything is created; the publish root exists afterwards."""
    round_id = json.loads((Path(out_dir) / files.SOLUTION).read_text(encoding="utf-8")).get("round_id")
    files.inside(publish_root, files.round_id_path_part(round_id))
    Path(publish_root).mkdir(parents=True, exist_ok=True)
    return round_id


def stage_publication(out_dir: Path, publish_root: Path, *, actor: dict | None = None,
                      allow_empty: bool = False, signing_key: Path | str | None = None,
                      demo: bool = False) -> dict:
    """Step 1: everything publish() checks, then the hidden staged version folder and the lookup
    plan; what the later steps need in the run folder (files.PUBLISH_STAGE). Returns
    {"chunks", "round_id", "version", ...}; an unchanged result is recorded in the audit trail
    here and returns {"result": {..."created": False}, "chunks": 0}."""
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    key = signing.load_private_key(signing_key, publish_root)
    with round_lock(publish_root, _round_id(out_dir, publish_root)):
        return _stage(out_dir, publish_root, key, actor=actor, allow_empty=allow_empty, demo=demo,
                      separate=True)


def _stage(out_dir: Path, publish_root: Path, key, *, actor: dict | None, allow_empty: bool,
           demo: bool, separate: bool) -> dict:
    report_json = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    round_id = report_json.get("round_id")
    files.inside(publish_root, files.round_id_path_part(round_id))   # never a path outside the root
    if not int((report_json.get("summary") or {}).get("funded") or 0) and not allow_empty:
        raise RoundError(f"round {round_id}: this result funds nobody (0 awards). Publishing it tells "
                         f"every applicant they were not funded; if that is really intended, publish "
                         f"with allow_empty (voucher publish --allow-empty, DAG param allow_empty). "
                         f"Nothing was published.")
    (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)
    round_root = publish_root / round_id
    round_root.mkdir(parents=True, exist_ok=True)
    fingerprint = result_fingerprint(out_dir)
    versions = files.list_versions(round_root)
    _remove_stale(round_root, versions[-1] if versions else None)
    _check_public_key(round_root, key)
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
            stage = {"chunks": 0, "result": {"round_id": round_id, "version": versions[-1], "path": str(latest),
                                             "created": False, "message": f"unchanged: v{versions[-1]} kept"}}
            if separate:
                files.write_json(out_dir / files.PUBLISH_STAGE, stage)
            return stage
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
    changes = None
    if lifecycle_public is not None:
        changes = lifecycle_changes(lifecycle_public, previous_dir, public_award_list(out_dir), version)
        entry["diff"] = changes["diff"]
    elif previous_dir is not None:
        entry["diff"] = public_diff(pl.read_parquet(previous_dir / files.AWARDS_PUBLIC_PARQUET),
                                    public_award_list(out_dir))["diff"]
    # --- end lifecycle and audit ---
    if separate:   # a stable name: a retried first step replaces its own folder
        staged = round_root / f"{files.STAGED_PREFIX}v{version}-{fingerprint[:16]}"
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir()
    else:
        staged = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=round_root))
    stamp = time.time()   # one timestamp for every file: mtimes tell nothing about write order
    round_name, min_score = _round_info(out_dir, report_json)
    try:
        plan = lookup.prepare_lookup(out_dir, staged, round_id, round_name=round_name, min_score=min_score,
                                     stamp=stamp, previous=previous_dir,
                                     state_dirs=lookup_state_dirs(out_dir), chunk_rows=lookup.CHUNK_ROWS)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    stage = {"round_id": round_id, "version": version, "staged": str(staged),
             "previous_version": versions[-1] if versions else None, "fingerprint": fingerprint,
             "published_at": published_at, "stamp": stamp, "demo": demo,
             "entry": entry, "detail": detail, "timeline": timeline, "changes": changes,
             "chunks": len(plan["chunks"]), "small": lookup.is_small(plan)}
    files.write_json(out_dir / files.PUBLISH_STAGE, stage)
    return stage


def read_stage(out_dir: Path) -> dict:
    """What stage_publication recorded in the run folder (RoundError when it did not run)."""
    path = Path(out_dir) / files.PUBLISH_STAGE
    if not path.is_file():
        raise RoundError(f"{path} missing: the publication was not staged for this run folder (run the "
                         f"first publish step again). Nothing was published.")
    return files.read_json(path)


def write_staged_pages(out_dir: Path) -> None:
    """Step 2a: the award lists, the report, the lookup page (and changes, the DEMO banner) into
    the staged folder. Nothing to do for an unchanged result."""
    out_dir = Path(out_dir)
    stage = read_stage(out_dir)
    if "result" in stage:
        return
    staged = Path(stage["staged"])
    report_json = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    round_name, _ = _round_info(out_dir, report_json)
    _write_pages(out_dir, staged, report_json, stage["version"], stage["round_id"], round_name,
                 stage["timeline"], stage["changes"])
    if stage["changes"] is not None:
        write_changes(staged, stage["changes"])
    if stage["demo"]:
        _mark_demo(staged)


def chunk_batches(out_dir: Path, per_batch: int) -> list[list[int]]:
    """The staged plan's chunk indices in batches of per_batch (one mapped task each)."""
    count = int(read_stage(out_dir).get("chunks") or 0)
    return [list(range(k, min(k + per_batch, count))) for k in range(0, count, per_batch)]


def seal_staged_chunks(out_dir: Path, indices: list[int], *, workers: int | None = None) -> int:
    """Step 2b: seal (or link) the lookup files of these chunks of the staged plan, in `workers`
    processes of this machine. Safe to run again. Returns the rows done."""
    out_dir = Path(out_dir)
    stage = read_stage(out_dir)
    if "result" in stage:
        return 0
    if not Path(stage["staged"]).is_dir():
        raise RoundError(f"the staged version {stage['staged']} is gone (another publication of the round "
                         f"replaced it); run the first publish step again. Nothing was published.")
    indices = [int(k) for k in indices]
    if any(k < 0 or k >= stage["chunks"] for k in indices):
        raise RoundError(f"lookup chunks {indices} are not all in the staged plan (0..{stage['chunks'] - 1})")
    workers = workers or lookup.default_workers()
    if workers == 1 or len(indices) <= 1 or stage["small"]:
        return sum(lookup.seal_lookup_chunk(out_dir, k) for k in indices)
    ctx = multiprocessing.get_context("spawn")   # no fork of a threaded (polars) process
    with ProcessPoolExecutor(max_workers=min(workers, len(indices)), mp_context=ctx) as pool:
        return sum(pool.map(lookup.seal_lookup_chunk, [out_dir] * len(indices), indices))


def complete_publication(out_dir: Path, publish_root: Path, *,
                         signing_key: Path | str | None = None) -> dict:
    """Last step: under the round's lock, check that the staged version is still the next one and
    the run folder still holds the staged result; the lookup listing, manifest and signature;
    rename into place; the audit line. Returns what publish() returns."""
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    key = signing.load_private_key(signing_key, publish_root)
    with round_lock(publish_root, _round_id(out_dir, publish_root)):
        try:
            return _complete(out_dir, publish_root, key)
        except RoundError:
            raise
        except BaseException:
            stage = read_stage(out_dir)   # a retry stages again from the start
            if "staged" in stage:
                shutil.rmtree(stage["staged"], ignore_errors=True)
            (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)
            raise


def _complete(out_dir: Path, publish_root: Path, key) -> dict:
    stage = read_stage(out_dir)
    if "result" in stage:
        (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)
        return stage["result"]
    round_id, version, staged = stage["round_id"], stage["version"], Path(stage["staged"])
    round_root = publish_root / round_id
    versions = files.list_versions(round_root)
    latest = versions[-1] if versions else None
    if latest != stage["previous_version"]:
        shutil.rmtree(staged, ignore_errors=True)
        (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)
        raise RoundError(f"round {round_id}: v{latest} was published while this version was being "
                         f"written (staged as v{version}); run the publish steps again. Nothing was "
                         f"published.")
    if result_fingerprint(out_dir) != stage["fingerprint"]:
        raise RoundError(f"round {round_id}: the run folder no longer holds the result that was staged "
                         f"(fingerprint {stage['fingerprint'][:12]}); nothing was published.")
    if not staged.is_dir() or not (staged / files.REPORT_HTML).is_file():
        raise RoundError(f"the staged version {staged} is missing or incomplete (its pages were not "
                         f"written); run the publish steps again. Nothing was published.")
    report_json = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    counts = lookup.finalize_lookup(out_dir)
    entry, detail, stamp = stage["entry"], stage["detail"], stage["stamp"]
    line, officer_line = audit.prepare(publish_root, round_id, entry, detail)   # the chains checked
    file_hashes = {rel_name(p, staged): sha256_file(p) for p in _own_files(staged)}
    manifest = {"round_id": round_id, "version": version, "files": file_hashes,
                "published_at": stage["published_at"],
                "result_fingerprint": stage["fingerprint"], "input_sha256": report_json["input_sha256"],
                "solver": {k: report_json[k] for k in ("status", "objective", "bound", "gap", "solver")},
                "solver_report": public_solver_report(report_json),
                "lookup": counts,
                # the audit line of this version, pinned by the signature
                "audit": {"trail": audit.trail_path(publish_root, round_id).relative_to(publish_root).as_posix(),
                          "line_sha256": audit.line_hash(line)},
                "signing_key_sha256": signing.key_id(key)}
    if stage["demo"]:
        manifest["demo"] = True
    lifecycle_public = _lifecycle_public(out_dir)
    if lifecycle_public is not None:
        manifest["lifecycle"] = lifecycle_public
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    (staged / files.MANIFEST).write_bytes(manifest_bytes)
    (staged / files.SIGNATURE).write_bytes(signing.sign(key, manifest_bytes))
    own = _own_files(staged)
    for path in own:      # (the r/ files got the same stamp from the sealing workers)
        os.utime(path, (stamp, stamp))
    for sub in [staged, *sorted(p for p in staged.iterdir() if p.is_dir())]:
        os.chmod(sub, 0o755)
    _fsync_tree(staged, own)
    target = round_root / files.version_name(version)
    try:
        os.rename(staged, target)   # atomic; fails if v<N> appeared meanwhile
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise RuntimeError(f"{target} appeared while publishing (another publisher "
                               f"without the lock?); nothing was changed") from exc
        raise
    _fsync_dir(round_root)
    audit.append_line(publish_root, round_id, line, officer_line)
    (out_dir / files.PUBLISH_STAGE).unlink(missing_ok=True)
    _remove_stale(round_root, version)   # versions staged elsewhere as v<=N can never complete
    return {"round_id": round_id, "version": version, "path": str(target), "created": True,
            "message": f"published v{version}" + (" (DEMO)" if stage["demo"] else "")}


DEMO_BANNER = ('<p class="demo" role="alert"><strong>DEMO</strong> — 시연용 결과입니다. 공식 발표가 아닙니다. '
               '<span class="en">Demonstration only: not an official result of this round.</span></p>')


def _mark_demo(folder: Path) -> None:
    """A DEMO banner at the top of every page of a demo version."""
    for page in (p for p in _own_files(folder) if p.suffix == ".html"):   # r/ holds no pages
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
