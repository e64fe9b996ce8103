"""Publish a solved round: PUBLISH_ROOT/<round_id>/v<N>/, immutable and atomic.

A version is written into a hidden temporary folder and renamed into place, so readers
never see a half-written version. Publishing the same result again is a no-op; a changed
result becomes v<N+1>. manifest.json holds the sha256 of every file in the version.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from allocation import schema
from allocation.identifiers import mask_business_no

MANIFEST = "manifest.json"
# Spreadsheet programs run cells starting with these as formulas (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def _html_table(frame: pl.DataFrame, title: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows())
    return (f"<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
            f"td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{rows}"
            f"</tbody></table></body></html>\n")


def _write_version(out_dir: Path, target: Path, report: dict) -> None:
    awards = public_award_list(out_dir)
    awards.write_csv(target / "awards_public.csv", include_bom=True)
    awards.write_parquet(target / "awards_public.parquet", statistics=False)
    awards.write_excel(target / "awards_public.xlsx", worksheet="awards")
    title = f"Compute voucher awards — round {report['round_id']}"
    (target / "awards_public.html").write_text(_html_table(awards, title), encoding="utf-8")


def _versions(round_root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in round_root.glob("v*") if p.name[1:].isdigit())


def result_fingerprint(out_dir: Path) -> str:
    """What a version stands for: the inputs and the decided outcomes."""
    digest = hashlib.sha256()
    for name in ("outcomes.parquet", "awards.parquet"):
        digest.update(sha256_file(out_dir / name).encode())
    report = json.loads((out_dir / "solution.json").read_text(encoding="utf-8"))
    digest.update(json.dumps(report["input_sha256"], sort_keys=True).encode())
    return digest.hexdigest()


def publish(out_dir: Path, publish_root: Path) -> dict:
    """Publish the allocation in out_dir; returns {"round_id", "version", "path", "created"}."""
    out_dir, publish_root = Path(out_dir), Path(publish_root)
    report = json.loads((out_dir / "solution.json").read_text(encoding="utf-8"))
    round_root = publish_root / report["round_id"]
    round_root.mkdir(parents=True, exist_ok=True)
    fingerprint = result_fingerprint(out_dir)
    versions = _versions(round_root)
    if versions:
        latest = round_root / f"v{versions[-1]}"
        manifest = json.loads((latest / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("result_fingerprint") == fingerprint:
            return {"round_id": report["round_id"], "version": versions[-1], "path": str(latest),
                    "created": False}
    version = (versions[-1] + 1) if versions else 1
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=round_root))
    try:
        _write_version(out_dir, tmp, report)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"round_id": report["round_id"], "version": version, "files": files,
                    "result_fingerprint": fingerprint, "input_sha256": report["input_sha256"],
                    "solver": {k: report[k] for k in ("status", "objective", "bound", "gap", "solver")}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
                                    + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        os.rename(tmp, round_root / f"v{version}")   # atomic; fails if v<N> appeared meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"round_id": report["round_id"], "version": version,
            "path": str(round_root / f"v{version}"), "created": True}


def verify(version_dir: Path) -> list[str]:
    """Files whose sha256 does not match the manifest (empty = intact)."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / MANIFEST).read_text(encoding="utf-8"))
    bad = [name for name, digest in manifest["files"].items()
           if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    extra = [p.name for p in version_dir.iterdir() if p.name not in manifest["files"] and p.name != MANIFEST]
    return bad + extra
