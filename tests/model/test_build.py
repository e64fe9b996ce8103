"""Exact money arithmetic and the model's rows."""


import polars as pl

from allocation.config import parse_config
from allocation.model.build import build_model


def _round(config_text):
    config = parse_config(config_text)
    apps = pl.DataFrame({
        "application_id": ["A", "B", "C", "D"],
        "business_no": ["123-45-67891", "123-45-67891", "220-81-62517", "124-81-00998"],
        "region": ["Busan", "Seoul", "Seoul", "Jeju"], "prior_awards": [0, 1, 0, 2],
        "company_size": ["small"] * 4, "eligible": [True, True, True, False],
    })
    requests = pl.DataFrame({"application_id": ["A", "A", "B", "C", "D"],
                             "gpu_type": ["H100", "L40S", "H100", "L40S", "H100"],
                             "gpu_hours": [1000, 500, 20_000, 100, 10]})
    capacity = pl.DataFrame({"gpu_type": ["L40S", "H100"], "gpu_hours": [10_000, 30_000],
                             "krw_per_gpu_hour": [1_800, 7_000]})
    scores = pl.DataFrame({"application_id": ["A", "B", "C"], "score": [80.5, 70.0, 55.0]})
    return build_model(apps, requests, capacity, scores, config), config


def test_build_model_items_rows_and_caps(valid_toml):
    model, config = _round(valid_toml)
    p = model.problem
    # C is below min_score 60, D ineligible: only A and B are items.
    assert model.application_ids.tolist() == ["A", "B"]
    assert model.gpu_types == ("H100", "L40S")
    assert p.row_names == ("gpu:H100", "gpu:L40S", "budget")
    assert p.weight[0, 0, 2] == 1000 and p.weight[1, 0, 0] == 250
    # Same business number -> same company.
    assert p.company[0] == p.company[1]
    # B at 100%: 20,000 h x 7,000 = 140M cost, 112M awarded: allowed under the 300M cap.
    assert model.awarded[1, 2] == 112_000_000 and p.allowed[1, 2]
    assert p.value[0, 2] == 8050 * model.awarded[0, 2]
    # Quota row: non_capital 40% -> 5*member - 2 per awarded KRW.
    assert p.cover[0, 0, 2] == 3 * model.awarded[0, 2]
    assert p.cover[0, 1, 2] == -2 * model.awarded[1, 2]


def test_levels_above_company_cap_are_not_allowed(valid_toml):
    model, _ = _round(valid_toml.replace("max_krw_per_company = 300_000_000", "max_krw_per_company = 60_000_000"))
    # B: 50% -> 56M awarded (allowed), 75% -> 84M (not).
    assert model.problem.allowed[1].tolist() == [True, False, False]
