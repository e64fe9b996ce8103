"""Money of one application (award_money, used by the lifecycle's change lists) and the shares
held back (floor_share, used by the reserve), by hand. Written to kill mutants of
allocation/model/money.py (bench/mutation.py)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from allocation.model.money import award_money, copay_and_awarded, floor_share, money_for_level


def test_award_money_by_hand():
    # 0.75 of H100 333 h (₩1,234/h) and L40S 101 h (₩567/h), copay 0.2:
    # hours floor(249.75) = 249 and floor(75.75) = 75; cost 249 x 1,234 + 75 x 567 = 307,266 + 42,525
    # = 349,791; copay 69,958.2 -> 69,958; awarded 279,833
    hours, cost, copay, awarded = award_money({"H100": 333, "L40S": 101}, {"H100": 1_234, "L40S": 567},
                                              Fraction(3, 4), Fraction(1, 5))
    assert hours == {"H100": 249, "L40S": 75}
    assert all(type(h) is int for h in hours.values())
    assert (cost, copay, awarded) == (349_791, 69_958, 279_833)


def test_award_money_rounds_a_half_krw_copay_up_and_prices_unknown_types_at_zero():
    # 0.5 of 10 h at ₩2,469: 5 h, cost 12,345; copay 0.1 -> 1,234.5 -> 1,235 (up); awarded 11,110.
    # A GPU type without a price costs nothing (its hours are still granted).
    hours, cost, copay, awarded = award_money({"H100": 10, "X": 7}, {"H100": 2_469}, Fraction(1, 2),
                                              Fraction(1, 10))
    assert hours == {"H100": 5, "X": 3}
    assert (cost, copay, awarded) == (12_345, 1_235, 11_110)


def test_award_money_agrees_with_the_vectorised_money():
    requested = {"A": 17, "B": 3, "C": 1_001}
    prices = {"A": 999, "B": 12_345, "C": 7}
    for level in (Fraction(1, 3), Fraction(1, 2), Fraction(3, 4), Fraction(1)):
        h, c, cp, aw = money_for_level(np.array([[17, 3, 1_001]], np.int64), np.array([999, 12_345, 7], np.int64),
                                       level, Fraction(3, 20))
        hours, cost, copay, awarded = award_money(requested, prices, level, Fraction(3, 20))
        assert list(hours.values()) == h[0].tolist()
        assert (cost, copay, awarded) == (int(c[0]), int(cp[0]), int(aw[0]))


def test_floor_share_and_copay_split():
    # the reserve keeps floor(value x (1 - reserve_share)): 0.9 of 1,000,001 = 900,000.9 -> 900,000
    assert floor_share(1_000_001, Fraction(9, 10)) == 900_000
    assert floor_share(np.array([10, 11, 19], np.int64), Fraction(1, 10)).tolist() == [1, 1, 1]
    assert floor_share(7, Fraction(1)) == 7
    assert copay_and_awarded(25, Fraction(1, 10)) == (3, 22)          # 2.5 -> 3, the rest 22
    assert copay_and_awarded(0, Fraction(1, 5)) == (0, 0)
