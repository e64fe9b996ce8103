"""Award states and deadlines (allocation/rounds/lifecycle/states.py) by hand, on the edges that
decide whether an award is kept: a response on the deadline day, on the as-of date, a day after
either; refills' own deadlines against accept_by. Written to kill mutants (bench/mutation.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from allocation.config import parse_config
from allocation.rounds.lifecycle.previous import Previous
from allocation.rounds.lifecycle.states import _deadline, award_states

BASE_TOML = """
[round]
id = "2026-R1"
budget_krw = 5_000_000_000
copay_share = 0.2
[award]
levels = [0.5, 1.0]
max_krw_per_company = 300_000_000
min_score = 60
[scoring]
weights = { technical = 1.0 }
"""


def _config(accept_by: str | None = "2026-06-01", within: int = 14):
    text = BASE_TOML + "\n[lifecycle]\n" + (f"accept_by = {accept_by}\n" if accept_by else "") \
        + f"accept_within_days = {within}\n"
    return parse_config(text)


def _previous(awards: dict[str, float], offered: dict[str, str | None], released: set[str]) -> Previous:
    return Previous(round_id="2026-R1", label="v2", version=2, source=Path("pub/2026-R1/v2"),
                    awards=awards, offered=offered, ever_awarded=set(awards) | released)


def _responses(rows: list[tuple[str, str, date]]) -> pl.DataFrame:
    return pl.DataFrame({"application_id": [r[0] for r in rows], "response": [r[1] for r in rows],
                         "responded_on": [r[2] for r in rows]}, schema={
        "application_id": pl.String, "response": pl.String, "responded_on": pl.Date})


def test_deadline_of_first_offers_is_accept_by_and_of_later_offers_never_earlier():
    config = _config()
    assert _deadline(config, None) == date(2026, 6, 1)
    assert _deadline(config, "2026-06-10") == date(2026, 6, 24)          # own: 10 June + 14 days
    assert _deadline(config, "2026-05-01") == date(2026, 6, 1)           # own 15 May < accept_by
    assert _deadline(config, "2026-05-18") == date(2026, 6, 1)           # own == accept_by
    assert _deadline(_config(within=0), "2026-06-10") == date(2026, 6, 10)
    no_date = _config(accept_by=None, within=9)
    assert _deadline(no_date, None) is None                              # never lapses
    assert _deadline(no_date, "2026-05-01") == date(2026, 5, 10)


def test_award_states_on_every_edge():
    config = _config()
    previous = _previous(
        awards={"A": 1.0, "B": 0.5, "C": 1.0, "D": 0.75, "E": 1.0, "F": 1.0, "G": 0.5},
        offered={"A": None, "B": None, "C": None, "D": None, "E": None, "F": None, "G": "2026-06-10"},
        released={"X", "Y"})
    responses = _responses([
        ("A", "accepted", date(2026, 6, 1)),     # on the deadline day: in time
        ("B", "accepted", date(2026, 6, 2)),     # a day late
        ("D", "declined", date(2026, 6, 3)),
        ("E", "declined", date(2026, 6, 5)),     # on the as-of date: counted
        ("F", "accepted", date(2026, 6, 6)),     # after the as-of date: not counted
        ("X", "declined", date(2026, 5, 20)),    # released earlier by its decline
    ])
    states = award_states(previous, responses, config, as_of=date(2026, 6, 5))
    first = {"current": True, "offered_as_of": None, "deadline": "2026-06-01"}
    assert states == [
        {"application_id": "A", "state": "accepted", **first, "award_fraction": 1.0,
         "response": "accepted", "responded_on": "2026-06-01", "note": ""},
        {"application_id": "B", "state": "lapsed", **first, "award_fraction": 0.5,
         "response": "accepted", "responded_on": "2026-06-02",
         "note": "accepted on 2026-06-02 after the deadline 2026-06-01"},
        {"application_id": "C", "state": "lapsed", **first, "award_fraction": 1.0,
         "response": None, "responded_on": None, "note": ""},
        {"application_id": "D", "state": "declined", **first, "award_fraction": 0.75,
         "response": "declined", "responded_on": "2026-06-03", "note": ""},
        {"application_id": "E", "state": "declined", **first, "award_fraction": 1.0,
         "response": "declined", "responded_on": "2026-06-05", "note": ""},
        {"application_id": "F", "state": "lapsed", **first, "award_fraction": 1.0,
         "response": "accepted", "responded_on": "2026-06-06",
         "note": "response dated 2026-06-06 is after the as-of date 2026-06-05: not counted"},
        {"application_id": "G", "state": "pending", "current": True, "offered_as_of": "2026-06-10",
         "deadline": "2026-06-24", "award_fraction": 0.5,
         "response": None, "responded_on": None, "note": ""},
        {"application_id": "X", "state": "declined", "current": False, "offered_as_of": None,
         "deadline": None, "award_fraction": None,
         "response": "declined", "responded_on": "2026-05-20", "note": "released before v2"},
        {"application_id": "Y", "state": "lapsed", "current": False, "offered_as_of": None,
         "deadline": None, "award_fraction": None,
         "response": None, "responded_on": None, "note": "released before v2"},
    ]


def test_on_the_deadline_day_an_award_is_still_pending_and_a_day_later_it_lapses():
    config = _config()
    previous = _previous({"C": 1.0}, {"C": None}, set())
    assert award_states(previous, None, config, as_of=date(2026, 6, 1))[0]["state"] == "pending"
    assert award_states(previous, None, config, as_of=date(2026, 6, 2))[0]["state"] == "lapsed"
    late = _responses([("C", "accepted", date(2026, 6, 3))])
    state = award_states(previous, late, config, as_of=date(2026, 6, 2))[0]
    assert (state["state"], state["note"]) == (
        "lapsed", "response dated 2026-06-03 is after the as-of date 2026-06-02: not counted")


def test_without_a_deadline_awards_stay_pending_and_any_acceptance_counts():
    config = _config(accept_by=None)
    previous = _previous({"A": 1.0, "B": 1.0}, {"A": None, "B": None}, set())
    responses = _responses([("A", "accepted", date(2030, 1, 1))])
    states = award_states(previous, responses, config, as_of=date(2030, 1, 1))
    assert [(s["application_id"], s["state"], s["deadline"]) for s in states] == [
        ("A", "accepted", None), ("B", "pending", None)]


def test_a_released_award_accepted_later_stays_lapsed_and_a_later_decline_is_not_counted():
    config = _config()
    previous = _previous({}, {}, {"X", "Z"})
    responses = _responses([("X", "accepted", date(2026, 5, 2)), ("Z", "declined", date(2026, 7, 1))])
    states = award_states(previous, responses, config, as_of=date(2026, 6, 5))
    assert [(s["application_id"], s["state"], s["note"]) for s in states] == [
        ("X", "lapsed", "released before v2"),
        ("Z", "lapsed", "response dated 2026-07-01 is after the as-of date 2026-06-05: not counted")]
