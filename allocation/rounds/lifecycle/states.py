"""Award states after publication: accepted, pending, declined or lapsed, as of a date."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from allocation import schema
from allocation.config import RoundConfig
from allocation.rounds.lifecycle.previous import Previous

APP_ID = "application_id"
ACCEPTED, DECLINED = schema.ACCEPTED, schema.DECLINED
S_ACCEPTED, S_PENDING, S_DECLINED, S_LAPSED = "accepted", "pending", "declined", "lapsed"
PROTECTED = (S_ACCEPTED, S_PENDING)   # kept exactly as published
RELEASED = (S_DECLINED, S_LAPSED)     # released for good (never re-funded)


def _deadline(config: RoundConfig, offered_as_of: str | None) -> date | None:
    accept_by = config.lifecycle.accept_by
    if offered_as_of is None:
        return accept_by
    own = date.fromisoformat(offered_as_of) + timedelta(days=config.lifecycle.accept_within_days)
    return max(own, accept_by) if accept_by else own


def award_states(previous: Previous, responses: pl.DataFrame | None, config: RoundConfig,
                 as_of: date) -> list[dict]:
    """State of every award ever made in the round, as of a date.

    accepted  acceptance dated on or before as_of and on or before the award's deadline
    declined  decline dated on or before as_of (also for awards released earlier)
    lapsed    no acceptance by the deadline (as_of after it), or an acceptance after it
    pending   no response yet, deadline not passed (or no deadline)
    Responses dated after as_of are not counted (state "as of").
    """
    by_id = {}
    if responses is not None:
        by_id = {r[APP_ID]: r for r in responses.iter_rows(named=True)}
    states = []
    for app_id in sorted(previous.ever_awarded):
        r = by_id.get(app_id)
        counted = r is not None and r["responded_on"] <= as_of
        current = app_id in previous.awards
        deadline = _deadline(config, previous.offered.get(app_id)) if current else None
        note = ""
        if not current:   # released by an earlier version: stays released
            state = S_DECLINED if counted and r["response"] == DECLINED else S_LAPSED
            note = f"released before {previous.label}"
        elif counted and r["response"] == DECLINED:
            state = S_DECLINED
        elif counted and (deadline is None or r["responded_on"] <= deadline):
            state = S_ACCEPTED
        elif counted:
            state, note = S_LAPSED, f"accepted on {r['responded_on']} after the deadline {deadline}"
        elif deadline is not None and as_of > deadline:
            state = S_LAPSED
        else:
            state = S_PENDING
        if r is not None and not counted:
            note = f"response dated {r['responded_on']} is after the as-of date {as_of}: not counted"
        states.append({
            APP_ID: app_id, "state": state, "current": current,
            "award_fraction": previous.awards.get(app_id),
            "offered_as_of": previous.offered.get(app_id) if current else None,
            "deadline": deadline.isoformat() if deadline else None,
            "response": r["response"] if r is not None else None,
            "responded_on": r["responded_on"].isoformat() if r is not None else None,
            "note": note,
            # GPU capacity by month: the published start month, kept by the refill
            **({schema.START_MONTH: previous.starts.get(app_id)} if previous.starts else {}),
        })
    return states
