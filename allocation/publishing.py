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

from allocation import lookup, report, schema
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
                   lookup_iterations: int | None = None) -> dict:
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
    (target / "report.html").write_text(report.render_report(out_dir, version), encoding="utf-8")
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


def publish(out_dir: Path, publish_root: Path, *, lookup_iterations: int | None = None) -> dict:
    """Publish the allocation in out_dir; returns {"round_id", "version", "path", "created"}.

    lookup_iterations: PBKDF2 iterations for the lookup files (default
    lookup.DEFAULT_ITERATIONS, at least lookup.MIN_ITERATIONS).
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
        tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=round_root))
        try:
            counts = _write_version(out_dir, tmp, report_json, version, lookup_iterations)
            files = {_rel(p, tmp): sha256_file(p) for p in _files(tmp)}
            manifest = {"round_id": round_id, "version": version, "files": files,
                        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        "result_fingerprint": fingerprint, "input_sha256": report_json["input_sha256"],
                        "solver": {k: report_json[k] for k in ("status", "objective", "bound", "gap",
                                                               "solver")},
                        "solver_report": public_solver_report(report_json),
                        "lookup": counts}
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
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return {"round_id": round_id, "version": version, "path": str(target), "created": True}


def verify(version_dir: Path) -> list[str]:
    """Files whose sha256 does not match the manifest, then files it does not list (empty = intact)."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / MANIFEST).read_text(encoding="utf-8"))
    bad = [name for name, digest in manifest["files"].items()
           if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    extra = [_rel(p, version_dir) for p in _files(version_dir)
             if _rel(p, version_dir) not in manifest["files"] and _rel(p, version_dir) != MANIFEST]
    return bad + extra
