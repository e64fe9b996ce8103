"""The Voucher rounds view's pages (allocation.rounds.view): what each access level sees, the
per-applicant table read page by page, escaping, failure words and what-if totals."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.errors import RoundError
from allocation.rounds import view
from allocation.rounds.whatif import check_scenarios, solve_scenarios

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def runs_root(solved_sample, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    run = root / "sample" / "manual__2026-01-01T00_00_00_00_00"
    shutil.copytree(solved_sample, run)
    outcomes = pl.read_parquet(run / files.OUTCOMES_PARQUET)
    first = outcomes["application_id"][0]
    outcomes = outcomes.with_columns(company_name=pl.when(pl.col("application_id") == first)
                                     .then(pl.lit(HOSTILE)).otherwise(pl.col("company_name")))
    files.write_parquet(outcomes, run / files.OUTCOMES_PARQUET)
    failed = files.private_dir(root / "sample" / "manual__failed")
    (failed / files.VALIDATION_ERROR).write_text("requests.csv: missing (the round folder needs it)\n")
    return root


def the_run(runs_root: Path) -> Path:
    return runs_root / "sample" / "manual__2026-01-01T00_00_00_00_00"


def page(runs_root, applicant_data: bool, **kw) -> str:
    run = the_run(runs_root)
    return view.render_run(run, round_key="sample", airflow={"run_id": "manual__x", "state": "running"},
                           user="someone", applicant_data=applicant_data, prefix="/voucher", **kw)


def test_officers_see_one_page_of_applicants_with_hostile_text_escaped(runs_root):
    html = page(runs_root, True, size=25)
    outcomes = pl.read_parquet(the_run(runs_root) / files.OUTCOMES_PARQUET)
    assert html.count("<tr><td>R1-") == 25 < outcomes.height
    assert f"25 of {outcomes.height}" not in html and f"{outcomes.height:,} applications match" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_viewers_see_totals_but_no_applicant(runs_root):
    html = page(runs_root, False)
    outcomes = pl.read_parquet(the_run(runs_root) / files.OUTCOMES_PARQUET)
    assert "funded of" in html and "Totals" in html
    for column in ("application_id", "company_name", "business_no"):
        for value in outcomes[column].drop_nulls().head(50):
            assert str(value) not in html, (column, value)
    assert 'id="preview"' not in html and "status and totals only" in html


def test_the_preview_filters_lowercase_search_and_status_and_clamps_the_page(runs_root):
    run = the_run(runs_root)
    outcomes = pl.read_parquet(run / files.OUTCOMES_PARQUET)
    awarded = outcomes.filter(pl.col("status") == "awarded")
    table = view.preview(run, status="awarded", size=25, page=999)
    assert table.matched == awarded.height and table.total == outcomes.height
    assert table.page == table.pages == -(-awarded.height // 25)
    assert {r["status"] for r in table.rows} == {"awarded"}
    wanted = awarded["application_id"][0]
    found = view.preview(run, search=f"  {wanted.lower()} ")
    assert [r["application_id"] for r in found.rows] == [wanted]
    bogus = view.preview(run, status="'; drop table", size=7)       # unknown filter values are ignored
    assert bogus.status == "" and bogus.size == view.DEFAULT_PAGE_SIZE and bogus.matched == outcomes.height


def test_a_failed_validation_is_shown_and_noted_in_plain_words(runs_root):
    failed = runs_root / "sample" / "manual__failed"
    state = view.run_state(failed)
    assert state.stage.startswith("validation failed") and "requests.csv: missing" in state.failure
    note = view.failure_note(failed)
    assert note == "FAILED: requests.csv: missing (the round folder needs it)"
    html = view.render_index(runs_root=runs_root, publish_root=runs_root / "none",
                             airflow_runs={"manual__failed": {"run_id": "manual__failed", "state": "failed"},
                                           "manual__gone": {"run_id": "manual__gone", "state": "failed",
                                                            "note": "FAILED: round folder x does not exist"}},
                             user="viewer", applicant_data=False, prefix="/voucher")
    assert "requests.csv: missing" in html and "round folder x does not exist" in html
    assert "Runs without a run folder" in html


def test_a_failed_task_records_its_message_without_a_traceback(tmp_path):
    run = files.private_dir(tmp_path / "run")
    try:
        raise MemoryError("the solver ran out of memory")
    except MemoryError as exc:
        view.record_failure(run, "allocate", exc)
    note = view.failure_note(run)
    assert note == "FAILED: task allocate failed: MemoryError: the solver ran out of memory"
    assert view.failure_note(None, "round folder /x does not exist") == "FAILED: round folder /x does not exist"
    assert view.failure_note(tmp_path / "nothing") is None
    assert len(view.failure_note(None, "x" * 5000)) < 1200


@pytest.mark.parametrize("parts", [("..", "x"), ("sample", ".."), ("sample", "../sample"), ("/etc", "x"),
                                   ("sample", "no-such-run")])
def test_run_folders_outside_the_runs_root_or_missing_are_refused(runs_root, parts):
    with pytest.raises(RoundError):
        view.run_folder(runs_root, *parts)


def test_what_if_totals_appear_side_by_side(runs_root, sample_round_dir):
    run = the_run(runs_root)
    scenarios = check_scenarios(sample_round_dir, ["budget=+10%"])
    rows = solve_scenarios(run, run / files.WHATIF_DIR, scenarios)
    html = page(runs_root, False)
    assert 'id="whatif"' in html and "budget=+10%" in html
    assert f"{rows[1]['funded']:,}" in html


def test_a_rejected_or_unanswered_approval_is_noted_as_not_published(tmp_path):
    run = files.private_dir(tmp_path / "run")
    assert view.outcome_note(run) is None                         # no approval asked (e.g. a dry run)
    record = {"chosen_options": ["Reject"], "responded_by": {"id": "u2", "name": "Kim"},
              "responded_at": "2026-03-02T10:00:00+00:00", "timed_out": False}
    files.write_json(run / files.APPROVAL_RECORD, record)
    assert view.outcome_note(run) == ("NOT PUBLISHED: the approval was answered Reject by Kim at "
                                      "2026-03-02T10:00:00+00:00; nothing was published.")
    files.write_json(run / files.APPROVAL_RECORD, {**record, "chosen_options": ["Reject"], "timed_out": True})
    assert "nobody answered the approval in time" in view.outcome_note(run)
    files.write_json(run / files.APPROVAL_RECORD, {**record, "chosen_options": ["Approve"]})
    assert view.outcome_note(run) is None
