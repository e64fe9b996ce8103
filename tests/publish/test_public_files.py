"""What the served publish root shows: roles, not staff account names; no server paths."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from allocation.publish import audit
from allocation.publish.index import refresh_index
from allocation.publish.report import timeline_rows
from allocation.publish.verify import cross_check, verify_round
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round
from allocation.rounds.lifecycle.refill import run_lifecycle
from allocation.rounds.retention import plan_purge, purge
from bench.synthetic import generate_round

ROUND_ID = "2026-R1"


def test_timeline_names_roles_never_staff_accounts():
    entries = [
        {"version": 1, "via": "airflow", "triggered_by": "kim.officer", "approved_by": "lee.approver (Approve)",
         "four_eyes": "approver differs from the triggering user", "published_at": "2026-03-01T00:00:00+00:00"},
        {"version": 2, "via": "airflow", "triggered_by": "park.solo", "approved_by": "park.solo (Approve)",
         "four_eyes": "WAIVED: self-approved (one-person office allowed by VOUCHER_ALLOW_SELF_APPROVAL)"},
        {"version": 3, "via": "cli", "triggered_by": "cli", "approved_by": "cli"},
    ]
    rows = timeline_rows(entries)
    text = json.dumps(rows, ensure_ascii=False)
    for name in ("kim.officer", "lee.approver", "park.solo"):
        assert name not in text
    assert [r["approved_by"] for r in rows] == ["승인권자 / approving officer",
                                                "승인권자 (본인 승인) / approver (self-approved)",
                                                "명령줄 / command line"]
    assert rows[0]["triggered_by"] == "담당자 / programme officer"


def test_index_lists_relative_paths_only(published_sample):
    root = Path(published_sample).parents[1]
    index = refresh_index(root)
    text = (root / "index.json").read_text(encoding="utf-8")
    assert str(root) not in text and "/" + root.name not in text
    entry = next(iter(index["rounds"].values()))
    for key in ("latest_path", "results_page", "award_list", "applicant_lookup"):
        assert not entry[key].startswith("/") and (root / entry[key]).exists(), key


# --- every file under a published root: no staff account name, no server path (issue 14) -------

STAFF = {"triggered_by": "kim.jisoo", "approved_by": "lee.minho (Approve)", "approver_id": "u-4711-acct",
         "run_id": "manual__zz-run-7", "dag_id": "allocation_round"}
OS_ACCOUNT = "os-acct-zz9"


def _actor(**more) -> dict:
    return {"via": "airflow", **STAFF, "four_eyes": "approver differs from the triggering user", **more}


def _texts(path: Path) -> list[str]:
    """What a file holds as text: its bytes, an XLSX's members, a Parquet table's values."""
    found = [path.read_bytes().decode("utf-8", errors="ignore")]
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as book:
            found += [book.read(n).decode("utf-8", errors="ignore") for n in book.namelist()]
    if path.suffix == ".parquet":
        found.append(pl.read_parquet(path).write_csv())
    return found


def _leaks(publish_root: Path, needles: list[str]) -> dict[str, list[str]]:
    leaks = {}
    for path in sorted(p for p in publish_root.rglob("*") if p.is_file()):
        hits = [n for n in needles if any(n in t for t in _texts(path))]
        if hits:
            leaks[path.relative_to(publish_root).as_posix()] = hits
    return leaks


@pytest.fixture
def refilled(tmp_path, monkeypatch):
    """v1 (allocation) and v2 (refill after a decline) published by named staff, then a purge by
    the command line: the publish root as it is served. Returns (tmp_path, publish root, round dir)."""
    monkeypatch.setattr(audit.getpass, "getuser", lambda: OS_ACCOUNT)
    round_dir = generate_round(tmp_path / "round", 12, seed=2)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[lifecycle]\naccept_by = 2026-03-01\n")
    runs, pub = tmp_path / "runs", tmp_path / "pub"
    run_round(round_dir, runs / "round" / "out1")
    publish(runs / "round" / "out1", pub, actor=_actor())
    won = (pl.read_parquet(runs / "round" / "out1" / "outcomes.parquet").filter(pl.col("status") == "awarded")
           .sort("awarded_krw", descending=True)["application_id"].to_list())
    (round_dir / "responses.csv").write_text(f"application_id,response,responded_on\n{won[0]},declined,2026-02-01\n",
                                             encoding="utf-8")
    run_lifecycle(round_dir, pub / ROUND_ID, runs / "round" / "out2", as_of=dt.date(2026, 2, 10))
    publish(runs / "round" / "out2", pub, actor=_actor(run_id="manual__zz-run-8"))
    plan = plan_purge(ROUND_ID, pub, runs, dt.date.today() + dt.timedelta(days=1))
    assert plan.run_folders and plan.lookup_files
    purge(plan, pub)                              # the command line: the local account
    refresh_index(pub)
    return tmp_path, pub, round_dir


def test_no_file_under_the_publish_root_names_staff_or_server_paths(refilled):
    base, pub, _ = refilled
    served = {p.relative_to(pub).as_posix() for p in pub.rglob("*") if p.is_file()}
    for name in ("index.json", f"{ROUND_ID}/audit.jsonl", f"{ROUND_ID}/v1/report.html", f"{ROUND_ID}/v2/manifest.json",
                 f"{ROUND_ID}/v2/changes.json", f"{ROUND_ID}/v2/changes.md", f"{ROUND_ID}/v2/awards_public.xlsx"):
        assert name in served, name            # the files the check must cover are there
    names = ["kim.jisoo", "lee.minho", "u-4711", "zz-run-7", "zz-run-8", OS_ACCOUNT]
    paths = [str(base), str(base.resolve()), base.name, "/tmp/", "runs/round"]
    assert _leaks(pub, names + paths) == {}
    # the public trail says who acted by role, and still verifies on its own
    trail = audit.read(pub, ROUND_ID)
    assert [e["kind"] for e in trail] == ["allocation", "refill", "purge"]
    assert trail[0]["roles"] == {"triggered": "officer", "approved": "approver"}
    assert trail[2]["roles"] == {"triggered": "operator", "approved": None}
    assert verify_round(pub / ROUND_ID)["ok"]
    # the officers' trail (outside the publish root) keeps every name and path, bound to the public lines
    officers = audit.read_officer(pub, ROUND_ID)
    assert [o["triggered_by"] for o in officers[:2]] == ["kim.jisoo", "kim.jisoo"]
    assert officers[1]["run_id"] == "manual__zz-run-8" and officers[1]["out_dir"] == str((base / "runs/round/out2").resolve())
    assert officers[2]["account"] == OS_ACCOUNT and officers[2]["run_folders"] == [str((base / "runs/round/out1").resolve())]
    assert cross_check(pub / ROUND_ID)["ok"]
    html = (pub / ROUND_ID / "v2" / "report.html").read_text(encoding="utf-8")
    assert "approving officer" in html and "programme officer" in html


def test_staff_names_are_public_only_when_the_round_opts_in(tmp_path):
    round_dir = generate_round(tmp_path / "round", 12, seed=2)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[publish]\nshow_staff_names = true\n")
    run_round(round_dir, tmp_path / "out1")
    pub = tmp_path / "pub"
    publish(tmp_path / "out1", pub, actor=_actor())
    run_round(round_dir, tmp_path / "out2", budget_krw=1_000_000_000)
    publish(tmp_path / "out2", pub, actor=_actor(run_id="manual__zz-run-8"))
    trail = audit.read(pub, ROUND_ID)
    assert trail[1]["staff"] == {"triggered_by": "kim.jisoo", "approved_by": "lee.minho (Approve)"}
    html = (pub / ROUND_ID / "v2" / "report.html").read_text(encoding="utf-8")
    assert "approving officer: lee.minho (Approve)" in html
    # names, yes; never a path, a run id or an account id
    assert _leaks(pub, ["u-4711", "zz-run-7", "zz-run-8", str(tmp_path), tmp_path.name]) == {}
    assert cross_check(pub / ROUND_ID)["ok"]


def test_timeline_of_split_lines_shows_roles():
    rows = timeline_rows([
        {"format": 2, "version": 1, "via": "airflow", "roles": {"triggered": "officer", "approved": "approver"}},
        {"format": 2, "version": 2, "via": "cli", "roles": {"triggered": "operator", "approved": "operator"}},
        {"format": 2, "kind": "purge", "via": "airflow", "roles": {"triggered": "system", "approved": None},
         "as_of": "2027-01-01", "removed": {"run_folders": 2, "lookup_files": {"v1": 3}, "round_folder_files": 4}},
    ])
    assert [r["triggered_by"] for r in rows] == ["담당자 / programme officer", "운영자 (명령줄) / operator (command line)",
                                                 "시스템 (예약 실행) / system (scheduled)"]
    assert rows[0]["approved_by"] == "승인권자 / approving officer" and rows[2]["as_of"] == "2027-01-01"
    assert "round folder: 4 file(s)" in rows[2]["changes"]
