"""Money, exactly (allocation.model.money)."""

from fractions import Fraction

import numpy as np

from allocation.model.money import money_for_level, round_half_up


def test_round_half_up_is_exact():
    values = np.array([0, 1, 2, 3, 5, 10, 12_345_677], dtype=np.int64)
    got = round_half_up(values, Fraction(1, 2))
    assert got.tolist() == [0, 1, 1, 2, 3, 5, 6_172_839]
    assert round_half_up(np.array([7], np.int64), Fraction(1, 5)).tolist() == [1]   # 1.4 -> 1
    assert round_half_up(np.array([8], np.int64), Fraction(1, 5)).tolist() == [2]   # 1.6 -> 2


def test_money_for_level_floors_hours_per_type():
    requested = np.array([[333, 101]], dtype=np.int64)
    prices = np.array([7_000, 1_800], dtype=np.int64)
    hours, cost, copay, awarded = money_for_level(requested, prices, Fraction(3, 4), Fraction(1, 5))
    assert hours.tolist() == [[249, 75]]                     # floor(249.75), floor(75.75)
    assert cost.tolist() == [249 * 7_000 + 75 * 1_800]
    assert copay.tolist() == [round(cost[0] * 0.2)]
    assert (awarded + copay == cost).all()
