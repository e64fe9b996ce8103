"""Reviewer calibration, weighting and bonuses."""

import polars as pl
import pytest

from allocation.config import parse_config
from allocation.scoring import calibrate_reviews, score_applications


def _apps(ids, regions=None, prior=None):
    n = len(ids)
    return pl.DataFrame({
        "application_id": ids, "eligible": [True] * n,
        "region": regions or ["Seoul"] * n, "prior_awards": prior or [1] * n,
        "company_size": ["small"] * n,
    })


def test_harsh_and_lenient_reviewers_are_centred():
    # Reviewer A is 20 points harsher than B on the same five applications.
    ids = [f"A{i}" for i in range(5)]
    base = [50.0, 60.0, 70.0, 80.0, 90.0]
    rows = [(a, "lenient", "technical", s) for a, s in zip(ids, base)]
    rows += [(a, "harsh", "technical", s - 20) for a, s in zip(ids, base)]
    reviews = pl.DataFrame(rows, schema=["application_id", "reviewer_id", "criterion", "score"], orient="row")
    out = calibrate_reviews(reviews)
    by = {(r["application_id"], r["reviewer_id"]): r["calibrated"] for r in out.iter_rows(named=True)}
    for a in ids:
        assert by[(a, "lenient")] == pytest.approx(by[(a, "harsh")])
    # Rescaled onto the panel's scale: the mean over all reviews is preserved.
    assert out["calibrated"].mean() == pytest.approx(reviews["score"].mean())


def test_reviewer_with_too_few_reviews_keeps_raw_score():
    reviews = pl.DataFrame({"application_id": ["A", "B"], "reviewer_id": ["r1", "r1"],
                            "criterion": ["technical"] * 2, "score": [40.0, 90.0]})
    assert calibrate_reviews(reviews)["calibrated"].to_list() == [40.0, 90.0]


def test_calibration_changes_the_ranking_when_one_reviewer_is_harsh(valid_toml):
    # X is reviewed only by a harsh reviewer, Y only by a lenient one; X is relatively better.
    config = parse_config(valid_toml.replace("bonus = { first_time = 3.0, non_capital = 2.0 }", ""))
    rows = []
    for crit in ("technical", "feasibility", "impact"):
        for i, s in enumerate([30, 40, 50, 60]):
            rows.append((f"H{i}", "harsh", crit, float(s)))
            rows.append((f"L{i}", "lenient", crit, float(s + 40)))
        rows.append(("X", "harsh", crit, 65.0))    # best of the harsh reviewer's pile
        rows.append(("Y", "lenient", crit, 92.0))  # middling for the lenient one
    reviews = pl.DataFrame(rows, schema=["application_id", "reviewer_id", "criterion", "score"], orient="row")
    ids = sorted({r[0] for r in rows})
    scores = score_applications(_apps(ids), reviews, config)
    s = dict(zip(scores["application_id"], scores["score"]))
    raw = dict(zip(scores["application_id"], scores["raw_score"]))
    assert raw["Y"] > raw["X"]
    assert s["X"] > s["Y"]


def test_weights_and_bonuses(valid_toml):
    config = parse_config(valid_toml)   # weights .4/.3/.3, bonus first_time 3, non_capital 2
    reviews = pl.DataFrame({
        "application_id": ["A"] * 3 + ["B"] * 3,
        "reviewer_id": ["r"] * 6,
        "criterion": ["technical", "feasibility", "impact"] * 2,
        "score": [80.0, 70.0, 60.0, 80.0, 70.0, 60.0],
    })
    apps = _apps(["A", "B"], regions=["Busan", "Seoul"], prior=[0, 2])
    scores = score_applications(apps, reviews, config)
    a, b = scores.sort("application_id").iter_rows(named=True)
    assert b["calibrated_score"] == pytest.approx(0.4 * 80 + 0.3 * 70 + 0.3 * 60)
    assert a["bonus"] == 5.0 and b["bonus"] == 0.0
    assert a["score"] == pytest.approx(b["score"] + 5.0)


def test_scoring_is_deterministic_and_ignores_ineligible(valid_toml):
    config = parse_config(valid_toml)
    reviews = pl.DataFrame({
        "application_id": ["A", "B", "C"] * 3, "reviewer_id": ["r1"] * 3 + ["r2"] * 3 + ["r3"] * 3,
        "criterion": ["technical"] * 9, "score": [50.0, 70.0, 0.0, 55.0, 75.0, 0.0, 60.0, 80.0, 0.0],
    })
    apps = _apps(["A", "B", "C"]).with_columns(eligible=pl.Series([True, True, False]))
    one = score_applications(apps, reviews, config)
    two = score_applications(apps, reviews.reverse(), config)
    assert one.equals(two)
    assert one["application_id"].to_list() == ["A", "B"]
