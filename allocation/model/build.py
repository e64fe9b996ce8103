"""Turn a scored round into an AllocationProblem (money from allocation.model.money).

Items are the selectable applications (eligible, score >= min_score) sorted by id; options
are the award levels. Rows: GPU-hours per type and the budget (knapsack), one company cap,
one cover row per quota. Objective coefficient: score in centipoints * awarded_krw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from allocation import schema
from allocation.config import RoundConfig
from allocation.model.money import money_for_level
from allocation.model.problem import AllocationProblem

BUDGET_ROW = "budget"


def gpu_row(gpu_type: str) -> str:
    return f"gpu:{gpu_type}"


@dataclass(frozen=True)
class ModelData:
    """The problem plus what is needed to turn a choice back into outcomes."""

    problem: AllocationProblem
    application_ids: np.ndarray    # (n,) str, item order
    scores: np.ndarray             # (n,) float, score per item
    gpu_types: tuple[str, ...]     # (T,)
    prices: np.ndarray             # (T,) int64 KRW per GPU-hour
    requested_hours: np.ndarray    # (n, T) int64
    hours: np.ndarray              # (n, L, T) int64 granted hours per option
    cost: np.ndarray               # (n, L) int64
    copay: np.ndarray              # (n, L) int64
    awarded: np.ndarray            # (n, L) int64
    levels: tuple[float, ...]      # (L,)
    quota_groups: dict[str, np.ndarray]  # quota name -> (n,) bool membership
    business_nos: np.ndarray       # (n,) str, normalised digits


def selectable(applications: pl.DataFrame, scores: pl.DataFrame, config: RoundConfig) -> pl.DataFrame:
    """Eligible applications scoring at least min_score, sorted by application_id."""
    return (
        applications.filter(pl.col(schema.ELIGIBLE))
        .join(scores.select("application_id", "score"), on="application_id", how="inner")
        .filter(pl.col("score") >= config.award.min_score)
        .sort("application_id")
    )


def build_model(applications: pl.DataFrame, requests: pl.DataFrame, capacity: pl.DataFrame,
                scores: pl.DataFrame, config: RoundConfig) -> ModelData:
    items = selectable(applications, scores, config)
    gpu_types = tuple(capacity.sort("gpu_type")["gpu_type"].to_list())
    prices = capacity.sort("gpu_type")["krw_per_gpu_hour"].to_numpy().astype(np.int64)
    cap_hours = capacity.sort("gpu_type")["gpu_hours"].to_numpy().astype(np.int64)

    ids = items["application_id"].to_numpy().astype(str)
    n, n_types = len(ids), len(gpu_types)
    requested = np.zeros((n, n_types), dtype=np.int64)
    if n:
        req = requests.filter(pl.col("application_id").is_in(items["application_id"].implode()))
        row = np.searchsorted(ids, req["application_id"].to_numpy().astype(str))
        col = np.searchsorted(np.array(gpu_types), req["gpu_type"].to_numpy().astype(str))
        requested[row, col] = req["gpu_hours"].to_numpy()

    levels = config.level_fractions
    n_levels = len(levels)
    hours = np.zeros((n, n_levels, n_types), dtype=np.int64)
    cost, copay, awarded = (np.zeros((n, n_levels), dtype=np.int64) for _ in range(3))
    for l, level in enumerate(levels):
        hours[:, l], cost[:, l], copay[:, l], awarded[:, l] = money_for_level(
            requested, prices, level, config.copay_fraction)

    scores_arr = items["score"].to_numpy().astype(float)
    centipoints = np.rint(scores_arr * 100).astype(np.int64)
    cap = config.award.max_krw_per_company
    allowed = (awarded > 0) & (awarded <= cap) & (awarded <= config.round.budget_krw) \
        & (hours <= cap_hours[None, None, :]).all(axis=2)

    weight = np.concatenate([np.moveaxis(hours, 2, 0), awarded[None]], axis=0)
    capacity_arr = np.concatenate([cap_hours, [config.round.budget_krw]]).astype(np.int64)
    row_names = tuple(gpu_row(t) for t in gpu_types) + (BUDGET_ROW,)

    business = items["business_no"].str.replace_all("-", "").to_numpy().astype(str)
    _, company = np.unique(business, return_inverse=True)

    groups: dict[str, np.ndarray] = {}
    cover = np.zeros((len(config.quotas), n, n_levels), dtype=np.int64)
    for q, quota in enumerate(config.quotas):
        member = items.select(quota.expression())[:, 0].to_numpy().astype(bool)
        groups[quota.name] = member
        share = quota.min_share_fraction
        cover[q] = (share.denominator * member[:, None] - share.numerator) * awarded

    problem = AllocationProblem(
        value=np.where(allowed, centipoints[:, None] * awarded, 0),
        allowed=allowed, weight=weight, capacity=capacity_arr, row_names=row_names,
        company=company.astype(np.int64), company_weight=awarded, company_cap=cap,
        cover=cover, cover_names=tuple(q.name for q in config.quotas),
    )
    return ModelData(
        problem=problem, application_ids=ids, scores=scores_arr, gpu_types=gpu_types,
        prices=prices, requested_hours=requested, hours=hours, cost=cost, copay=copay,
        awarded=awarded, levels=tuple(float(x) for x in config.award.levels),
        quota_groups=groups, business_nos=business,
    )
