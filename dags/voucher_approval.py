"""The approval step of both voucher DAGs, bound to one result (not a DAG file).

`BoundApproval` is an ApprovalOperator that takes nothing from XCom: at run time it finds the
run folder from the run's own id (voucher_common.run_dir), shows the approval text the allocate
step wrote there led by the result's fingerprint, records the request (its task instance and the
fingerprint shown) in the run folder, and — when Airflow hands it the recorded response — records
who chose what, when. `publish` then calls `approved_actor()`, which refuses unless a recorded
Approve exists for exactly the result the run folder holds, by someone other than the user who
triggered the run. A task marked success by hand runs none of this, so it publishes nothing.

Approvers are named people: VOUCHER_APPROVERS="id[:name],…" assigns the approval to those users
(Airflow refuses anyone else); in the production profile only the FAB role `approver` may answer
approvals at all (deploy/webserver_config.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc

log = logging.getLogger("voucher.approval")


def assigned_approvers() -> list[dict] | None:
    """VOUCHER_APPROVERS="alice,bob:Bob Kim" -> [{"id": "alice", "name": "alice"}, …] (None: any
    user whose role may answer approvals)."""
    found = []
    for item in (os.environ.get("VOUCHER_APPROVERS") or "").split(","):
        item = item.strip()
        if item:
            user_id, _, name = item.partition(":")
            found.append({"id": user_id.strip(), "name": (name or user_id).strip()})
    return found or None


def allow_self_approval() -> bool:
    return (os.environ.get("VOUCHER_ALLOW_SELF_APPROVAL") or "").strip().lower() in ("1", "true", "yes")


def run_folder(context) -> Path:
    """This run's folder, from the run's own id and round param (never from XCom)."""
    try:
        round_dir = vc.resolve_round(context["params"]["round"])
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    return vc.run_dir(round_dir, context["run_id"])


def panel_folder(context) -> Path:
    """review_assignment's folder of this run, from the run's own id and round param."""
    try:
        round_dir = vc.resolve_round(context["params"]["round"])
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    return vc.run_dir(round_dir, f"review_assignment__{context['run_id']}")


def triggered_by(context) -> str | None:
    return getattr(context.get("dag_run"), "triggering_user_name", None)


class BoundApproval(ApprovalOperator):
    """ApprovalOperator whose subject and body come from the run folder, fingerprint first."""

    def __init__(self, *, what: str = "allocation", folder=run_folder,
                 question: str = "Publish the {what} of voucher round {round_id}?", **kwargs):
        super().__init__(subject=f"Publish a voucher round {what}?", body="(read from the run folder)",
                         assigned_users=assigned_approvers(), **kwargs)
        self.what, self.folder, self.question = what, folder, question

    def execute(self, context):
        from allocation import files
        from allocation.rounds.approval import record_request, with_fingerprint
        out = self.folder(context)
        text_path = out / files.APPROVAL_TEXT
        if not text_path.is_file():
            raise AirflowFailException(f"{text_path} missing: the step before the approval did not finish for this run")
        request = record_request(out, ti_id=str(context["task_instance"].id), triggered_by=triggered_by(context))
        report = out / (files.SOLUTION if (out / files.SOLUTION).is_file() else files.PANEL_REPORT)
        round_id = files.read_json(report)["round_id"]
        self.subject = (self.question.format(what=self.what, round_id=round_id)
                        + f" (result {request['fingerprint'][:12]})")
        self.body = with_fingerprint(text_path.read_text(encoding="utf-8"), request["fingerprint"])
        log.info("approval requested for result %s in %s", request["fingerprint"], out)
        return super().execute(context)

    def execute_complete(self, context, event):
        from allocation.rounds.approval import record_response
        out = self.folder(context)
        responded_at = event.get("responded_at")
        record = record_response(
            out, ti_id=str(context["task_instance"].id), chosen_options=event.get("chosen_options") or [],
            responded_by=event.get("responded_by_user"),
            responded_at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
            timed_out=bool(event.get("timedout") or "error" in event))
        log.info("approval response recorded: %s by %s", record["chosen_options"], record["responded_by"])
        return super().execute_complete(context, event)


def approved_actor(context, folder=run_folder, refusal: str = "NOT PUBLISHED") -> tuple[Path, dict]:
    """(run folder, audit actor) for publish (or the panel's release); AirflowFailException saying
    why nothing goes out."""
    from allocation.errors import RoundError
    from allocation.rounds.approval import approved_actor as check
    out = folder(context)
    run = context.get("dag_run")
    try:
        actor = check(out, triggered_by=triggered_by(context), allow_self_approval=allow_self_approval(),
                      dag_id=getattr(run, "dag_id", None), run_id=getattr(run, "run_id", None),
                      refusal=refusal)
    except RoundError as exc:
        from allocation import files
        if vc.is_demo() and not (out / files.APPROVAL_RECORD).is_file():
            # ./run demo marks approve as done; it publishes into the demo root, marked DEMO
            log.warning("DEMO: no recorded approval (%s); publishing as a DEMO, never an official version", exc)
            return out, {"via": "airflow", "triggered_by": str(triggered_by(context) or "demo"),
                         "approved_by": "DEMO: approval auto-granted by ./run demo (not an official publication)",
                         "four_eyes": "not applicable (demo)", "dag_id": getattr(run, "dag_id", None),
                         "run_id": getattr(run, "run_id", None)}
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None
    return out, actor
