"""Every output file's name, in one place, and the writers every stage shares.

Three folders hold what the system writes:

RUN FOLDER (``voucher allocate --out OUT``, one DAG run's ``RUNS_ROOT/<round>/<run id>/``)::

  intake/                  validated tables (Parquet), issues.csv, intake.json, round.toml in force
  scores.parquet           per-application scores
  outcomes.csv/.parquet    one row per input application row
  awards.csv/.parquet      one row per awarded application × GPU type
  solution.json            solver report: status, bound, limits, quotas, warnings, input hashes
  quality.json             data-quality numbers
  timings.json             wall-clock seconds (the only file that differs between identical runs)
  validation_error.txt     why the round could not run (DAG runs only)
  approval.md, approval_request.json, approval.json   the approval bound to this result (DAG runs only)
  lifecycle.json, lifecycle_public.json, changes.csv/.parquet, lifecycle_report.md,
  previous_outcomes.parquet                       refills and appeals only

PUBLISH ROOT (``voucher publish --publish-root ROOT``)::

  index.json                       every round and its latest version
  <round_id>.audit.jsonl           the round's audit trail
  .<round_id>.publish.lock         one publisher per round at a time
  <round_id>/signing_key.pub       public key of the round's manifest signatures
  <round_id>/v<N>/                 one immutable version (manifest.json signed by manifest.sig)

ROUND FOLDER (the officers' input; the input tables are named in ``allocation.schema``)::

  responses.csv, appeals.csv, replacement_reviews.*   after publication
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl

# --- run folder -----------------------------------------------------------------------
INTAKE = "intake"
SCORES = "scores.parquet"
OUTCOMES = "outcomes"             # table stem: .csv and .parquet (write_table)
AWARDS = "awards"                 # table stem
OUTCOMES_PARQUET = f"{OUTCOMES}.parquet"
AWARDS_PARQUET = f"{AWARDS}.parquet"
SOLUTION = "solution.json"
QUALITY = "quality.json"
TIMINGS = "timings.json"
VALIDATION_ERROR = "validation_error.txt"
LIFECYCLE_STATE = "lifecycle.json"
LIFECYCLE_PUBLIC = "lifecycle_public.json"
CHANGES = "changes"               # table stem (officers only: every applicant before and after)
LIFECYCLE_REPORT = "lifecycle_report.md"
PREVIOUS_OUTCOMES = "previous_outcomes.parquet"
APPROVAL_TEXT = "approval.md"              # what the approver reads (DAG runs), fingerprint first
APPROVAL_REQUEST = "approval_request.json"  # the approve task's request: its task instance, the fingerprint shown
APPROVAL_RECORD = "approval.json"           # the response Airflow recorded for that request (Approve/Reject, who, when)

# --- run folder: intake/ ----------------------------------------------------------------
INTAKE_TABLES = ("applications", "requests", "reviews", "capacity")   # <stem>.parquet
ISSUES_CSV = "issues.csv"
INTAKE_META = "intake.json"

# --- round folder: officer files after publication -------------------------------------
RESPONSES = "responses.csv"
APPEALS = "appeals.csv"
REPLACEMENT_REVIEWS = "replacement_reviews"   # table stem (.csv, .xlsx or .parquet)

# --- publish root -------------------------------------------------------------------------
INDEX = "index.json"
AUDIT_SUFFIX = ".audit.jsonl"
PUBLISH_LOCK = ".{round_id}.publish.lock"
SIGNING_KEY_PUB = "signing_key.pub"   # PUBLISH_ROOT/<round_id>/signing_key.pub: the key that signs its versions

# --- one published version: PUBLISH_ROOT/<round_id>/v<N>/ ------------------------------
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"        # raw Ed25519 signature of manifest.json's bytes (allocation.publish.signing)
AWARDS_PUBLIC = "awards_public"   # .csv, .xlsx, .parquet, .html
AWARDS_PUBLIC_PARQUET = f"{AWARDS_PUBLIC}.parquet"
AWARDS_PUBLIC_CSV = f"{AWARDS_PUBLIC}.csv"
AWARDS_PUBLIC_HTML = f"{AWARDS_PUBLIC}.html"
AWARDS_PUBLIC_XLSX = f"{AWARDS_PUBLIC}.xlsx"
REPORT_HTML = "report.html"
LOOKUP_PAGE = "index.html"        # the applicant's results page
LOOKUP_JSON = "lookup.json"       # KDF parameters of the lookup files
LOOKUP_DIR = "r"                  # r/<64 hex>.json, one sealed file per application
CHANGES_JSON = "changes.json"     # refills and appeals: what changed against the previous version
CHANGES_MD = "changes.md"

_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def version_name(version: int) -> str:
    return f"v{int(version)}"


def list_versions(round_root: Path) -> list[int]:
    """The complete published versions of a round folder (v<N> folders holding a manifest),
    ascending. The only definition of "the versions of a round"."""
    round_root = Path(round_root)
    if not round_root.is_dir():
        return []
    found = []
    for path in round_root.iterdir():
        match = _VERSION.match(path.name)
        if match and path.is_dir() and (path / MANIFEST).is_file():
            found.append(int(match.group(1)))
    return sorted(found)


def latest_version_dir(round_root: Path) -> Path | None:
    """PUBLISH_ROOT/<round_id>/v<N> with the highest N (None: nothing published yet)."""
    versions = list_versions(round_root)
    return Path(round_root) / version_name(versions[-1]) if versions else None


def is_version_dir(path: Path) -> bool:
    return bool(_VERSION.match(Path(path).name)) and (Path(path) / MANIFEST).is_file()


def is_run_folder(path: Path) -> bool:
    return (Path(path) / OUTCOMES_PARQUET).is_file() and (Path(path) / SOLUTION).is_file()


# --- writers ----------------------------------------------------------------------------

def dumps_json(data) -> str:
    """Deterministic JSON text (sorted keys, UTF-8, indented) with a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    """Deterministic JSON (sorted keys, UTF-8), written atomically."""
    write_text(path, dumps_json(data))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_table(frame: pl.DataFrame, path_without_suffix: Path) -> None:
    """CSV (UTF-8 with BOM, so Excel shows Hangul) and Parquet, each written atomically."""
    for suffix in (".csv", ".parquet"):
        final = path_without_suffix.with_suffix(suffix)
        tmp = final.with_suffix(suffix + ".tmp")
        if suffix == ".csv":
            frame.write_csv(tmp, include_bom=True)
        else:
            frame.write_parquet(tmp, statistics=False)
        os.replace(tmp, final)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    frame.write_parquet(tmp, statistics=False)
    os.replace(tmp, path)


def merge_timings(out_dir: Path, seconds: dict[str, float]) -> None:
    """Add wall-clock seconds to the run folder's timings.json."""
    path = Path(out_dir) / TIMINGS
    old = read_json(path) if path.exists() else {}
    write_json(path, {**old, **seconds})


def merge_quality(out_dir: Path, section: str, numbers: dict) -> dict:
    """Set one section of the run folder's quality.json, keeping the others."""
    path = Path(out_dir) / QUALITY
    quality = read_json(path) if path.exists() else {}
    quality[section] = numbers
    write_json(path, quality)
    return quality
