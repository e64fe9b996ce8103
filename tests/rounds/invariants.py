"""Every limit of a round, recomputed from a run folder's files (plain helper for the tests)."""

import tomllib
from fractions import Fraction
from pathlib import Path

import polars as pl

from allocation import schema


def check_invariants(round_dir: Path, out: Path) -> None:
    """Every limit of the round holds, recomputed from the files (not from the model)."""
    policy = tomllib.loads((round_dir / "round.toml").read_text(encoding="utf-8"))
    apps = pl.read_parquet(out / "intake" / "applications.parquet")
    requests = pl.read_parquet(out / "intake" / "requests.parquet")
    capacity = pl.read_parquet(out / "intake" / "capacity.parquet")
    outcomes = pl.read_parquet(out / "outcomes.parquet")
    awards = pl.read_parquet(out / "awards.parquet")

    # Counts in = counts out; every input row exactly one outcome, in order.
    assert outcomes.height == apps.height
    assert outcomes["source_row"].to_list() == apps["source_row"].to_list()
    assert set(outcomes["status"].unique()) <= set(schema.STATUSES)

    awarded = outcomes.filter(pl.col("status") == "awarded")
    assert (awarded["awarded_krw"] > 0).all()
    assert (outcomes.filter(pl.col("status") != "awarded")["awarded_krw"] == 0).all()
    # Ineligible and below-min never funded.
    ineligible = outcomes.filter(pl.col("status") == "ineligible")
    assert set(ineligible["application_id"].drop_nulls()) == set(
        apps.filter(~pl.col("eligible"))["application_id"].drop_nulls())
    assert (awarded["score"] >= policy["award"]["min_score"]).all()

    levels = [Fraction(str(x)) for x in policy["award"]["levels"]]
    assert set(awarded["award_fraction"].to_list()) <= {float(x) for x in levels}
    # Exact money per application from requests and prices.
    price = dict(zip(capacity["gpu_type"], capacity["krw_per_gpu_hour"]))
    copay_share = Fraction(str(policy["round"]["copay_share"]))
    for row in awarded.iter_rows(named=True):
        f = Fraction(str(row["award_fraction"]))
        req = requests.filter(pl.col("application_id") == row["application_id"])
        hours = {t: h * f.numerator // f.denominator for t, h in zip(req["gpu_type"], req["gpu_hours"])}
        cost = sum(h * price[t] for t, h in hours.items())
        copay = (2 * cost * copay_share.numerator + copay_share.denominator) // (2 * copay_share.denominator)
        assert (row["cost_krw"], row["copay_krw"], row["awarded_krw"]) == (cost, copay, cost - copay)
        lines = awards.filter(pl.col("application_id") == row["application_id"])
        assert dict(zip(lines["gpu_type"], lines["gpu_hours"])) == {t: h for t, h in hours.items() if h}

    # Capacity per GPU type, budget, company cap.
    used = dict(awards.group_by("gpu_type").agg(pl.col("gpu_hours").sum()).iter_rows())
    for gpu, cap in zip(capacity["gpu_type"], capacity["gpu_hours"]):
        assert used.get(gpu, 0) <= cap
    total = int(awarded["awarded_krw"].sum())
    assert total <= policy["round"]["budget_krw"]
    per_company = awarded.with_columns(b=pl.col("business_no").str.replace_all("-", "")) \
        .group_by("b").agg(pl.col("awarded_krw").sum())
    assert (per_company["awarded_krw"] <= policy["award"]["max_krw_per_company"]).all()
    # Quotas: group share of the awarded budget.
    joined = awarded.join(apps.select("application_id", "prior_awards", "company_size"),
                          on="application_id")
    for quota in policy.get("quota", []):
        member = pl.lit(True)
        if "regions_not_in" in quota:
            member &= ~pl.col("region").is_in(quota["regions_not_in"])
        if "regions_in" in quota:
            member &= pl.col("region").is_in(quota["regions_in"])
        if "prior_awards_max" in quota:
            member &= pl.col("prior_awards") <= quota["prior_awards_max"]
        group = int(joined.filter(member)["awarded_krw"].sum())
        assert Fraction(group) >= Fraction(str(quota["min_share"])) * total

    # Waitlist: unfunded eligible above the cut are ranked by score.
    waitlisted = outcomes.filter(pl.col("status") == "waitlisted").sort("waitlist_rank")
    assert waitlisted["score"].to_list() == sorted(waitlisted["score"].to_list(), reverse=True)
    assert (outcomes.filter(pl.col("status") != "awarded")["reason"].is_not_null()).all()
