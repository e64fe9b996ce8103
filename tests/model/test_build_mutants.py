"""The allocation model of a hand-made round, every array by hand (allocation.model.build): which
applications are items, their money per level, which levels are allowed (each limit exactly at
and one past its edge), rows, companies and the quota's cover row. Written to kill mutants of
allocation/model/build.py (bench/mutation.py)."""

from __future__ import annotations

import numpy as np
import polars as pl

from allocation.config import parse_config
from allocation.model.build import BUDGET_ROW, build_model, gpu_row, selectable


def _config(*, budget: int = 20_000, cap: int = 16_000) -> str:
    return f"""
[round]
id = "B-1"
budget_krw = {budget}
copay_share = 0.2
[award]
levels = [0.5, 1.0]
max_krw_per_company = {cap}
min_score = 60
[scoring]
weights = {{ technical = 1.0 }}
[[quota]]
name = "jeju"
regions_in = ["Jeju"]
min_share = 0.25
"""


APPS = pl.DataFrame({
    "application_id": ["F", "A", "B", "C", "D", "E"],
    "business_no": ["220-81-62517", "123-45-67891", "124-81-00998", "105-87-00011", "1234567891", "214-86-00007"],
    "region": ["Jeju", "Busan", "Busan", "Busan", "Jeju", "Jeju"],
    "prior_awards": [0] * 6, "company_size": ["small"] * 6,
    "eligible": [True, True, True, True, True, False],
})
REQUESTS = pl.DataFrame({
    "application_id": ["A", "A", "B", "C", "D", "E", "F"],
    "gpu_type": ["H100", "A100", "H100", "H100", "A100", "H100", "A100"],
    "gpu_hours": [20, 10, 40, 10, 1, 10, 31],
})
CAPACITY = pl.DataFrame({"gpu_type": ["H100", "A100"], "gpu_hours": [40, 30], "krw_per_gpu_hour": [1_000, 500]})
# C scores just under min_score 60, B exactly at it; E is ineligible
SCORES = pl.DataFrame({"application_id": ["A", "B", "C", "D", "E", "F"],
                       "score": [90.0, 60.0, 59.99, 70.125, 99.0, 80.55]})


def test_selectable_is_eligible_and_at_least_min_score_sorted_by_id():
    config = parse_config(_config())
    items = selectable(APPS, SCORES, config)
    assert items["application_id"].to_list() == ["A", "B", "D", "F"]
    assert items["score"].to_list() == [90.0, 60.0, 70.125, 80.55]


def test_build_model_every_array_by_hand():
    model = build_model(APPS, REQUESTS, CAPACITY, SCORES, parse_config(_config()))
    p = model.problem
    assert model.application_ids.tolist() == ["A", "B", "D", "F"]
    assert model.gpu_types == ("A100", "H100")
    assert model.prices.tolist() == [500, 1_000] and model.prices.dtype == np.int64
    assert model.requested_hours.tolist() == [[10, 20], [0, 40], [1, 0], [31, 0]]
    assert model.scores.tolist() == [90.0, 60.0, 70.125, 80.55]
    assert model.levels == (0.5, 1.0)
    # hours = floor(level x requested) per type (A100, H100)
    assert model.hours.tolist() == [[[5, 10], [10, 20]], [[0, 20], [0, 40]], [[0, 0], [1, 0]], [[15, 0], [31, 0]]]
    # cost = hours x (500, 1,000); copay 20 % half up; awarded = cost - copay
    assert model.cost.tolist() == [[12_500, 25_000], [20_000, 40_000], [0, 500], [7_500, 15_500]]
    assert model.copay.tolist() == [[2_500, 5_000], [4_000, 8_000], [0, 100], [1_500, 3_100]]
    assert model.awarded.tolist() == [[10_000, 20_000], [16_000, 32_000], [0, 400], [6_000, 12_400]]
    # allowed: A full ₩20,000 > cap ₩16,000; B half exactly the cap (allowed), full over it;
    # D half grants 0 h (₩0: nothing to award); F full needs 31 A100 hours of 30
    assert p.allowed.tolist() == [[True, False], [True, False], [False, True], [True, False]]
    # objective: score in centipoints (70.125 -> 7,012 by rint, 80.55 -> 8,055) x awarded, 0 if not allowed
    assert p.value.tolist() == [[90_000_000, 0], [96_000_000, 0], [0, 7_012 * 400], [8_055 * 6_000, 0]]
    assert p.row_names == ("gpu:A100", "gpu:H100", "budget")
    assert p.capacity.tolist() == [30, 40, 20_000]
    assert p.weight.tolist() == [
        [[5, 10], [0, 0], [0, 1], [15, 31]],                        # A100 hours
        [[10, 20], [20, 40], [0, 0], [0, 0]],                       # H100 hours
        [[10_000, 20_000], [16_000, 32_000], [0, 400], [6_000, 12_400]],   # budget: awarded KRW
    ]
    # A and D are one company (123-45-67891 written with and without dashes)
    assert model.business_nos.tolist() == ["1234567891", "1248100998", "1234567891", "2208162517"]
    assert p.company.tolist() == [0, 1, 0, 2]
    assert p.company_weight.tolist() == model.awarded.tolist() and p.company_cap == 16_000
    # quota jeju (D, F) at 1/4: cover = (4 x member - 1) x awarded
    assert model.quota_groups["jeju"].tolist() == [False, False, True, True]
    assert p.cover_names == ("jeju",)
    assert p.cover.tolist() == [[[-10_000, -20_000], [-16_000, -32_000], [0, 1_200], [18_000, 37_200]]]


def test_a_level_exactly_at_the_budget_is_allowed_and_a_krw_over_it_is_not():
    # cap out of the way: A's full ₩20,000 equals the budget
    model = build_model(APPS, REQUESTS, CAPACITY, SCORES, parse_config(_config(cap=10**9)))
    assert model.problem.allowed.tolist() == [[True, True], [True, False], [False, True], [True, False]]
    model = build_model(APPS, REQUESTS, CAPACITY, SCORES, parse_config(_config(budget=19_999, cap=10**9)))
    assert model.problem.allowed[0].tolist() == [True, False]
    assert model.problem.capacity.tolist() == [30, 40, 19_999]


def test_no_selectable_application_gives_empty_arrays_of_the_right_shape():
    scores = SCORES.with_columns(score=pl.lit(10.0))
    model = build_model(APPS, REQUESTS, CAPACITY, scores, parse_config(_config()))
    assert model.application_ids.tolist() == []
    assert model.requested_hours.shape == (0, 2) and model.hours.shape == (0, 2, 2)
    assert model.problem.weight.shape == (3, 0, 2) and model.problem.cover.shape == (1, 0, 2)
    assert model.problem.capacity.tolist() == [30, 40, 20_000]


def test_row_names():
    assert gpu_row("H100") == "gpu:H100" and BUDGET_ROW == "budget"
