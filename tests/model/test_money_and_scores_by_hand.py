"""Money and calibration pinned by cases computed by hand (README "How a round is decided" 1-2).

Money: hours per GPU type = floor(f x requested); cost = sum hours x price; copay = cost x
copay_share rounded half UP (not half-even, not floor); awarded = cost - copay.
Calibration: per criterion, a reviewer with >= 3 scores on it gets z-scores rescaled onto the
panel's mean and spread for that criterion; fewer scores (or no spread): raw score kept. The
spread is the population standard deviation (ddof=0 in allocation/scoring.py).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from allocation.config import parse_config
from allocation.identifiers import complete_business_no
from allocation.model.build import build_model
from allocation.model.money import money_for_level, round_half_up
from allocation.rounds.allocate import run_round
from allocation.scoring import calibrate_reviews, score_applications
from bench.synthetic import generate_round


def policy(copay: str = "0.2", levels: str = "[0.5, 0.75, 1.0]", weights: str = "{ technical = 1.0 }",
           bonus: str = "{}") -> str:
    return f"""
[round]
id = "M-1"
budget_krw = 1_000_000_000
copay_share = {copay}
[award]
levels = {levels}
max_krw_per_company = 1_000_000_000
min_score = 0
[scoring]
weights = {weights}
bonus = {bonus}
"""


# --- copay: round half up ----------------------------------------------------------------

@pytest.mark.parametrize("cost, share, copay", [
    (12_345, Fraction(1, 5), 2_469),    # 12,345 x 0.2 = 2,469.0 exactly
    (12_347, Fraction(1, 5), 2_469),    # 2,469.4 -> down
    (12_348, Fraction(1, 5), 2_470),    # 2,469.6 -> up (floor would say 2,469)
    (12_349, Fraction(1, 5), 2_470),    # 2,469.8 -> up
    (12_345, Fraction(1, 10), 1_235),   # 1,234.5 -> UP (half-even and floor say 1,234)
    (12_355, Fraction(1, 10), 1_236),   # 1,235.5 -> up (half-even agrees, floor says 1,235)
    (10, Fraction(1, 4), 3),            # 2.5 -> UP (half-even: 2)
    (3, Fraction(1, 2), 2),             # 1.5 -> 2
    (1, Fraction(1, 2), 1),             # 0.5 -> UP (half-even: 0)
    (9, Fraction(3, 20), 1),            # 1.35 -> 1
    (10, Fraction(3, 20), 2),           # 1.5 -> UP
])
def test_round_half_up_by_hand(cost, share, copay):
    assert round_half_up(np.array([cost], np.int64), share).tolist() == [copay]


def test_money_for_level_by_hand():
    # Requested 333 h of type 0 at 1,234 KRW/h and 101 h of type 1 at 567 KRW/h; copay 0.2.
    requested = np.array([[333, 101]], np.int64)
    prices = np.array([1_234, 567], np.int64)
    expected = {
        # level: (hours, cost, copay, awarded)
        # 0.5:  floor(166.5) = 166, floor(50.5) = 50; 166 x 1,234 = 204,844, 50 x 567 = 28,350
        #       cost 233,194; x 0.2 = 46,638.8 -> 46,639; awarded 186,555
        Fraction(1, 2): ([166, 50], 233_194, 46_639, 186_555),
        # 0.75: floor(249.75) = 249, floor(75.75) = 75; 249 x 1,234 = 307,266, 75 x 567 = 42,525
        #       cost 349,791; x 0.2 = 69,958.2 -> 69,958; awarded 279,833
        Fraction(3, 4): ([249, 75], 349_791, 69_958, 279_833),
        # 1.0:  333 x 1,234 = 410,922, 101 x 567 = 57,267; cost 468,189; x 0.2 = 93,637.8 -> 93,638;
        #       awarded 374,551
        Fraction(1, 1): ([333, 101], 468_189, 93_638, 374_551),
    }
    for level, (hours, cost, copay, awarded) in expected.items():
        h, c, cp, aw = money_for_level(requested, prices, level, Fraction(1, 5))
        assert (h.tolist(), c.tolist(), cp.tolist(), aw.tolist()) == ([hours], [cost], [copay], [awarded]), level


def _apps(ids, prior=None):
    n = len(ids)
    return pl.DataFrame({
        "application_id": ids,
        "business_no": [complete_business_no(f"{123456780 + k:09d}") for k in range(n)],
        "region": ["Busan"] * n, "prior_awards": prior or [1] * n,
        "company_size": ["small"] * n, "eligible": [True] * n,
    })


def test_model_money_with_half_krw_copays():
    # copay_share 0.1; levels 0.5 and 1.0. Prices 2,469 (H100) and 2,471 (A100) KRW/h.
    #   X: H100 10 h.  0.5 -> 5 h: cost 12,345, copay 1,234.5 -> 1,235, awarded 11,110
    #                  1.0 -> 10 h: cost 24,690, copay 2,469.0 -> 2,469, awarded 22,221
    #   Y: A100 11 h.  0.5 -> floor(5.5) = 5 h: cost 12,355, copay 1,235.5 -> 1,236, awarded 11,119
    #                  1.0 -> 11 h: cost 27,181, copay 2,718.1 -> 2,718, awarded 24,463
    #   Z: H100 3 h + A100 3 h.  0.5 -> 1 h + 1 h: cost 4,940, copay 494, awarded 4,446
    #                  1.0 -> 3 h + 3 h: cost 7,407 + 7,413 = 14,820, copay 1,482, awarded 13,338
    config = parse_config(policy(copay="0.1", levels="[0.5, 1.0]"))
    requests = pl.DataFrame({"application_id": ["X", "Y", "Z", "Z"],
                             "gpu_type": ["H100", "A100", "H100", "A100"], "gpu_hours": [10, 11, 3, 3]})
    capacity = pl.DataFrame({"gpu_type": ["H100", "A100"], "gpu_hours": [1_000, 1_000],
                             "krw_per_gpu_hour": [2_469, 2_471]})
    scores = pl.DataFrame({"application_id": ["X", "Y", "Z"], "score": [80.0, 70.0, 60.0]})
    model = build_model(_apps(["X", "Y", "Z"]), requests, capacity, scores, config)
    assert model.application_ids.tolist() == ["X", "Y", "Z"] and model.gpu_types == ("A100", "H100")
    assert model.hours.tolist() == [[[0, 5], [0, 10]], [[5, 0], [11, 0]], [[1, 1], [3, 3]]]
    assert model.cost.tolist() == [[12_345, 24_690], [12_355, 27_181], [4_940, 14_820]]
    assert model.copay.tolist() == [[1_235, 2_469], [1_236, 2_718], [494, 1_482]]
    assert model.awarded.tolist() == [[11_110, 22_221], [11_119, 24_463], [4_446, 13_338]]
    # the budget row and the objective use the awarded amounts (score in centipoints)
    assert model.problem.weight[-1].tolist() == model.awarded.tolist()
    assert model.problem.value[0].tolist() == [8_000 * 11_110, 8_000 * 22_221]


def test_outcomes_money_of_a_round_with_odd_prices(tmp_path):
    """End to end: prices that are not round numbers and a 0.1 copay, so half-KRW copays occur."""
    round_dir = generate_round(tmp_path / "round", 40, seed=7, oversubscription=2.0)
    toml = (round_dir / "round.toml").read_text(encoding="utf-8")
    (round_dir / "round.toml").write_text(toml.replace("copay_share = 0.2", "copay_share = 0.1"),
                                          encoding="utf-8")
    capacity = pl.read_csv(round_dir / "capacity.csv")
    odd = [2_465, 7_001, 3_333, 9_999, 1_235, 4_321]
    capacity.with_columns(krw_per_gpu_hour=pl.Series(odd[: capacity.height])).write_csv(round_dir / "capacity.csv")
    run_round(round_dir, tmp_path / "out")

    outcomes = pl.read_parquet(tmp_path / "out" / "outcomes.parquet").filter(pl.col("status") == "awarded")
    awards = pl.read_parquet(tmp_path / "out" / "awards.parquet")
    requests = pl.read_parquet(tmp_path / "out" / "intake" / "requests.parquet")
    price = dict(zip(capacity["gpu_type"], odd))
    halves = 0
    for row in outcomes.iter_rows(named=True):
        f = Fraction(str(row["award_fraction"]))
        req = requests.filter(pl.col("application_id") == row["application_id"])
        hours = {g: int(f * h) for g, h in zip(req["gpu_type"], req["gpu_hours"])}   # int() floors >= 0
        cost = sum(h * price[g] for g, h in hours.items())
        copay = int((Decimal(cost) / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        halves += cost % 10 == 5
        assert (row["cost_krw"], row["copay_krw"], row["awarded_krw"]) == (cost, copay, cost - copay)
        lines = awards.filter(pl.col("application_id") == row["application_id"])
        assert dict(zip(lines["gpu_type"], lines["gpu_hours"])) == {g: h for g, h in hours.items() if h}
        assert dict(zip(lines["gpu_type"], lines["krw"])) == {g: h * price[g] for g, h in hours.items() if h}
    assert outcomes.height >= 5 and halves >= 2     # copays of exactly x.5 KRW were rounded


# --- calibration ------------------------------------------------------------------------

def reviews(rows):
    return pl.DataFrame(rows, schema=["application_id", "reviewer_id", "criterion", "score"], orient="row")


TECHNICAL = [
    # r1: four scores, mean 60, population std sqrt((100+100+100+100)/4) = 10: z = -1, -1, +1, +1
    ("A", "r1", "technical", 50.0), ("B", "r1", "technical", 50.0),
    ("C", "r1", "technical", 70.0), ("D", "r1", "technical", 70.0),
    # r2: two scores only: never calibrated (kept raw)
    ("A", "r2", "technical", 46.0), ("B", "r2", "technical", 98.0),
]
# Panel on "technical": 50, 50, 70, 70, 46, 98; mean 384 / 6 = 64;
# deviations -14, -14, 6, 6, -18, 34; squares 196 + 196 + 36 + 36 + 324 + 1,156 = 1,944;
# population variance 1,944 / 6 = 324, std 18.
# r1 calibrated = 64 + 18 x z: 64 - 18 = 46 for A and B, 64 + 18 = 82 for C and D.
TECHNICAL_CALIBRATED = {("A", "r1"): 46.0, ("B", "r1"): 46.0, ("C", "r1"): 82.0, ("D", "r1"): 82.0,
                        ("A", "r2"): 46.0, ("B", "r2"): 98.0}


def test_calibration_by_hand():
    out = calibrate_reviews(reviews(TECHNICAL))
    got = {(r["application_id"], r["reviewer_id"]): r["calibrated"] for r in out.iter_rows(named=True)}
    assert got == pytest.approx(TECHNICAL_CALIBRATED, abs=1e-9)
    assert out["score"].to_list() == [s for *_, s in TECHNICAL]      # raw scores untouched


def test_calibration_starts_at_exactly_three_scores():
    rows = [
        # r3: exactly three scores 60, 60, 90: mean 70, deviations -10, -10, 20,
        # population std sqrt(600 / 3) = sqrt(200)
        ("A", "r3", "impact", 60.0), ("B", "r3", "impact", 60.0), ("C", "r3", "impact", 90.0),
        # r4: two scores 50, 90: kept raw
        ("D", "r4", "impact", 50.0), ("E", "r4", "impact", 90.0),
    ]
    # Panel: 60, 60, 90, 50, 90; mean 350 / 5 = 70; deviations -10, -10, 20, -20, 20;
    # squares 100 + 100 + 400 + 400 + 400 = 1,400; population std sqrt(1,400 / 5) = sqrt(280).
    # r3 calibrated = 70 + sqrt(280) x (s - 70) / sqrt(200) = 70 + sqrt(1.4) x (s - 70):
    #   60 -> 70 - 10 x 1.1832160 = 58.167840;  90 -> 70 + 20 x 1.1832160 = 93.664319
    out = calibrate_reviews(reviews(rows))
    assert out["calibrated"].to_list() == pytest.approx([58.167840, 58.167840, 93.664319, 50.0, 90.0],
                                                        abs=1e-6)


def test_reviewer_without_spread_keeps_raw_scores():
    # r5 gave 80 three times: z is undefined, so the raw scores stay (even though the panel,
    # with r6's 40, has a spread).
    rows = [("A", "r5", "impact", 80.0), ("B", "r5", "impact", 80.0), ("C", "r5", "impact", 80.0),
            ("D", "r6", "impact", 40.0)]
    assert calibrate_reviews(reviews(rows))["calibrated"].to_list() == [80.0, 80.0, 80.0, 40.0]


def test_application_scores_by_hand():
    # weights technical 0.6, impact 0.4; bonus first_time 3 (A has no prior awards).
    # technical (TECHNICAL_CALIBRATED): A mean(46, 46) = 46, B mean(46, 98) = 72, C 82, D 82.
    # impact: r7 gave 80 to everyone (no spread, raw kept): 80.
    # A: 0.6 x 46 + 0.4 x 80 = 27.6 + 32 = 59.6, + 3 = 62.6
    # B: 0.6 x 72 + 32 = 75.2;  C, D: 0.6 x 82 + 32 = 81.2
    # raw: A 0.6 x mean(50, 46) + 32 = 60.8;  B 0.6 x mean(50, 98) + 32 = 76.4;  C, D 0.6 x 70 + 32 = 74
    config = parse_config(policy(weights="{ technical = 0.6, impact = 0.4 }", bonus="{ first_time = 3.0 }"))
    rows = TECHNICAL + [(a, "r7", "impact", 80.0) for a in "ABCD"]
    scores = score_applications(_apps(list("ABCD"), prior=[0, 1, 1, 1]), reviews(rows), config)
    by = {r["application_id"]: r for r in scores.iter_rows(named=True)}
    assert [by[a]["score"] for a in "ABCD"] == pytest.approx([62.6, 75.2, 81.2, 81.2], abs=1e-9)
    assert [by[a]["calibrated_score"] for a in "ABCD"] == pytest.approx([59.6, 75.2, 81.2, 81.2], abs=1e-9)
    assert [by[a]["raw_score"] for a in "ABCD"] == pytest.approx([60.8, 76.4, 74.0, 74.0], abs=1e-9)
    assert [by[a]["bonus"] for a in "ABCD"] == [3.0, 0.0, 0.0, 0.0]
