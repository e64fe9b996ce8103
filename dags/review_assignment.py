"""Review-panel assignment: assign → (officer approves) → release the work lists.

Thin wiring over allocation.rounds.panel (the same stage as `voucher assign`); helpers in
voucher_common.py. Each run works in RUNS_ROOT/<round folder>/review_assignment__<run id>/. Nothing
goes out before the officer approves: no answer within VOUCHER_APPROVAL_TIMEOUT_HOURS = Reject.
Approved work lists are released to PANEL_OUTBOX/<round id>/ (VOUCHER_PANEL_OUTBOX, default
RUNS_ROOT/panel-outbox): assignments.csv for the review system, work_lists/ and work_lists.xlsx,
release.json (who triggered and approved). The approval is bound to the panel's fingerprint
(assignments, work lists, report) like publish's (voucher_approval.BoundApproval): release refuses
without a recorded Approve of exactly these files by someone other than the trigger.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc
from voucher_approval import BoundApproval, approved_actor, panel_folder

log = logging.getLogger("voucher.review_assignment")
TRANSIENT = {"retries": 2, "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10),
             "retry_delay": timedelta(seconds=float(os.environ.get("VOUCHER_RETRY_DELAY_S", 20)))}


def panel_outbox() -> Path:
    return Path(os.environ.get("VOUCHER_PANEL_OUTBOX") or vc.runs_root() / "panel-outbox").expanduser().resolve()


@dag(
    schedule=None, catchup=False, tags=["voucher"], max_active_runs=1,
    default_args={"owner": "voucher-ops", "on_failure_callback": vc.on_task_failure, **TRANSIENT},
    params={
        "round": Param("sample-panel", type="string", title="Round",
                       pattern=r"^(/.+|[A-Za-z0-9][A-Za-z0-9._-]*)$",
                       examples=vc.available_rounds() or ["sample-panel"],
                       description=f"Folder name under {vc.rounds_root()} (or an absolute path inside it); "
                                   "needs reviewers.csv (conflicts.csv optional)"),
        "reviewers_per_application": Param(None, type=["null", "integer"], minimum=1, maximum=50,
                                           title="Reviewers per application",
                                           description="Empty: [panel] reviewers_per_application in round.toml (default 3)"),
    },
)
def review_assignment():
    @task(retries=0)  # bad input or an impossible panel is final: never retried
    def assign(params=None, run_id=None) -> dict:
        from allocation import files
        from allocation.errors import RoundError
        from allocation.rounds import panel
        try:
            round_dir = vc.resolve_round(params["round"])
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        out = vc.reset_dir(vc.run_dir(round_dir, f"review_assignment__{run_id}"))
        log.info("round %s -> panel folder %s", round_dir, out)
        try:
            report = panel.assign(round_dir, out, reviewers_per_application=params["reviewers_per_application"])
        except RoundError as exc:
            (out / files.VALIDATION_ERROR).write_text(f"{exc}\n", encoding="utf-8")
            log.error("PANEL CANNOT BE ASSIGNED (written to %s):\n%s", out / files.VALIDATION_ERROR, exc)
            raise AirflowFailException(f"panel cannot be assigned: {exc}") from None
        md = panel.panel_markdown(report, out)
        files.write_text(out / files.APPROVAL_TEXT, md)   # what approve shows (never taken from XCom)
        log.info("ASSIGNMENT SUMMARY\n%s", md)
        return {"out_dir": str(out), "round_id": report["round_id"], "status": report["status"],
                "reviews": report["reviews"], "summary_md": md}

    # subject and body from the panel folder, led by its fingerprint (voucher_approval)
    approve = BoundApproval(
        task_id="approve", retries=0, what="review work lists", folder=panel_folder,
        question="Send the {what} of round {round_id}?",
        defaults="Reject",  # no answer within the timeout = nothing goes out
        response_timeout=timedelta(hours=float(os.environ.get("VOUCHER_APPROVAL_TIMEOUT_HOURS", 72))),
    )

    @task
    def release(a: dict, **context) -> dict:
        from allocation.rounds import panel
        # the panel folder from this run's own id; a recorded Approve of exactly these files, by
        # someone other than the trigger (voucher_approval); never XCom
        out, actor = approved_actor(context, folder=panel_folder, refusal="NOT RELEASED")
        result = panel.release(out, panel_outbox(), actor=actor)
        log.info("RELEASED work lists of round %s to %s", result["round_id"], result["path"])
        return {k: result[k] for k in ("round_id", "path", "reviews")}

    assigned = assign()
    assigned >> approve >> release(assigned)


review_assignment()
