"""The publish steps of both voucher DAGs (not a DAG file): a version written by several tasks.

    approve → publish_prepare → publish_pages ──────────────┐
                              → seal_lookup (mapped) ×N ─────┴→ publish

publish_prepare stages the version (allocation.publish.version.stage_publication: every check of
`voucher publish`, the version number, the audit entry, the lookup plan) and returns the plan's
chunks in batches; each seal_lookup task seals one batch with the cores of the worker it lands on,
so in the production profile (Celery) the workers share the sealing; publish checks, under the
round's lock, that the staged version is still the next one and the run folder still holds the
staged result, then renames it into place and writes the audit line. Every step re-reads the
approval from Airflow's records (voucher_approval.approved_actor) and the run folder from the
run's own id; XCom carries only chunk numbers. A failed step leaves nothing visible; clear
publish_prepare (and what follows) to publish again.
"""

from __future__ import annotations

import logging
import os

from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

import voucher_common as vc
from voucher_approval import approved_actor

log = logging.getLogger("voucher.publish")
# lookup chunks (allocation.publish.lookup.CHUNK_ROWS records each) per seal_lookup task
CHUNKS_PER_TASK = int(os.environ.get("VOUCHER_SEAL_CHUNKS_PER_TASK") or 8)


def _final(exc: Exception) -> AirflowFailException:
    return AirflowFailException(str(exc))


def publish_steps(published_asset):
    """The four publish tasks; returns (first, last) for `approve >> first`."""

    @task
    def publish_prepare(**context) -> list[list[int]]:
        """Stage the version; the lookup chunks to seal, in batches (one seal_lookup task each)."""
        from allocation.errors import RoundError
        from allocation.publish.version import chunk_batches, stage_publication
        out, actor = approved_actor(context)
        log.info("approval: %s", actor)
        try:
            stage = stage_publication(out, vc.publish_root(), actor=actor, demo=vc.is_demo(),
                                      allow_empty=bool(context["params"].get("allow_empty")))
        except RoundError as exc:   # e.g. an empty result without allow_empty: final, not transient
            raise _final(exc) from None
        if "result" in stage:
            log.info("round %s: %s", stage["result"]["round_id"], stage["result"]["message"])
            return []
        batches = chunk_batches(out, CHUNKS_PER_TASK)
        log.info("staged v%s of round %s: %s lookup chunks in %s sealing task(s)", stage["version"],
                 stage["round_id"], stage["chunks"], len(batches))
        return batches

    @task
    def publish_pages(**context) -> None:
        """Award lists, report and the lookup page into the staged version."""
        from allocation.errors import RoundError
        from allocation.publish.version import write_staged_pages
        out, _ = approved_actor(context)
        try:
            write_staged_pages(out)
        except RoundError as exc:
            raise _final(exc) from None

    @task(map_index_template="chunks {{ chunk_span }}")
    def seal_lookup(batch: list[int], **context) -> int:
        """One batch of lookup chunks, sealed with this worker's cores."""
        from allocation.errors import RoundError
        from allocation.publish.version import seal_staged_chunks
        get_current_context()["chunk_span"] = f"{batch[0]}-{batch[-1]}" if batch else "none"
        out, _ = approved_actor(context)
        try:
            rows = seal_staged_chunks(out, batch)
        except RoundError as exc:
            raise _final(exc) from None
        log.info("lookup chunks %s: %s records", batch, rows)
        return rows

    # none_failed_min_one_success: an unchanged result has no chunk to seal (seal_lookup skipped)
    @task(outlets=[published_asset], trigger_rule="none_failed_min_one_success")
    def publish(outlet_events=None, **context) -> dict:
        from allocation.errors import RoundError
        from allocation.publish.version import complete_publication
        out, _ = approved_actor(context)
        try:
            result = complete_publication(out, vc.publish_root())
        except RoundError as exc:   # another version appeared meanwhile, the result changed: final
            raise _final(exc) from None
        if result["created"]:
            log.info("PUBLISHED round %s version v%s at %s", result["round_id"], result["version"], result["path"])
        else:   # nothing new; the approval is in the audit trail
            log.info("round %s %s (%s)", result["round_id"], result["message"], result["path"])
        outlet_events[published_asset].extra = {k: result[k] for k in ("round_id", "version", "path")}
        return result

    prepared = publish_prepare()
    pages = publish_pages()
    sealed = seal_lookup.expand(batch=prepared)
    done = publish()
    prepared >> pages
    [pages, sealed] >> done
    return prepared, done
