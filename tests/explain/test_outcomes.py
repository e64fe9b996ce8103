"""One outcome per input application, in words (allocation.explain.outcomes), on hand-made rounds:
one GPU type at ₩1,000 an hour, levels 50% / 100%."""

from __future__ import annotations

import numpy as np
import polars as pl

from allocation import schema
from allocation.explain.outcomes import build_awards, build_outcomes, item_outcomes
from allocation.explain.reasons import explain_items
from allocation.publish.lookup import explain
from tests.explain.tiny import solved, tiny_round

FOUR = [{"application_id": "A", "score": 90, "hours": 10},
        {"application_id": "B", "score": 80, "hours": 10},
        {"application_id": "C", "score": 70, "hours": 10},
        {"application_id": "D", "score": 65, "hours": 10}]


def _items(rows, **kw):
    model, config, apps, scores = tiny_round(rows, **kw)
    choice, ex = solved(model)
    return model, config, apps, scores, choice, item_outcomes(model, choice, ex, config)


def test_full_partial_and_unfunded_in_words():
    model, config, _, _, choice, items = _items(FOUR, capacity_hours=25, copay=0.2)
    by = {r["application_id"]: r for r in items.iter_rows(named=True)}
    assert choice.tolist() == [1, 1, 0, -1]
    assert by["A"]["status"] == "awarded" and by["A"]["reason"] == "funded"
    assert by["A"]["reason_detail"] == "funded at 100% of the request (score 90.00)"
    # ₩10,000 in full: co-payment 20% = ₩2,000, the budget pays ₩8,000
    assert (by["A"]["cost_krw"], by["A"]["copay_krw"], by["A"]["awarded_krw"]) == (10_000, 2_000, 8_000)
    assert by["C"]["status"] == "awarded" and by["C"]["reason"] == "funded_partially"
    assert by["C"]["award_fraction"] == 0.5 and by["C"]["awarded_krw"] == 4_000
    assert by["C"]["reason_detail"] == ("funded at 50% of the request; a larger share is not possible "
                                        "because H100 GPU-hours are used up")
    assert by["D"]["status"] == "waitlisted" and by["D"]["reason"] == "capacity_H100_exhausted"
    assert by["D"]["reason_detail"].startswith("not funded (score 65.00) because H100 GPU-hours are used up")
    assert (by["D"]["cost_krw"], by["D"]["awarded_krw"], by["D"]["award_fraction"]) == (0, 0, 0.0)


def test_waitlist_ranks_the_best_not_fully_funded_and_stops_at_its_size():
    rows = FOUR + [{"application_id": "E", "score": 64, "hours": 10}]
    *_, items = _items(rows, capacity_hours=25, waitlist=2)
    by = {r["application_id"]: r for r in items.iter_rows(named=True)}
    # C (partly funded, 70) and D (65) are the two best not fully funded; E (64) is past the cap
    assert (by["C"]["waitlist_rank"], by["D"]["waitlist_rank"], by["E"]["waitlist_rank"]) == (1, 2, None)
    assert by["C"]["status"] == "awarded"            # a partly funded awardee stays awarded
    assert by["D"]["status"] == "waitlisted" and by["E"]["status"] == "not_selected"
    assert by["A"]["waitlist_rank"] is None


def test_company_cap_sentence_names_the_masked_company_and_the_cap():
    rows = [{**FOUR[0], "business_no": "123-45-67891"}, {**FOUR[1], "business_no": "123-45-67891"}]
    *_, items = _items(rows, cap=15_000)
    detail = items.filter(pl.col("application_id") == "B")["reason_detail"][0]
    assert "company 123-45-***** would exceed the ₩15,000 per-company cap" in detail
    assert "67891" not in detail


def test_quota_sentence_names_the_quota_and_its_share():
    quota = '[[quota]]\nname = "jeju"\nregions_in = ["Jeju"]\nmin_share = 0.5'
    rows = [FOUR[0], FOUR[1], {"application_id": "J", "score": 61, "hours": 10, "region": "Jeju"}]
    *_, items = _items(rows, quota=quota)
    b = items.filter(pl.col("application_id") == "B").row(0, named=True)
    assert b["reason"] == "quota"
    assert "the 'jeju' quota would fall below 50% of the awarded budget" in b["reason_detail"]


def test_every_input_row_once_in_input_order_with_ineligible_and_below_minimum():
    rows = [{"application_id": "X", "score": 0, "hours": 10, "eligible": False},
            FOUR[0],
            {"application_id": "L", "score": 55, "hours": 10},      # below min_score 60
            FOUR[1]]
    model, config, apps, scores, choice, items = _items(rows)
    out = build_outcomes(apps, scores, items, config)
    assert out.columns == list(schema.OUTCOMES_SCHEMA)
    assert out["application_id"].to_list() == ["X", "A", "L", "B"]
    assert out["source_row"].to_list() == [2, 3, 4, 5]
    x, a, low, b = out.iter_rows(named=True)
    assert (x["status"], x["reason"], x["score"], x["rank"]) == ("ineligible", "invalid_field", None, None)
    assert (low["status"], low["reason"], low["score_needed"]) == ("not_selected", "below_min_score", 60.0)
    assert low["reason_detail"] == "score 55.0 is below the round's minimum score 60.0"
    assert a["status"] == b["status"] == "awarded"
    # rank: by score among the scored applications (A 90 first, B 80, L 55)
    assert (a["rank"], b["rank"], low["rank"]) == (1, 2, 3)


def test_award_lines_per_gpu_type_at_the_granted_level():
    model, config, _, _, choice, _ = _items(FOUR, capacity_hours=25)
    awards = build_awards(model, choice)
    assert awards.columns == list(schema.AWARDS_SCHEMA)
    assert awards.rows() == [("A", "H100", 10, 10_000), ("B", "H100", 10, 10_000), ("C", "H100", 5, 5_000)]
    assert int(awards["gpu_hours"].sum()) == 25 == int(model.problem.capacity[0])


def test_nothing_selectable_gives_empty_items():
    model, config, apps, scores = tiny_round([{"application_id": "L", "score": 10, "hours": 10}])
    assert model.problem.n_items == 0
    choice = np.zeros(0, np.int64)
    items = item_outcomes(model, choice, explain_items(model, choice), config)
    out = build_outcomes(apps, scores, items, config)
    assert items.height == 0 and out["reason"].to_list() == ["below_min_score"]
    assert build_awards(model, choice).height == 0


def test_what_no_limit_allows_on_its_own_is_explained_and_never_waitlisted():
    # A's full request (₩20,000) is over the ₩15,000 company cap by itself: A gets half, and
    # says why; N's half (₩30,000) is over it too: N can never be funded. Neither is waitlisted.
    rows = [{"application_id": "A", "score": 90, "hours": 20},
            {"application_id": "B", "score": 80, "hours": 10},
            {"application_id": "N", "score": 85, "hours": 60}]
    model, config, _, _, choice, items = _items(rows, cap=15_000, capacity_hours=100)
    by = {r["application_id"]: r for r in items.iter_rows(named=True)}
    assert (by["A"]["status"], by["A"]["reason"], by["A"]["award_fraction"]) == ("awarded", "funded_partially", 0.5)
    assert "company 123-45-***** would exceed the ₩15,000 per-company cap" in by["A"]["reason_detail"]
    assert by["N"]["status"] == "not_selected" and by["N"]["reason"] == "company_cap"
    assert by["A"]["waitlist_rank"] is None and by["N"]["waitlist_rank"] is None


def test_nobody_funded_never_says_the_budget_went_to_others():
    # budget ₩1: no application's lowest level (₩5,000) fits, nobody is funded
    model, config, _, _, choice, items = _items(FOUR, budget=1)
    assert (choice < 0).all()
    for row in items.iter_rows(named=True):
        assert row["status"] != "awarded"
        assert "nobody was funded" in row["reason_detail"], row["reason_detail"]
        assert "used up" not in row["reason_detail"]


def test_nobody_funded_applicant_wording():

    row = {"reason": "budget_exhausted", "status": "not_selected", "score": 80.0, "score_needed": None}
    assert "higher scores" in explain(row, 60)["en"]
    words = explain(row, 60, nobody_funded=True)
    assert "Nobody was funded" in words["en"] and "higher scores" not in words["en"]
    gpu = {**row, "reason": "capacity_H100_exhausted"}
    assert "higher scores" not in explain(gpu, 60, nobody_funded=True)["en"]
