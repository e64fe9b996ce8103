"""Shared helpers for the voucher DAGs: where things live, and what officers read.

Not a DAG file: plain Python, importable because Airflow puts the DAGs folder on sys.path, and
callable from tests directly.

Locations (environment variables, defaults under the project):
  VOUCHER_ROUNDS_ROOT   round folders the DAG may read       <project>/data/rounds
  VOUCHER_RUNS_ROOT     one work folder per DAG run           <project>/airflow-home/runs
  VOUCHER_PUBLISH_ROOT  published versions + index.json       <project>/airflow-home/published
  VOUCHER_ALERT_EMAIL   optional: also e-mail failure notices (needs apache-airflow-providers-smtp)
  VOUCHER_UI_BASE_URL   optional: the Airflow UI address for links in approval texts (default: relative)
  VOUCHER_DEMO          1 only in ./run demo: publish into VOUCHER_DEMO_PUBLISH_ROOT
                        (<project>/airflow-home/demo-published), every page marked DEMO
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

log = logging.getLogger("voucher.common")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTIFICATIONS = "notifications.log"   # RUNS_ROOT/notifications.log: every failure notice
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _root(var: str, default: Path) -> Path:
    return Path(os.environ.get(var) or default).expanduser().resolve()


def rounds_root() -> Path:
    return _root("VOUCHER_ROUNDS_ROOT", PROJECT_ROOT / "data" / "rounds")


def runs_root() -> Path:
    return _root("VOUCHER_RUNS_ROOT", PROJECT_ROOT / "airflow-home" / "runs")


def is_demo() -> bool:
    """VOUCHER_DEMO=1 (set by ./run demo only): publish into the demo root, every page marked DEMO."""
    return (os.environ.get("VOUCHER_DEMO") or "").strip().lower() in ("1", "true", "yes")


def publish_root() -> Path:
    """The official publish root; in a demo, the demo root instead (never the official one)."""
    if is_demo():
        return _root("VOUCHER_DEMO_PUBLISH_ROOT", PROJECT_ROOT / "airflow-home" / "demo-published")
    return _root("VOUCHER_PUBLISH_ROOT", PROJECT_ROOT / "airflow-home" / "published")


def published_asset():
    """The Asset allocation_round's publish task updates and results_index is scheduled on.

    A fixed URI (not the publish root path): every DAG parses to the same Asset wherever
    VOUCHER_PUBLISH_ROOT points; the event's extra carries the published path.
    """
    from airflow.sdk import Asset
    return Asset(name="published_round", uri="voucher://published-rounds")


def available_rounds() -> list[str]:
    """Round folders (those with a round.toml) directly under the rounds root, at parse time."""
    root = rounds_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "round.toml").is_file() and _NAME.match(p.name))


def resolve_round(value: str) -> Path:
    """A round folder name under the rounds root, or an absolute path that resolves inside it.

    Raises ValueError for anything else (relative paths with '/', '..', symlinks leading out).
    """
    root = rounds_root()
    value = (value or "").strip()
    if _NAME.match(value):
        candidate = (root / value).resolve()
    elif value.startswith("/"):
        candidate = Path(value).resolve()
    else:
        raise ValueError(f"round {value!r}: give a folder name under {root} or an absolute path inside it")
    if candidate == root or not candidate.is_relative_to(root):
        raise ValueError(f"round {value!r} resolves to {candidate}, which is outside the rounds root {root}")
    if not candidate.is_dir():
        raise ValueError(f"round folder {candidate} does not exist (rounds available: "
                         f"{', '.join(available_rounds()) or 'none'})")
    return candidate


def sanitise(text: str) -> str:
    """A string safe as one path component (run ids contain ':' and '+')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "run"


def run_dir(round_dir: Path, run_id: str) -> Path:
    """RUNS_ROOT/<round folder>/<run id>/ — one work folder per DAG run."""
    key = sanitise(str(round_dir.relative_to(rounds_root())).replace("/", "__"))
    return runs_root() / key / sanitise(run_id)


def preview_url(out: Path) -> str:
    """The run's page in the Voucher rounds view (deploy/plugins/voucher_rounds.py), relative to
    the Airflow UI unless VOUCHER_UI_BASE_URL (e.g. https://airflow.example.org) is set."""
    from urllib.parse import quote
    base = (os.environ.get("VOUCHER_UI_BASE_URL") or "").rstrip("/")
    return f"{base}/voucher/runs/{quote(Path(out).parent.name)}/{quote(Path(out).name)}"


def reset_dir(path: Path) -> Path:
    """Empty the run folder so a re-run of validate never mixes with stale files."""
    root = runs_root()
    if not path.resolve().is_relative_to(root) or path.resolve() == root:
        raise ValueError(f"refusing to clear {path}: not inside {root}")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --- What officers read ----------------------------------------------------------

def log_quality(out_dir: Path, stage: str) -> dict:
    """Log the data-quality numbers already written to quality.json, one readable line each."""
    from allocation import files   # the engine is imported when a task runs, not at DAG parse time
    from allocation.rounds.approval import counts_text
    path = Path(out_dir) / files.QUALITY
    quality = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    intake = quality.get("intake", {})
    if stage == "validate" and intake:
        log.info("DATA QUALITY applications in: %s | eligible: %s | request rows accepted: %s | "
                 "review rows accepted: %s", intake.get("applications"), intake.get("eligible"),
                 intake.get("request_rows_accepted"), intake.get("review_rows_accepted"))
        log.info("DATA QUALITY rows with issues by file: %s", counts_text(intake.get("rows_with_issues_by_file")))
        log.info("DATA QUALITY ineligible by reason: %s", counts_text(intake.get("ineligible_by_reason")))
        log.info("DATA QUALITY issues by file:code (%s in total): %s", intake.get("issues"),
                 counts_text(intake.get("issues_by_file_and_code")))
    outcomes = quality.get("outcomes", {})
    if stage == "allocate" and outcomes:
        log.info("OUTCOMES by status: %s", counts_text(outcomes.get("by_status")))
        log.info("OUTCOMES by reason: %s", counts_text(outcomes.get("by_reason")))
    return quality


# --- Notifications ------------------------------------------------------------

def notify(subject: str, message: str, context: dict | None = None) -> None:
    """Log, append to RUNS_ROOT/notifications.log, and e-mail if VOUCHER_ALERT_EMAIL is set."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log.error("NOTIFICATION %s: %s", subject, message)
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / NOTIFICATIONS, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp}\t{subject}\t{message}\n")
    email = os.environ.get("VOUCHER_ALERT_EMAIL")
    if email and context is not None:
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier
            SmtpNotifier(to=email, subject=subject, html_content=f"<pre>{message}</pre>")(context)
        except Exception as exc:  # the notice is already logged and on disk
            log.warning("e-mail to %s not sent (%s: %s)", email, type(exc).__name__, exc)


def on_task_failure(context) -> None:
    """Task on_failure_callback: one clear line per failed task (after its last retry)."""
    ti, run = context.get("ti"), context.get("dag_run")
    exc = context.get("exception")
    notify(f"[voucher] {ti.dag_id}.{ti.task_id} FAILED",
           f"run {getattr(run, 'run_id', '?')} conf={getattr(run, 'conf', {})} try {ti.try_number}: "
           f"{type(exc).__name__ if exc else 'error'}: {exc}", context)
    record_failure(context)


def record_failure(context) -> None:
    """The failed task and its message into the run folder (failure.txt): what the run's note
    and the Voucher rounds view show (deploy/plugins/voucher_rounds.py). Never raises."""
    ti, run = context.get("ti"), context.get("dag_run")
    try:
        from allocation.rounds.view import record_failure as record
        folder = run_dir(resolve_round(((getattr(run, "conf", None) or {}).get("round")) or ""), run.run_id)
        if folder.is_dir():
            record(folder, ti.task_id, context.get("exception") or "error")
    except Exception as exc:   # no round folder (the note says so) or no run folder yet
        log.info("failure not recorded in a run folder (%s: %s)", type(exc).__name__, exc)


def on_deadline_missed(context: dict | None = None, **kwargs) -> None:
    """DeadlineAlert callback (runs in the executor; context holds the dag_run as JSON)."""
    run = (context or {}).get("dag_run", {})
    deadline = (context or {}).get("deadline", {})
    notify(f"[voucher] {run.get('dag_id', '?')} run {run.get('dag_run_id', '?')} missed its deadline",
           f"state {run.get('state')} at deadline {deadline.get('deadline_time')}; conf={run.get('conf')}. "
           f"Check the Required Actions page (approval pending?) and the task logs.")


# --- Published rounds ------------------------------------------------------------

def refresh_index() -> dict:
    """Rewrite PUBLISH_ROOT/index.json (allocation.publish.index)."""
    from allocation.publish.index import refresh_index as refresh
    return refresh(publish_root())


def latest_published_version(round_id: str) -> Path | None:
    """PUBLISH_ROOT/<round_id>/v<N> with the highest N (None: nothing published yet)."""
    from allocation import files
    return files.latest_version_dir(publish_root() / round_id)


def previous_summary(round_id: str) -> dict | None:
    """The latest published version's funded count and awarded KRW (None: nothing published),
    for the approval text's "far less than the previous version" warning."""
    from allocation import files
    latest = latest_published_version(round_id)
    if latest is None:
        return None
    manifest = files.read_json(latest / files.MANIFEST)
    summary = (manifest.get("solver_report") or {}).get("summary") or {}
    return {"label": latest.name, "funded": summary.get("funded"), "awarded_krw": summary.get("awarded_krw")}


def plain_file_name(value: str | None) -> str | None:
    """An officer file name inside the round folder ('' / None: not given); no paths."""
    value = (value or "").strip()
    if not value:
        return None
    if not _NAME.match(value) or value in (".", ".."):
        raise ValueError(f"{value!r}: give a plain file name inside the round folder (no '/')")
    return value


def parse_as_of(value: str | None):
    """The as-of date of a lifecycle run: YYYY-MM-DD, or today (UTC) when empty."""
    value = (value or "").strip()
    if not value:
        return datetime.now(timezone.utc).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"as_of {value!r}: not a date YYYY-MM-DD") from None
