"""Remove personal data no longer needed (allocation.rounds.retention), every day and on demand.

Scheduled (daily, 03:00 UTC): every published round by its own retention policy (round.toml
[retention]) as of the run's date — only what the policy says is past due — and it removes it.
Triggered by hand: a dry run unless `apply` is ticked; `round_id` empty = every published round,
`before` empty = each round's policy. Every removal is recorded in the round's audit trails."""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc

log = logging.getLogger("voucher.retention")


def _is_scheduled(run) -> bool:
    run_type = getattr(run, "run_type", None)
    return getattr(run_type, "value", run_type) == "scheduled"


@dag(
    schedule="0 3 * * *", start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
    tags=["voucher"], max_active_runs=1,
    default_args={"owner": "voucher-ops", "retries": 0, "on_failure_callback": vc.on_task_failure},
    params={
        "round_id": Param("", type="string", pattern=r"^([A-Za-z0-9_-]{1,64})?$", title="Round id",
                          description="A published round (PUBLISH_ROOT/<round id>); empty: every published round"),
        "before": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                        title="Remove what is older than (YYYY-MM-DD)",
                        description="Empty: what each round's retention policy (round.toml [retention]) "
                                    "says is past due today"),
        "round_folder": Param(False, type="boolean", title="With a date: the round folders too",
                              description="Once a round is closed (its newest publication before the date), "
                                          "the applicant-data files of its round folders under the rounds root go"),
        "apply": Param(False, type="boolean", title="Remove (otherwise: only list what would go)"),
    },
)
def personal_data_retention():
    @task
    def purge(params=None, **context) -> dict:
        from allocation.errors import RoundError
        from allocation.rounds import retention
        run = context.get("dag_run")
        scheduled = _is_scheduled(run)
        when = context.get("logical_date") or getattr(run, "run_after", None)
        as_of = when.date() if when else datetime.now(timezone.utc).date()
        apply = scheduled or bool(params["apply"])
        actor = {"via": "airflow", "triggered_by": getattr(run, "triggering_user_name", None) or "airflow",
                 "dag_id": getattr(run, "dag_id", None), "run_id": getattr(run, "run_id", None),
                 "scheduled": scheduled, "trigger_role": "operator"}
        try:
            result = retention.run_retention(
                vc.publish_root(), vc.runs_root(), vc.rounds_root(), as_of=as_of,
                round_id=None if scheduled else (params["round_id"] or None),
                before=None if scheduled or not params["before"] else date.fromisoformat(params["before"]),
                round_folder=bool(params["round_folder"]) and not scheduled, apply=apply, actor=actor)
        except RoundError as exc:
            raise AirflowFailException(str(exc)) from None
        for rid, r in result["rounds"].items():
            log.info("PURGE %s round %s as of %s: %d run folder(s), lookup files %s, %d round-folder file(s)%s, "
                     "%d bytes%s", "DONE" if r["removed"] else ("NOTHING DUE" if apply else "PLAN"), rid,
                     result["as_of"], r["run_folders"], r["lookup_files"] or "none", r["round_folder_files"],
                     " (round closed)" if r["closed"] else "", r["bytes"], "" if apply else " (dry run)")
        if result["failed"]:
            raise AirflowFailException("purge failed for " + "; ".join(f"round {rid}: {msg}"
                                                                      for rid, msg in result["failed"].items()))
        return result

    purge()


personal_data_retention()
