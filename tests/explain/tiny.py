"""Tiny hand-made rounds for the explanation tests (plain helper, not tests).

One GPU type (H100, ₩1,000 an hour), no co-payment, levels 50% and 100%: an application asking
for h hours costs ₩1,000·h in full and ₩500·h at half, so every number can be checked by hand.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from allocation.config import parse_config
from allocation.explain.reasons import explain_items
from allocation.model.build import build_model
from allocation.solve.brute_force import brute_force
from allocation.solve.lp import solve_lp_glop

BUSINESS_NOS = ("123-45-67891", "220-81-62517", "124-81-00998", "105-87-00011", "214-86-00007")


def config_text(*, budget: int = 1_000_000_000, cap: int = 1_000_000_000, quota: str = "",
                waitlist: int = 50, min_score: float = 60, copay: float = 0.0) -> str:
    return f"""
[round]
id = "T-1"
budget_krw = {budget}
copay_share = {copay}
[award]
levels = [0.5, 1.0]
max_krw_per_company = {cap}
min_score = {min_score}
waitlist_size = {waitlist}
[scoring]
weights = {{ technical = 1.0 }}
{quota}
"""


def tiny_round(rows: list[dict], *, capacity_hours: int = 1_000_000, price: int = 1_000, **cfg):
    """rows: application_id, score, hours, and optionally region, business_no, eligible.
    Returns (model, config, applications, scores)."""
    config = parse_config(config_text(**cfg))
    apps = pl.DataFrame({
        "application_id": [r["application_id"] for r in rows],
        "business_no": [r.get("business_no", BUSINESS_NOS[i % len(BUSINESS_NOS)]) for i, r in enumerate(rows)],
        "company_name": [f"회사 {r['application_id']}" for r in rows],
        "region": [r.get("region", "Busan") for r in rows],
        "prior_awards": [0] * len(rows), "company_size": ["small"] * len(rows),
        "source_row": list(range(2, len(rows) + 2)),
        "eligible": [r.get("eligible", True) for r in rows],
        "reason": [None if r.get("eligible", True) else "invalid_field" for r in rows],
        "reason_detail": [None if r.get("eligible", True) else "applications.csv row: bad" for r in rows],
    }, schema_overrides={"reason": pl.String, "reason_detail": pl.String})
    requests = pl.DataFrame({"application_id": [r["application_id"] for r in rows],
                             "gpu_type": ["H100"] * len(rows), "gpu_hours": [r["hours"] for r in rows]})
    capacity = pl.DataFrame({"gpu_type": ["H100"], "gpu_hours": [capacity_hours], "krw_per_gpu_hour": [price]})
    scores = pl.DataFrame({"application_id": [r["application_id"] for r in rows],
                           "score": [float(r["score"]) for r in rows]})
    model = build_model(apps, requests, capacity, scores, config)
    return model, config, apps, scores


def solved(model):
    """(optimal choice by brute force, its explanation with the LP prices)."""
    _, choice = brute_force(model.problem)
    lp = solve_lp_glop(model.problem)
    return choice, explain_items(model, choice, lp.row_duals, lp.cover_duals)


def item(model, application_id: str) -> int:
    return int(np.flatnonzero(model.application_ids == application_id)[0])
