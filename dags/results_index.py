"""Refresh PUBLISH_ROOT/index.json whenever allocation_round publishes a version."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

import voucher_common as vc

log = logging.getLogger("voucher.results_index")
PUBLISHED = vc.published_asset()


@dag(schedule=[PUBLISHED], catchup=False, tags=["voucher"],
     default_args={"owner": "voucher-ops", "retries": 2, "on_failure_callback": vc.on_task_failure})
def results_index():
    @task
    def refresh(triggering_asset_events=None) -> dict:
        for event in (triggering_asset_events or {}).get(PUBLISHED, []):
            log.info("triggered by publication %s", event.extra)
        index = vc.refresh_index()
        for round_id, entry in index["rounds"].items():
            log.info("round %s: versions %s, results page %s", round_id, entry["versions"], entry["results_page"])
        return {"rounds": len(index["rounds"]), "index": str(vc.publish_root() / "index.json")}

    refresh()


results_index()
