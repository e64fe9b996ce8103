"""GPU capacity by month: explanations name the month that binds, outcomes carry the start month,
awards are listed per month."""

from __future__ import annotations

import numpy as np
import polars as pl

from allocation.config import parse_config
from allocation.explain.outcomes import build_awards, item_outcomes
from allocation.explain.reasons import explain_items
from allocation.model.build import build_model
from allocation.solve.brute_force import brute_force

CONFIG = """
[round]
id = "M-1"
budget_krw = 1000000000
copay_share = 0.0
[award]
levels = [0.5, 1.0]
max_krw_per_company = 1000000000
min_score = 0
[scoring]
weights = { technical = 1.0 }
"""
BUSINESS_NOS = ("123-45-67891", "220-81-62517", "124-81-00998")


def _round(rows: list[dict], capacity: dict[str, int]):
    """rows: id, score, hours (H100), duration, earliest, latest; capacity: month -> H100 hours."""
    config = parse_config(CONFIG)
    apps = pl.DataFrame({
        "application_id": [r["id"] for r in rows],
        "business_no": [BUSINESS_NOS[i] for i in range(len(rows))],
        "region": ["Busan"] * len(rows), "prior_awards": [0] * len(rows), "company_size": ["small"] * len(rows),
        "eligible": [True] * len(rows),
        "duration_months": [r.get("duration", 1) for r in rows],
        "earliest_start": [r.get("earliest") for r in rows], "latest_start": [r.get("latest") for r in rows],
    }, schema_overrides={"earliest_start": pl.String, "latest_start": pl.String})
    requests = pl.DataFrame({"application_id": [r["id"] for r in rows], "gpu_type": ["H100"] * len(rows),
                             "gpu_hours": [r["hours"] for r in rows]})
    cap = pl.DataFrame({"gpu_type": ["H100"] * len(capacity), "gpu_hours": list(capacity.values()),
                        "krw_per_gpu_hour": [1000] * len(capacity), "month": list(capacity)})
    scores = pl.DataFrame({"application_id": [r["id"] for r in rows], "score": [float(r["score"]) for r in rows]})
    model = build_model(apps, requests, cap, scores, config)
    _, choice = brute_force(model.problem)
    explanation = explain_items(model, choice)
    return model, choice, explanation, item_outcomes(model, choice, explanation, config)


def test_the_full_month_is_named():
    model, choice, explanation, items = _round([
        {"id": "A", "score": 90, "hours": 100, "earliest": "2026-12", "latest": "2026-12"},
        {"id": "B", "score": 80, "hours": 100, "earliest": "2026-12", "latest": "2026-12"},
        {"id": "C", "score": 85, "hours": 40, "earliest": "2026-11", "latest": "2026-11"},
    ], {"2026-11": 0, "2026-12": 100})
    got = {r["application_id"]: r for r in items.iter_rows(named=True)}
    assert got["A"]["reason"] == "funded" and got["A"]["start_month"] == "2026-12"
    assert got["B"]["reason"] == "capacity_H100@2026-12_exhausted"
    assert "because H100 in 2026-12 is full" in got["B"]["reason_detail"]
    assert got["B"]["start_month"] is None
    # C's only month has no H100 at all: forbidden on its own, named by that month
    assert got["C"]["reason"] == "capacity_H100@2026-11_exhausted"
    assert "H100 in 2026-11 is full" in got["C"]["reason_detail"]


def test_an_award_takes_the_start_month_with_room_and_is_listed_per_month():
    # A (only 2027-01) fills 2027-01; B runs 2 months and can start in 2026-11 or 2026-12:
    # only 2026-11..2026-12 leaves room for all of B
    model, choice, explanation, items = _round([
        {"id": "A", "score": 90, "hours": 60, "earliest": "2027-01", "latest": "2027-01"},
        {"id": "B", "score": 80, "hours": 80, "duration": 2},
    ], {"2026-11": 40, "2026-12": 40, "2027-01": 60})
    got = {r["application_id"]: r for r in items.iter_rows(named=True)}
    assert got["A"]["start_month"] == "2027-01" and got["A"]["reason"] == "funded"
    # B full (80 h over 2 months = 40 + 40) fits 2026-11..2026-12 exactly
    assert got["B"]["reason"] == "funded" and got["B"]["start_month"] == "2026-11"
    awards = build_awards(model, choice)
    assert awards.columns == ["application_id", "gpu_type", "month", "gpu_hours", "krw"]
    assert awards.rows() == [("A", "H100", "2027-01", 60, 60_000),
                             ("B", "H100", "2026-11", 40, 40_000), ("B", "H100", "2026-12", 40, 40_000)]


def test_next_step_keeps_the_level_order_across_start_months():
    # D is funded at half level (50 h in 2026-12, the only month with room); the full level
    # would need 100 h in one month: blocked by 2026-12 (the start with the fewest full months)
    model, choice, explanation, items = _round([
        {"id": "D", "score": 90, "hours": 100},
    ], {"2026-11": 10, "2026-12": 60})
    got = items.row(0, named=True)
    assert got["reason"] == "funded_partially" and got["award_fraction"] == 0.5
    assert got["start_month"] == "2026-12"
    nxt = int(explanation.next_option[0])
    assert model.option_level[nxt] == 1 and model.months[model.option_start[nxt]] == "2026-12"
    assert "H100 in 2026-12 is full" in got["reason_detail"]
    assert np.array_equal(model.month_hours(choice)[0, 0], [0, 50])
