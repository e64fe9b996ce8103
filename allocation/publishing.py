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
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import xlsxwriter

from allocation import audit, lookup, report, schema
from allocation.errors import RoundError
from allocation.identifiers import mask_business_no

MANIFEST = "manifest.json"
LOCK = ".{round_id}.publish.lock"   # in PUBLISH_ROOT, so a round folder holds versions only
# Spreadsheet programs run cells starting with these as formulas (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# The XLSX "created" property: fixed, so the same award list gives the same bytes.
XLSX_CREATED = dt.datetime(2000, 1, 1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would treat as a formula with an apostrophe."""
    risky = "^[" + "".join("\\" + c if c in "+-" else c for c in FORMULA_PREFIXES) + "]"
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.String
    )


def public_award_list(out_dir: Path) -> pl.DataFrame:
    """Awardees only, with masked business numbers and hours per GPU type."""
    outcomes = pl.read_parquet(out_dir / "outcomes.parquet").filter(
        pl.col("status") == schema.STATUS_AWARDED)
    awards = pl.read_parquet(out_dir / "awards.parquet")
    apps = pl.read_parquet(out_dir / "intake" / "applications.parquet").select(
        "application_id", "project_title")
    hours = awards.pivot(on="gpu_type", index="application_id", values="gpu_hours",
                         sort_columns=True)
    hours = hours.rename({c: f"gpu_hours_{c}" for c in hours.columns if c != "application_id"})
    listed = (
        outcomes.join(apps.unique("application_id", keep="first"), on="application_id", how="left")
        .join(hours, on="application_id", how="left")
        .with_columns(business_no=pl.col("business_no").map_elements(mask_business_no,
                                                                     return_dtype=pl.String))
        .sort("application_id")
    )
    gpu_cols = sorted(c for c in listed.columns if c.startswith("gpu_hours_"))
    return neutralise(listed.select(
        "application_id", "company_name", "business_no", "region", "project_title",
        *gpu_cols, "award_fraction", "awarded_krw", "copay_krw",
    ).with_columns(pl.col(gpu_cols).fill_null(0)))


_LABELS = {"application_id": "접수번호 / ID", "company_name": "기업명 / company",
           "business_no": "사업자등록번호 / business no.", "region": "지역 / region",
           "project_title": "과제명 / project", "award_fraction": "지원 비율 / share",
           "awarded_krw": "지원금 / awarded (KRW)", "copay_krw": "자부담 / co-payment (KRW)"}


def _html_award_list(frame: pl.DataFrame, title: str, round_name: str, version: int) -> str:
    columns = []
    for name, dtype in frame.schema.items():
        label = _LABELS.get(name) or (f"{name.removeprefix('gpu_hours_')} GPU-h"
                                      if name.startswith("gpu_hours_") else name)
        columns.append({"name": name, "label": label, "num": dtype.is_numeric(),
                        "wrap": name == "project_title"})

    def cell(name, value):
        if value is None:
            return ""
        if name == "award_fraction":
            return f"{value:.0%}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    rows = [[cell(c["name"], v) for c, v in zip(columns, row)] for row in frame.iter_rows()]
    totals = {c["name"]: f"{frame[c['name']].sum():,}" for c in columns
              if c["name"] in ("awarded_krw", "copay_krw") or c["name"].startswith("gpu_hours_")}
    totals["application_id"] = f"합계 / total: {frame.height}"
    return report.render("awards.html.j2", title=title, round_name=round_name, version=version,
                         columns=columns, rows=rows, totals=totals)


def _write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    workbook = xlsxwriter.Workbook(str(path))
    workbook.set_properties({"created": XLSX_CREATED, "title": "Compute voucher awards"})
    try:
        frame.write_excel(workbook, worksheet="awards", autofit=True)
    finally:
        workbook.close()


def _round_info(out_dir: Path, report_json: dict) -> tuple[str, float | None]:
    cfg = report.round_config(out_dir)
    name = cfg.get("round", {}).get("name", "") or report_json["round_id"]
    return name, cfg.get("award", {}).get("min_score")


def _write_version(out_dir: Path, target: Path, report_json: dict, version: int = 1,
                   lookup_iterations: int | None = None, timeline: list[dict] | None = None,
                   changes: dict | None = None) -> dict:
    """Every public file of the version into target; returns the lookup counts."""
    round_id = report_json["round_id"]
    round_name, min_score = _round_info(out_dir, report_json)
    awards = public_award_list(out_dir)
    awards.write_csv(target / "awards_public.csv", include_bom=True)
    awards.write_parquet(target / "awards_public.parquet", statistics=False)
    _write_xlsx(awards, target / "awards_public.xlsx")
    title = f"Compute voucher awards — round {round_id}"
    (target / "awards_public.html").write_text(
        _html_award_list(awards, title, round_name, version), encoding="utf-8")
    extra = {k: v for k, v in (("timeline", timeline), ("changes", changes)) if v}
    (target / "report.html").write_text(report.render_report(out_dir, version, **extra), encoding="utf-8")
    script = (report.TEMPLATES / "lookup.js").read_text(encoding="utf-8")
    (target / "index.html").write_text(
        report.environment().get_template("index.html.j2").render(
            title=f"컴퓨팅 바우처 선정 결과 — {round_id}", round_name=round_name, version=version,
            script=script, csp_extra=report.script_csp(script)),
        encoding="utf-8")
    iterations = lookup.DEFAULT_ITERATIONS if lookup_iterations is None else int(lookup_iterations)
    return lookup.write_lookup_files(out_dir, target, round_id, round_name=round_name,
                                     min_score=min_score, iterations=iterations)


def _versions(round_root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in round_root.glob("v*") if p.name[1:].isdigit())


def result_fingerprint(out_dir: Path) -> str:
    """What a version stands for: the inputs and the decided outcomes."""
    digest = hashlib.sha256()
    for name in ("outcomes.parquet", "awards.parquet"):
        digest.update(sha256_file(out_dir / name).encode())
    report_json = json.loads((out_dir / "solution.json").read_text(encoding="utf-8"))
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


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _fsync_tree(folder: Path) -> None:
    for path in _files(folder):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    for sub in sorted({p.parent for p in _files(folder)} | {folder}):
        _fsync_dir(sub)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _round_lock(publish_root: Path, round_id: str):
    """One publisher per round at a time (advisory lock; released if the process dies)."""
    with open(publish_root / LOCK.format(round_id=round_id), "a") as handle:
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
            actor: dict | None = None) -> dict:
    """Publish the allocation in out_dir; returns {"round_id", "version", "path", "created"}.

    lookup_iterations: PBKDF2 iterations for the lookup files (default
    lookup.DEFAULT_ITERATIONS, at least lookup.MIN_ITERATIONS).
    actor: who triggered and approved this publication, for the audit trail
    ({"via", "triggered_by", "approved_by", ...}; default: the Airflow user when called inside
    an Airflow task, else "cli" — see allocation.audit).

    Every new version is appended to the round's audit trail (allocation.audit). A lifecycle
    result (allocation.lifecycle: refill or appeal) is published with ``changes.json`` and
    ``changes.md`` (what changed against the previous version, aggregates and new awardees only)
    and is refused when another version was published after the one it was computed against.
    """
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    if lookup_iterations is not None and lookup_iterations < lookup.MIN_ITERATIONS:
        raise ValueError(f"lookup_iterations must be at least {lookup.MIN_ITERATIONS:,}")
    report_json = json.loads((out_dir / "solution.json").read_text(encoding="utf-8"))
    round_id = report_json["round_id"]
    round_root = publish_root / round_id
    round_root.mkdir(parents=True, exist_ok=True)
    fingerprint = result_fingerprint(out_dir)
    with _round_lock(publish_root, round_id):
        _remove_stale(round_root)
        versions = _versions(round_root)
        if versions:
            latest = round_root / f"v{versions[-1]}"
            manifest = json.loads((latest / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("result_fingerprint") == fingerprint:
                return {"round_id": round_id, "version": versions[-1], "path": str(latest),
                        "created": False}
        version = (versions[-1] + 1) if versions else 1
        # --- lifecycle and audit (allocation.lifecycle / allocation.audit) ---
        lifecycle_public = _lifecycle_public(out_dir)
        expected = (lifecycle_public or {}).get("previous_version")
        if expected is not None and versions and versions[-1] != expected:
            raise RoundError(f"round {round_id}: v{versions[-1]} was published after this "
                             f"{lifecycle_public['kind']} was computed against v{expected}; "
                             f"run it again against v{versions[-1]}. Nothing was published.")
        previous_dir = round_root / f"v{versions[-1]}" if versions else None
        published_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        entry = _audit_entry(out_dir, report_json, version, published_at, lifecycle_public, actor)
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
                entry["diff"] = public_diff(pl.read_parquet(previous_dir / "awards_public.parquet"),
                                            public_award_list(out_dir))["diff"]
            counts = _write_version(out_dir, tmp, report_json, version, lookup_iterations,
                                    timeline, changes)
            if changes is not None:
                _write_changes(tmp, changes)
            files = {_rel(p, tmp): sha256_file(p) for p in _files(tmp)}
            manifest = {"round_id": round_id, "version": version, "files": files,
                        "published_at": published_at,
                        "result_fingerprint": fingerprint, "input_sha256": report_json["input_sha256"],
                        "solver": {k: report_json[k] for k in ("status", "objective", "bound", "gap",
                                                               "solver")},
                        "solver_report": public_solver_report(report_json),
                        "lookup": counts}
            if lifecycle_public is not None:
                manifest["lifecycle"] = lifecycle_public
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
                                        + "\n", encoding="utf-8")
            # one timestamp for every file: modification times tell nothing about write order
            stamp = time.time()
            for path in _files(tmp):
                os.utime(path, (stamp, stamp))
            for sub in [tmp, *sorted(p for p in tmp.rglob("*") if p.is_dir())]:
                os.chmod(sub, 0o755)
            _fsync_tree(tmp)
            target = round_root / f"v{version}"
            try:
                os.rename(tmp, target)   # atomic; fails if v<N> appeared meanwhile
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise RuntimeError(f"{target} appeared while publishing (another publisher "
                                       f"without the lock?); nothing was changed") from exc
                raise
            _fsync_dir(round_root)
            audit.append(publish_root, round_id, entry)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return {"round_id": round_id, "version": version, "path": str(target), "created": True}


# --- Lifecycle changes and audit entries (allocation.lifecycle, allocation.audit) ---------

CHANGES_JSON, CHANGES_MD = "changes.json", "changes.md"


def _lifecycle_public(out_dir: Path) -> dict | None:
    path = out_dir / "lifecycle_public.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def public_diff(old: pl.DataFrame, new: pl.DataFrame) -> dict:
    """Gained awardees (public in the new list) and aggregate losses/changes between two lists."""
    keys = ("award_fraction", "awarded_krw", "copay_krw")
    old_rows = {r["application_id"]: r for r in old.iter_rows(named=True)}
    new_rows = {r["application_id"]: r for r in new.iter_rows(named=True)}
    gpu_cols = sorted(c for c in new.columns if c.startswith("gpu_hours_"))
    gained = [{"application_id": a, "company_name": new_rows[a]["company_name"],
               "region": new_rows[a]["region"], "award_fraction": new_rows[a]["award_fraction"],
               "awarded_krw": int(new_rows[a]["awarded_krw"]), "copay_krw": int(new_rows[a]["copay_krw"]),
               "gpu_hours": {c.removeprefix("gpu_hours_"): int(new_rows[a][c] or 0) for c in gpu_cols
                             if new_rows[a][c]}}
              for a in sorted(new_rows.keys() - old_rows.keys())]
    lost = sorted(old_rows.keys() - new_rows.keys())
    both = sorted(old_rows.keys() & new_rows.keys())
    changed = [a for a in both if any(old_rows[a][k] != new_rows[a][k] for k in keys)]
    return {"gained": gained, "diff": {
        "gained": len(gained), "gained_krw": sum(g["awarded_krw"] for g in gained),
        "lost": len(lost), "lost_krw": sum(int(old_rows[a]["awarded_krw"]) for a in lost),
        "changed": len(changed), "unchanged": len(both) - len(changed),
        "awardees_old": old.height, "awardees_new": new.height,
        "delta_krw": int(new["awarded_krw"].sum() or 0) - int(old["awarded_krw"].sum() or 0)}}


def lifecycle_changes(public: dict, previous_dir: Path | None, new_awards: pl.DataFrame,
                      version: int) -> dict:
    """What a refill/appeal changed against the previous version: new awardees by name (they
    are public awardees now), everything else as aggregates."""
    old = (pl.read_parquet(previous_dir / "awards_public.parquet") if previous_dir is not None
           else new_awards.clear())
    diff = public_diff(old, new_awards)
    return {"version": version, "previous_version": int(previous_dir.name[1:]) if previous_dir else None,
            **public, "gained_awardees": diff["gained"], "diff": diff["diff"]}


def _write_changes(target: Path, changes: dict) -> None:
    (target / CHANGES_JSON).write_text(json.dumps(changes, indent=2, sort_keys=True, ensure_ascii=False)
                                       + "\n", encoding="utf-8")
    d = changes["diff"]
    lines = [f"# Round changes: v{changes['previous_version']} → v{changes['version']} "
             f"({changes['kind']} as of {changes['as_of']})", "",
             f"- awards released (declined or lapsed): {changes['released']} "
             f"(₩{changes['released_krw']:,}); by reason: "
             + (", ".join(f"{k} {v}" for k, v in sorted(changes['released_by_reason'].items())) or "none"),
             f"- newly awarded: {d['gained']} (₩{d['gained_krw']:,}); awards kept unchanged: {d['unchanged']}; "
             f"changed: {d['changed']}",
             f"- appeals: upheld {changes['appeals']['upheld']}, rejected {changes['appeals']['rejected']}", ""]
    if changes["gained_awardees"]:
        lines += ["## Newly awarded", "", "| application | company | region | share | awarded |",
                  "|---|---|---|---:|---:|"]
        lines += [f"| {g['application_id']} | {g['company_name']} | {g['region']} | "
                  f"{g['award_fraction']:.0%} | ₩{g['awarded_krw']:,} |" for g in changes["gained_awardees"]]
        lines.append("")
    lines += ["## Capacity re-used and unused", "",
              "| limit | capacity | used | freed by releases | used by new awards | unused | why unused |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['limit']} | {r['capacity']:,} | {r['used']:,} | {r['freed_by_releases']:,} | "
              f"{r['used_by_new_awards']:,} | {r['unused']:,} | {r['why_unused']} |"
              for r in changes["resources"]]
    (target / CHANGES_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _audit_entry(out_dir: Path, report_json: dict, version: int, published_at: str,
                 lifecycle_public: dict | None, actor: dict | None) -> dict:
    summary = report_json.get("summary", {})
    who = actor or audit.current_actor()
    return {
        "round_id": report_json["round_id"], "version": version, "published_at": published_at,
        "kind": (lifecycle_public or {}).get("kind", "allocation"),
        "as_of": (lifecycle_public or {}).get("as_of"),
        "previous_version": (lifecycle_public or {}).get("previous_version",
                                                          version - 1 if version > 1 else None),
        **{k: who.get(k) for k in ("via", "triggered_by", "approved_by", "dag_id", "run_id") if k in who},
        "input_sha256": report_json.get("input_sha256", {}),
        "solver": {k: report_json.get(k) for k in ("status", "objective", "gap")},
        "summary": {k: summary.get(k) for k in ("funded", "awarded_krw", "budget_krw")},
        "appeals": (lifecycle_public or {}).get("appeals"),
        "released": (lifecycle_public or {}).get("released"),
        "diff": None,
        "out_dir": str(Path(out_dir).resolve()),
    }


def verify(version_dir: Path) -> list[str]:
    """Files whose sha256 does not match the manifest, then files it does not list (empty = intact)."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / MANIFEST).read_text(encoding="utf-8"))
    bad = [name for name, digest in manifest["files"].items()
           if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    extra = [_rel(p, version_dir) for p in _files(version_dir)
             if _rel(p, version_dir) not in manifest["files"] and _rel(p, version_dir) != MANIFEST]
    return bad + extra
