"""After publication: refill freed awards and apply appeals, publish the next version.

prepare (round folder + responses + appeals, previous = latest published version) → score →
allocate (refill: accepted and pending awards fixed, declined and lapsed released) →
officer approves → publish v<N+1> (same Asset as allocation_round, so results_index refreshes).
Thin wiring over allocation.rounds.lifecycle / allocation.publish; helpers in voucher_common.py.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc
from voucher_approval import BoundApproval
from voucher_publish import publish_steps

log = logging.getLogger("voucher.round_refill")
PUBLISHED = vc.published_asset()
TRANSIENT = {"retries": 2, "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10),
             "retry_delay": timedelta(seconds=float(os.environ.get("VOUCHER_RETRY_DELAY_S", 20)))}


def _fail(out: Path, exc: Exception, what: str):
    from allocation import files
    (out / files.VALIDATION_ERROR).write_text(f"{exc}\n", encoding="utf-8")
    log.error("%s (written to %s):\n%s", what, out / files.VALIDATION_ERROR, exc)
    return AirflowFailException(f"{what}: {exc}")


@dag(
    schedule=None, catchup=False, tags=["voucher"], max_active_runs=1,
    default_args={"owner": "voucher-ops", "on_failure_callback": vc.on_task_failure, **TRANSIENT},
    params={
        "round": Param("sample", type="string", title="Round", pattern=r"^(/.+|[A-Za-z0-9][A-Za-z0-9._-]*)$",
                       examples=vc.available_rounds() or ["sample"],
                       description=f"Folder name under {vc.rounds_root()} (or an absolute path inside it)"),
        "responses": Param("responses.csv", type=["null", "string"], title="Responses file",
                           description="In the round folder: application_id, response (accepted|declined), "
                                       "responded_on. Used when present."),
        "appeals": Param("appeals.csv", type=["null", "string"], title="Appeals file",
                         description="In the round folder: application_id, decision (upheld|rejected), note, "
                                     "make_eligible; replacement_reviews.csv for upheld appeals. Used when present."),
        "as_of": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$", title="As of (date)",
                       description="Evaluate acceptances and lapses as of this date (YYYY-MM-DD); empty: today"),
        "time_limit_s": Param(60, type="number", minimum=1, maximum=3600, title="Solver time limit (s)"),
        "allow_empty": Param(False, type="boolean", title="Allow publishing an empty result",
                             description="Publish even if the result funds nobody (refused otherwise)"),
    },
)
def round_refill():
    @task(retries=0)  # bad input is final: never retried
    def prepare(params=None, run_id=None) -> dict:
        from allocation.config import load_config
        from allocation.errors import RoundError
        from allocation.rounds.lifecycle import refill
        try:
            round_dir = vc.resolve_round(params["round"])
            responses = vc.plain_file_name(params["responses"])
            appeals = vc.plain_file_name(params["appeals"])
            as_of = vc.parse_as_of(params["as_of"])
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        out = vc.reset_dir(vc.run_dir(round_dir, run_id))
        try:
            round_id = load_config(round_dir).round.id
            previous = vc.latest_published_version(round_id)
            if previous is None:
                raise RoundError(f"round {round_id} has no published version under {vc.publish_root()}; "
                                 f"publish it first (allocation_round)")
            log.info("round %s: refill against %s as of %s -> run folder %s", round_dir, previous, as_of, out)
            summary = refill.prepare(round_dir, previous, out, as_of=as_of, responses=responses,
                                        appeals=appeals, time_limit_s=params["time_limit_s"])
        except RoundError as exc:
            raise _fail(out, exc, "REFILL CANNOT RUN") from None
        log.info("LIFECYCLE %s", summary)
        return {"round_dir": str(round_dir), "out_dir": str(out), "previous": str(previous), **summary}

    @task
    def score(p: dict) -> dict:
        from allocation.rounds import allocate as stages
        log.info("SCORES %s", stages.score(Path(p["out_dir"])))
        return p

    @task(retries=0, pool=os.environ.get("VOUCHER_SOLVER_POOL") or "default_pool")
    def allocate(s: dict) -> dict:
        from allocation import files
        from allocation.errors import RoundError
        from allocation.rounds.approval import lifecycle_markdown
        from allocation.rounds.lifecycle import refill
        out = Path(s["out_dir"])
        try:
            report = refill.allocate(out)
        except RoundError as exc:
            raise _fail(out, exc, "REFILL CANNOT RUN") from None
        vc.log_quality(out, "allocate")
        md = lifecycle_markdown(report, out)
        files.write_text(out / files.APPROVAL_TEXT, md)   # what approve shows (never taken from XCom)
        log.info("REFILL SUMMARY\n%s", md)
        return {"out_dir": str(out), "round_id": report["round_id"], "status": report["status"],
                "kind": report["lifecycle"]["kind"], "gained": report["lifecycle"]["gained"],
                "released": report["lifecycle"]["released"], "summary_md": md}

    # subject and body come from the run folder, led by the result's fingerprint (voucher_approval)
    approve = BoundApproval(
        task_id="approve", retries=0, what="refill or appeal",
        defaults="Reject",  # no answer within the timeout = nothing published
        response_timeout=timedelta(hours=float(os.environ.get("VOUCHER_APPROVAL_TIMEOUT_HOURS", 72))),
    )

    allocated = allocate(score(prepare()))
    first, _ = publish_steps(PUBLISHED)   # stage → pages ∥ seal (mapped) → publish
    allocated >> approve >> first


round_refill()
