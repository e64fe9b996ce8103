"""The version a refill or appeal builds on: a run folder, or a published version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from allocation import files, schema
from allocation.errors import RoundError
from allocation.publish import audit
from allocation.publish.manifest import verify

APP_ID = "application_id"


@dataclass
class Previous:
    """What was published (or allocated) before this lifecycle run."""

    round_id: str
    label: str                          # "v2" or the run folder, for messages
    version: int | None                 # published version number (None: a run folder)
    source: Path
    awards: dict[str, float]            # application_id -> award_fraction, awardees now
    offered: dict[str, str | None]      # awardee -> as-of date of the version that first offered it
    ever_awarded: set[str]              # awardees of any earlier version
    outcomes: pl.DataFrame | None = None   # full outcomes (officer side) when known
    out_dir: Path | None = None


def _load_published(version_dir: Path) -> Previous:
    problems = verify(version_dir)
    if problems:
        raise RoundError(f"{version_dir} does not match its manifest ({', '.join(problems[:3])}); "
                         f"refusing to build on a tampered version")
    manifest = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    round_id, version = manifest["round_id"], int(manifest["version"])
    round_root = version_dir.parent
    per_version: dict[int, dict[str, float]] = {}
    as_of: dict[int, str | None] = {}
    for v in files.list_versions(round_root):
        if v > version:
            continue
        frame = pl.read_parquet(round_root / files.version_name(v) / files.AWARDS_PUBLIC_PARQUET)
        per_version[v] = dict(zip(frame[APP_ID].to_list(), frame["award_fraction"].to_list()))
        m = json.loads((round_root / files.version_name(v) / files.MANIFEST).read_text(encoding="utf-8"))
        as_of[v] = (m.get("lifecycle") or {}).get("as_of")
    awards = per_version[version]
    offered = {}
    for app_id in awards:
        first = version
        while first - 1 in per_version and app_id in per_version[first - 1]:
            first -= 1
        offered[app_id] = as_of.get(first)
    ever = set().union(*per_version.values())
    outcomes = out_dir = None
    for entry in audit.read(round_root.parent, round_id):
        if entry.get("version") == version and entry.get("out_dir"):
            candidate = Path(entry["out_dir"])
            if (candidate / files.OUTCOMES_PARQUET).is_file():
                out_dir, outcomes = candidate, pl.read_parquet(candidate / files.OUTCOMES_PARQUET)
    return Previous(round_id=round_id, label=f"v{version}", version=version, source=version_dir,
                    awards=awards, offered=offered, ever_awarded=ever, outcomes=outcomes, out_dir=out_dir)


def _load_run_folder(out_dir: Path) -> Previous:
    sol = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    outcomes = pl.read_parquet(out_dir / files.OUTCOMES_PARQUET)
    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    awards = dict(zip(awarded[APP_ID].to_list(), awarded["award_fraction"].to_list()))
    offered: dict[str, str | None] = {a: None for a in awards}
    ever = set(awards)
    state_path = out_dir / files.LIFECYCLE_STATE
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        offered = {a: state["next"]["offered"].get(a) for a in awards}
        ever = set(state["next"]["ever_awarded"])
    return Previous(round_id=sol["round_id"], label=str(out_dir), version=None, source=out_dir,
                    awards=awards, offered=offered, ever_awarded=ever, outcomes=outcomes,
                    out_dir=out_dir)


def load_previous(path: Path | str) -> Previous:
    """A run folder (OUT of allocate or of a lifecycle run), a published version folder
    (PUBLISH_ROOT/<round>/v<N>) or a published round folder (its latest version)."""
    path = Path(path)
    if files.is_run_folder(path):
        return _load_run_folder(path)
    if (path / files.MANIFEST).is_file() and (path / files.AWARDS_PUBLIC_PARQUET).is_file():
        return _load_published(path)
    versions = files.list_versions(path) if path.is_dir() else []
    if versions:
        return _load_published(path / files.version_name(versions[-1]))
    raise RoundError(f"{path}: not a run folder (outcomes.parquet, solution.json), a published "
                     f"version (manifest.json) nor a published round folder (v1, v2, …)")
