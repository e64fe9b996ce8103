"""Every field of every outcome row, by hand, on tiny rounds (one GPU type at ₩1,000 an hour,
levels 50% / 100%): what an applicant is told and paid must not change with any single line of
allocation/explain/outcomes.py. Written to kill its mutants (bench/mutation.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from allocation import schema
from allocation.config import parse_config
from allocation.explain.outcomes import _blocker_sentence, _krw, build_awards, build_outcomes, item_outcomes
from allocation.model.build import build_model
from tests.explain.tiny import config_text, solved, tiny_round

NEEDED_70 = "; a score of about 70.00 would have been needed at the current clearing prices"


def _rows(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["application_id"]: r for r in frame.iter_rows(named=True)}


def test_item_outcomes_every_field_by_hand():
    # 25 H100 hours for five requests of 10 h, copay 20 %, waitlist of 2:
    # A (90) and B (80) in full (₩10,000: copay ₩2,000, awarded ₩8,000), C (70) at half (5 h:
    # ₩5,000, ₩1,000, ₩4,000); D (65.5) and E (64) nothing. The last hour goes to C at 70 points per
    # ₩800 of award an hour, so 70.00 is the score that would have been needed.
    # Waitlist: the best not fully funded, by score: C (1), D (2); E is past its size.
    rows = [{"application_id": "A", "score": 90, "hours": 10}, {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "C", "score": 70, "hours": 10}, {"application_id": "D", "score": 65.5, "hours": 10},
            {"application_id": "E", "score": 64, "hours": 10}]
    model, config, _, _ = tiny_round(rows, capacity_hours=25, copay=0.2, waitlist=2)
    choice, ex = solved(model)
    items = item_outcomes(model, choice, ex, config)
    assert items.columns == ["application_id", "status", "award_fraction", "cost_krw", "awarded_krw",
                             "copay_krw", "reason", "score_needed", "reason_detail", "waitlist_rank"]
    assert items.schema["waitlist_rank"] == pl.Int64 and items.schema["cost_krw"] == pl.Int64
    got = _rows(items)
    for r in got.values():
        if r["application_id"] in "ABC":
            assert math.isnan(r["score_needed"])
        r.pop("score_needed")
    used_up = "H100 GPU-hours are used up"
    assert got == {
        "A": {"application_id": "A", "status": "awarded", "award_fraction": 1.0, "cost_krw": 10_000,
              "awarded_krw": 8_000, "copay_krw": 2_000, "reason": "funded",
              "reason_detail": "funded at 100% of the request (score 90.00)", "waitlist_rank": None},
        "B": {"application_id": "B", "status": "awarded", "award_fraction": 1.0, "cost_krw": 10_000,
              "awarded_krw": 8_000, "copay_krw": 2_000, "reason": "funded",
              "reason_detail": "funded at 100% of the request (score 80.00)", "waitlist_rank": None},
        "C": {"application_id": "C", "status": "awarded", "award_fraction": 0.5, "cost_krw": 5_000,
              "awarded_krw": 4_000, "copay_krw": 1_000, "reason": "funded_partially",
              "reason_detail": f"funded at 50% of the request; a larger share is not possible because {used_up}",
              "waitlist_rank": 1},
        "D": {"application_id": "D", "status": "waitlisted", "award_fraction": 0.0, "cost_krw": 0,
              "awarded_krw": 0, "copay_krw": 0, "reason": "capacity_H100_exhausted",
              "reason_detail": f"not funded (score 65.50) because {used_up}{NEEDED_70}", "waitlist_rank": 2},
        "E": {"application_id": "E", "status": "not_selected", "award_fraction": 0.0, "cost_krw": 0,
              "awarded_krw": 0, "copay_krw": 0, "reason": "capacity_H100_exhausted",
              "reason_detail": f"not funded (score 64.00) because {used_up}{NEEDED_70}", "waitlist_rank": None},
    }
    assert items["score_needed"].to_list()[3:] == [70.0, 70.0]


def test_waitlist_ties_go_by_id_and_a_zero_size_waitlist_is_empty():
    rows = [{"application_id": "A", "score": 90, "hours": 10},
            {"application_id": "Q", "score": 70, "hours": 10}, {"application_id": "P", "score": 70, "hours": 10},
            {"application_id": "R", "score": 75, "hours": 10}]
    model, config, _, _ = tiny_round(rows, capacity_hours=10, waitlist=3)
    choice, ex = solved(model)
    got = _rows(item_outcomes(model, choice, ex, config))
    # A in full; R (75) first, then the tie at 70 by id: P before Q
    assert [got[a]["waitlist_rank"] for a in "ARPQ"] == [None, 1, 2, 3]
    assert [got[a]["status"] for a in "ARPQ"] == ["awarded", "waitlisted", "waitlisted", "waitlisted"]
    model, config, _, _ = tiny_round(rows, capacity_hours=10, waitlist=0)
    choice, ex = solved(model)
    got = _rows(item_outcomes(model, choice, ex, config))
    assert [got[a]["waitlist_rank"] for a in "ARPQ"] == [None] * 4
    assert [got[a]["status"] for a in "ARPQ"] == ["awarded", "not_selected", "not_selected", "not_selected"]


def test_two_limits_and_the_company_cap_in_one_sentence():
    # A and B are one company capped at ₩14,000; budget ₩15,000 and 15 hours: A in full (₩10,000),
    # B (80) at nothing: its half (₩5,000, 5 h) breaks the hours, the budget and the company cap.
    rows = [{"application_id": "A", "score": 90, "hours": 10, "business_no": "123-45-67891"},
            {"application_id": "B", "score": 80, "hours": 10, "business_no": "123-45-67891"},
            {"application_id": "C", "score": 85, "hours": 10, "business_no": "220-81-62517"}]
    model, config, _, _ = tiny_round(rows, capacity_hours=15, budget=15_000, cap=14_000)
    choice, ex = solved(model)
    got = _rows(item_outcomes(model, choice, ex, config))
    assert choice.tolist() == [1, -1, 0]
    b = got["B"]
    assert b["reason"] == "capacity_H100_exhausted"       # the first code names the reason
    # the last hours and KRW go to C's half at 85 points: 85.00 would have been needed
    assert b["reason_detail"] == (
        "not funded (score 80.00) because H100 GPU-hours are used up; the programme budget is used up; "
        "company 123-45-***** would exceed the ₩14,000 per-company cap; "
        "a score of about 85.00 would have been needed at the current clearing prices")
    assert (b["status"], b["waitlist_rank"], got["C"]["waitlist_rank"]) == ("waitlisted", 2, 1)
    c = got["C"]
    assert c["reason_detail"] == ("funded at 50% of the request; a larger share is not possible because "
                                  "H100 GPU-hours are used up; the programme budget is used up")


def test_blocker_sentences():
    quota = ('[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.25\n'
             '[[quota]]\nname = "busan"\nregions_in = ["Busan"]\nmin_share = 0.125')
    _, config, _, _ = tiny_round([{"application_id": "A", "score": 90, "hours": 10}], quota=quota, cap=1_234_567)
    assert _krw(1_234_567) == "₩1,234,567" and _krw(0) == "₩0"
    assert _blocker_sentence("budget_exhausted", [], "", config) == "the programme budget is used up"
    assert _blocker_sentence("capacity_A100_exhausted", [], "", config) == "A100 GPU-hours are used up"
    assert _blocker_sentence("company_cap", [], "220-81-62517", config) == \
        "company 220-81-***** would exceed the ₩1,234,567 per-company cap"
    assert _blocker_sentence("quota", ["jeju", "busan"], "", config) == (
        "the 'jeju' quota would fall below 25% of the awarded budget; "
        "the 'busan' quota would fall below 12% of the awarded budget")
    assert _blocker_sentence("not_optimal", [], "", config) == "the solver stopped before proving optimality"
    assert _blocker_sentence("lapsed", [], "", config) == schema.OUTCOME_REASONS["lapsed"]
    assert _blocker_sentence("something_new", [], "", config) == "something_new"


def test_build_outcomes_every_field_by_hand():
    # X ineligible (and, as in a real round, without a score); AL below min_score 60; A and B tie at
    # 80 (rank by id: A 1, B 2; AL is 4th by score though 2nd by id); 35 hours:
    # A and B 10 h each, C (70) half of its 30 h = 15 h (₩15,000, copay ₩3,000).
    rows = [{"application_id": "X", "score": 0, "hours": 10, "eligible": False},
            {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "AL", "score": 55.25, "hours": 10},
            {"application_id": "A", "score": 80, "hours": 10},
            {"application_id": "C", "score": 70, "hours": 30}]
    model, config, apps, scores = tiny_round(rows, capacity_hours=35, copay=0.2)
    scores = scores.filter(pl.col("application_id") != "X")
    choice, ex = solved(model)
    out = build_outcomes(apps, scores, item_outcomes(model, choice, ex, config), config)
    assert out.columns == list(schema.OUTCOMES_SCHEMA)
    assert out.schema == pl.Schema(schema.OUTCOMES_SCHEMA)
    got = [dict(r) for r in out.iter_rows(named=True)]
    for r in got:
        r.pop("company_name"), r.pop("business_no"), r.pop("region")
    for r in got[1::2] + [got[4]]:                              # B, A, C: awarded, nothing needed
        assert math.isnan(r.pop("score_needed"))
    assert got == [
        {"application_id": "X", "source_row": 2, "status": "ineligible", "score": None, "rank": None,
         "waitlist_rank": None, "award_fraction": 0.0, "cost_krw": 0, "awarded_krw": 0, "copay_krw": 0,
         "reason": "invalid_field", "score_needed": None, "reason_detail": "applications.csv row: bad"},
        {"application_id": "B", "source_row": 3, "status": "awarded", "score": 80.0, "rank": 2,
         "waitlist_rank": None, "award_fraction": 1.0, "cost_krw": 10_000, "awarded_krw": 8_000,
         "copay_krw": 2_000, "reason": "funded", "reason_detail": "funded at 100% of the request (score 80.00)"},
        {"application_id": "AL", "source_row": 4, "status": "not_selected", "score": 55.25, "rank": 4,
         "waitlist_rank": None, "award_fraction": 0.0, "cost_krw": 0, "awarded_krw": 0, "copay_krw": 0,
         "reason": "below_min_score", "score_needed": 60.0,
         "reason_detail": "score 55.25 is below the round's minimum score 60.0"},
        {"application_id": "A", "source_row": 5, "status": "awarded", "score": 80.0, "rank": 1,
         "waitlist_rank": None, "award_fraction": 1.0, "cost_krw": 10_000, "awarded_krw": 8_000,
         "copay_krw": 2_000, "reason": "funded", "reason_detail": "funded at 100% of the request (score 80.00)"},
        {"application_id": "C", "source_row": 6, "status": "awarded", "score": 70.0, "rank": 3,
         "waitlist_rank": 1, "award_fraction": 0.5, "cost_krw": 15_000, "awarded_krw": 12_000,
         "copay_krw": 3_000, "reason": "funded_partially",
         "reason_detail": "funded at 50% of the request; a larger share is not possible because "
                          "H100 GPU-hours are used up"},
    ]


def test_build_awards_lines_per_type_skip_zero_hours_and_price_each_type():
    # a model stand-in with two GPU types at different prices; item 1 unfunded, item 2 at level 0
    hours = np.array([[[0, 0], [4, 7]],          # item 0: level 1 = A100 4 h, H100 7 h
                      [[1, 1], [2, 2]],          # item 1: not funded
                      [[1, 0], [6, 0]]], np.int64)   # item 2: level 0 = A100 1 h (H100 0 h: no line)
    model = SimpleNamespace(hours=hours, application_ids=np.array(["Z", "M", "B"]),
                            gpu_types=("A100", "H100"), prices=np.array([1_500, 7_000], np.int64),
                            months=())
    awards = build_awards(model, np.array([1, -1, 0]))
    assert awards.schema == pl.Schema(schema.AWARDS_SCHEMA)
    assert awards.rows() == [("B", "A100", 1, 1_500), ("Z", "A100", 4, 6_000), ("Z", "H100", 7, 49_000)]
    assert build_awards(model, np.array([-1, -1, -1])).height == 0


def test_an_application_no_level_of_which_grants_an_hour_is_told_why_and_not_waitlisted():
    # Levels 50 % and 75 %: a 1-hour request gets floor(0.5) = floor(0.75) = 0 hours at every level,
    # so no award of it is possible. Today it is waitlisted (rank 1, ahead of everyone) with the
    # reason 'not_optimal' and the detail "not funded (score 90.00) because " (nothing follows).
    text = config_text(waitlist=5).replace("levels = [0.5, 1.0]", "levels = [0.5, 0.75]")
    config = parse_config(text)
    apps = pl.DataFrame({"application_id": ["A", "B"], "business_no": ["123-45-67891", "220-81-62517"],
                         "region": ["Busan"] * 2, "prior_awards": [0] * 2, "company_size": ["small"] * 2,
                         "eligible": [True, True]})
    requests = pl.DataFrame({"application_id": ["A", "B"], "gpu_type": ["H100"] * 2, "gpu_hours": [1, 10]})
    capacity = pl.DataFrame({"gpu_type": ["H100"], "gpu_hours": [1_000], "krw_per_gpu_hour": [1_000]})
    scores = pl.DataFrame({"application_id": ["A", "B"], "score": [90.0, 80.0]})
    model = build_model(apps, requests, capacity, scores, config)
    choice, ex = solved(model)
    a = _rows(item_outcomes(model, choice, ex, config))["A"]
    assert a["waitlist_rank"] is None and a["status"] == "not_selected"
    assert not a["reason_detail"].endswith("because ") and a["reason"] == "request_too_small"
    assert "no award level of the round grants even one whole GPU-hour" in a["reason_detail"]


def test_an_application_that_can_never_be_funded_is_told_only_why():
    # N's half (20 h of 30, ₩20,000) is over the ₩15,000 cap on its own: no score would do, so no
    # hint follows
    rows = [{"application_id": "A", "score": 90, "hours": 10}, {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "N", "score": 61, "hours": 40, "business_no": "105-87-00011"}]
    model, config, _, _ = tiny_round(rows, capacity_hours=30, cap=15_000)
    choice, ex = solved(model)
    n = _rows(item_outcomes(model, choice, ex, config))["N"]
    assert (n["status"], n["reason"], n["waitlist_rank"]) == ("not_selected", "company_cap", None)
    assert n["reason_detail"] == ("not funded (score 61.00) because company 105-87-***** would exceed "
                                  "the ₩15,000 per-company cap")
