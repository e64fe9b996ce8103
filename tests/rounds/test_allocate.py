"""End to end on generated rounds: invariants, optimality, determinism."""

import itertools
import tomllib
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.rounds import allocate as stages
from bench.synthetic import generate_round
from tests.rounds.invariants import check_invariants


def run(round_dir: Path, out: Path) -> dict:
    return stages.run_round(round_dir, out)


def test_generated_round_honours_every_limit(tmp_path):
    round_dir = generate_round(tmp_path / "round", 120, seed=3, bad_rows=True)
    report = run(round_dir, tmp_path / "out")
    check_invariants(round_dir, tmp_path / "out")
    assert report["status"] == "optimal" and report["gap"] == 0
    assert report["bound"] >= report["objective"]
    assert report["summary"]["by_status"]["ineligible"] > 0
    assert report["summary"]["funded"] > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(3, 40),
       oversubscription=st.floats(1.0, 8.0))
def test_invariants_hold_on_random_rounds(tmp_path_factory, seed, n, oversubscription):
    base = tmp_path_factory.mktemp("r")
    round_dir = generate_round(base / "round", n, seed=seed, oversubscription=oversubscription)
    report = run(round_dir, base / "out")
    check_invariants(round_dir, base / "out")
    assert report["bound"] >= report["objective"]


def brute_force_objective(out: Path, policy: dict) -> int:
    """Best Σ score_centi × awarded_krw by enumerating every level combination, from the files."""
    scores = pl.read_parquet(out / "scores.parquet")
    apps = pl.read_parquet(out / "intake" / "applications.parquet").filter(pl.col("eligible"))
    requests = pl.read_parquet(out / "intake" / "requests.parquet")
    capacity = pl.read_parquet(out / "intake" / "capacity.parquet")
    price = dict(zip(capacity["gpu_type"], capacity["krw_per_gpu_hour"]))
    cap_hours = dict(zip(capacity["gpu_type"], capacity["gpu_hours"]))
    share = Fraction(str(policy["round"]["copay_share"]))
    items = []
    for app in apps.join(scores, on="application_id").filter(
            pl.col("score") >= policy["award"]["min_score"]).iter_rows(named=True):
        req = requests.filter(pl.col("application_id") == app["application_id"])
        options = [(0, {}, 0)]
        for level in policy["award"]["levels"]:
            f = Fraction(str(level))
            hours = {t: h * f.numerator // f.denominator for t, h in zip(req["gpu_type"], req["gpu_hours"])}
            cost = sum(h * price[t] for t, h in hours.items())
            awarded = cost - (2 * cost * share.numerator + share.denominator) // (2 * share.denominator)
            options.append((awarded, hours, round(app["score"] * 100) * awarded))
        items.append((app, options))
    best = 0
    for combo in itertools.product(*[opts for _, opts in items]):
        total = sum(c[0] for c in combo)
        if total > policy["round"]["budget_krw"]:
            continue
        if any(sum(c[1].get(t, 0) for c in combo) > cap for t, cap in cap_hours.items()):
            continue
        companies: dict[str, int] = {}
        for (app, _), c in zip(items, combo):
            key = app["business_no"].replace("-", "")
            companies[key] = companies.get(key, 0) + c[0]
        if any(v > policy["award"]["max_krw_per_company"] for v in companies.values()):
            continue
        ok = True
        for quota in policy.get("quota", []):
            group = sum(c[0] for (app, _), c in zip(items, combo)
                        if ("regions_not_in" not in quota or app["region"] not in quota["regions_not_in"])
                        and ("prior_awards_max" not in quota or app["prior_awards"] <= quota["prior_awards_max"]))
            ok &= Fraction(group) >= Fraction(str(quota["min_share"])) * total
        if ok:
            best = max(best, sum(c[2] for c in combo))
    return best


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_optimal_against_brute_force_on_tiny_rounds(tmp_path, seed):
    round_dir = generate_round(tmp_path / "round", 6, seed=seed, oversubscription=3.0)
    report = run(round_dir, tmp_path / "out")
    policy = tomllib.loads((round_dir / "round.toml").read_text(encoding="utf-8"))
    assert report["objective"] == brute_force_objective(tmp_path / "out", policy)
    assert report["status"] == "optimal"


def test_two_runs_give_identical_bytes(tmp_path):
    round_dir = generate_round(tmp_path / "round", 150, seed=11, bad_rows=True)
    run(round_dir, tmp_path / "a")
    run(round_dir, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("outcomes.csv") in files and Path("solution.json") in files
    for rel in files:
        if rel.name == "timings.json":
            continue
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_quota_nobody_can_meet_is_explained(tmp_path):
    round_dir = generate_round(tmp_path / "round", 30, seed=5)
    toml = (round_dir / "round.toml").read_text(encoding="utf-8")
    toml += '\n[[quota]]\nname = "jeju_only"\nregions_in = ["Jeju"]\nmin_share = 0.5\n'
    apps = pl.read_csv(round_dir / "applications.csv", infer_schema=False)
    apps.with_columns(region=pl.when(pl.col("region") == "Jeju").then(pl.lit("Busan"))
                      .otherwise(pl.col("region"))).write_csv(round_dir / "applications.csv")
    (round_dir / "round.toml").write_text(toml, encoding="utf-8")
    report = run(round_dir, tmp_path / "out")
    assert report["summary"]["funded"] == 0
    text = " ".join(report["warnings"])
    assert "jeju_only" in text and "empty allocation" in text
