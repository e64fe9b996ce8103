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

PUBLISH ROOT (``voucher publish --publish-root ROOT``; everything in it may be served)::

  index.json                       every round and its latest version
  .<round_id>.publish.lock         one publisher per round at a time
  <round_id>/audit.jsonl           the round's public audit trail: roles, never account names or paths
  <round_id>/signing_key.pub       public key of the round's manifest signatures
  <round_id>/v<N>/                 one immutable version (manifest.json signed by manifest.sig)
  <round_id>.audit.jsonl           legacy: the trail of a round first published before the split
                                   (account names and run-folder paths; never served)

OFFICERS' AUDIT ROOT (``<publish root>.officers/`` next to the publish root, 0700; never served)::

  <round_id>.audit.jsonl           the full detail of every public audit line (account names, run
                                   folder, Airflow run id, purged paths), each bound to its public line

ROUND FOLDER after a purge (``voucher purge … --round-folder``)::

  round.toml, capacity.*, PURGED.txt   the applicant-data tables are gone; the note says what and when

ROUND FOLDER (the officers' input; the input tables are named in ``allocation.schema``)::

  responses.csv, appeals.csv, replacement_reviews.*   after publication
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

import polars as pl
import xlsxwriter

from allocation.errors import RoundError

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
FAILURE = "failure.txt"           # a DAG run's failed task and its message in words (no stack frames)
LIFECYCLE_STATE = "lifecycle.json"
LIFECYCLE_PUBLIC = "lifecycle_public.json"
CHANGES = "changes"               # table stem (officers only: every applicant before and after)
LIFECYCLE_REPORT = "lifecycle_report.md"
PREVIOUS_OUTCOMES = "previous_outcomes.parquet"
APPROVAL_TEXT = "approval.md"              # what the approver reads (DAG runs), fingerprint first
APPROVAL_REQUEST = "approval_request.json"  # the approve task's request: its task instance, the fingerprint shown
APPROVAL_RECORD = "approval.json"           # the response Airflow recorded for that request (Approve/Reject, who, when)
WHATIF_DIR = "whatif"                      # what-if scenarios of a DAG run (allocation.rounds.whatif)
# what the last publication from this folder sealed, per lookup file (master, name, digest of the
# record, sha256 of the file): a republish re-seals only the records whose digest changed.
# Officers only (it holds the masters); never in the publish root.
LOOKUP_STATE = "lookup_state.parquet"
LOOKUP_STATE_META = "lookup_state.json"    # which published listing (r.sha256) the state describes
LOOKUP_WORK = "lookup_work"                # while publishing: plan.json, rows to seal, chunk results
# a publication in separate steps (the DAGs' mapped tasks): what the first step staged, for the
# last one (version, staged folder, audit entry); removed when the version is in place
PUBLISH_STAGE = "publish_stage.json"

# --- run folder: intake/ ----------------------------------------------------------------
INTAKE_TABLES = ("applications", "requests", "reviews", "capacity")   # <stem>.parquet
ISSUES_CSV = "issues.csv"
INTAKE_META = "intake.json"

# --- round folder: officer files after publication -------------------------------------
RESPONSES = "responses.csv"
APPEALS = "appeals.csv"
REPLACEMENT_REVIEWS = "replacement_reviews"   # table stem (.csv, .xlsx or .parquet)

# --- panel folder (``voucher assign ROUND --out OUT``, issue 18) --------------------------
PANEL_ASSIGNMENTS = "assignments.csv"      # for the review system; copy into the round folder
PANEL_ADDED = "assignments_added.csv"      # --reassign: the new pairs only (assignments.csv: all)
PANEL_WORK_LISTS = "work_lists"            # work_lists/<reviewer>.csv, one per reviewer
PANEL_WORK_LISTS_XLSX = "work_lists.xlsx"  # every reviewer's list in one workbook
PANEL_LOADS = "reviewer_loads.csv"
PANEL_REPORT = "panel.json"                # status, optimality, loads, diagnosis, input hashes
PANEL_ISSUES = "panel_issues.csv"          # applications not assigned (bad rows), per row
PANEL_SHORTFALL = "shortfall.csv"          # infeasible only: who lacks reviewers, by how much
PANEL_RELEASE = "release.json"             # written when the approved work lists go out
# run folder, intake/: applications left below min_reviewers by excluded reviews (re-assign them)
REASSIGN_CSV = "reassign.csv"
WEAK_CODES_CSV = "weak_receipt_codes.csv"   # intake: applicants whose code is below the lookup floor

# --- round folder: after its personal data was purged (allocation.rounds.retention) ------
PURGED_NOTE = "PURGED.txt"        # what was removed and when; `voucher validate` quotes it

# --- publish root -------------------------------------------------------------------------
INDEX = "index.json"
AUDIT_TRAIL = "audit.jsonl"       # PUBLISH_ROOT/<round_id>/audit.jsonl: the public trail (roles only)
AUDIT_SUFFIX = ".audit.jsonl"     # legacy PUBLISH_ROOT/<round_id>.audit.jsonl; officers' <round_id>.audit.jsonl
OFFICER_ROOT_SUFFIX = ".officers"   # <publish root>.officers/: the officers' audit trails (0700, never served)
PUBLISH_LOCK = ".{round_id}.publish.lock"
# PUBLISH_ROOT/<round_id>/.staged-v<N>-<fingerprint>/: a version being written in separate steps
# (hidden, never served; renamed to v<N> by the last step, removed when superseded or abandoned)
STAGED_PREFIX = ".staged-"
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
LOOKUP_LISTING = "r.sha256"       # sha256sum of every r/ file (pinned by the manifest)
CHANGES_JSON = "changes.json"     # refills and appeals: what changed against the previous version
CHANGES_MD = "changes.md"

_VERSION = re.compile(r"^v([1-9][0-9]*)$")


_ROUND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # as round.toml's [round] id


def round_id_path_part(round_id: object) -> str:
    """A round id as a folder name: letters, digits, _ and - only (RoundError otherwise)."""
    if not isinstance(round_id, str) or not _ROUND_ID.match(round_id):
        raise RoundError(f"round id {round_id!r} is not a valid folder name (letters, digits, _ and - "
                         f"only); nothing was written")
    return round_id


def inside(root: Path, *parts: str) -> Path:
    """root/parts, refused (RoundError) unless it resolves inside root."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path == root or not path.is_relative_to(root):
        raise RoundError(f"{path} is outside {root}; nothing was written")
    return path


def officer_root(publish_root: Path) -> Path:
    """Where the officers' audit trails of a publish root live: next to it (never inside the
    served folder), ``<publish root>.officers/``."""
    root = Path(publish_root).resolve()
    return root.parent / f"{root.name}{OFFICER_ROOT_SUFFIX}"


def is_lookup_file(rel: str) -> bool:
    """A version's per-applicant lookup data (POSIX path relative to the version folder): what a
    purge removes after the appeal window."""
    return rel == LOOKUP_JSON or rel.startswith(LOOKUP_DIR + "/")


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
# Everything in a run folder is officers' data (personal data included): folders 0700, files
# 0600, whatever the umask. Every file is written to a temporary name and renamed into place.

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def private_dir(path: Path) -> Path:
    """Create the folder (and missing parents) and make it 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)
    return path


def _tmp(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".tmp")


def _publish(tmp: Path, final: Path) -> None:
    os.chmod(tmp, PRIVATE_FILE)
    os.replace(tmp, final)


def dumps_json(data) -> str:
    """Deterministic JSON text (sorted keys, UTF-8, indented) with a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file, then rename), 0600."""
    tmp = _tmp(path)
    tmp.write_text(text, encoding="utf-8")
    _publish(tmp, Path(path))


def write_json(path: Path, data) -> None:
    """Deterministic JSON (sorted keys, UTF-8), written atomically, 0600."""
    write_text(path, dumps_json(data))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """CSV, UTF-8 with BOM (so Excel shows Hangul), atomically, 0600."""
    tmp = _tmp(path)
    frame.write_csv(tmp, include_bom=True)
    _publish(tmp, Path(path))


def write_parquet(frame: pl.DataFrame, path: Path, *, row_group_size: int | None = None) -> None:
    """Parquet (no statistics: the bytes depend on the data only), atomically, 0600.
    row_group_size: rows per row group (a reader of a slice then reads only its groups)."""
    tmp = _tmp(path)
    frame.write_parquet(tmp, statistics=False, row_group_size=row_group_size)
    _publish(tmp, Path(path))


# The XLSX "created" property: fixed, so the same table gives the same bytes.
XLSX_CREATED = datetime.datetime(2000, 1, 1)


def write_xlsx_text(frame: pl.DataFrame, path: Path, *, sheet: str) -> None:
    """One sheet of text cells (a header row, then every value as a string: never a formula, a
    number or a link), streamed by xlsxwriter in constant memory, atomically, 0600."""
    tmp = _tmp(path)
    book = xlsxwriter.Workbook(str(tmp), {"constant_memory": True, "strings_to_urls": False,
                                          "strings_to_formulas": False, "strings_to_numbers": False})
    book.set_properties({"created": XLSX_CREATED})
    try:
        ws = book.add_worksheet(sheet)
        ws.write_row(0, 0, frame.columns)
        for r, row in enumerate(frame.cast(pl.String).fill_null("").iter_rows(), 1):
            for c, value in enumerate(row):
                ws.write_string(r, c, value)
    finally:
        book.close()
    _publish(tmp, Path(path))


def write_table(frame: pl.DataFrame, path_without_suffix: Path) -> None:
    """<stem>.csv and <stem>.parquet."""
    write_csv(frame, Path(path_without_suffix).with_suffix(".csv"))
    write_parquet(frame, Path(path_without_suffix).with_suffix(".parquet"))


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
