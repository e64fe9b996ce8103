"""Review panel at scoring time (allocation.intake.panel_files): conflicted or unassigned reviews
never count; an application left short becomes missing_reviews and is on the re-assign list."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation import files, schema, scoring
from allocation.errors import RoundError
from allocation.intake import read_round, save_validated
from allocation.intake.panel_files import conflict_pairs, exclude_reviews, split_list

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "rounds" / "sample"
PANEL = ROOT / "data" / "rounds" / "sample-panel"
EXCLUDED = list(schema.EXCLUDED_REVIEW_CODES)


@pytest.fixture
def panel_round(tmp_path) -> Path:
    return Path(shutil.copytree(PANEL, tmp_path / "round"))


def _reviews(round_dir: Path) -> pl.DataFrame:
    return pl.read_csv(round_dir / "reviews.csv", infer_schema=False)


def _write_reviews(round_dir: Path, frame: pl.DataFrame) -> None:
    frame.write_csv(round_dir / "reviews.csv")


def _pairs_by_hand(round_dir: Path) -> set[tuple[str, str]]:
    """Conflicted (application, reviewer) pairs straight from the files, without the package."""
    apps = pl.read_csv(round_dir / "applications.csv", infer_schema=False)
    conflicts = pl.read_csv(round_dir / "conflicts.csv", infer_schema=False)
    reviewers = pl.read_csv(round_dir / "reviewers.csv", infer_schema=False)
    out = set()
    for c in conflicts.iter_rows(named=True):
        for a in apps.iter_rows(named=True):
            if a["application_id"] == c["application_id"] or (
                    c["business_no"] and a["business_no"].replace("-", "") == c["business_no"].replace("-", "")):
                out.add((a["application_id"], c["reviewer_id"]))
    for r in reviewers.iter_rows(named=True):
        for item in (r["affiliations"] or "").split(";"):
            item = item.strip()
            for a in apps.iter_rows(named=True):
                if item and (item.replace("-", "") == a["business_no"].replace("-", "")
                             or item.lower() == a["company_name"].lower()):
                    out.add((a["application_id"], r["reviewer_id"]))
    return out


def test_conflicted_reviews_never_count(panel_round):
    """Every review by a conflicted reviewer is set aside with a per-row issue, and the round reads
    exactly as if those rows were not in reviews.csv (same reviews kept, same scores)."""
    conflicted = _pairs_by_hand(panel_round)
    reviews = _reviews(panel_round)
    # put a conflicted reviewer on three more applications (replacing an assigned reviewer)
    extra = sorted(conflicted)[:3]
    for app_id, reviewer in extra:
        first = reviews.filter(pl.col("application_id") == app_id)["reviewer_id"][0]
        reviews = reviews.with_columns(
            pl.when((pl.col("application_id") == app_id) & (pl.col("reviewer_id") == first))
            .then(pl.lit(reviewer)).otherwise(pl.col("reviewer_id")).alias("reviewer_id"))
    # and record them as assigned, so only the conflict can exclude them
    assignments = pl.read_csv(panel_round / "assignments.csv", infer_schema=False)
    assignments = pl.concat([assignments, pl.DataFrame({"application_id": [a for a, _ in extra],
                                                        "reviewer_id": [r for _, r in extra]})])
    assignments.write_csv(panel_round / "assignments.csv")
    _write_reviews(panel_round, reviews)
    v = read_round(panel_round)

    rows = reviews.with_row_index("i").with_columns((pl.col("i") + 2).alias("row"))
    bad = rows.filter(pl.struct("application_id", "reviewer_id").map_elements(
        lambda s: (s["application_id"], s["reviewer_id"]) in conflicted, return_dtype=pl.Boolean))
    assert bad.height >= 3 * len(extra)
    flagged = v.issues.filter(pl.col("code") == "conflicted_review")
    assert sorted(flagged["row"].to_list()) == sorted(bad["row"].to_list())
    assert (flagged["file"] == "reviews.csv").all() and (flagged["column"] == "reviewer_id").all()
    kept = set(zip(v.reviews["application_id"].to_list(), v.reviews["reviewer_id"].to_list()))
    assert not kept & conflicted

    # the same round with those rows deleted by hand: identical reviews and scores
    clean_dir = panel_round.parent / "clean"
    shutil.copytree(panel_round, clean_dir)
    (clean_dir / "conflicts.csv").unlink()
    _write_reviews(clean_dir, rows.filter(~pl.col("row").is_in(bad["row"].implode())).drop("i", "row"))
    clean = read_round(clean_dir)
    assert clean.issues.filter(pl.col("code") == "conflicted_review").is_empty()
    cols = ["application_id", "reviewer_id", "criterion", "score"]
    assert v.reviews.select(cols).equals(clean.reviews.select(cols))
    assert scoring.score_applications(v.applications, v.reviews, v.config).equals(
        scoring.score_applications(clean.applications, clean.reviews, clean.config))


def test_unassigned_review_is_excluded_and_short_application_is_to_be_reassigned(panel_round, tmp_path):
    v = read_round(panel_round)
    unassigned = v.issues.filter(pl.col("code") == "unassigned_review")
    assert unassigned["row"].to_list() == [500, 501, 502]          # the README's deliberate defect
    app = v.applications.filter(pl.col("application_id") == "R1-000056").row(0, named=True)
    assert app["eligible"] is False and app["reason"] == "missing_reviews"
    assert "does not count: conflict of interest" in app["reason_detail"]
    assert "not assigned to application 'R1-000056'" in app["reason_detail"]
    # the other deliberately conflicted application keeps 2 of 3 reviewers: still eligible
    other = v.applications.filter(pl.col("application_id") == "R1-000017").row(0, named=True)
    assert other["eligible"] is True
    save_validated(v, tmp_path / "intake")
    reassign = pl.read_csv(tmp_path / "intake" / files.REASSIGN_CSV)
    assert reassign["application_id"].to_list() == ["R1-000056"]
    assert reassign["excluded_reviewers"].to_list() == ["REV-025;REV-001"]


def test_without_conflicts_or_assignments_every_review_counts(panel_round):
    """reviewers.csv alone changes nothing at scoring time (the exclusion needs conflicts or
    assignments), and nothing of the panel is read or hashed."""
    (panel_round / "conflicts.csv").unlink()
    (panel_round / "assignments.csv").unlink()
    v = read_round(panel_round)
    assert v.issues.filter(pl.col("code").is_in(EXCLUDED)).is_empty()
    assert v.reviews.height == _reviews(panel_round).height
    assert set(v.input_hashes) == {"applications.csv", "requests.csv", "reviews.csv", "capacity.csv",
                                   "round.toml"}


def test_sample_round_is_untouched_by_the_panel_hook():
    v = read_round(SAMPLE)
    assert v.issues.filter(pl.col("code").is_in(EXCLUDED)).is_empty()
    assert set(v.input_hashes) == {"applications.csv", "requests.csv", "reviews.csv", "capacity.csv", "round.toml"}
    frame = pl.DataFrame({"application_id": ["a"], "reviewer_id": ["r"], schema.SOURCE_ROW: [2]})
    kept, issues, hashes = exclude_reviews(SAMPLE, frame, frame, "reviews.csv")
    assert kept is frame and issues.is_empty() and hashes == {}


def test_conflict_pairs_by_application_business_number_and_affiliation():
    apps = pl.DataFrame({"application_id": ["A1", "A2", "A3", "A4"],
                         "business_no": ["124-81-00998", "220-81-62517", "124-81-00998", None],
                         "company_name": ["Alpha  AI", "Beta", "Alpha AI", "Gamma Labs"]})
    reviewers = pl.DataFrame({"reviewer_id": ["R1", "R2", "R3"], "affiliations": [
        "gamma labs", "2208162517", None]}).with_columns(split_list("affiliations", lower=False))
    conflicts = pl.DataFrame({"reviewer_id": ["R3", "R1"], "application_id": ["A2", None],
                              "business_no": [None, "124-81-00998"], "conflict_reason": ["co-author", "shareholder"],
                              schema.SOURCE_ROW: [2, 3]})
    pairs = conflict_pairs(apps, reviewers, conflicts)
    found = set(zip(pairs["application_id"], pairs["reviewer_id"]))
    assert found == {("A2", "R3"), ("A1", "R1"), ("A3", "R1"), ("A4", "R1"), ("A2", "R2")}
    reason = dict(zip(zip(pairs["application_id"], pairs["reviewer_id"]), pairs["reason"]))
    assert reason[("A2", "R3")] == "conflicts row 2: co-author"
    assert reason[("A4", "R1")] == "affiliation with Gamma Labs"


def test_a_bad_conflicts_row_stops_the_round_with_every_problem_listed(panel_round):
    (panel_round / "conflicts.csv").write_text(
        "reviewer_id,application_id,business_no,conflict_reason\n"
        "REV-001,,,no target\n"
        "REV-002,R1-999999,,unknown application\n"
        "REV-003,,123-45-67890,bad checksum\n"
        "REV-004,R1-000001,,\n", encoding="utf-8")
    with pytest.raises(RoundError) as err:
        read_round(panel_round)
    text = str(err.value)
    assert "conflicts.csv: 4 problem(s)" in text
    assert "row 2 [application_id]" in text and "row 3 [application_id]" in text
    assert "row 4 [business_no]" in text and "row 5 [conflict_reason]" in text
