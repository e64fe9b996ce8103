"""The synthetic round generator: determinism, validity, realism, formats, defects, CLI."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from allocation import schema
from bench import synthetic
from allocation.config import load_config
from allocation.identifiers import complete_business_no, is_valid_business_no

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "rounds" / "sample"
SAMPLE_ARGS = dict(n_applications=300, seed=2026, bad_rows=True, encoding={"applications": "cp949"})
STEMS = [t.stem for t in schema.TABLES]


def read_table(folder: Path, stem: str, table_format: str = "csv", encoding: str = "utf-8") -> pl.DataFrame:
    path = folder / f"{stem}.{table_format}"
    if table_format == "csv":
        return pl.read_csv(path, encoding="utf8" if encoding == "utf-8" else encoding,
                           infer_schema=False)
    if table_format == "xlsx":
        return pl.read_excel(path)
    return pl.read_parquet(path)


def as_text(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(pl.all().cast(pl.String))


def find_defects(tables: dict[str, pl.DataFrame], min_reviewers: int) -> set[tuple[str, tuple[int, ...], str]]:
    """An independent checker: (table, rows as the officer sees them, application) per problem."""
    apps, reqs, revs, cap = (as_text(tables[s]) for s in STEMS)
    found: set[tuple[str, tuple[int, ...], str]] = set()

    def valid_date(text: str) -> bool:
        try:
            date.fromisoformat(text)
            return True
        except ValueError:
            return False

    id_counts = apps["application_id"].value_counts()
    dup_ids = set(id_counts.filter(pl.col("count") > 1)["application_id"])
    for i, row in enumerate(apps.iter_rows(named=True)):
        r = i + 2
        if row["application_id"] in dup_ids:
            found.add(("applications", (r,), row["application_id"]))
        if not is_valid_business_no(row["business_no"]):
            found.add(("applications", (r,), row["application_id"]))
        if row["region"] not in schema.REGIONS or row["company_size"] not in schema.COMPANY_SIZES:
            found.add(("applications", (r,), row["application_id"]))
        if not valid_date(row["founded_on"]) or len(row["receipt_code"]) < 8:
            found.add(("applications", (r,), row["application_id"]))
    # the duplicated id is one problem spanning two rows
    for app_id in dup_ids:
        rows = tuple(sorted(r for (t, (r,), a) in found if t == "applications" and a == app_id))
        found = {f for f in found if not (f[0] == "applications" and f[2] == app_id)}
        found.add(("applications", rows, app_id))

    known_apps = set(apps["application_id"])
    gpus = set(cap["gpu_type"])
    for i, row in enumerate(reqs.iter_rows(named=True)):
        if (row["gpu_type"] not in gpus or int(row["gpu_hours"]) < 1
                or row["application_id"] not in known_apps):
            found.add(("requests", (i + 2,), row["application_id"]))
    for app_id in sorted(known_apps - set(reqs["application_id"])):
        found.add(("requests", (), app_id))

    for i, row in enumerate(revs.iter_rows(named=True)):
        if not 0 <= float(row["score"]) <= 100:
            found.add(("reviews", (i + 2,), row["application_id"]))
    panel = (revs.with_row_index().group_by("application_id")
             .agg(pl.col("reviewer_id").n_unique().alias("k"), (pl.col("index") + 2).alias("rows")))
    for app_id, k, rows in panel.filter(pl.col("k") < min_reviewers).iter_rows():
        found.add(("reviews", tuple(sorted(rows)), app_id))
    for app_id in sorted(known_apps - set(revs["application_id"])):
        found.add(("reviews", (), app_id))
    return found


@pytest.fixture(scope="module")
def clean() -> synthetic.SyntheticRound:
    return synthetic.build_round(1_000, seed=11)


@pytest.fixture(scope="module")
def bad() -> synthetic.SyntheticRound:
    return synthetic.build_round(1_000, seed=11, bad_rows=True)


# --- building blocks ------------------------------------------------------------------


def test_vectorised_check_digit_matches_identifiers():
    rng = np.random.default_rng(5)
    nine = rng.integers(100_000_000, 1_000_000_000, size=2_000)
    digits = synthetic._check_digits(nine)
    for value, check in zip(nine.tolist(), digits.tolist()):
        assert complete_business_no(str(value))[-1] == str(check)


def test_unique_draw_is_unique_and_deterministic():
    def run():
        rng = np.random.default_rng(3)
        return synthetic._unique_draw(lambda k: rng.integers(0, 5_000, size=k), 4_000)
    a, b = run(), run()
    assert len(np.unique(a)) == 4_000
    assert (a == b).all()


# --- clean rounds ------------------------------------------------------------------------


def test_clean_round_is_valid(clean):
    apps, reqs, revs, cap = (clean.tables[s] for s in STEMS)
    n = 1_000
    assert apps.height == n and not clean.bad_rows
    assert apps.columns == list(schema.APPLICATIONS.required)
    assert reqs.columns == list(schema.REQUESTS.required)
    assert revs.columns == list(schema.REVIEWS.required)
    assert cap.columns == list(schema.CAPACITY.required)
    assert find_defects(clean.tables, min_reviewers=2) == set()

    assert all(is_valid_business_no(b) for b in apps["business_no"])
    assert apps["business_no"].str.contains(r"^\d{3}-\d{2}-\d{5}$").all()
    assert apps["application_id"].to_list() == [f"R1-{i:06d}" for i in range(1, n + 1)]
    assert apps["receipt_code"].str.contains(r"^[A-Z0-9]{10}$").all()
    assert apps["receipt_code"].n_unique() == n
    assert set(apps["region"]) == set(schema.REGIONS)              # all 17 present
    assert set(apps["company_size"]) == set(schema.COMPANY_SIZES)
    founded = apps["founded_on"].str.to_date("%Y-%m-%d")
    assert founded.min() >= date(2005, 1, 1) and founded.max() <= date(2025, 12, 31)
    assert set(apps["prior_awards"]) <= {0, 1, 2, 3}

    # each company (business number) has one name and profile; ~5% apply twice
    per_company = apps.group_by("business_no").agg(
        pl.len(), *(pl.col(c).n_unique().alias(c) for c in
                    ("company_name", "region", "company_size", "founded_on", "prior_awards")))
    assert per_company["len"].max() == 2
    assert 0.03 <= (per_company["len"] == 2).mean() <= 0.07
    assert (per_company.select(pl.exclude("business_no", "len")) == 1).to_numpy().all()

    # requests: 1-2 known GPU types per application, positive hours
    per_app = reqs.group_by("application_id").agg(pl.len(), pl.col("gpu_type").n_unique().alias("types"))
    assert per_app.height == n
    assert per_app["len"].is_in([1, 2]).all() and (per_app["len"] == per_app["types"]).all()
    assert set(reqs["gpu_type"]) == set(synthetic.GPU_TYPES) == set(cap["gpu_type"])
    assert reqs["gpu_hours"].min() >= 10

    # reviews: 3 distinct reviewers x 3 criteria each, scores 0..100
    k = revs.group_by("application_id").agg(pl.col("reviewer_id").n_unique(), pl.len())
    assert (k["reviewer_id"] == 3).all() and (k["len"] == 9).all()
    assert set(revs["criterion"]) == set(synthetic.CRITERIA)
    assert revs["score"].min() >= 0 and revs["score"].max() <= 100
    assert revs["reviewer_id"].str.contains(r"^REV-\d{3,}$").all()


def test_clean_round_looks_realistic(clean):
    apps, reqs, revs, cap = (clean.tables[s] for s in STEMS)
    hangul = apps["company_name"].str.contains(r"[가-힣]")
    assert 0.75 < hangul.mean() < 0.98                           # mostly Korean, some Latin
    assert apps["company_name"].str.contains(r"(Inc\.|Co\., Ltd\.|Corp\.)$").any()
    assert apps["company_name"].str.contains(r"^\(주\)|주식회사").mean() > 0.5
    assert apps["project_title"].str.contains(r"^[가-힣A-Za-z0-9()\- ]+$").all()
    assert 0.42 <= apps["region"].is_in(["Seoul", "Gyeonggi"]).mean() <= 0.58
    assert 0.52 <= (apps["prior_awards"] == 0).mean() <= 0.68

    price = dict(zip(cap["gpu_type"], cap["krw_per_gpu_hour"]))
    assert price == {"H200": 9_500, "H100": 7_000, "A100": 3_500, "L40S": 1_800}
    cost = (reqs.with_columns(krw=pl.col("gpu_hours") * pl.col("gpu_type").replace_strict(price))
            .group_by("application_id").agg(pl.col("krw").sum())["krw"])
    assert ((cost >= 10e6) & (cost <= 350e6)).mean() > 0.9
    assert 0.01 < (cost > synthetic.MAX_KRW_PER_COMPANY).mean() < 0.10   # some above the cap

    # reviewer temperament matters: reviewer means spread well beyond sampling noise
    means = revs.group_by("reviewer_id").agg(pl.col("score").mean())["score"]
    assert means.std() > 5


def test_round_toml_parses_and_sizes_budget(clean, tmp_path):
    out = synthetic.write_round(clean, tmp_path / "r")
    cfg = load_config(out)
    assert cfg.round.id == "2026-R1"
    assert cfg.round.copay_share == 0.2
    assert cfg.award.levels == [0.5, 0.75, 1.0]
    assert cfg.award.max_krw_per_company == 300_000_000
    assert cfg.scoring.min_reviewers == 2
    assert set(cfg.scoring.weights) == set(synthetic.CRITERIA)
    assert {q.name for q in cfg.quotas} == {"non_capital", "first_time"}
    assert cfg.round.budget_krw == clean.stats["budget_krw"]
    # every setting line is preceded by a comment for officers
    lines = (out / "round.toml").read_text(encoding="utf-8").splitlines()
    for prev, line in zip(lines, lines[1:]):
        if "=" in line and not line.startswith("#") and not line.startswith("name") \
                and not line.startswith(("regions_not_in", "prior_awards_max")):
            assert prev.startswith("#"), line


def test_quotas_are_achievable_and_one_binds(clean):
    apps, reqs, cap = clean.tables["applications"], clean.tables["requests"], clean.tables["capacity"]
    from allocation.config import parse_config
    cfg = parse_config(clean.config_text)
    share = {q.name: q.min_share for q in cfg.quotas}
    price = dict(zip(cap["gpu_type"], cap["krw_per_gpu_hour"]))
    cost = (reqs.with_columns(krw=pl.col("gpu_hours") * pl.col("gpu_type").replace_strict(price))
            .group_by("application_id").agg(pl.col("krw").sum()))
    d = apps.join(cost, on="application_id")
    total = d["krw"].sum()
    fundable = cfg.round.budget_krw / (1 - cfg.round.copay_share)
    nc = d.filter(cfg.group("non_capital").expression())["krw"].sum()
    ft = d.filter(cfg.group("first_time").expression())["krw"].sum()
    # binding: the non-capital minimum is above the group's natural share of the demand
    assert share["non_capital"] > nc / total
    assert share["first_time"] < ft / total
    # achievable: each group alone requests far more than its minimum of the fundable money
    assert nc >= 2 * share["non_capital"] * fundable
    assert ft >= 2 * share["first_time"] * fundable


@pytest.mark.parametrize("oversubscription", [2.0, 4.0, 8.0])
def test_oversubscription_and_binding_resources(oversubscription):
    r = synthetic.build_round(600, seed=2, oversubscription=oversubscription)
    reqs, cap = r.tables["requests"], r.tables["capacity"]
    cfg_budget = int(re.search(r"^budget_krw = ([\d_]+)", r.config_text, re.M).group(1).replace("_", ""))
    price = dict(zip(cap["gpu_type"], cap["krw_per_gpu_hour"]))
    total = (reqs["gpu_hours"] * reqs["gpu_type"].replace_strict(price)).sum()
    fundable = cfg_budget / (1 - synthetic.COPAY_SHARE)
    assert total / fundable == pytest.approx(oversubscription, rel=0.02)
    demand = reqs.group_by("gpu_type").agg(pl.col("gpu_hours").sum())
    d = dict(zip(demand["gpu_type"], demand["gpu_hours"]))
    c = dict(zip(cap["gpu_type"], cap["gpu_hours"]))
    # H200 runs out before the money does; all capacity together outlasts the money
    assert c["H200"] * oversubscription < d["H200"]
    assert sum(c[g] * price[g] for g in c) > fundable
    assert all(d[g] > c[g] for g in c)


# --- determinism and formats ------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = synthetic.generate_round(tmp_path / "a", 400, seed=9, bad_rows=True)
    b = synthetic.generate_round(tmp_path / "b", 400, seed=9, bad_rows=True)
    c = synthetic.generate_round(tmp_path / "c", 400, seed=10, bad_rows=True)
    for name in [f"{s}.csv" for s in STEMS] + ["round.toml"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "README.md").read_text().replace(str(a), "X") == (b / "README.md").read_text().replace(str(b), "X")
    assert (a / "applications.csv").read_bytes() != (c / "applications.csv").read_bytes()


@pytest.mark.parametrize("table_format", ["csv", "xlsx", "parquet"])
def test_every_format_writes_and_reads_back(tmp_path, table_format):
    built = synthetic.build_round(120, seed=4, bad_rows=True)
    out = synthetic.write_round(built, tmp_path / table_format, table_format=table_format)
    for stem in STEMS:
        back = read_table(out, stem, table_format)
        assert as_text(back).equals(as_text(built.tables[stem])), stem
    assert load_config(out).round.id == "2026-R1"
    again = synthetic.write_round(built, tmp_path / "again", table_format=table_format)
    for stem in STEMS:
        name = f"{stem}.{table_format}"
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_switching_format_removes_stale_tables(tmp_path):
    synthetic.generate_round(tmp_path, 50, table_format="parquet")
    synthetic.generate_round(tmp_path, 50, table_format="csv")
    assert sorted(p.name for p in tmp_path.glob("applications.*")) == ["applications.csv"]


def test_cp949_csv_keeps_hangul(tmp_path):
    out = synthetic.generate_round(tmp_path, 200, seed=1, encoding={"applications": "cp949"})
    raw = (out / "applications.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    back = read_table(out, "applications", encoding="cp949")
    assert back["company_name"].str.contains(r"[가-힣]").any()
    assert back["project_title"].str.contains(r"[가-힣]").all()
    original = synthetic.build_round(200, seed=1).tables["applications"]
    assert as_text(back).equals(as_text(original))
    (out / "requests.csv").read_bytes().decode("utf-8")         # the others stay UTF-8
    everything = synthetic.generate_round(tmp_path / "all", 30, encoding="cp949")
    assert read_table(everything, "applications", encoding="cp949").height == 30


def test_bad_arguments_are_rejected(tmp_path, monkeypatch):
    with pytest.raises(ValueError):
        synthetic.generate_round(tmp_path, 10, bad_rows=True)           # too small for defects
    with pytest.raises(ValueError):
        synthetic.generate_round(tmp_path, 10, table_format="json")
    with pytest.raises(ValueError):
        synthetic.generate_round(tmp_path, 10, table_format="parquet", encoding="cp949")
    with pytest.raises(ValueError):
        synthetic.generate_round(tmp_path, 10, encoding="latin-1")
    monkeypatch.setattr(synthetic, "EXCEL_MAX_ROWS", 100)
    with pytest.raises(ValueError, match="Excel"):
        synthetic.generate_round(tmp_path, 20, table_format="xlsx")


# --- defects ---------------------------------------------------------------------------


def test_bad_rows_are_exactly_the_documented_defects(bad, clean):
    documented = {(b.table, b.rows, b.application_id) for b in bad.bad_rows}
    # a missing request row is found by its application, not by a row
    assert find_defects(bad.tables, min_reviewers=2) == documented
    assert len(bad.bad_rows) == 11
    apps = bad.tables["applications"]
    assert apps.height == 1_001                                       # + the pasted duplicate
    assert apps["application_id"].n_unique() == 1_000

    # nothing else changed: the clean round plus the defects
    expected_changes = {"applications": 4, "requests": 2 + 1, "reviews": 1}   # the pasted row is an exact copy
    for stem, n_changed in expected_changes.items():
        extra = bad.tables[stem].join(clean.tables[stem], on=bad.tables[stem].columns, how="anti")
        assert extra.height == n_changed, stem
    missing_requests = clean.tables["requests"].join(bad.tables["requests"], on=["application_id", "gpu_type"], how="anti")
    one_reviewer = [b for b in bad.bad_rows if b.expected_reason == "missing_reviews"][0]
    no_request = [b for b in bad.bad_rows if b.expected_reason == "no_request"][0]
    assert set(missing_requests["application_id"]) <= {no_request.application_id,
                                                       *(b.application_id for b in bad.bad_rows if b.column == "gpu_type")}
    lost_reviews = clean.tables["reviews"].join(bad.tables["reviews"], on=["application_id", "reviewer_id", "criterion"], how="anti")
    assert set(lost_reviews["application_id"]) == {one_reviewer.application_id}
    assert lost_reviews.height == 2 * len(synthetic.CRITERIA)


def test_bad_row_kinds_and_locations(bad):
    by_column = {(b.table, b.column): b for b in bad.bad_rows}
    apps, reqs, revs = (bad.tables[s] for s in STEMS[:3])

    def cell(df, row, column):
        return df[row - 2, column]

    b = by_column["applications", "business_no"]
    assert not is_valid_business_no(cell(apps, b.rows[0], "business_no"))
    assert cell(apps, by_column["applications", "region"].rows[0], "region") == "Tokyo"
    assert cell(apps, by_column["applications", "founded_on"].rows[0], "founded_on") == "2019-13-45"
    assert len(cell(apps, by_column["applications", "receipt_code"].rows[0], "receipt_code")) == 5
    dup = by_column["applications", "application_id"]
    assert len(dup.rows) == 2 and dup.rows[1] == dup.rows[0] + 1
    assert apps.slice(dup.rows[0] - 2, 2)["application_id"].n_unique() == 1
    assert cell(reqs, by_column["requests", "gpu_type"].rows[0], "gpu_type") == "V100"
    assert cell(reqs, by_column["requests", "gpu_hours"].rows[0], "gpu_hours") == -5
    assert cell(revs, by_column["reviews", "score"].rows[0], "score") == 105
    for b in bad.bad_rows:                                     # application rows point right
        if b.application_row is not None:
            assert cell(apps, b.application_row, "application_id") == b.application_id
        for row in b.rows:
            if b.table != "applications" and b.application_id:
                assert cell(bad.tables[b.table], row, "application_id") == b.application_id
    # the broken request rows belong to applications that keep one valid request
    for column in ("gpu_type", "gpu_hours"):
        app_id = by_column["requests", column].application_id
        assert reqs.filter(pl.col("application_id") == app_id).height == 2


def test_sample_folder_is_in_sync_with_the_generator(tmp_path):
    assert SAMPLE.is_dir()
    out = synthetic.generate_round(tmp_path / "sample", **SAMPLE_ARGS)
    for name in [f"{s}.csv" for s in STEMS] + ["round.toml"]:
        assert (SAMPLE / name).read_bytes() == (out / name).read_bytes(), \
            f"{name} is stale: regenerate with the command in data/rounds/README.md"
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    assert readme == (out / "README.md").read_text(encoding="utf-8").replace(str(out), "data/rounds/sample")
    command = "python -m bench.synthetic data/rounds/sample --applications 300 --seed 2026 " \
              "--bad-rows --table-encoding applications=cp949"
    assert command in readme
    assert command in (SAMPLE.parent / "README.md").read_text(encoding="utf-8")


def test_sample_readme_lists_every_bad_row():
    built = synthetic.build_round(300, seed=2026, bad_rows=True)
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(table) == len(built.bad_rows) == 11
    for line, b in zip(table, built.bad_rows):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{b.table}.csv"
        assert cells[2] == (", ".join(map(str, b.rows)) if b.rows else "(none)")
        assert cells[3].startswith(b.application_id)
    apps = read_table(SAMPLE, "applications", encoding="cp949")
    assert apps.height == 301


# --- CLI and speed ----------------------------------------------------------------------


def test_cli(tmp_path, capsys):
    args = synthetic.build_parser().parse_args(["x", "--applications", "5"])
    assert args.applications == 5 and args.table_format == "csv" and args.seed == 0
    assert synthetic.main([str(tmp_path / "r"), "--applications", "40", "--seed", "3", "--bad-rows",
                           "--format", "parquet"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert pl.read_parquet(tmp_path / "r" / "applications.parquet").height == 41
    assert synthetic.main([str(tmp_path / "c"), "-n", "30", "--table-encoding", "applications=cp949"]) == 0
    assert read_table(tmp_path / "c", "applications", encoding="cp949").height == 30
    assert synthetic.main([str(tmp_path / "e"), "-n", "5", "--bad-rows"]) == 2
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "f"), "-n", "5", "--table-encoding", "nonsense"])


def test_generation_at_size(tmp_path):
    """A written 1k round with bad rows and a built 100k round are what they should be.

    No wall-clock limits here (shared 2-core machines make them flaky); speed belongs in bench/.
    """
    out = synthetic.generate_round(tmp_path, 1_000, seed=1, bad_rows=True)
    built = synthetic.build_round(1_000, seed=1, bad_rows=True)
    assert {p.name for p in out.iterdir()} >= {f"{s}.csv" for s in STEMS} | {"round.toml", "README.md"}
    assert load_config(out).round.id == "2026-R1"
    written = {s: read_table(out, s) for s in STEMS}
    assert written["applications"].height == 1_001                    # + the pasted duplicate
    assert find_defects(written, min_reviewers=2) == {(b.table, b.rows, b.application_id)
                                                      for b in built.bad_rows}

    n = 100_000
    big = synthetic.build_round(n, seed=1)
    apps, reqs, revs, cap = (big.tables[s] for s in STEMS)
    assert not big.bad_rows
    assert apps.height == n and apps.columns == list(schema.APPLICATIONS.required)
    assert apps["application_id"].to_list() == [f"R1-{i:06d}" for i in range(1, n + 1)]
    assert apps["receipt_code"].n_unique() == n
    assert apps["business_no"].str.contains(r"^\d{3}-\d{2}-\d{5}$").all()
    per_app = reqs.group_by("application_id").agg(pl.len())
    assert per_app.height == n and per_app["len"].is_in([1, 2]).all()
    assert set(reqs["gpu_type"]) == set(synthetic.GPU_TYPES) == set(cap["gpu_type"])
    k = revs.group_by("application_id").agg(pl.col("reviewer_id").n_unique(), pl.len())
    assert k.height == n and (k["reviewer_id"] == 3).all() and (k["len"] == 9).all()


def test_capacity_factors_make_every_gpu_type_scarce(tmp_path, capsys):
    scarce = (0.5, 0.6, 0.7, 0.8)
    r = synthetic.build_round(600, seed=2, capacity_factors=scarce)
    default = synthetic.build_round(600, seed=2)
    cap = dict(zip(r.tables["capacity"]["gpu_type"], r.tables["capacity"]["gpu_hours"]))
    cap0 = dict(zip(default.tables["capacity"]["gpu_type"], default.tables["capacity"]["gpu_hours"]))
    for g, f, f0 in zip(synthetic.GPU_TYPES, scarce, synthetic.CAPACITY_FACTOR):
        assert cap[g] / cap0[g] == pytest.approx(f / f0, rel=0.01), g
    assert r.tables["applications"].equals(default.tables["applications"])   # only capacity moves
    with pytest.raises(ValueError, match="4 positive numbers"):
        synthetic.build_round(50, capacity_factors=(0.5, 0.5))
    assert synthetic.main([str(tmp_path / "s"), "-n", "60", "--capacity-factors", "0.5,0.6,0.7,0.8"]) == 0
    assert "--capacity-factors 0.5,0.6,0.7,0.8" in (tmp_path / "s" / "README.md").read_text()
    assert synthetic.main([str(tmp_path / "t"), "-n", "60", "--capacity-factors", "0.5,0"]) == 2
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "u"), "-n", "60", "--capacity-factors", "a,b,c,d"])
