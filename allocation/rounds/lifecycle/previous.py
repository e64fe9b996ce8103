"""The version a refill or appeal builds on: a run folder, or a published version.

A published version is always read from the officers' run folder it was published from (found
through the officers' audit line bound to the public line the signed manifest pins, checked
against the signed manifest's result fingerprint): a forged
public file can fail the check but never changes what a refill keeps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from allocation import files, schema
from allocation.errors import RoundError
from allocation.publish import audit, signing
from allocation.publish.verify import verify_version
from allocation.publish.version import result_fingerprint

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
    starts: dict[str, str] = field(default_factory=dict)   # GPU capacity by month: awardee -> start month


def _round_public_key(round_root: Path):
    """The key the round's versions must be signed with: the publisher's own key when this
    process has it ($VOUCHER_SIGNING_KEY), else the round's published signing_key.pub."""
    if os.environ.get(signing.KEY_ENV):
        return signing.load_private_key().public_key()
    return signing.load_public_key(round_root / files.SIGNING_KEY_PUB)


def _load_published(version_dir: Path) -> Previous:
    """A published version, read from the officers' run folder it was published from — never
    from the public files — after checking the version against its signed manifest, the audit
    line the manifest pins, and the run folder against the manifest's result fingerprint."""
    version_dir = Path(version_dir)
    round_root = version_dir.parent
    problems = verify_version(version_dir, _round_public_key(round_root))
    if problems:
        raise RoundError(f"{version_dir} does not match its signed manifest ({'; '.join(problems[:3])}); "
                         f"refusing to build on a tampered version")
    manifest = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    round_id, version = manifest["round_id"], int(manifest["version"])
    pinned = (manifest.get("audit") or {}).get("line_sha256")
    found = next(((e, detail) for text, e, detail in audit.detailed(round_root.parent, round_id)
                  if audit.line_hash(text) == pinned), None)
    if found is None or found[0].get("version") != version:
        raise RoundError(f"{version_dir}: its audit line (pinned by the signed manifest) is missing or "
                         f"changed, so the officers' run folder it was published from is unknown")
    if not found[1].get("out_dir"):
        raise RoundError(f"{version_dir}: the officers' audit trail ({audit.officer_path(round_root.parent, round_id)}) "
                         f"has no line bound to v{version}'s public audit line, so the run folder it was "
                         f"published from is unknown")
    out_dir = Path(found[1]["out_dir"])
    if not files.is_run_folder(out_dir):
        raise RoundError(f"v{version} was published from {out_dir}, which is no longer a run folder; "
                         f"refills and appeals read the officers' run folder, not the public files")
    if result_fingerprint(out_dir) != manifest.get("result_fingerprint"):
        raise RoundError(f"the run folder {out_dir} no longer holds the result published as v{version} "
                         f"(fingerprint differs from the signed manifest); refusing to build on it")
    found = _load_run_folder(out_dir)
    found.label, found.version, found.source = f"v{version}", version, version_dir
    return found


def _load_run_folder(out_dir: Path) -> Previous:
    sol = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    outcomes = pl.read_parquet(out_dir / files.OUTCOMES_PARQUET)
    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    awards = dict(zip(awarded[APP_ID].to_list(), awarded["award_fraction"].to_list()))
    starts = (dict(zip(awarded[APP_ID].to_list(), awarded[schema.START_MONTH].to_list()))
              if schema.START_MONTH in awarded.columns else {})
    offered: dict[str, str | None] = {a: None for a in awards}
    ever = set(awards)
    state_path = out_dir / files.LIFECYCLE_STATE
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        offered = {a: state["next"]["offered"].get(a) for a in awards}
        ever = set(state["next"]["ever_awarded"])
    return Previous(round_id=sol["round_id"], label=str(out_dir), version=None, source=out_dir,
                    awards=awards, offered=offered, ever_awarded=ever, outcomes=outcomes,
                    out_dir=out_dir, starts=starts)


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
