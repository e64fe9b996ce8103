"""Turn a scored round into an AllocationProblem (money from allocation.model.money).

Items are the selectable applications (eligible, score >= min_score) sorted by id; options
are the award levels. Rows: GPU-hours per type and the budget (knapsack), one company cap,
one cover row per quota. Objective coefficient: score in centipoints * awarded_krw.

GPU capacity by month (capacity with a month column, allocation.intake.months): an option is an
award level and a start month, option o = level * M + start (M months), allowed when the start
is in the application's window; the GPU rows are one per (type, month), "gpu:H100@2026-05",
each award's hours spread over its months by money.hours_in_month. Budget, company cap and
quotas are unchanged. Without months the options are the levels, exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from allocation import schema
from allocation.config import RoundConfig
from allocation.intake.months import capacity_months, start_windows
from allocation.model.money import hours_in_month, money_for_level
from allocation.model.problem import AllocationProblem, MonthlyWeight

BUDGET_ROW = "budget"


def gpu_row(gpu_type: str, month: str | None = None) -> str:
    return f"gpu:{gpu_type}" if month is None else f"gpu:{gpu_type}@{month}"


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
    # GPU capacity by month; single-period rounds: months (), option_level = arange(L),
    # option_start zeros, durations ones
    months: tuple[str, ...] = ()
    option_level: np.ndarray | None = None   # (O,) level index of each option
    option_start: np.ndarray | None = None   # (O,) start month index of each option
    durations: np.ndarray | None = None      # (n,) months each item's project runs
    start_window: np.ndarray | None = None   # (n, M) bool: the starts the application allows

    def level_of(self, choice: np.ndarray) -> np.ndarray:
        """Level index of each item's option (-1 stays -1)."""
        return np.where(choice >= 0, self.option_level[np.maximum(choice, 0)], -1)

    def start_of(self, choice: np.ndarray) -> np.ndarray:
        """Start month index of each item's option (-1 when not funded)."""
        return np.where(choice >= 0, self.option_start[np.maximum(choice, 0)], -1)

    def month_hours(self, choice: np.ndarray) -> np.ndarray:
        """(n, T, M) hours of each item's award in each capacity month (single period: M = 1)."""
        n, n_types = self.requested_hours.shape
        funded = choice >= 0
        total = np.where(funded[:, None], self.hours[np.arange(n), np.maximum(choice, 0)], 0)
        if not self.months:
            return total[:, :, None]
        k = np.arange(len(self.months))[None, None, :] - self.start_of(choice)[:, None, None]
        return hours_in_month(total[:, :, None], self.durations[:, None, None], k).astype(np.int64)


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
    monthly = schema.CAPACITY_MONTH in capacity.columns
    # by month: one row per type and month, one price per type (intake.months)
    per_type = capacity.unique("gpu_type", keep="first", maintain_order=True) if monthly else capacity
    gpu_types = tuple(per_type.sort("gpu_type")["gpu_type"].to_list())
    prices = per_type.sort("gpu_type")["krw_per_gpu_hour"].to_numpy().astype(np.int64)
    cap_hours = per_type.sort("gpu_type")["gpu_hours"].to_numpy().astype(np.int64)

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

    if monthly:
        return _monthly_model(items, capacity, config, ids, gpu_types, prices, requested, hours, cost,
                              copay, awarded, centipoints, cover, groups, business)
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
        quota_groups=groups, business_nos=business, option_level=np.arange(n_levels),
        option_start=np.zeros(n_levels, np.int64), durations=np.ones(n, np.int64),
    )


def _monthly_model(items: pl.DataFrame, capacity: pl.DataFrame, config: RoundConfig, ids: np.ndarray,
                   gpu_types: tuple[str, ...], prices: np.ndarray, requested: np.ndarray,
                   hours: np.ndarray, cost: np.ndarray, copay: np.ndarray, awarded: np.ndarray,
                   centipoints: np.ndarray, cover: np.ndarray, groups: dict[str, np.ndarray],
                   business: np.ndarray) -> ModelData:
    """Options = level x start month (o = level * M + start); GPU rows per (type, month)."""
    months = capacity_months(capacity)
    n, n_levels, n_types = hours.shape
    M = len(months)
    table = capacity.sort("gpu_type", schema.CAPACITY_MONTH)
    cap_hours = table["gpu_hours"].to_numpy().astype(np.int64).reshape(n_types, M)
    duration, earliest, latest = start_windows(items, months)
    option_level = np.repeat(np.arange(n_levels), M)
    option_start = np.tile(np.arange(M), n_levels)
    spread = lambda a: np.repeat(a, M, axis=1)   # noqa: E731  (n, L, ...) -> (n, L*M, ...)
    cost_o, copay_o, awarded_o, hours_o = spread(cost), spread(copay), spread(awarded), spread(hours)
    # weight[t*M + m, i, l*M + s] = hours of level l in month m for a start in s, computed on
    # demand (MonthlyWeight: the dense array would be (T*M + 1) x n x L*M)
    weight = MonthlyWeight(hours, duration, M, awarded_o)
    capacity_arr = np.concatenate([cap_hours.reshape(-1), [config.round.budget_krw]]).astype(np.int64)
    row_names = tuple(gpu_row(t, m) for t in gpu_types for m in months) + (BUDGET_ROW,)
    cap = config.award.max_krw_per_company
    in_window = (option_start[None, :] >= earliest[:, None]) & (option_start[None, :] <= latest[:, None])
    fits = np.ones((n, n_levels, M), bool)          # [i, l, start]: every month within capacity
    for start in range(M):
        for month in range(start, M):
            part = hours_in_month(hours, duration[:, None, None], month - start)   # (n, L, T)
            fits[:, :, start] &= (part <= cap_hours[None, None, :, month]).all(axis=2)
    allowed = ((awarded_o > 0) & (awarded_o <= cap) & (awarded_o <= config.round.budget_krw) & in_window
               & fits.reshape(n, n_levels * M))
    problem = AllocationProblem(
        value=np.where(allowed, centipoints[:, None] * awarded_o, 0),
        allowed=allowed, weight=weight, capacity=capacity_arr, row_names=row_names,
        company=np.unique(business, return_inverse=True)[1].astype(np.int64), company_weight=awarded_o,
        company_cap=cap, cover=np.repeat(cover, M, axis=2), cover_names=tuple(q.name for q in config.quotas),
        equal_value_moves=True,
    )
    return ModelData(
        problem=problem, application_ids=ids, scores=items["score"].to_numpy().astype(float),
        gpu_types=gpu_types, prices=prices, requested_hours=requested, hours=hours_o, cost=cost_o,
        copay=copay_o, awarded=awarded_o, levels=tuple(float(x) for x in config.award.levels),
        quota_groups=groups, business_nos=business, months=months, option_level=option_level,
        option_start=option_start, durations=duration,
        start_window=(np.arange(M)[None, :] >= earliest[:, None]) & (np.arange(M)[None, :] <= latest[:, None]),
    )
