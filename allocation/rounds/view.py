"""The "Voucher rounds" view officers open inside the Airflow UI (deploy/plugins/voucher_rounds.py
is only its wiring): rounds, their runs and published versions; for one run its status, why it
failed in plain words, the officers' preview (the round report and the per-applicant table,
filtered and paginated), the what-if scenarios and a link to answer the approval.

Two levels of access, decided by the caller (the plugin asks Airflow's auth manager):
  * status only (a read-only viewer): rounds, runs, states, totals, the failure reason, what-if
    totals and the round report (aggregates only: the same page applicants will see);
  * applicant data (officers, approvers, admins): additionally the per-applicant table.
Everything that reaches a page goes through Jinja2 autoescaping (allocation.publish.report's
environment); the per-applicant table is read page by page from outcomes.parquet (a lazy scan,
filtered and sliced), never loaded whole, so a round of a million applications stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from allocation import files, schema
from allocation.errors import RoundError
from allocation.publish import labels
from allocation.publish.report import render
from allocation.rounds import whatif
from allocation.rounds.approval import APPROVE, degenerate_warnings
from allocation.text import terminal

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
PREVIEW_COLUMNS = ("application_id", "company_name", "region", "status", "score", "rank",
                   "awarded_krw", "reason")
STATUSES = (schema.STATUS_AWARDED, schema.STATUS_WAITLISTED, schema.STATUS_NOT_SELECTED,
            schema.STATUS_INELIGIBLE)
DAG_ID = "allocation_round"


# --- Where things are ---------------------------------------------------------------------

def run_folder(runs_root: Path, round_key: str, run_name: str) -> Path:
    """RUNS_ROOT/<round key>/<run folder>, refused (RoundError) for anything that is not two plain
    names resolving inside the runs root, or that does not exist."""
    for part in (round_key, run_name):
        if not _NAME.match(part or "") or part in (".", ".."):
            raise RoundError(f"{part!r} is not a run folder name")
    path = files.inside(runs_root, round_key, run_name)
    if not path.is_dir():
        raise RoundError(f"no run folder {round_key}/{run_name}")
    return path


def list_runs(runs_root: Path) -> dict[str, list[str]]:
    """{round key: [run folder names, newest first]} under the runs root."""
    root = Path(runs_root)
    found: dict[str, list[str]] = {}
    if not root.is_dir():
        return found
    for round_dir in sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)):
        runs = [p for p in round_dir.iterdir() if p.is_dir() and _NAME.match(p.name)]
        runs.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
        found[round_dir.name] = [p.name for p in runs]
    return found


def published_rounds(publish_root: Path) -> list[dict]:
    """[{round_id, versions: [{version, published_at, funded, demo}]}] under the publish root."""
    root = Path(publish_root)
    found = []
    if not root.is_dir():
        return found
    for round_root in sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)):
        versions = []
        for number in reversed(files.list_versions(round_root)):
            manifest = files.read_json(round_root / files.version_name(number) / files.MANIFEST)
            summary = (manifest.get("solver_report") or {}).get("summary") or {}
            versions.append({"version": number, "published_at": manifest.get("published_at"),
                             "funded": summary.get("funded"), "awarded_krw": summary.get("awarded_krw"),
                             "demo": bool(manifest.get("demo"))})
        if versions:
            found.append({"round_id": round_root.name, "versions": versions})
    return found


# --- One run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunState:
    stage: str                   # where the run folder says the run is, in words
    failure: str | None          # why the round could not run (validation), plain words
    round_id: str | None
    summary: dict                # totals only
    warnings: list[str]
    approval: dict | None        # {"answer", "by", "at"} once answered
    has_preview: bool            # outcomes exist (the per-applicant table can be shown)
    whatif: dict | None          # the side-by-side totals, when scenarios were solved


def run_state(run_dir: Path, previous: dict | None = None) -> RunState:
    """What the run folder says about a run (the Airflow state is added by the caller)."""
    run_dir = Path(run_dir)
    failure = None
    for name in (files.VALIDATION_ERROR, files.FAILURE):
        if failure is None and (run_dir / name).is_file():
            failure = (run_dir / name).read_text(encoding="utf-8").strip()
    solution = files.read_json(run_dir / files.SOLUTION) if (run_dir / files.SOLUTION).is_file() else {}
    summary = solution.get("summary") or {}
    approval = None
    if (run_dir / files.APPROVAL_RECORD).is_file():
        record = files.read_json(run_dir / files.APPROVAL_RECORD)
        who = record.get("responded_by") or {}
        chosen = record.get("chosen_options") or []
        approval = {"answer": "timed out" if record.get("timed_out") else (", ".join(chosen) or "none"),
                    "approved": chosen == [APPROVE] and not record.get("timed_out"),
                    "by": who.get("name") or who.get("id"), "at": record.get("responded_at")}
    if failure and (run_dir / files.VALIDATION_ERROR).is_file():
        stage = "validation failed: the round cannot run"
    elif failure:
        stage = "failed"
    elif approval:
        stage = f"approval answered: {approval['answer']}"
    elif (run_dir / files.APPROVAL_REQUEST).is_file():
        stage = "waiting for approval"
    elif solution:
        stage = "allocated"
    elif (run_dir / files.SCORES).is_file():
        stage = "scored"
    elif (run_dir / files.INTAKE).is_dir():
        stage = "validated"
    else:
        stage = "started"
    warnings = []
    if solution:
        warnings = degenerate_warnings(summary, previous) + list(solution.get("warnings") or [])
    return RunState(stage=stage, failure=failure, round_id=solution.get("round_id"), summary=summary,
                    warnings=warnings, approval=approval, has_preview=files.is_run_folder(run_dir),
                    whatif=whatif.read_whatif(run_dir / files.WHATIF_DIR))


@dataclass(frozen=True)
class Preview:
    rows: list[dict]
    matched: int        # rows matching the filter
    total: int          # rows in the run
    page: int           # 1-based
    pages: int
    size: int
    status: str
    search: str


def preview(run_dir: Path, *, status: str = "", search: str = "", page: int = 1,
            size: int = DEFAULT_PAGE_SIZE) -> Preview:
    """One page of the per-applicant table (officers only), filtered by status and by a text
    found in the application id or company name; read lazily from outcomes.parquet."""
    size = size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE
    status = status if status in STATUSES else ""
    search = (search or "").strip()[:100]
    scan = pl.scan_parquet(Path(run_dir) / files.OUTCOMES_PARQUET).select(*PREVIEW_COLUMNS)
    total = scan.select(pl.len()).collect().item()
    filtered = scan
    if status:
        filtered = filtered.filter(pl.col("status") == status)
    if search:
        needle = search.lower()
        filtered = filtered.filter(pl.col("application_id").str.to_lowercase().str.contains(needle, literal=True)
                                   | pl.col("company_name").str.to_lowercase().str.contains(needle, literal=True))
    matched = filtered.select(pl.len()).collect().item()
    pages = max(1, -(-matched // size))
    page = min(max(1, int(page)), pages)
    rows = filtered.slice((page - 1) * size, size).collect().to_dicts()
    for row in rows:
        row["status_label"] = labels.status_label(row["status"])
        row["reason_label"] = labels.reason_label(row["reason"])
    return Preview(rows=rows, matched=matched, total=total, page=page, pages=pages, size=size,
                   status=status, search=search)


NOTE_LIMIT = 1000


def failure_note(run_dir: Path | None, fallback: str | None = None) -> str | None:
    """A failed run's note in plain words (the validation error, else the failed task's message;
    no stack frames), or None when the run folder says nothing."""
    text = None
    for name in (files.VALIDATION_ERROR, files.FAILURE):
        path = Path(run_dir) / name if run_dir is not None else None
        if path is not None and path.is_file():
            text = path.read_text(encoding="utf-8").strip()
            break
    text = terminal(text or fallback or "").strip()
    if not text:
        return None
    if len(text) > NOTE_LIMIT:
        text = text[:NOTE_LIMIT] + " … (the full text is in the run folder and the Voucher rounds view)"
    return f"FAILED: {text}"


def outcome_note(run_dir: Path) -> str | None:
    """The note of a run that ended green without publishing: the approval was rejected or
    nobody answered in time (None: approved, or no approval asked)."""
    path = Path(run_dir) / files.APPROVAL_RECORD
    if not path.is_file():
        return None
    record = files.read_json(path)
    if record.get("timed_out"):
        return "NOT PUBLISHED: nobody answered the approval in time (the default is Reject); nothing was published."
    if record.get("chosen_options") == [APPROVE]:
        return None
    who = (record.get("responded_by") or {})
    by = who.get("name") or who.get("id") or "someone"
    answer = ", ".join(record.get("chosen_options") or []) or "no option"
    return terminal(f"NOT PUBLISHED: the approval was answered {answer} by {by} at "
                    f"{record.get('responded_at') or '?'}; nothing was published.")


def record_failure(run_dir: Path, task_id: str, error: BaseException | str) -> None:
    """Written by a failed task (its callback): which task, and its message in words."""
    message = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
    files.write_text(Path(run_dir) / files.FAILURE, f"task {task_id} failed: {message}\n")


# --- Pages --------------------------------------------------------------------------------

AIRFLOW_KEYS = ("run_id", "state", "start_date", "note")


def _airflow(found: dict | None) -> dict:
    return {k: (found or {}).get(k) for k in AIRFLOW_KEYS}


def _links(prefix: str, ui_base: str) -> dict:
    return {"prefix": prefix.rstrip("/"), "ui": ui_base.rstrip("/")}


def render_index(*, runs_root: Path, publish_root: Path, airflow_runs: dict[str, dict], user: str,
                 applicant_data: bool, prefix: str, ui_base: str = "") -> str:
    """The overview: every round's runs (state, stage, totals) and every published round.
    airflow_runs: {run folder name: {"run_id", "state", "start_date", "note"}} from Airflow."""
    rounds = []
    for round_key, names in list_runs(runs_root).items():
        runs = []
        for name in names:
            state = run_state(Path(runs_root) / round_key / name)
            runs.append({"name": name, "state": state, "airflow": _airflow(airflow_runs.get(name))})
        rounds.append({"key": round_key, "runs": runs})
    seen = {run["name"] for r in rounds for run in r["runs"]}
    elsewhere = [_airflow(a) for name, a in sorted(airflow_runs.items(), key=lambda kv: str(kv[1].get("start_date")),
                                                   reverse=True) if name not in seen]
    return render("rounds_view.html.j2", page="index", rounds=rounds, elsewhere=elsewhere,
                  published=published_rounds(publish_root), user=user, applicant_data=applicant_data,
                  links=_links(prefix, ui_base), dag_id=DAG_ID)


def render_run(run_dir: Path, *, round_key: str, airflow: dict | None, user: str, applicant_data: bool,
               prefix: str, ui_base: str = "", previous: dict | None = None, status: str = "",
               search: str = "", page: int = 1, size: int = DEFAULT_PAGE_SIZE) -> str:
    """One run: status, failure, totals, what-if, approval link, report and (officers) the table."""
    state = run_state(run_dir, previous)
    table = None
    if applicant_data and state.has_preview:
        table = preview(run_dir, status=status, search=search, page=page, size=size)
    return render("rounds_view.html.j2", page="run", round_key=round_key, run_name=Path(run_dir).name,
                  state=state, airflow=_airflow(airflow), table=table, user=user, applicant_data=applicant_data,
                  links=_links(prefix, ui_base), dag_id=DAG_ID, statuses=STATUSES,
                  status_label=labels.status_label, page_sizes=PAGE_SIZES,
                  whatif_gpus=sorted({g for r in (state.whatif or {}).get("scenarios", [])
                                      for g in r.get("gpu_utilisation", {})}),
                  whatif_quotas=sorted({q for r in (state.whatif or {}).get("scenarios", [])
                                        for q in r.get("quota_shares", {})}))
