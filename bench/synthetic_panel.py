"""A review panel for a synthetic round (``python -m bench.synthetic … --panel``, issue 18).

Adds to a built round (bench.synthetic.SyntheticRound):

* applications.topic_tags: 1–2 topics each ('nlp;vision'), about 5% untagged;
* reviewers: the round's reviewer pool with 2–4 expertise topics, a max load ~1.5× what an even
  share needs, and affiliations: ~8% list an applicant company (by business number or name) as a
  former employer — a conflict of interest found without any conflicts row;
* conflicts: a few declared conflicts, by application_id and by business_no;
* assignments: the optimal assignment (allocation.solve.assignment) of the reviewers to every
  application; the reviews are relabelled so each application is reviewed by its assigned panel;
* two deliberate panel defects in reviews, listed in the README like the other bad rows: one
  application has a review by a conflicted reviewer (excluded; still enough reviews), another has
  two of its three reviews by a conflicted and an unassigned reviewer (excluded; missing_reviews).
* round.toml gains ``[panel] reviewers_per_application``.

Large rounds (benchmarks) use ``panel_tables`` alone: reviewers and conflicts, no solve.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from allocation import schema
from allocation.intake.panel_files import business_key, conflict_pairs, split_list
from allocation.rounds.panel import build_problem
from allocation.solve.assignment import solve_panel

TOPICS = ("nlp", "vision", "speech", "robotics", "bio", "medical", "finance", "manufacturing",
          "mobility", "energy", "agriculture", "retail", "security", "education")
TOPIC_POPULARITY = (0.2, 0.16, 0.06, 0.07, 0.06, 0.08, 0.07, 0.08, 0.06, 0.04, 0.03, 0.04, 0.03, 0.02)
LOAD_SLACK = 1.5


def _tag_lists(rng: np.random.Generator, n: int, sizes: np.ndarray) -> list[list[str]]:
    p = np.asarray(TOPIC_POPULARITY) / sum(TOPIC_POPULARITY)
    out = []
    for size in sizes.tolist():
        picks = rng.choice(len(TOPICS), size=size, replace=False, p=p) if size else []
        out.append(sorted(TOPICS[i] for i in picks))
    return out


def panel_tables(applications: pl.DataFrame, reviewer_ids: list[str], k: int, seed: int,
                 n_conflicts: int | None = None) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """(topic_tags column, reviewers, conflicts) for the applications and reviewer pool;
    n_conflicts declared conflicts rows (default: one per 20 reviewers, at least 2)."""
    rng = np.random.default_rng([seed, 18])
    n, m = applications.height, len(reviewer_ids)
    app_sizes = rng.choice([0, 1, 2], size=n, p=[0.05, 0.6, 0.35])
    app_tags = _tag_lists(rng, n, app_sizes)
    rev_tags = _tag_lists(rng, m, rng.integers(2, 5, size=m))
    # every topic has enough experts: at least k + 2 and about its share of the demand
    demand = np.zeros(len(TOPICS))
    for tags in app_tags:
        for t in tags:
            demand[TOPICS.index(t)] += 1 / len(tags)
    for t, topic in enumerate(TOPICS):
        want = max(k + 2, math.ceil(m * demand[t] / max(n, 1) * 1.5))
        have = [i for i, tags in enumerate(rev_tags) if topic in tags]
        others = [i for i in range(m) if topic not in rev_tags[i]]
        for i in rng.permutation(others)[:max(0, want - len(have))].tolist():
            rev_tags[i] = sorted({*rev_tags[i], topic})
    even = n * k / max(m, 1)
    load = np.maximum(k, np.rint(even * LOAD_SLACK * rng.uniform(0.8, 1.2, m))).astype(np.int64)
    # affiliations: a former employer among the applicants (by number or by name) + a non-applicant
    affiliated = rng.random(m) < 0.08
    companies = rng.integers(0, n, size=m)
    by_name = rng.random(m) < 0.5
    affiliations = []
    for i in range(m):
        items = []
        if affiliated[i]:
            row = int(companies[i])
            items.append(applications["company_name"][row] if by_name[i] else applications["business_no"][row])
        if rng.random() < 0.3:
            items.append("한국전자통신연구원")
        affiliations.append(schema.LIST_SEPARATOR.join(items) or None)
    reviewers = pl.DataFrame({
        "reviewer_id": reviewer_ids, "max_load": load,
        "expertise": [schema.LIST_SEPARATOR.join(t) for t in rev_tags],
        "affiliations": affiliations}, schema={"reviewer_id": pl.String, "max_load": pl.Int64,
                                               "expertise": pl.String, "affiliations": pl.String})
    n_conflicts = max(2, m // 20) if n_conflicts is None else n_conflicts
    who = rng.choice(m, size=n_conflicts, replace=m < n_conflicts)
    what = rng.choice(n, size=n_conflicts, replace=n < n_conflicts)
    by_company = np.arange(n_conflicts) % 2 == 1
    conflicts = pl.DataFrame({
        "reviewer_id": [reviewer_ids[i] for i in who.tolist()],
        "application_id": [None if c else applications["application_id"][a] for a, c in zip(what.tolist(), by_company)],
        "business_no": [applications["business_no"][a] if c else None for a, c in zip(what.tolist(), by_company)],
        "conflict_reason": ["shareholder in the company" if c else "co-author of the proposal" for c in by_company],
    }, schema={"reviewer_id": pl.String, "application_id": pl.String, "business_no": pl.String,
               "conflict_reason": pl.String})
    tags = pl.Series(schema.TOPIC_TAGS, [schema.LIST_SEPARATOR.join(t) or None for t in app_tags], pl.String)
    return tags, reviewers, conflicts


def _typed(applications: pl.DataFrame, reviewers: pl.DataFrame, conflicts: pl.DataFrame):
    """The frames as intake types them (lists split, business numbers normalised)."""
    apps = applications.with_columns(business_key(pl.col("business_no")).alias("business_no"),
                                     split_list(schema.TOPIC_TAGS).alias(schema.TOPIC_TAGS))
    revs = reviewers.with_columns(split_list("expertise").alias("expertise"),
                                  split_list("affiliations", lower=False).alias("affiliations"))
    confl = conflicts.with_columns(business_key(pl.col("business_no")).alias("business_no"),
                                   pl.int_range(2, pl.len() + 2).alias(schema.SOURCE_ROW))
    return apps, revs, confl


def add_panel(result, seed: int, k: int, BadRow) -> None:
    """Give a built SyntheticRound its panel (in place); see the module docstring.
    BadRow: bench.synthetic.BadRow (passed in: bench.synthetic imports this module)."""
    apps = result.tables["applications"]
    reviews = result.tables["reviews"]
    pool = sorted(reviews["reviewer_id"].unique().to_list())
    tags, reviewers, conflicts = panel_tables(apps, pool, k, seed)
    apps = apps.with_columns(tags)
    # assign every application with a usable id (first row of a duplicated id)
    t_apps, t_revs, t_confl = _typed(apps, reviewers, conflicts)
    usable = t_apps.filter(pl.col("application_id").is_not_null()).unique("application_id", keep="first",
                                                                          maintain_order=True)
    pairs = conflict_pairs(usable, t_revs, t_confl)
    sol = solve_panel(build_problem(usable, t_revs, pairs, k))
    if sol.status != "optimal":
        raise ValueError(f"synthetic panel: {sol.shortfall} reviews cannot be assigned")
    assignments = pl.DataFrame({"application_id": usable["application_id"].gather(sol.app),
                                "reviewer_id": t_revs["reviewer_id"].gather(sol.reviewer)})
    # relabel: each application's i-th reviewer (sorted) becomes its i-th assigned reviewer
    old = (reviews.select("application_id", "reviewer_id").unique(maintain_order=True)
           .with_columns(pl.col("reviewer_id").rank("ordinal").over("application_id").alias("i")))
    new = assignments.with_columns(pl.col("reviewer_id").rank("ordinal").over("application_id").alias("i"))
    mapping = old.join(new.rename({"reviewer_id": "new_id"}), on=["application_id", "i"], how="left")
    reviews = (reviews.join(mapping.drop("i"), on=["application_id", "reviewer_id"], how="left",
                            maintain_order="left")
               .with_columns(pl.coalesce("new_id", "reviewer_id").alias("reviewer_id")).drop("new_id"))
    result.tables["applications"] = apps
    result.tables["reviews"] = reviews
    result.tables["reviewers"] = reviewers
    result.tables["conflicts"] = conflicts
    result.tables["assignments"] = assignments
    _panel_defects(result, pairs, assignments, BadRow)
    result.config_text += (f"\n[panel]\n# Reviewers `voucher assign` gives every application (no conflict of "
                           f"interest, within each reviewer's max_load).\nreviewers_per_application = {k}\n")
    result.stats["panel_reviewers"] = len(pool)


def _panel_defects(result, pairs: pl.DataFrame, assignments: pl.DataFrame, BadRow) -> None:
    """Two applications reviewed by the wrong people (README lists them)."""
    reviews = result.tables["reviews"].with_row_index("__pos")
    apps = result.tables["applications"].with_row_index("__row")
    assigned_to = assignments.group_by("application_id", maintain_order=True).agg(
        pl.col("reviewer_id").sort().alias("panel"))
    # conflicted pairs whose application has a panel of 3 or more
    candidates = pairs.join(assigned_to, on="application_id").filter(
        pl.col("panel").list.len() >= 3).sort("application_id", "reviewer_id")
    if candidates.height < 2:
        return
    all_reviewers = sorted(result.tables["reviewers"]["reviewer_id"].to_list())
    for case, row in enumerate(candidates.unique("application_id", keep="first", maintain_order=True)
                               .head(2).iter_rows(named=True)):
        app, conflicted, panel = row["application_id"], row["reviewer_id"], row["panel"]
        swaps = [(panel[0], conflicted, "conflicted_review",
                  f"reviewer {conflicted} has a conflict of interest ({row['reason']}) but reviewed it")]
        if case == 1:
            outsider = next(r for r in all_reviewers if r not in panel and r != conflicted
                            and pairs.filter((pl.col("application_id") == app) & (pl.col("reviewer_id") == r)).is_empty())
            swaps.append((panel[1], outsider, "unassigned_review",
                          f"reviewer {outsider} was not assigned to it but reviewed it"))
        for old, new, code, problem in swaps:
            mask = (reviews["application_id"] == app) & (reviews["reviewer_id"] == old)
            rows = (reviews.filter(mask)["__pos"] + 2).to_list()
            reviews = reviews.with_columns(pl.when(mask).then(pl.lit(new)).otherwise(pl.col("reviewer_id"))
                                           .alias("reviewer_id"))
            app_row = int(apps.filter(pl.col("application_id") == app)["__row"][0]) + 2
            expected = "missing_reviews" if case == 1 and code == "unassigned_review" else None
            result.bad_rows.append(BadRow(table="reviews", rows=tuple(rows), application_id=app,
                                          application_row=app_row, column="reviewer_id", value=new,
                                          problem=f"{problem}: the review does not count ({code})",
                                          expected_reason=expected))
    result.tables["reviews"] = reviews.drop("__pos")
