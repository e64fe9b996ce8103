"""Guards of the round and its lifecycle, each with a test that fails when the guard is removed.

accept_within_days for awards first offered by a refill; the budget override reaching a run;
the waitlist size cap; make_eligible in appeals; refusing a tampered previous version; the
protected-award errors of a refill; the infeasible-refill error; quota objective costs.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from allocation import files, intake
from allocation.config import load_config
from allocation.errors import RoundError
from allocation.model.build import build_model
from allocation.publish.version import publish
from allocation.rounds import allocate as stages
from allocation.rounds.lifecycle import refill
from allocation.rounds.lifecycle.previous import load_previous
from bench.synthetic import generate_round

ITER = 100_000            # lookup PBKDF2 iterations: the minimum, keeps publishing fast
ROUND_ID = "2026-R1"
ACCEPT_BY = date(2026, 2, 15)
WITHIN_DAYS = 9           # not the default 14, so a hard-coded default would be caught


# --- helpers ---------------------------------------------------------------------------------

def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def awardees(out: Path) -> list[str]:
    frame = pl.read_parquet(out / "outcomes.parquet").filter(pl.col("status") == "awarded")
    return frame.sort("awarded_krw", "application_id", descending=[True, False])["application_id"].to_list()


def edit_toml(round_dir: Path, old: str, new: str) -> None:
    path = round_dir / "round.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def edit_applications(round_dir: Path, expr_by_column: dict[str, pl.Expr] | None = None,
                      drop_ids: list[str] = ()) -> None:
    path = round_dir / "applications.csv"
    apps = pl.read_csv(path, infer_schema=False)
    if expr_by_column:
        apps = apps.with_columns(**expr_by_column)
    apps.filter(~pl.col("application_id").is_in(list(drop_ids))).write_csv(path)


def best_objective(problem, fixed: dict[int, int] | None = None) -> int:
    """Brute force: the best objective over every choice (fixed items as given)."""
    fixed = fixed or {}
    n, L = problem.n_items, problem.n_options
    free = [i for i in range(n) if i not in fixed]
    assert (L + 1) ** len(free) <= 400_000, "too big for brute force"
    combos = np.array(list(itertools.product(range(-1, L), repeat=len(free))), np.int64).reshape(-1, len(free))
    choice = np.full((len(combos), n), -1, np.int64)
    choice[:, free] = combos
    for i, o in fixed.items():
        choice[:, i] = o
    items = np.arange(n)
    col = choice + 1                                                    # 0 = not funded

    def pad(a):
        return np.concatenate([np.zeros(a.shape[:-1] + (1,), a.dtype), a], axis=-1)

    ok = np.concatenate([np.ones((n, 1), bool), problem.allowed], axis=1)[items, col].all(axis=1)
    ok &= (pad(problem.weight)[:, items, col].sum(axis=2) <= problem.capacity[:, None]).all(axis=0)
    if len(problem.cover):
        ok &= (pad(problem.cover)[:, items, col].sum(axis=2) >= 0).all(axis=0)
    company_weight = pad(problem.company_weight)[items, col]
    for c in np.unique(problem.company):
        ok &= company_weight[:, problem.company == c].sum(axis=1) <= problem.company_cap
    if not ok.any():
        return 0 if not fixed else -1
    return int(pad(problem.value)[items, col].sum(axis=1)[ok].max())


def without_quota(problem, q: int):
    keep = [k for k in range(len(problem.cover_names)) if k != q]
    return replace(problem, cover=problem.cover[keep], cover_names=tuple(problem.cover_names[k] for k in keep))


def model_of(out: Path):
    v = intake.load_validated(out / "intake")
    scores = pl.read_parquet(out / "scores.parquet")
    return build_model(v.applications, v.requests, v.capacity, scores, v.config)


# --- a published round, and a refill of it ---------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """v1 of a 12-application round (accept_by 2026-02-15, accept_within_days 9); the largest
    award declined and the others accepted; the refill as of 2026-02-10 published as v2."""
    root = tmp_path_factory.mktemp("base")
    round_dir = generate_round(root / "round", 12, seed=2)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write(f"\n[lifecycle]\naccept_by = {ACCEPT_BY}\naccept_within_days = {WITHIN_DAYS}\n")
    stages.run_round(round_dir, root / "out1")
    publish(root / "out1", root / "pub", lookup_iterations=ITER)
    won = awardees(root / "out1")
    assert len(won) >= 3
    write_csv(round_dir / "responses.csv", "application_id,response,responded_on",
              [f"{won[0]},declined,2026-02-01"] + [f"{a},accepted,2026-02-05" for a in won[1:]])
    report = refill.run_lifecycle(round_dir, root / "pub" / ROUND_ID, root / "out2", as_of=date(2026, 2, 10))
    info = publish(root / "out2", root / "pub", lookup_iterations=ITER)
    assert info["version"] == 2
    gained = sorted(set(awardees(root / "out2")) - set(won))
    assert gained, "the declined award funded nobody: pick another seed"
    return {"root": root, "round": round_dir, "pub": root / "pub", "won": won, "gained": gained,
            "report": report}


@pytest.fixture
def copy(base, tmp_path):
    """A private copy of the round folder, the published versions and the officers' audit trail
    beside them (which names the run folders refills read), to edit freely."""
    shutil.copytree(base["round"], tmp_path / "round")
    shutil.copytree(base["pub"], tmp_path / "pub")
    shutil.copytree(files.officer_root(base["pub"]), files.officer_root(tmp_path / "pub"))
    return {**base, "round": tmp_path / "round", "pub": tmp_path / "pub", "tmp": tmp_path}


# --- accept_within_days ----------------------------------------------------------------------

def states_as_of(d: dict, day: date) -> dict[str, dict]:
    out = d["tmp"] / f"prep-{day}"
    refill.prepare(d["round"], d["pub"] / ROUND_ID, out, as_of=day)
    state = json.loads((out / files.LIFECYCLE_STATE).read_text())
    return {s["application_id"]: s for s in state["awards"]}


def test_award_first_offered_by_a_refill_lapses_after_accept_within_days(copy):
    # v2 (as of 2026-02-10) first offered the gained awards: deadline 2026-02-10 + 9 days =
    # 2026-02-19 (later than accept_by 2026-02-15, which binds the awards of v1 only).
    on_deadline = states_as_of(copy, date(2026, 2, 19))
    after = states_as_of(copy, date(2026, 2, 20))
    for a in copy["gained"]:
        assert on_deadline[a]["offered_as_of"] == "2026-02-10"
        assert on_deadline[a]["deadline"] == "2026-02-19"
        assert on_deadline[a]["state"] == "pending"
        assert after[a]["state"] == "lapsed"
    for a in copy["won"][1:]:                         # accepted before accept_by: kept
        assert on_deadline[a]["state"] == after[a]["state"] == "accepted"
        assert on_deadline[a]["deadline"] == str(ACCEPT_BY)


def test_late_acceptance_of_a_refill_award_lapses(copy):
    gained = copy["gained"][0]
    with open(copy["round"] / "responses.csv", "a", encoding="utf-8") as handle:
        handle.write(f"{gained},accepted,2026-02-20\n")            # one day after 2026-02-19
    late = states_as_of(copy, date(2026, 2, 21))[gained]
    assert late["state"] == "lapsed" and "after the deadline 2026-02-19" in late["note"]


# --- budget override, waitlist cap --------------------------------------------------------------

def test_budget_override_reaches_the_run(tmp_path):
    round_dir = generate_round(tmp_path / "round", 30, seed=4)
    budget = load_config(round_dir).round.budget_krw
    override = budget // 3 + 1
    report = stages.run_round(round_dir, tmp_path / "out", budget_krw=override)
    assert report["summary"]["budget_krw"] == override
    assert 0 < report["summary"]["awarded_krw"] <= override
    budget_row = next(r for r in report["limits"]["rows"] if r["limit"] == "budget")
    assert budget_row["capacity"] == override
    kept = load_config(tmp_path / "out" / "intake")   # the round.toml in force
    assert kept.round.budget_krw == override


@pytest.mark.parametrize("size", [3, 0])
def test_waitlist_holds_at_most_waitlist_size(tmp_path, size):
    round_dir = generate_round(tmp_path / "round", 40, seed=6, oversubscription=4.0)
    edit_toml(round_dir, "waitlist_size = 30", f"waitlist_size = {size}")
    stages.run_round(round_dir, tmp_path / "out")
    out = pl.read_parquet(tmp_path / "out" / "outcomes.parquet")
    ranked = out.filter(pl.col("waitlist_rank").is_not_null()).sort("waitlist_rank")
    assert ranked["waitlist_rank"].to_list() == list(range(1, size + 1))
    # the best not-fully-funded applications by score (then id), and nobody else
    scored = out.filter(pl.col("score").is_not_null() & (pl.col("reason") != "below_min_score")
                        & (pl.col("reason") != "funded"))
    assert scored.height > size + 3
    best = scored.sort(["score", "application_id"], descending=[True, False]).head(size)
    assert ranked["application_id"].to_list() == best["application_id"].to_list()
    # everybody else not funded is not_selected (not waitlisted)
    rest = out.filter(pl.col("waitlist_rank").is_null() & (pl.col("awarded_krw") == 0)
                      & pl.col("score").is_not_null())
    assert set(rest["status"]) == {"not_selected"}


# --- appeals: make_eligible -------------------------------------------------------------------

def test_make_eligible_appeal_brings_an_ineligible_application_into_the_round(copy):
    # X loses one reviewer on "impact": fewer than min_reviewers -> ineligible (missing_reviews).
    out1 = pl.read_parquet(copy["root"] / "out1" / "outcomes.parquet")
    x = out1.filter(pl.col("status") != "awarded").sort("application_id")["application_id"][0]
    reviews = pl.read_csv(copy["round"] / "reviews.csv", infer_schema=False)
    mine = (pl.col("application_id") == x) & (pl.col("criterion") == "impact")
    first = reviews.filter(mine)["reviewer_id"].sort()[0]
    reviews.filter(~mine | (pl.col("reviewer_id") == first)).write_csv(copy["round"] / "reviews.csv")
    write_csv(copy["round"] / "appeals.csv", "application_id,decision,note,make_eligible",
              [f"{x},upheld,panel had a conflict of interest,true"])

    out = copy["tmp"] / "appeal"
    refill.run_lifecycle(copy["round"], copy["pub"] / ROUND_ID, out, as_of=date(2026, 2, 12))
    validated = pl.read_parquet(out / "intake" / "applications.parquet")
    assert validated.filter(pl.col("application_id") == x)["eligible"][0]
    state = json.loads((out / files.LIFECYCLE_STATE).read_text())
    assert state["kind"] == "appeal" and state["reallocate"]
    assert state["appeals"][0]["effect"] == "made eligible (was ineligible: missing_reviews)"
    row = pl.read_parquet(out / "outcomes.parquet").filter(pl.col("application_id") == x).row(0, named=True)
    assert row["status"] != "ineligible" and row["score"] is not None and row["rank"] is not None

    # without the appeal the same folder leaves X ineligible
    (copy["round"] / "appeals.csv").unlink()
    plain = copy["tmp"] / "plain"
    refill.run_lifecycle(copy["round"], copy["pub"] / ROUND_ID, plain, as_of=date(2026, 2, 12))
    row = pl.read_parquet(plain / "outcomes.parquet").filter(pl.col("application_id") == x).row(0, named=True)
    assert (row["status"], row["reason"]) == ("ineligible", "missing_reviews")


def test_make_eligible_cannot_repair_an_invalid_field(copy):
    out1 = pl.read_parquet(copy["root"] / "out1" / "outcomes.parquet")
    y = out1.filter(pl.col("status") != "awarded").sort("application_id")["application_id"][-1]
    edit_applications(copy["round"], {"company_size": pl.when(pl.col("application_id") == y)
                                       .then(pl.lit("huge")).otherwise(pl.col("company_size"))})
    write_csv(copy["round"] / "appeals.csv", "application_id,decision,note,make_eligible",
              [f"{y},upheld,size corrected by phone,true"])
    with pytest.raises(RoundError, match=f"appeal of '{y}': make_eligible cannot repair invalid field"):
        refill.run_lifecycle(copy["round"], copy["pub"] / ROUND_ID, copy["tmp"] / "o", as_of=date(2026, 2, 12))


# --- the previous version --------------------------------------------------------------------

def test_tampered_previous_version_is_refused(copy):
    version = copy["pub"] / ROUND_ID / "v2"
    with open(version / "awards_public.csv", "a", encoding="utf-8") as handle:
        handle.write("X-999,Fake Co.,Seoul,project,1,1,1\n")
    with pytest.raises(RoundError, match="awards_public.csv.*refusing to build on a tampered version"):
        refill.run_lifecycle(copy["round"], copy["pub"] / ROUND_ID, copy["tmp"] / "o", as_of=date(2026, 2, 12))
    # an intact older version is still usable
    assert load_previous(copy["pub"] / ROUND_ID / "v1").label == "v1"


# --- protected awards ------------------------------------------------------------------------

def run_refill(copy):
    return refill.run_lifecycle(copy["round"], copy["pub"] / ROUND_ID, copy["tmp"] / "o",
                                   as_of=date(2026, 2, 12))


def test_protected_award_now_ineligible_is_an_error(copy):
    kept = copy["won"][1]
    edit_applications(copy["round"], {"company_size": pl.when(pl.col("application_id") == kept)
                                       .then(pl.lit("huge")).otherwise(pl.col("company_size"))})
    with pytest.raises(RoundError, match=f"protected award\\(s\\) {kept} are now ineligible"):
        run_refill(copy)


def test_protected_award_no_longer_in_the_round_is_an_error(copy):
    kept = copy["gained"][0]          # offered by v2, pending (no response row to trip over)
    edit_applications(copy["round"], drop_ids=[kept])
    with pytest.raises(RoundError, match=f"protected award {kept} is not selectable in this run"):
        run_refill(copy)


def test_protected_award_at_a_level_that_no_longer_exists_is_an_error(copy):
    v2 = pl.read_parquet(copy["pub"] / ROUND_ID / "v2" / "awards_public.parquet")
    fractions = set(v2["award_fraction"].to_list())
    levels = [x for x in (0.25, 0.5, 0.75, 1.0) if x not in fractions]
    edit_toml(copy["round"], "levels = [0.5, 0.75, 1.0]", f"levels = {levels}")
    with pytest.raises(RoundError, match="was published at .*which is not an award level of round.toml any more"):
        run_refill(copy)


def test_protected_award_over_a_lowered_company_cap_is_an_error(copy):
    out2 = pl.read_parquet(copy["root"] / "out2" / "outcomes.parquet").filter(pl.col("status") == "awarded")
    largest = int(out2["awarded_krw"].max())
    text = (copy["round"] / "round.toml").read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.startswith("max_krw_per_company"))
    edit_toml(copy["round"], old, f"max_krw_per_company = {largest - 1}")
    with pytest.raises(RoundError, match="no longer fits the round's limits"):
        run_refill(copy)


def test_refill_that_cannot_hold_a_quota_is_an_error(copy):
    # A new quota for a group nobody belongs to: with the protected awards fixed it cannot hold.
    edit_applications(copy["round"], {"region": pl.when(pl.col("region") == "Jeju").then(pl.lit("Busan"))
                                      .otherwise(pl.col("region"))})
    with open(copy["round"] / "round.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[[quota]]\nname = "jeju_only"\nregions_in = ["Jeju"]\nmin_share = 0.5\n')
    with pytest.raises(RoundError, match="the refill has no feasible allocation"):
        run_refill(copy)
    assert not (copy["tmp"] / "o" / "outcomes.parquet").exists()


# --- quota objective costs ---------------------------------------------------------------------

def demanding_quotas_round(base: Path, seed: int) -> Path:
    """A 7-application round whose two quotas (non_capital, first_time) both ask 60 %."""
    round_dir = generate_round(base / f"round{seed}", 7, seed=seed, oversubscription=3.0)
    text = (round_dir / "round.toml").read_text(encoding="utf-8")
    lines = [("min_share = 0.60" if line.startswith("min_share") else line) for line in text.splitlines()]
    (round_dir / "round.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return round_dir


def test_quota_costs_equal_the_brute_force_difference(tmp_path):
    """Each quota's objective_cost = best objective without it - best objective with all quotas."""
    positive = 0
    for seed in (1, 3, 5, 8):
        round_dir = demanding_quotas_round(tmp_path, seed)
        report = stages.run_round(round_dir, tmp_path / f"out{seed}")
        problem = model_of(tmp_path / f"out{seed}").problem
        with_all = best_objective(problem)
        assert report["objective"] == with_all, seed
        costs = {q["quota"]: q["objective_cost"] for q in report["limits"]["quotas"]}
        assert set(costs) == set(problem.cover_names) == {"non_capital", "first_time"}
        for q, name in enumerate(problem.cover_names):
            assert costs[name] == best_objective(without_quota(problem, q)) - with_all, (seed, name)
            positive += costs[name] > 0
    assert positive >= 2, "the quotas cost nothing in these rounds: the check proves little"


def test_refill_quota_costs_equal_the_brute_force_difference(tmp_path):
    """A refill's quota costs: re-solved with the protected awards fixed, against brute force."""
    round_dir = demanding_quotas_round(tmp_path, 1)
    stages.run_round(round_dir, tmp_path / "out1")
    won = awardees(tmp_path / "out1")
    assert len(won) == 2
    write_csv(round_dir / "responses.csv", "application_id,response,responded_on",
              [f"{won[1]},declined,2026-02-01"])
    report = refill.run_lifecycle(round_dir, tmp_path / "out1", tmp_path / "out2", as_of=date(2026, 2, 10))
    rm = refill.build_refill_model(tmp_path / "out2")
    problem, fixed = rm.model.problem, rm.fixed
    assert len(fixed) == 1
    with_all = best_objective(problem, fixed)
    assert report["objective"] == with_all
    costs = {q["quota"]: q["objective_cost"] for q in report["limits"]["quotas"]}
    for q, name in enumerate(problem.cover_names):
        assert costs[name] == best_objective(without_quota(problem, q), fixed) - with_all, name
    assert all(cost > 0 for cost in costs.values())
