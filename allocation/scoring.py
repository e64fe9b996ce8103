"""Scoring: calibrate each reviewer, aggregate per application, weight, add bonuses.

Per criterion c and reviewer r with at least MIN_REVIEWS_TO_CALIBRATE scores on c:
    z = (score - mean_rc) / std_rc          (a lenient or harsh reviewer is centred)
    calibrated = mean_c + std_c * z         (back on the panel's 0-100 scale for c)
Reviewers with fewer scores on c, or no spread, keep their raw score (nothing to learn).
Per application: mean calibrated score per criterion, weighted mean over criteria
(weights normalised to sum 1), plus bonus points for each bonus group it belongs to.
The final score is rounded to 2 decimals; the model uses it as integer centipoints.
"""

from __future__ import annotations

import polars as pl

from allocation import schema
from allocation.config import RoundConfig

MIN_REVIEWS_TO_CALIBRATE = 3


def calibrate_reviews(reviews: pl.DataFrame) -> pl.DataFrame:
    """Add `calibrated` (0-100) to review rows: one z-score per reviewer and criterion."""
    reviewer = ["reviewer_id", "criterion"]
    stats = reviews.with_columns(
        n_rc=pl.len().over(reviewer),
        mean_rc=pl.col("score").mean().over(reviewer),
        std_rc=pl.col("score").std(ddof=0).over(reviewer),
        mean_c=pl.col("score").mean().over("criterion"),
        std_c=pl.col("score").std(ddof=0).over("criterion"),
    )
    can_calibrate = (pl.col("n_rc") >= MIN_REVIEWS_TO_CALIBRATE) & (pl.col("std_rc") > 0)
    z = (pl.col("score") - pl.col("mean_rc")) / pl.col("std_rc")
    calibrated = pl.when(can_calibrate).then(pl.col("mean_c") + pl.col("std_c") * z) \
        .otherwise(pl.col("score")).clip(0.0, 100.0)
    return stats.with_columns(calibrated=calibrated).drop(
        "n_rc", "mean_rc", "std_rc", "mean_c", "std_c")


def score_applications(applications: pl.DataFrame, reviews: pl.DataFrame,
                       config: RoundConfig) -> pl.DataFrame:
    """Scores of the eligible applications (SCORES_SCHEMA + one column per criterion).

    Calibration uses the reviews of eligible applications only, so a broken application
    cannot shift everybody else's scores. Output is sorted by application_id.
    """
    eligible = applications.filter(pl.col(schema.ELIGIBLE))
    weights = config.scoring.weights
    total_weight = sum(weights.values())
    used = reviews.filter(
        pl.col("application_id").is_in(eligible["application_id"].implode())
        & pl.col("criterion").is_in(list(weights))
    ).sort("application_id", "criterion", "reviewer_id")
    calibrated = calibrate_reviews(used)

    per_criterion = calibrated.group_by("application_id", "criterion").agg(
        raw=pl.col("score").mean(), calibrated=pl.col("calibrated").mean())
    weight = pl.col("criterion").replace_strict(
        {k: v / total_weight for k, v in weights.items()}, return_dtype=pl.Float64)
    totals = per_criterion.group_by("application_id").agg(
        raw_score=(pl.col("raw") * weight).sum(),
        calibrated_score=(pl.col("calibrated") * weight).sum(),
    )
    wide = per_criterion.pivot(on="criterion", index="application_id", values="calibrated",
                               sort_columns=True)
    wide = wide.rename({c: f"criterion_{c}" for c in wide.columns if c != "application_id"})

    bonus = pl.lit(0.0)
    for name, points in sorted(config.scoring.bonus.items()):
        bonus = bonus + pl.when(config.group(name).expression()).then(points).otherwise(0.0)
    bonuses = eligible.select("application_id", bonus=bonus)

    scored = (
        bonuses.join(totals, on="application_id", how="left")
        .join(wide, on="application_id", how="left")
        .with_columns(
            raw_score=pl.col("raw_score").round(4),
            calibrated_score=pl.col("calibrated_score").round(4),
            score=(pl.col("calibrated_score") + pl.col("bonus")).round(2),
        )
        .sort("application_id")
    )
    first = list(schema.SCORES_SCHEMA)
    return scored.select(first + sorted(c for c in scored.columns if c not in first)) \
        .cast(schema.SCORES_SCHEMA)
