"""Hostile applicant text: refused at intake with a per-row issue naming the field, never echoed
to a terminal, and nothing live in any output (Markdown, CSV, XLSX, HTML); run folders private."""

from __future__ import annotations

import csv
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from allocation import text
from allocation.identifiers import complete_business_no
from allocation.intake import read_round
from allocation.publish.diff import compare_award_lists, render_diff_markdown
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round

ROOT = Path(__file__).resolve().parents[2]
ESCAPES = "\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07"
HOSTILE_NAMES = {
    "A1": f"{ESCAPES}Evil Corp",                 # clears the screen, prints a hyperlink
    "A2": "Normal\u202eevil.exe",                # right-to-left override
    "A3": "\u200b=1+7",                          # zero-width space before a formula
    "A4": "Multi\nline | fake | row |",          # a new Markdown row
    "A5": "Name\ufeffwith BOM",                  # a BOM inside the value
}
ALLOWED_NAMES = {
    "A6": "http://evil.example/phish",           # allowed text, must not become a live link
    "A7": "| fake | row | [link](http://x) `code` <b>x</b>",
}
TOML = """
[round]
id = "H-1"
budget_krw = 1000000000
copay_share = 0.2
[award]
levels = [0.5, 1.0]
max_krw_per_company = 500000000
min_score = 0
[scoring]
weights = { tech = 1.0 }
min_reviewers = 1
"""


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def hostile_round(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "round"
    folder.mkdir()
    (folder / "round.toml").write_text(TOML, encoding="utf-8")
    names = {**HOSTILE_NAMES, **ALLOWED_NAMES, "A8": "Long Title Inc."}
    apps = [{"application_id": a, "business_no": complete_business_no(f"12345678{i}"),
             "company_name": name, "company_size": "small", "region": "Busan",
             "founded_on": "2020-01-02", "prior_awards": "0",
             "project_title": "x" * 501 if a == "A8" else "LLM fine-tuning",
             "receipt_code": f"CODE-{i:08d}"} for i, (a, name) in enumerate(names.items(), 1)]
    _write(folder / "applications.csv", apps)
    _write(folder / "requests.csv", [{"application_id": a["application_id"], "gpu_type": "H100",
                                      "gpu_hours": "100"} for a in apps])
    _write(folder / "reviews.csv", [{"application_id": a["application_id"], "reviewer_id": "R1",
                                     "criterion": "tech", "score": "80"} for a in apps])
    _write(folder / "capacity.csv", [{"gpu_type": "H100", "gpu_hours": "100000", "krw_per_gpu_hour": "3000"}])
    return folder


@pytest.fixture(scope="module")
def allocated(hostile_round, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile-out") / "out"
    run_round(hostile_round, out)
    return out


def test_every_hostile_cell_is_an_issue_naming_field_and_character(hostile_round):
    v = read_round(hostile_round)
    issues = v.issues.filter(pl.col("code") == "bad_character")
    assert sorted(issues["application_id"].to_list()) == sorted(HOSTILE_NAMES)
    assert set(issues["column"]) == {"company_name"}
    by_app = dict(zip(issues["application_id"], issues["message"]))
    assert "U+001B" in by_app["A1"] and "U+202E RIGHT-TO-LEFT OVERRIDE" in by_app["A2"]
    assert "U+200B ZERO WIDTH SPACE at character 1" in by_app["A3"]
    assert "U+000A" in by_app["A4"] and "U+FEFF" in by_app["A5"]
    for message in issues["message"]:
        assert not any(text.is_forbidden(c) for c in message), message   # never echoed back
    too_long = v.issues.filter(pl.col("code") == "too_long").row(0, named=True)
    assert (too_long["application_id"], too_long["column"]) == ("A8", "project_title")
    assert "501 characters, at most 500" in too_long["message"]
    apps = v.applications
    ineligible = set(apps.filter(~pl.col("eligible"))["application_id"])
    assert ineligible == set(HOSTILE_NAMES) | {"A8"}
    assert set(apps.filter(pl.col("eligible"))["application_id"]) == set(ALLOWED_NAMES)


def test_validate_prints_no_control_character_to_the_terminal(hostile_round, tmp_path):
    bad = tmp_path / "round"
    shutil.copytree(hostile_round, bad)
    # a header with an escape sequence reaches the error message of a missing column
    text_ = (bad / "capacity.csv").read_text(encoding="utf-8").replace("gpu_type", "\x1b[31mgpu_type")
    (bad / "capacity.csv").write_text(text_, encoding="utf-8")
    for folder, code in ((hostile_round, 0), (bad, 2)):
        result = subprocess.run([sys.executable, "-m", "allocation", "validate", str(folder)], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == code, result.stderr
        for stream in (result.stdout, result.stderr):
            assert not [c for c in stream if text.is_forbidden(c) and c not in "\n\t"], stream


def test_nothing_live_in_any_public_file(allocated, tmp_path):
    version = Path(publish(allocated, tmp_path / "pub")["path"])
    public = pl.read_parquet(version / "awards_public.parquet")
    assert set(public["application_id"]) == set(ALLOWED_NAMES)
    with zipfile.ZipFile(version / "awards_public.xlsx") as book:
        for name in book.namelist():
            assert b"hyperlink" not in book.read(name), name        # no live link from a URL-like name
    html = (version / "awards_public.html").read_text(encoding="utf-8")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    for path in version.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".html", ".json", ".md"):
            content = path.read_text(encoding="utf-8-sig")
            assert not [c for c in content if text.is_forbidden(c) and c not in "\n\t\r"], path
    # Markdown: the awardees' names cannot add rows, columns, links or code
    diff = compare_award_lists(public.clear(), public)
    diff.update(round_id="H-1", old={**diff["old"], "version": 0}, new={**diff["new"], "version": 1})
    markdown = render_diff_markdown(diff)
    row = next(line for line in markdown.splitlines() if "A7" in line)
    assert row.count("|") - row.count("\\|") == 7                      # the table's own 7 pipes only
    assert "\\[link\\]" in row and "\\`code\\`" in row


def test_run_folder_is_private(allocated):
    paths = [allocated, *allocated.rglob("*")]
    assert any(p.name == "applications.parquet" for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
