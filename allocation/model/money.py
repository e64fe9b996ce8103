"""Money, exactly: the only place where KRW amounts are derived, all in integers.

For an application granted fraction f = p/q of its request (the same f for every GPU type):
    hours[t]    = floor(f * requested_hours[t])
    cost_krw    = sum_t hours[t] * krw_per_gpu_hour[t]
    copay_krw   = round_half_up(cost_krw * copay_share)      (the SME's share)
    awarded_krw = cost_krw - copay_krw                        (the budget's share)
Shares held back (the lifecycle reserve) are floor(value * (1 - reserve_share)).
GPU capacity by month: an award of h hours of a type over d months gets floor(h / d) hours in
each of its first d - 1 months and h - (d - 1) * floor(h / d) in its last (hours_in_month);
the cost is the same as for the hours in one piece.
Fractions are exact rationals (``fractions.Fraction`` of the decimal text in round.toml).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def round_half_up(numerator, fraction: Fraction):
    """round(numerator * fraction) with halves rounded up, exact in integers (ints or arrays)."""
    p, q = fraction.numerator, fraction.denominator
    return (2 * numerator * p + q) // (2 * q)


def floor_share(value, fraction: Fraction):
    """floor(value * fraction), exact in integers (ints or arrays)."""
    return value * fraction.numerator // fraction.denominator


def hours_at_level(requested_hours, level: Fraction):
    """Granted GPU-hours at an award level: floor(level * requested), per GPU type."""
    return floor_share(requested_hours, level)


def month_shares(hours, duration):
    """(floor share, last month's share) of an award of `hours` over `duration` months:
    floor(hours / duration) in each month but the last, the remainder in the last (ints or
    arrays that broadcast). The one place of the spreading rule's arithmetic."""
    base = hours // duration
    return base, hours - (duration - 1) * base


def hours_in_month(hours, duration, k):
    """Hours of an award in month k (0-based) of its duration: floor(hours / duration) in each
    month but the last, the remainder in the last; 0 outside the duration (ints or arrays)."""
    base, last = month_shares(hours, duration)
    return np.where((k < 0) | (k >= duration), 0, np.where(k == duration - 1, last, base))


def hours_by_month(hours: np.ndarray, duration: np.ndarray, start: np.ndarray, months: int) -> np.ndarray:
    """(k, T, months) int64: hours_in_month's rule for k awards at once — award j's hours[j, t]
    over duration[j] months from month start[j]; months past the last are cut off. The same
    integers as hours_in_month(hours[:, :, None], duration, m - start), written in place (at 1M
    awards x 12 months ~3x faster than its broadcast where())."""
    hours = np.asarray(hours, np.int64)
    duration = np.asarray(duration, np.int64)
    start = np.asarray(start, np.int64)
    base, last = month_shares(hours, duration[:, None])
    rel = np.arange(months)[None, :] - start[:, None]          # (k, months): month - start
    before_last = (rel >= 0) & (rel < (duration - 1)[:, None])
    out = np.empty((len(hours), hours.shape[1], months), np.int64)
    np.multiply(base[:, :, None], before_last[:, None, :], out=out)
    end = start + duration - 1
    ends = np.flatnonzero((end >= 0) & (end < months))
    out[ends, :, end[ends]] = last[ends]
    return out


def copay_and_awarded(cost, copay_share: Fraction):
    """(copay, awarded) of a cost: the SME's share rounded half up, the budget's share the rest."""
    copay = round_half_up(cost, copay_share)
    return copay, cost - copay


def money_for_level(requested_hours: np.ndarray, prices: np.ndarray, level: Fraction,
                    copay_share: Fraction) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hours (n,T), cost (n,), copay (n,), awarded (n,)) for one award level."""
    hours = hours_at_level(requested_hours, level)
    cost = hours @ prices
    copay, awarded = copay_and_awarded(cost, copay_share)
    return hours, cost, copay, awarded


def award_money(requested: dict[str, int], prices: dict[str, int], level: Fraction,
                copay_share: Fraction) -> tuple[dict[str, int], int, int, int]:
    """One application: (hours per GPU type, cost, copay, awarded) at an award level."""
    hours = {g: int(hours_at_level(h, level)) for g, h in requested.items()}
    cost = sum(h * prices.get(g, 0) for g, h in hours.items())
    copay, awarded = copay_and_awarded(cost, copay_share)
    return hours, cost, copay, awarded
