"""`voucher assign` (allocation.rounds.panel): assignment files, work lists, infeasibility, release."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.cli import main
from allocation.errors import RoundError
from allocation.intake import read_round
from allocation.rounds import panel

ROOT = Path(__file__).resolve().parents[2]
PANEL = ROOT / "data" / "rounds" / "sample-panel"


@pytest.fixture
def round_dir(tmp_path) -> Path:
    return Path(shutil.copytree(PANEL, tmp_path / "round"))


def _csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _conflicted(round_dir: Path) -> set[tuple[str, str]]:
    """Conflicts from the files by hand: declared rows and affiliations (numbers or names)."""
    apps = _csv(round_dir / "applications.csv")
    digits = {a: b.replace("-", "") for a, b in zip(apps["application_id"], apps["business_no"])}
    names = dict(zip(apps["application_id"], apps["company_name"].str.to_lowercase()))
    out = set()
    for c in _csv(round_dir / "conflicts.csv").iter_rows(named=True):
        for a in digits:
            if a == c["application_id"] or (c["business_no"] or "x").replace("-", "") == digits[a]:
                out.add((a, c["reviewer_id"]))
    for r in _csv(round_dir / "reviewers.csv").iter_rows(named=True):
        for item in filter(None, (x.strip() for x in (r["affiliations"] or "").split(";"))):
            out |= {(a, r["reviewer_id"]) for a in digits
                    if item.replace("-", "") == digits[a] or item.lower() == names[a]}
    return out


def test_assign_sample_panel(round_dir, tmp_path):
    out = tmp_path / "out"
    report = panel.assign(round_dir, out)
    assert report["status"] == "optimal" and report["solver"]["proven_optimal"] and report["solver"]["gap"] == 0
    k = report["reviewers_per_application"]
    assert k == 3
    got = _csv(out / files.PANEL_ASSIGNMENTS)
    apps = _csv(round_dir / "applications.csv")
    reviewers = _csv(round_dir / "reviewers.csv")
    # every application k distinct reviewers
    per_app = got.group_by("application_id").agg(pl.col("reviewer_id").n_unique().alias("n"), pl.len())
    assert per_app.height == apps.height and (per_app["n"] == k).all() and (per_app["len"] == k).all()
    # no conflict of interest
    assert not set(zip(got["application_id"], got["reviewer_id"])) & _conflicted(round_dir)
    # loads within max_load
    load = got.group_by("reviewer_id").len().join(reviewers, on="reviewer_id")
    assert (load["len"] <= load["max_load"].cast(pl.Int64)).all()
    # experts: a tagged application's reviewers share a tag with it
    tags = dict(zip(apps["application_id"], apps["topic_tags"]))
    expertise = dict(zip(reviewers["reviewer_id"], reviewers["expertise"]))
    for a, r in zip(got["application_id"], got["reviewer_id"]):
        if tags[a]:
            assert set(tags[a].split(";")) & set(expertise[r].split(";")), (a, r)
    # work lists: one file per reviewer holding exactly their assignments; XLSX has them all
    listed = pl.concat([_csv(p) for p in sorted((out / files.PANEL_WORK_LISTS).glob("*.csv"))])
    assert sorted(zip(listed["application_id"], listed["reviewer_id"])) == sorted(
        zip(got["application_id"], got["reviewer_id"]))
    xlsx = pl.read_excel(out / files.PANEL_WORK_LISTS_XLSX)
    assert xlsx.height == got.height
    # deterministic: a second run writes the same bytes
    panel.assign(round_dir, tmp_path / "again")
    for name in (files.PANEL_ASSIGNMENTS, files.PANEL_LOADS, files.PANEL_REPORT, files.PANEL_WORK_LISTS_XLSX):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    # the released assignments.csv is what intake checks reviews against
    shutil.copy(out / files.PANEL_ASSIGNMENTS, round_dir / "assignments.csv")
    v = read_round(round_dir)
    assert sorted(v.issues.filter(pl.col("code") == "unassigned_review")["row"].to_list()) == [500, 501, 502]


def test_infeasible_names_applications_and_capacity_short(round_dir, tmp_path):
    reviewers = _csv(round_dir / "reviewers.csv")
    # speech experts: keep two, and only one of them free of a conflict with R1-000001
    apps = _csv(round_dir / "applications.csv").with_columns(
        pl.when(pl.col("application_id") == "R1-000001").then(pl.lit("speech"))
        .otherwise(pl.col("topic_tags")).alias("topic_tags"))
    apps.write_csv(round_dir / "applications.csv")
    experts = reviewers.filter(pl.col("expertise").str.contains("speech"))["reviewer_id"].to_list()
    reviewers = reviewers.with_columns(
        pl.when(pl.col("reviewer_id").is_in(experts[2:])).then(pl.col("expertise").str.replace_all("speech", "x"))
        .otherwise(pl.col("expertise")).alias("expertise"),
        # and a panel far too small for the round: 900 reviews needed
        pl.lit("20").alias("max_load"))
    reviewers.write_csv(round_dir / "reviewers.csv")
    with open(round_dir / "conflicts.csv", "a", encoding="utf-8") as fh:
        fh.write(f"{experts[0]},R1-000001,,former supervisor\n")
    out = tmp_path / "out"
    with pytest.raises(RoundError) as err:
        panel.assign(round_dir, out)
    text = str(err.value)
    assert "cannot give every application 3 reviewers: 180 of 900 reviews cannot be assigned" in text
    assert "have fewer non-conflicted expert reviewers than the 3 needed" in text and "R1-000001 (1)" in text
    assert "capacity short by" in text
    short = _csv(out / files.PANEL_SHORTFALL)
    row = short.filter(pl.col("application_id") == "R1-000001").row(0, named=True)
    assert row["candidates"] == "1" and row["lacking_candidates"] == "2"
    report = files.read_json(out / files.PANEL_REPORT)
    assert report["status"] == "infeasible" and report["reviews"]["short"] == 180
    assert sum(p["short"] for p in report["diagnosis"]["shortages"]) == 180
    assert not (out / files.PANEL_ASSIGNMENTS).exists()      # nothing half-done goes out
    assert main(["assign", str(round_dir), "--out", str(tmp_path / "cli")]) == 2


def test_cli_assign_and_release(round_dir, tmp_path, capsys):
    assert main(["assign", str(round_dir), "--out", str(tmp_path / "out"), "-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "300 applications × 2 reviewers = 600 reviews, 600 assigned" in printed
    assert "proven optimal, gap 0" in printed
    released = panel.release(tmp_path / "out", tmp_path / "outbox", actor={"approved_by": "officer"})
    target = Path(released["path"])
    assert (target / files.PANEL_ASSIGNMENTS).read_bytes() == (tmp_path / "out" / files.PANEL_ASSIGNMENTS).read_bytes()
    assert files.read_json(target / files.PANEL_RELEASE)["actor"] == {"approved_by": "officer"}
    assert len(list((target / files.PANEL_WORK_LISTS).glob("*.csv"))) == 36


def test_missing_reviewers_table_is_one_clear_error(round_dir, tmp_path):
    (round_dir / "reviewers.csv").unlink()
    with pytest.raises(RoundError, match="the reviewers table is missing"):
        panel.assign(round_dir, tmp_path / "out")


def test_work_list_names_cannot_leave_the_folder():
    assert panel.work_list_name("REV-001") == "REV-001.csv"
    for hostile in ("../../etc/passwd", "a/b", ".hidden", "심사위원1", "x" * 100):
        name = panel.work_list_name(hostile)
        assert "/" not in name and not name.startswith(".") and name.startswith("reviewer-")


def test_work_list_xlsx_keeps_hostile_text_as_text(round_dir, tmp_path):
    apps = _csv(round_dir / "applications.csv")
    title = '=HYPERLINK("http://x","<b>click</b>") & more'
    apps.with_columns(pl.when(pl.col("application_id") == "R1-000001").then(pl.lit(title))
                      .otherwise(pl.col("project_title")).alias("project_title")).write_csv(round_dir / "applications.csv")
    panel.assign(round_dir, tmp_path / "out")
    sheet = pl.read_excel(tmp_path / "out" / files.PANEL_WORK_LISTS_XLSX)
    titles = sheet.filter(pl.col("application_id") == "R1-000001")["project_title"].to_list()
    assert titles == ["'" + title] * 3          # neutralised like the CSV, a string cell, never a formula
    listed = pl.concat([_csv(p) for p in (tmp_path / "out" / files.PANEL_WORK_LISTS).glob("*.csv")])
    assert set(listed.filter(pl.col("application_id") == "R1-000001")["project_title"]) == {"'" + title}


def test_bad_application_row_is_reported_and_not_assigned(round_dir, tmp_path):
    apps = _csv(round_dir / "applications.csv").with_columns(
        pl.when(pl.col("application_id") == "R1-000002").then(pl.lit("nlp\u202e;vision"))
        .otherwise(pl.col("topic_tags")).alias("topic_tags"),
        pl.when(pl.col("application_id") == "R1-000003").then(pl.lit("Atlantis"))
        .otherwise(pl.col("region")).alias("region"))
    apps.write_csv(round_dir / "applications.csv")
    report = panel.assign(round_dir, tmp_path / "out")
    issues = _csv(tmp_path / "out" / files.PANEL_ISSUES)
    assert sorted(zip(issues["row"], issues["column"], issues["code"])) == [
        ("3", "topic_tags", "bad_character"), ("4", "region", "unknown_value")]
    assert "\u202e" not in (tmp_path / "out" / files.PANEL_ISSUES).read_text(encoding="utf-8-sig")
    assigned = set(_csv(tmp_path / "out" / files.PANEL_ASSIGNMENTS)["application_id"])
    assert report["applications"]["eligible"] == 298 and len(assigned) == 298
    assert not {"R1-000002", "R1-000003"} & assigned


def test_bad_reviewer_row_stops_with_every_problem_listed(round_dir, tmp_path):
    reviewers = (round_dir / "reviewers.csv").read_text(encoding="utf-8")
    reviewers += "REV-001,5,nlp,\nREV-900,-1,nlp,\nREV-901,3,nlp\u200b,\n"
    (round_dir / "reviewers.csv").write_text(reviewers, encoding="utf-8")
    with pytest.raises(RoundError) as err:
        panel.assign(round_dir, tmp_path / "out")
    text = str(err.value)
    assert "reviewers.csv: 4 problem(s)" in text       # REV-001 twice (2 rows), max_load, hidden character
    assert "[max_load]" in text and "[expertise]" in text and "duplicate_id" in text


def test_reassign_gives_new_reviewers_on_top_of_the_round_assignments(round_dir, tmp_path):
    """R1-000017 lost REV-028's review (conflict): it keeps 2 counted reviewers and needs 1 more,
    never one already assigned to it, who reviewed it, or with a conflict."""
    (tmp_path / "list.csv").write_text("application_id\nR1-000017\n", encoding="utf-8")
    before = _csv(round_dir / "assignments.csv")
    report = panel.assign(round_dir, tmp_path / "out", reassign=tmp_path / "list.csv")
    assert report["reassign"] == {"applications": 1, "reviews_needed": 1}
    added = _csv(tmp_path / "out" / files.PANEL_ADDED)
    assert added["application_id"].to_list() == ["R1-000017"]
    new = added["reviewer_id"][0]
    reviews = _csv(round_dir / "reviews.csv").filter(pl.col("application_id") == "R1-000017")
    assert new not in set(before.filter(pl.col("application_id") == "R1-000017")["reviewer_id"])
    assert new not in set(reviews["reviewer_id"]) and ("R1-000017", new) not in _conflicted(round_dir)
    full = _csv(tmp_path / "out" / files.PANEL_ASSIGNMENTS)
    assert full.height == before.height + 1
    loads = _csv(tmp_path / "out" / files.PANEL_LOADS).filter(pl.col("reviewer_id") == new).row(0, named=True)
    assert int(loads["assigned"]) == before.filter(pl.col("reviewer_id") == new).height + 1 <= int(loads["max_load"])
    assert [p.name for p in (tmp_path / "out" / files.PANEL_WORK_LISTS).iterdir()] == [f"{new}.csv"]


def test_reassign_that_cannot_be_done_says_why(round_dir, tmp_path):
    """R1-000056 (agriculture) kept one counted review; every other agriculture expert is already
    assigned to it, reviewed it or has a conflict."""
    out = tmp_path / "out"
    assert main(["validate", str(round_dir), "--out", str(out / "intake")]) == 0
    with pytest.raises(RoundError) as err:
        panel.assign(round_dir, tmp_path / "re", reassign=out / "intake" / files.REASSIGN_CSV)
    text = str(err.value)
    assert "cannot give every application the reviewers it needs" not in text   # one application: its need
    assert "1 of 2 reviews cannot be assigned" in text and "R1-000056 (1)" in text
    assert "capacity short by 1 review(s)" in text


def test_an_approval_binds_the_panel_files_it_was_shown(round_dir, tmp_path):
    from allocation.rounds.approval import approved_actor, fingerprint, record_request, record_response
    out = tmp_path / "panel"
    panel.assign(round_dir, out)
    shown = record_request(out, ti_id="ti-1", triggered_by="officer")["fingerprint"]
    assert shown == panel.panel_fingerprint(out) == fingerprint(out)
    record_response(out, ti_id="ti-1", chosen_options=["Approve"], responded_by={"id": "approver"},
                    responded_at="2026-11-30T00:00:00+00:00")
    actor = approved_actor(out, triggered_by="officer", refusal="NOT RELEASED")
    assert actor["approved_fingerprint"] == shown and actor["approved_by"] == "approver (Approve)"
    work_list = sorted((out / files.PANEL_WORK_LISTS).glob("*.csv"))[0]
    work_list.write_text(work_list.read_text(encoding="utf-8") + "X-1,extra\n", encoding="utf-8")
    with pytest.raises(RoundError, match="^NOT RELEASED: the result changed after it was approved"):
        approved_actor(out, triggered_by="officer", refusal="NOT RELEASED")
