"""Scores by hand where a single wrong line of allocation/scoring.py would show: calibrated scores
pushed past 0 and 100 (clipped), weights that do not sum to 1, a criterion without a weight, an
ineligible application's reviews, two bonuses, and the rounding of each column. Written to kill
mutants (bench/mutation.py)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from allocation import schema
from allocation.config import parse_config
from allocation.scoring import calibrate_reviews, score_applications


def _config(weights: str, bonus: str = "{}"):
    return parse_config(f"""
[round]
id = "S-1"
budget_krw = 1_000_000_000
copay_share = 0.2
[award]
levels = [0.5, 1.0]
max_krw_per_company = 1_000_000_000
min_score = 0
[scoring]
weights = {weights}
bonus = {bonus}
""")


def _reviews(rows):
    return pl.DataFrame(rows, schema=["application_id", "reviewer_id", "criterion", "score"], orient="row")


def test_calibrated_scores_are_clipped_to_0_and_100():
    rows = [
        # technical: r1 gives 0, 0, 0, 90: mean 22.5, population std sqrt(1,518.75); z(0) = -1/sqrt(3),
        # z(90) = +sqrt(3). r2 gives one 100 (kept raw).
        ("A", "r1", "technical", 0.0), ("B", "r1", "technical", 0.0), ("C", "r1", "technical", 0.0),
        ("D", "r1", "technical", 90.0), ("E", "r2", "technical", 100.0),
        # impact: r3 gives 100, 100, 100, 10: z(100) = +1/sqrt(3), z(10) = -sqrt(3). r4 one 0 (raw).
        ("A", "r3", "impact", 100.0), ("B", "r3", "impact", 100.0), ("C", "r3", "impact", 100.0),
        ("D", "r3", "impact", 10.0), ("E", "r4", "impact", 0.0),
    ]
    # Panel technical 0, 0, 0, 90, 100: mean 38, population variance (3 x 1,444 + 2,704 + 3,844) / 5
    # = 2,176. r1: 38 - sqrt(2,176 / 3) = 11.0678...; 38 + sqrt(2,176 x 3) = 118.8 -> clipped to 100.
    # Panel impact 100, 100, 100, 10, 0: mean 62, the same variance 2,176.
    # r3: 62 + sqrt(2,176 / 3) = 88.932...; 62 - sqrt(2,176 x 3) = -18.8 -> clipped to 0.
    low = 38 - math.sqrt(2_176 / 3)
    high = 62 + math.sqrt(2_176 / 3)
    out = calibrate_reviews(_reviews(rows))
    assert out.columns == ["application_id", "reviewer_id", "criterion", "score", "calibrated"]
    assert out["calibrated"].to_list() == pytest.approx(
        [low, low, low, 100.0, 100.0, high, high, high, 0.0, 0.0], abs=1e-9)
    assert out["score"].to_list() == [r[3] for r in rows]


def test_calibration_is_per_reviewer_and_criterion():
    # r1 scores technical three times (calibrated) but impact only twice (raw); r1's impact scores
    # must not count towards its technical mean, nor r2's towards r1's.
    rows = [("A", "r1", "technical", 40.0), ("B", "r1", "technical", 60.0), ("C", "r1", "technical", 80.0),
            ("A", "r1", "impact", 10.0), ("B", "r1", "impact", 90.0),
            ("C", "r2", "technical", 20.0)]
    # technical panel 40, 60, 80, 20: mean 50, variance (100 + 100 + 900 + 900) / 4 = 500;
    # r1: mean 60, std sqrt(800 / 3); z = -sqrt(3/2), 0, +sqrt(3/2)
    # calibrated = 50 + sqrt(500) x z = 50 -/+ sqrt(750)
    d = math.sqrt(750)
    out = calibrate_reviews(_reviews(rows))
    assert out["calibrated"].to_list() == pytest.approx([50 - d, 50.0, 50 + d, 10.0, 90.0, 20.0], abs=1e-9)


def test_application_scores_with_unnormalised_weights_two_bonuses_and_rounding():
    # weights technical 3, impact 1 -> 0.75 and 0.25; "novelty" has no weight and is ignored.
    # Every reviewer has fewer than three scores per criterion, so calibrated = raw.
    # Z is ineligible: its reviews must not make r1 a three-score reviewer (nor appear).
    rows = [
        ("A", "r1", "technical", 71.12345), ("A", "r2", "impact", 50.56789), ("A", "r3", "novelty", 0.0),
        ("B", "r1", "technical", 80.0), ("B", "r4", "technical", 61.0), ("B", "r2", "impact", 33.3),
        ("B", "r3", "novelty", 100.0),
        ("Z", "r1", "technical", 0.0), ("Z", "r2", "impact", 0.0),
    ]
    apps = pl.DataFrame({
        "application_id": ["B", "Z", "A"], "eligible": [True, False, True],
        "region": ["Busan", "Busan", "Seoul"], "prior_awards": [0, 0, 2], "company_size": ["small"] * 3,
    })
    config = _config("{ technical = 3, impact = 1 }", "{ first_time = 2.5, non_capital = 1.25 }")
    scores = score_applications(apps, _reviews(rows), config)
    # A: 0.75 x 71.12345 + 0.25 x 50.56789 = 53.3425875 + 12.6419725 = 65.98456 -> 65.9846;
    #    no bonus (Seoul, prior awards): score 65.98
    # B: technical mean(80, 61) = 70.5; 0.75 x 70.5 + 0.25 x 33.3 = 52.875 + 8.325 = 61.2;
    #    bonus first_time 2.5 + non_capital 1.25 = 3.75: score 64.95
    assert scores.columns == list(schema.SCORES_SCHEMA) + ["criterion_impact", "criterion_technical"]
    assert scores["application_id"].to_list() == ["A", "B"]
    assert scores["raw_score"].to_list() == pytest.approx([65.9846, 61.2], abs=1e-12)
    assert scores["calibrated_score"].to_list() == pytest.approx([65.9846, 61.2], abs=1e-12)
    assert scores["bonus"].to_list() == [0.0, 3.75]
    assert scores["score"].to_list() == pytest.approx([65.98, 64.95], abs=1e-12)
    assert scores["criterion_technical"].to_list() == pytest.approx([71.12345, 70.5], abs=1e-12)
    assert scores["criterion_impact"].to_list() == pytest.approx([50.56789, 33.3], abs=1e-12)
    assert scores.schema["score"] == pl.Float64


def test_calibrated_and_raw_scores_differ_and_the_score_is_rounded_to_two_decimals():
    # r1 scores technical for A, B, C: 50, 70, 90 (mean 70, std sqrt(800/3)); r2 gives B 100.
    # Panel 50, 70, 90, 100: mean 77.5, variance (756.25 + 56.25 + 156.25 + 506.25) / 4 = 368.75.
    # r1 calibrated = 77.5 + sqrt(368.75) x (s - 70) / sqrt(800/3):
    #   A: 77.5 - 20 x sqrt(368.75 x 3 / 800) = 77.5 - 20 x 1.17593... = 53.98126...
    #   B: 77.5 (z = 0), mean with r2's raw 100 -> 88.75; C: 101.0187... -> clipped 100
    apps = pl.DataFrame({"application_id": ["A", "B", "C"], "eligible": [True] * 3,
                         "region": ["Seoul"] * 3, "prior_awards": [1] * 3, "company_size": ["small"] * 3})
    rows = [("A", "r1", "technical", 50.0), ("B", "r1", "technical", 70.0), ("C", "r1", "technical", 90.0),
            ("B", "r2", "technical", 100.0)]
    scores = score_applications(apps, _reviews(rows), _config("{ technical = 2 }"))
    a = 77.5 - 20 * math.sqrt(368.75 * 3 / 800)
    assert scores["raw_score"].to_list() == pytest.approx([50.0, 85.0, 90.0], abs=1e-12)
    assert scores["calibrated_score"].to_list() == pytest.approx([round(a, 4), 88.75, 100.0], abs=1e-12)
    assert scores["score"].to_list() == pytest.approx([round(a, 2), 88.75, 100.0], abs=1e-12)
    assert round(a, 4) != round(a, 2)


def test_a_reviewer_with_a_spread_below_one_point_is_calibrated_too():
    # r1: 70, 71, 72 (mean 71, population std sqrt(2/3) ≈ 0.82 < 1); r2: one 100 (raw).
    # Panel 70, 71, 72, 100: mean 78.25, variance (68.0625 + 52.5625 + 39.0625 + 473.0625) / 4
    # = 158.1875. r1 calibrated = 78.25 + sqrt(158.1875) x (s - 71) / sqrt(2/3)
    #                           = 78.25 -/+ sqrt(158.1875 x 3 / 2) for 70 / 72, 78.25 for 71.
    rows = [("A", "r1", "technical", 70.0), ("B", "r1", "technical", 71.0), ("C", "r1", "technical", 72.0),
            ("D", "r2", "technical", 100.0)]
    d = math.sqrt(158.1875 * 3 / 2)
    out = calibrate_reviews(_reviews(rows))
    assert out["calibrated"].to_list() == pytest.approx([78.25 - d, 78.25, 78.25 + d, 100.0], abs=1e-9)
