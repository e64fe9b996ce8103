"""GPU capacity by month: tiny month rounds against an independent brute force.

The oracle below enumerates every (level, start month) per application straight from the round
(requests, prices, capacity per type and month, windows, durations) with its own spelling of the
spreading rule; it shares no code with allocation.model.build.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.config import parse_config
from allocation.model.build import build_model
from allocation.model.money import hours_by_month, hours_in_month
from allocation.model.reserve import hold_back_reserve
from allocation.solve.brute_force import brute_force
from allocation.solve.cpsat import solve_cpsat

BUSINESS_NOS = ("123-45-67891", "220-81-62517", "124-81-00998")
MONTHS = ("2026-11", "2026-12", "2027-01")     # consecutive across a year end
LEVELS = (0.5, 1.0)


def _config(budget: int, cap: int):
    return parse_config(f"""
[round]
id = "M-1"
budget_krw = {budget}
copay_share = 0.0
[award]
levels = [0.5, 1.0]
max_krw_per_company = {cap}
min_score = 0
[scoring]
weights = {{ technical = 1.0 }}
""")


def _frames(apps: list[dict], capacity: dict[tuple[str, str], int], prices: dict[str, int]):
    n = len(apps)
    applications = pl.DataFrame({
        "application_id": [f"A{i}" for i in range(n)],
        "business_no": [BUSINESS_NOS[a["company"]] for a in apps],
        "region": ["Busan"] * n, "prior_awards": [0] * n, "company_size": ["small"] * n,
        "eligible": [True] * n,
        "duration_months": [a["duration"] for a in apps],
        "earliest_start": [a["earliest"] for a in apps],
        "latest_start": [a["latest"] for a in apps],
    }, schema_overrides={"earliest_start": pl.String, "latest_start": pl.String})
    requests = pl.DataFrame([{"application_id": f"A{i}", "gpu_type": g, "gpu_hours": h}
                             for i, a in enumerate(apps) for g, h in a["hours"].items()])
    cap = pl.DataFrame([{"gpu_type": g, "gpu_hours": c, "krw_per_gpu_hour": prices[g], "month": m}
                        for (g, m), c in capacity.items()])
    scores = pl.DataFrame({"application_id": [f"A{i}" for i in range(n)],
                           "score": [a["score"] / 100 for a in apps]})
    return applications, requests, cap, scores


def _oracle(apps, capacity, prices, budget, cap, months):
    """Best objective over every (level, start) per application, from the round itself."""
    options = []
    for a in apps:
        first = months.index(a["earliest"]) if a["earliest"] else 0
        last = months.index(a["latest"]) if a["latest"] else len(months) - 1
        d = a["duration"] or 1
        mine = [None]
        for level in LEVELS:
            hours = {g: int(h * level) for g, h in a["hours"].items()}   # floor (levels are 1/2, 1)
            money = sum(h * prices[g] for g, h in hours.items())
            if money == 0:
                continue
            for s in range(first, last + 1):
                if s + d > len(months):
                    continue
                use = {}
                for g, h in hours.items():
                    base = h // d
                    for k in range(d):
                        use[g, months[s + k]] = base if k < d - 1 else h - base * (d - 1)
                mine.append((money, use))
        options.append(mine)
    best = None
    for combo in itertools.product(*options):
        total, per_company, used = 0, {}, {}
        for a, opt in zip(apps, combo):
            if opt is None:
                continue
            money, use = opt
            total += money
            per_company[a["company"]] = per_company.get(a["company"], 0) + money
            for key, h in use.items():
                used[key] = used.get(key, 0) + h
        if total > budget or any(v > cap for v in per_company.values()):
            continue
        if any(h > capacity[key] for key, h in used.items()):
            continue
        value = sum(a["score"] * opt[0] for a, opt in zip(apps, combo) if opt is not None)
        best = value if best is None else max(best, value)
    return best


@st.composite
def month_rounds(draw):
    n_months = draw(st.integers(1, 3))
    months = MONTHS[:n_months]
    types = ("H100", "L40S")[:draw(st.integers(1, 2))]
    prices = {g: draw(st.integers(1, 5)) * 1000 for g in types}
    capacity = {(g, m): draw(st.integers(0, 40)) for g in types for m in months}
    apps = []
    for _ in range(draw(st.integers(1, 3))):
        d = draw(st.integers(1, n_months))
        e = draw(st.integers(0, n_months - d))
        lt = draw(st.integers(e, n_months - d))
        hours = {g: draw(st.integers(1, 60)) for g in types if draw(st.booleans())} or {types[0]: 7}
        apps.append({"duration": d, "earliest": months[e] if draw(st.booleans()) else None,
                     "latest": months[lt] if draw(st.booleans()) else None, "hours": hours,
                     "score": draw(st.integers(6000, 9999)), "company": draw(st.integers(0, 2))})
    budget = draw(st.integers(1, 400)) * 1000
    cap = draw(st.integers(1, 400)) * 1000
    return apps, capacity, prices, budget, cap, months


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(month_rounds())
def test_tiny_month_rounds_match_brute_force(case):
    apps, capacity, prices, budget, cap, months = case
    model = build_model(*_frames(apps, capacity, prices), _config(budget, cap))
    expected = _oracle(apps, capacity, prices, budget, cap, months)
    assert brute_force(model.problem)[0] == expected
    solution = solve_cpsat(model.problem, time_limit_s=5, workers=1)
    assert solution.status == "optimal" and solution.objective == expected
    # the chosen awards, spread over their months, fit every (type, month) capacity
    per_month = model.month_hours(solution.choice).sum(axis=0)          # (T, M)
    for t, g in enumerate(model.gpu_types):
        for m, month in enumerate(model.months):
            assert per_month[t, m] <= capacity[g, month]
    # each award's months add up to its hours, inside its duration from its start
    starts = model.start_of(solution.choice)
    for i in np.flatnonzero(solution.choice >= 0):
        got = model.month_hours(solution.choice)[i]
        assert (got.sum(axis=1) == model.hours[i, solution.choice[i]]).all()
        active = np.flatnonzero(got.sum(axis=0) > 0)
        if len(active):
            assert starts[i] <= active.min() and active.max() < starts[i] + model.durations[i]


def test_spreading_rule_floor_then_remainder_in_last_month():
    # 10 hours over 3 months: 3, 3, 4; 2 hours over 3 months: 0, 0, 2; nothing outside
    assert [int(hours_in_month(10, 3, k)) for k in range(-1, 4)] == [0, 3, 3, 4, 0]
    assert [int(hours_in_month(2, 3, k)) for k in range(3)] == [0, 0, 2]


def test_month_options_rows_and_windows():
    apps = [{"duration": 2, "earliest": "2026-12", "latest": None, "hours": {"H100": 10},
             "score": 8000, "company": 0}]
    capacity = {("H100", m): 100 for m in MONTHS}
    model = build_model(*_frames(apps, capacity, {"H100": 1000}), _config(10**9, 10**9))
    p = model.problem
    assert model.months == MONTHS
    assert p.row_names == ("gpu:H100@2026-11", "gpu:H100@2026-12", "gpu:H100@2027-01", "budget")
    # options: level-major, start-minor; only a start in 2026-12 fits (2 months, window from 12)
    assert model.option_level.tolist() == [0, 0, 0, 1, 1, 1]
    assert p.allowed[0].tolist() == [False, True, False, False, True, False]
    # full level (10 h) starting 2026-12: 5 h in 2026-12, 5 h in 2027-01
    assert p.weight[:3, 0, 4].tolist() == [0, 5, 5]
    assert p.weight[:3, 0, 1].tolist() == [0, 2, 3]     # half level: 5 h -> 2 + 3


def test_reserve_is_held_back_per_type_and_month():
    config = parse_config("""
[round]
id = "M-1"
budget_krw = 1000
copay_share = 0.0
[award]
levels = [1.0]
max_krw_per_company = 1000
[scoring]
weights = { technical = 1.0 }
[lifecycle]
reserve_share = 0.1
""")
    capacity = pl.DataFrame({"gpu_type": ["H100", "H100"], "gpu_hours": [105, 50],
                             "krw_per_gpu_hour": [1000, 1000], "month": ["2026-11", "2026-12"]})
    _, reduced, held = hold_back_reserve(config, capacity)
    assert reduced["gpu_hours"].to_list() == [94, 45]          # floor(0.9 x hours) per month
    assert held["gpu_hours"] == {"H100@2026-11": 11, "H100@2026-12": 5}


def _dense_oracle(hours: np.ndarray, duration: np.ndarray, M: int, awarded: np.ndarray) -> np.ndarray:
    """(T*M + 1, n, L*M) by plain loops: floor(h/d) in a project's months but its last, the rest
    in the last, nothing outside; the budget row last."""
    n, L, T = hours.shape
    out = np.zeros((T * M + 1, n, L * M), np.int64)
    for i in range(n):
        d = int(duration[i])
        for level in range(L):
            for s in range(M):
                for t in range(T):
                    h = int(hours[i, level, t])
                    for k in range(d):
                        if s + k < M:
                            out[t * M + s + k, i, level * M + s] = h // d if k < d - 1 else h - (d - 1) * (h // d)
                out[-1, i, level * M + s] = awarded[i, level * M + s]
    return out


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_monthly_weight_is_the_dense_array_under_every_index_the_solvers_use(data):
    from allocation.model.problem import MonthlyWeight
    n, L, T, M = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)),
                  data.draw(st.integers(1, 4)))
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    hours = rng.integers(0, 50, size=(n, L, T))
    duration = rng.integers(1, M + 1, size=n)
    awarded = rng.integers(0, 10**6, size=(n, L * M))
    w = MonthlyWeight(hours, duration, M, awarded)
    dense = _dense_oracle(hours, duration, M, awarded)
    assert w.shape == dense.shape
    assert np.array_equal(np.asarray(w), dense)
    items = rng.integers(0, n, size=7)
    opts = rng.integers(0, L * M, size=7)
    r = int(rng.integers(0, T * M + 1))
    assert np.array_equal(w[r, items, opts], dense[r, items, opts])
    assert np.array_equal(w[:, items, opts], dense[:, items, opts])
    assert np.array_equal(w[..., items, opts], dense[..., items, opts])
    assert np.array_equal(w[:T * M, items, opts], dense[:T * M, items, opts])
    assert np.array_equal(w[:, items], dense[:, items])
    assert np.array_equal(w[r], dense[r])
    assert np.array_equal(w[:, int(items[0]), int(opts[0])], dense[:, int(items[0]), int(opts[0])])
    assert np.array_equal(w.usage(items, opts), dense[:, items, opts].T)
    # an option fits a residual of the GPU rows exactly when each of its months does
    resid = rng.integers(-5, 60, size=T * M)
    assert np.array_equal(w.fits(resid), (dense[:-1] <= resid[:, None, None]).all(axis=0))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_monthly_weight_total_and_fits_on_a_subset(data):
    from allocation.model.problem import MonthlyWeight
    n, L, T, M = (data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)),
                  data.draw(st.integers(1, 5)))
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    hours = rng.integers(0, 50, size=(n, L, T))
    duration = rng.integers(1, M + 1, size=n)
    awarded = rng.integers(0, 10**6, size=(n, L * M))
    w = MonthlyWeight(hours, duration, M, awarded)
    dense = _dense_oracle(hours, duration, M, awarded)
    k = data.draw(st.integers(0, 8))
    items, opts = rng.integers(0, n, size=k), rng.integers(0, L * M, size=k)
    assert np.array_equal(w.total(items, opts), dense[:, items, opts].sum(axis=1))
    resid = rng.integers(0, 60, size=T * M)
    sub = np.unique(rng.integers(0, n, size=3))
    assert np.array_equal(w.fits(resid, sub), (dense[:-1, sub] <= resid[:, None, None]).all(axis=0))


def test_hours_by_month_is_hours_in_month_for_many_awards_at_once():
    """The vectorised spreading (MonthlyWeight.usage) gives hours_in_month's integers for every
    award, type and month: durations 1..M, starts up to the last month (projects running past
    it are cut off), hours below the duration (floor 0, all in the last month)."""
    rng = np.random.default_rng(11)
    for months in (1, 2, 6, 12):
        k = 4000
        hours = rng.integers(0, 50, (k, 3))
        hours[::7] = rng.integers(0, 3, (len(hours[::7]), 3))
        duration = rng.integers(1, months + 1, k)
        start = rng.integers(0, months, k)
        got = hours_by_month(hours, duration, start, months)
        rel = np.arange(months)[None, None, :] - start[:, None, None]
        want = hours_in_month(hours[:, :, None], duration[:, None, None], rel)
        assert got.dtype == np.int64 and np.array_equal(got, want)
        inside = start + duration <= months          # whole projects keep every hour
        assert np.array_equal(got[inside].sum(axis=2), hours[inside])
