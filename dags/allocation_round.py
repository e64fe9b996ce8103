"""One voucher round: validate → score → allocate → (officer approves) → publish
(voucher_publish.py: staged, sealed by mapped tasks, renamed into place).

Thin wiring over allocation.rounds / allocation.publish; helpers in voucher_common.py.
Each run works in RUNS_ROOT/<round folder>/<run id>/; XCom carries only paths and small summaries.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DeadlineAlert, DeadlineReference, Param, SyncCallback, dag, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc
from voucher_approval import BoundApproval
from voucher_publish import publish_steps

log = logging.getLogger("voucher.allocation_round")
PUBLISHED = vc.published_asset()
# Alert (notifications.log / e-mail) when a run is not finished N hours after it was queued,
# approval wait included. 0 disables it: needed for `airflow dags test` / dag.test(), which in
# Airflow 3.3.2 crash on a *successful* run of a DAG with a deadline (DagRun.update_state looks
# the alerts up by id, but dag.test() hands it the unsaved definitions).
DEADLINE_H = float(os.environ.get("VOUCHER_DEADLINE_HOURS", 48))
# score/allocate/publish: retried with exponential backoff (disk, memory, a killed worker...)
TRANSIENT = {"retries": 2, "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10),
             "retry_delay": timedelta(seconds=float(os.environ.get("VOUCHER_RETRY_DELAY_S", 20)))}


@dag(
    schedule=None, catchup=False, tags=["voucher"], max_active_runs=2,
    default_args={"owner": "voucher-ops", "on_failure_callback": vc.on_task_failure, **TRANSIENT},
    deadline=[DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=DEADLINE_H),
                            callback=SyncCallback(vc.on_deadline_missed))] if DEADLINE_H > 0 else None,
    params={
        # a choice list of the round folders found when the DAG was parsed; any other text is
        # checked by validate, which fails with a plain message (and the run's note says it)
        "round": Param("sample", type="string", title="Round", examples=vc.available_rounds() or ["sample"],
                       description=f"A round folder under {vc.rounds_root()} (choose one; an absolute path "
                                   f"inside it also works)"),
        "budget_krw_override": Param(None, type=["null", "integer"], minimum=1, title="Budget override (KRW)",
                                     description="Empty: the budget in round.toml (at least 1 KRW)"),
        "time_limit_s": Param(60, type="number", minimum=1, maximum=3600, title="Solver time limit (s)"),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Stop after allocate: no approval, nothing published"),
        "allow_empty": Param(False, type="boolean", title="Allow publishing an empty result",
                             description="Publish even if the result funds nobody (refused otherwise)"),
        "whatif": Param([], type="array", items={"type": "string"}, title="What-if scenarios",
                        description="One scenario per line, as `voucher whatif`: budget=+10%, "
                                    "quota.non_capital=0.3, min_score=65, max_krw_per_company=200000000, "
                                    "copay_share=0.3 (several settings of one scenario: comma-separated). "
                                    "Checked before anything is solved; solved after allocate and shown "
                                    "side by side in the approval text and the Voucher rounds view."),
    },
)
def allocation_round():
    @task(retries=0)  # bad input is final: never retried
    def validate(params=None, run_id=None) -> dict:
        from allocation import files
        from allocation.errors import RoundError
        from allocation.rounds import allocate as stages
        from allocation.rounds.whatif import check_scenarios
        try:
            round_dir = vc.resolve_round(params["round"])
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        out = vc.reset_dir(vc.run_dir(round_dir, run_id))
        log.info("round %s -> run folder %s", round_dir, out)
        try:
            check_scenarios(round_dir, params.get("whatif") or [], budget_krw=params["budget_krw_override"],
                            time_limit_s=params["time_limit_s"])   # a bad scenario fails before any solve
            stages.validate(round_dir, out, budget_krw=params["budget_krw_override"],
                              time_limit_s=params["time_limit_s"])
        except RoundError as exc:
            (out / files.VALIDATION_ERROR).write_text(f"{exc}\n", encoding="utf-8")
            log.error("ROUND CANNOT RUN (written to %s):\n%s", out / files.VALIDATION_ERROR, exc)
            raise AirflowFailException(f"round cannot run: {exc}") from None
        quality = vc.log_quality(out, "validate")["intake"]
        return {"round_dir": str(round_dir), "out_dir": str(out), "applications": quality["applications"],
                "eligible": quality["eligible"], "issues": quality["issues"]}

    @task
    def score(v: dict) -> dict:
        from allocation.rounds import allocate as stages
        summary = stages.score(Path(v["out_dir"]))
        log.info("SCORES %s", summary)
        return {**v, "scored": summary["scored"]}

    @task(pool=os.environ.get("VOUCHER_SOLVER_POOL") or "default_pool")  # production: one solver per worker
    def allocate(s: dict) -> dict:
        from allocation import files
        from allocation.rounds import allocate as stages
        from allocation.rounds.approval import approval_markdown
        out = Path(s["out_dir"])
        report = stages.allocate(out)
        vc.log_quality(out, "allocate")
        md = approval_markdown(report, out, previous=vc.previous_summary(report["round_id"]),
                               preview_url=vc.preview_url(out))
        files.write_text(out / files.APPROVAL_TEXT, md)   # what approve shows (never taken from XCom)
        log.info("ALLOCATION SUMMARY\n%s", md)
        keep = ("funded", "awarded_krw", "budget_used_share", "gpu_utilisation", "by_status")
        return {"out_dir": str(out), "round_id": report["round_id"], "status": report["status"],
                "gap": report["gap"], "summary": {k: report["summary"].get(k) for k in keep},
                "summary_md": md}

    @task(pool=os.environ.get("VOUCHER_SOLVER_POOL") or "default_pool")
    def whatif(a: dict, params=None) -> dict:
        """The what-if scenarios (param whatif) against this run's allocation; the approval text
        is rewritten with the side-by-side table."""
        from allocation import files
        from allocation.errors import RoundError
        from allocation.rounds.approval import approval_markdown
        from allocation.rounds.whatif import render_markdown, solve_for_run
        out = Path(a["out_dir"])
        try:
            rows = solve_for_run(vc.resolve_round(params["round"]), out, params.get("whatif") or [],
                                 budget_krw=params["budget_krw_override"], time_limit_s=params["time_limit_s"])
        except (RoundError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from None
        if not rows:
            return {"scenarios": 0}
        md = approval_markdown(files.read_json(out / files.SOLUTION), out,
                               previous=vc.previous_summary(a["round_id"]), preview_url=vc.preview_url(out),
                               whatif_md=render_markdown(rows))
        files.write_text(out / files.APPROVAL_TEXT, md)
        log.info("WHAT-IF\n%s", render_markdown(rows))
        return {"scenarios": len(rows) - 1, "funded": [r["funded"] for r in rows]}

    @task.short_circuit
    def needs_approval(params=None) -> bool:
        if params["dry_run"]:
            log.info("dry run: stopping after allocate; nothing will be published")
        return not params["dry_run"]

    # subject and body come from the run folder, led by the result's fingerprint (voucher_approval)
    approve = BoundApproval(
        task_id="approve", retries=0, what="allocation",
        defaults="Reject",  # no answer within the timeout = nothing published
        response_timeout=timedelta(hours=float(os.environ.get("VOUCHER_APPROVAL_TIMEOUT_HOURS", 72))),
    )

    allocated = allocate(score(validate()))
    allocated >> whatif(allocated) >> needs_approval() >> approve
    first, _ = publish_steps(PUBLISHED)   # stage → pages ∥ seal (mapped) → publish
    approve >> first


allocation_round()
