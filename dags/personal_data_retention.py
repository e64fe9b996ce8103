"""Remove personal data no longer needed (allocation.rounds.retention): a round's old run folders
and, after the appeal window, the sealed lookup files of its published versions. Dry run unless
`apply` is ticked; every removal is recorded in the round's audit trail."""

from __future__ import annotations

import logging
from datetime import date

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc

log = logging.getLogger("voucher.retention")


@dag(
    schedule=None, catchup=False, tags=["voucher"], max_active_runs=1,
    default_args={"owner": "voucher-ops", "retries": 0, "on_failure_callback": vc.on_task_failure},
    params={
        "round_id": Param("2026-R1", type="string", pattern=r"^[A-Za-z0-9_-]{1,64}$", title="Round id",
                          description="The published round (PUBLISH_ROOT/<round id>)"),
        "before": Param(date.today().isoformat(), type="string", pattern=r"^\d{4}-\d{2}-\d{2}$",
                        title="Remove what is older than (YYYY-MM-DD)",
                        description="The end of the appeal window"),
        "apply": Param(False, type="boolean", title="Remove (otherwise: only list what would go)"),
    },
)
def personal_data_retention():
    @task
    def purge(params=None, **context) -> dict:
        from allocation.errors import RoundError
        from allocation.rounds import retention
        try:
            plan = retention.plan_purge(params["round_id"], vc.publish_root(), vc.runs_root(),
                                        date.fromisoformat(params["before"]))
        except RoundError as exc:
            raise AirflowFailException(str(exc)) from None
        summary = plan.summary()
        log.info("PURGE PLAN round %s before %s: %d run folder(s), lookup files %s, %d bytes%s",
                 summary["round_id"], summary["before"], len(summary["run_folders"]),
                 summary["lookup_files"] or "none", summary["bytes"], "" if params["apply"] else " (dry run)")
        if params["apply"]:
            run = context.get("dag_run")
            actor = {"via": "airflow", "triggered_by": getattr(run, "triggering_user_name", None) or "airflow",
                     "dag_id": getattr(run, "dag_id", None), "run_id": getattr(run, "run_id", None)}
            retention.purge(plan, vc.publish_root(), actor=actor)
        return {"round_id": summary["round_id"], "before": summary["before"], "applied": params["apply"],
                "run_folders": len(summary["run_folders"]), "lookup_files": summary["lookup_files"]}

    purge()


personal_data_retention()
