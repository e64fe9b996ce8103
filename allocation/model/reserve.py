"""The lifecycle reserve: what the FIRST allocation of a round may not use.

``[lifecycle] reserve_share`` of the budget and of each GPU type's hours is held back for
refills and upheld appeals (allocation.rounds.lifecycle), which see the whole capacity.
"""

from __future__ import annotations

from fractions import Fraction

import polars as pl

from allocation import schema
from allocation.config import RoundConfig
from allocation.model.money import floor_share


def hold_back_reserve(config: RoundConfig, capacity: pl.DataFrame
                      ) -> tuple[RoundConfig, pl.DataFrame, dict]:
    """The config and capacity the first allocation may use, and what is held back.

    floor((1 - reserve_share) × budget) and floor((1 - reserve_share) × hours) per GPU type,
    in exact rational arithmetic.
    """
    keep = 1 - Fraction(str(config.lifecycle.reserve_share))
    budget = config.round.budget_krw
    usable_budget = floor_share(budget, keep)
    hours = capacity["gpu_hours"].to_list()
    usable_hours = [floor_share(h, keep) for h in hours]
    reduced = capacity.with_columns(pl.Series("gpu_hours", usable_hours, dtype=capacity["gpu_hours"].dtype))
    data = config.model_dump(by_alias=True)
    data["round"]["budget_krw"] = usable_budget
    held = {"share": config.lifecycle.reserve_share, "budget_krw": budget - usable_budget,
            "budget_krw_total": budget,
            "gpu_hours": {g: h - u for g, h, u in zip(_row_keys(capacity), hours, usable_hours)},
            "note": "held back for refills and upheld appeals; the first allocation cannot use it"}
    return RoundConfig.model_validate(data), reduced, held


def _row_keys(capacity: pl.DataFrame) -> list[str]:
    """GPU type per capacity row; by month "H100@2026-05"."""
    if schema.CAPACITY_MONTH in capacity.columns:
        return [f"{g}@{m}" for g, m in zip(capacity["gpu_type"].to_list(), capacity[schema.CAPACITY_MONTH].to_list())]
    return capacity["gpu_type"].to_list()
