"""The "Voucher rounds" view in the Airflow UI, and the failure note on a failed round run.

Wiring only; the pages and their words are allocation.rounds.view.

* A FastAPI app mounted at /voucher (fastapi_apps) and an external view in the UI's navigation
  (external_views, shown inside the UI at /plugin/voucher-rounds).
* Airflow does NOT protect plugin endpoints: every request here is authenticated through
  Airflow's own auth manager (airflow.api_fastapi.core_api.security.get_user: the JWT in the
  Authorization header, else the UI's `_token` cookie; none or invalid -> 401/403) and
  authorised with the auth manager as well:
    - any page: may read the runs of DAG allocation_round (is_authorized_dag GET, RUN);
    - the per-applicant table: may edit DAG allocation_round (is_authorized_dag PUT) — FAB roles
      officer, approver, operator and Admin (deploy/roles.json: DAGs can_edit); the simple auth
      manager's roles user, op and admin. Read-only roles (FAB Viewer, simple viewer) see
      states, totals, failure reasons, what-if totals and the aggregate report only.
* A listener (runs in the scheduler, which owns the run): when a run of allocation_round fails,
  its DAG run note says why in plain words (the run folder's validation_error.txt or failure.txt,
  never a stack frame); when a run ends green but published nothing (the approval was rejected
  or not answered in time), its note says so. A task cannot set its own run's note in Airflow 3.3 (the Task SDK's
  Execution API only sets a note on a run it triggers), hence the listener.
Loaded through AIRFLOW__CORE__PLUGINS_FOLDER=deploy/plugins (./run ui, deploy/stack.sh, helm).
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger("voucher.rounds_view")
DAG_ID = "allocation_round"
PREFIX = "/voucher"
NO_REASON = "no task recorded why (e.g. a worker could not start it): see the failed task's log in Airflow"


def _common():
    """dags/voucher_common.py (where rounds, runs and published versions live)."""
    if "voucher_common" not in sys.modules:
        from airflow.configuration import conf
        for folder in (conf.get("core", "dags_folder", fallback=""), str(Path(__file__).resolve().parents[2] / "dags")):
            if folder and (Path(folder) / "voucher_common.py").is_file() and folder not in sys.path:
                sys.path.append(folder)
                break
    return importlib.import_module("voucher_common")


# --- Access ------------------------------------------------------------------------------

class Access:
    def __init__(self, user: BaseUser, applicant_data: bool):
        self.user, self.applicant_data = user, applicant_data

    @property
    def name(self) -> str:
        return str(self.user.get_name())


def access(user: BaseUser = Depends(get_user)) -> Access:
    """Who may see what (see the module docstring); 403 for a user who may not read the runs."""
    manager, details = get_auth_manager(), DagDetails(id=DAG_ID)
    if not manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, details=details, user=user):
        raise HTTPException(status_code=403, detail="Your role may not read the runs of allocation_round")
    return Access(user, manager.is_authorized_dag(method="PUT", details=details, user=user))


def _airflow_runs() -> dict[str, dict]:
    """{run folder name: run id, state, start, note} for the runs of allocation_round."""
    from sqlalchemy import select
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    vc = _common()
    found = {}
    try:
        with create_session() as session:
            for run in session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)):
                found[vc.sanitise(run.run_id)] = {
                    "run_id": run.run_id, "state": str(run.state.value if hasattr(run.state, "value") else run.state),
                    "start_date": run.start_date.isoformat(timespec="seconds") if run.start_date else None,
                    "note": run.note}
    except Exception as exc:   # the view still shows what the run folders hold
        log.warning("DAG runs not read (%s: %s)", type(exc).__name__, exc)
    return found


def _prefix(request: Request) -> tuple[str, str]:
    """(this app's URL prefix, the Airflow UI's base) from the mount point."""
    root = request.scope.get("root_path", "") or PREFIX
    return root, root[: -len(PREFIX)] if root.endswith(PREFIX) else ""


# --- The app -------------------------------------------------------------------------------

app = FastAPI(title="Voucher rounds", docs_url=None, redoc_url=None, openapi_url=None)
# officers' data: never cached, framed only by the Airflow UI itself
HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": "frame-ancestors 'self'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@app.get("/", response_class=HTMLResponse)
def index(request: Request, who: Access = Depends(access)) -> HTMLResponse:
    from allocation.rounds import view
    vc = _common()
    prefix, ui = _prefix(request)
    return HTMLResponse(view.render_index(runs_root=vc.runs_root(), publish_root=vc.publish_root(),
                                          airflow_runs=_airflow_runs(), user=who.name,
                                          applicant_data=who.applicant_data, prefix=prefix, ui_base=ui),
                        headers=HEADERS)


def _run_dir(round_key: str, run_name: str) -> Path:
    from allocation.errors import RoundError
    from allocation.rounds import view
    try:
        return view.run_folder(_common().runs_root(), round_key, run_name)
    except RoundError:
        raise HTTPException(status_code=404, detail="No such run") from None


@app.get("/runs/{round_key}/{run_name}", response_class=HTMLResponse)
def run_page(request: Request, round_key: str, run_name: str, who: Access = Depends(access),
             status: str = "", q: str = Query("", max_length=100), page: int = Query(1, ge=1),
             size: int = Query(50, ge=1, le=200)) -> HTMLResponse:
    from allocation.rounds import view
    folder = _run_dir(round_key, run_name)
    prefix, ui = _prefix(request)
    html = view.render_run(folder, round_key=round_key, airflow=_airflow_runs().get(run_name), user=who.name,
                           applicant_data=who.applicant_data, prefix=prefix, ui_base=ui,
                           status=status, search=q, page=page, size=size)
    return HTMLResponse(html, headers=HEADERS)


@app.get("/runs/{round_key}/{run_name}/report", response_class=HTMLResponse)
def run_report(round_key: str, run_name: str, who: Access = Depends(access)) -> HTMLResponse:
    """The round report as it would be published (aggregates only, like the public page)."""
    from allocation import files
    from allocation.publish.report import render_report
    folder = _run_dir(round_key, run_name)
    if not files.is_run_folder(folder):
        raise HTTPException(status_code=404, detail="This run has no result yet")
    return HTMLResponse(render_report(folder), headers=HEADERS)


# --- The failure note ----------------------------------------------------------------------

def _set_note(dag_run, note: str) -> None:
    """The run's note, unless someone wrote one already. The scheduler hands the listener a run
    bound to its own session (the note is committed with the state change, no second writer on a
    row it has locked); a detached run (e.g. `airflow dags test`) is updated in a session of ours."""
    from sqlalchemy import inspect as sa_inspect
    try:
        state = sa_inspect(dag_run)
    except Exception:            # not a mapped DagRun (tests hand a plain object)
        state = None
    if state is None or state.session is not None:
        if not dag_run.note:
            dag_run.note = note
        return
    from sqlalchemy import select
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id))
        if run is not None and not run.note:
            run.note = note


class FailureNote:
    """Listener: a failed allocation_round run gets a note saying why (scheduler side)."""

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg: str):
        if getattr(dag_run, "dag_id", None) != DAG_ID:
            return
        try:
            from allocation.rounds import view
            vc = _common()
            try:
                folder = vc.run_dir(vc.resolve_round((dag_run.conf or {}).get("round", "")), dag_run.run_id)
                note = view.failure_note(folder, NO_REASON)
            except ValueError as exc:   # the round folder itself is missing or outside the rounds root
                note = view.failure_note(None, str(exc))
            if note:
                _set_note(dag_run, note)
        except Exception as exc:   # a note is a courtesy: never break the scheduler
            log.warning("no failure note for %s (%s: %s)", getattr(dag_run, "run_id", "?"), type(exc).__name__, exc)


    @hookimpl
    def on_dag_run_success(self, dag_run, msg: str):
        """A green run that published nothing (Reject, or no answer in time) says so in its note."""
        if getattr(dag_run, "dag_id", None) != DAG_ID:
            return
        try:
            from allocation.rounds import view
            vc = _common()
            note = view.outcome_note(vc.run_dir(vc.resolve_round((dag_run.conf or {}).get("round", "")),
                                                dag_run.run_id))
            if note:
                _set_note(dag_run, note)
        except Exception as exc:
            log.warning("no outcome note for %s (%s: %s)", getattr(dag_run, "run_id", "?"), type(exc).__name__, exc)


class VoucherRoundsPlugin(AirflowPlugin):
    name = "voucher_rounds"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Voucher rounds"}]
    external_views = [{"name": "Voucher rounds", "href": f"{PREFIX}/", "destination": "nav",
                       "url_route": "voucher-rounds", "category": "browse"}]
    listeners = [FailureNote()]
