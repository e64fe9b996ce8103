"""Versions: hard crashes, concurrent publishers, byte-stable award files, the round report,
and the diff between two versions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from allocation.publish import lookup, report
from allocation.publish.diff import cli_diff, diff_versions, render_diff_markdown
from allocation.publish.manifest import verify
from allocation.publish.version import publish

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def solved(solved_sample) -> Path:
    return solved_sample



CRASHER = """
import os, sys
from pathlib import Path
from allocation.publish import lookup, report
from allocation.publish.version import publish
where = sys.argv[3]
def die(*args, **kwargs):
    os._exit(9)                      # like kill -9: no finally, no cleanup
if where == "mid-write":
    report.render_report = die       # award files written, report and lookup files not yet
elif where == "before-rename":
    os.rename = die                  # every file written and synced, not yet renamed
publish(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.parametrize("where", ["mid-write", "before-rename"])
def test_killed_publisher_leaves_no_visible_version(solved, tmp_path, where):
    root = tmp_path / "pub"
    run = subprocess.run([sys.executable, "-c", CRASHER, str(solved), str(root), where],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr
    round_root = root / "2026-R1"
    assert [p.name for p in round_root.iterdir() if not p.name.startswith(".")] == ["signing_key.pub"]
    assert any(p.name.startswith(".v1-") for p in round_root.iterdir())   # the dead one's leftovers
    info = publish(solved, root)
    assert info["version"] == 1 and info["created"]
    assert sorted(p.name for p in round_root.iterdir()) == ["audit.jsonl", "signing_key.pub", "v1"]   # leftovers cleaned
    assert verify(Path(info["path"])) == []


def test_crash_while_writing_lookup_files_leaves_nothing(solved, tmp_path, monkeypatch):
    real = lookup.seal
    sealed = []

    def flaky(name, key, plaintext):
        if len(sealed) >= 20:
            raise OSError("disk full")
        sealed.append(name)
        return real(name, key, plaintext)

    monkeypatch.setattr(lookup, "seal", flaky)     # the sample is sealed in this process
    with pytest.raises(OSError, match="disk full"):
        publish(solved, tmp_path / "pub")
    assert len(sealed) == 20
    assert [p.name for p in (tmp_path / "pub" / "2026-R1").iterdir()] == ["signing_key.pub"]


def test_concurrent_publishers_make_one_version(solved, tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(publish(solved, tmp_path / "pub"))
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(r["created"] for r in results) == [False, False, True]
    assert {r["version"] for r in results} == {1}


def test_award_files_and_report_are_byte_stable(solved, tmp_path):
    a = Path(publish(solved, tmp_path / "a")["path"])
    b = Path(publish(solved, tmp_path / "b")["path"])
    for name in ("awards_public.csv", "awards_public.xlsx", "awards_public.parquet",
                 "awards_public.html", "report.html", "index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # two first versions (two publish roots): each picks a fresh salt; the round salt (masters
    # from intake) is the round's. Later versions of one round carry the salt (test_lookup).
    la, lb = json.loads((a / "lookup.json").read_text()), json.loads((b / "lookup.json").read_text())
    assert la["version_salt"] != lb["version_salt"] and la["round_salt"] == lb["round_salt"]
    names = [{p.name for p in (v / "r").glob("*/*.json")} for v in (a, b)]
    assert names[0] and not names[0] & names[1]                         # files of two versions unlinkable
    manifest = json.loads((a / "manifest.json").read_text())
    assert "business_nos" not in json.dumps(manifest["solver_report"])
    assert manifest["solver_report"]["summary"]["funded"] > 0
    assert manifest["input_sha256"] == json.loads((solved / "solution.json").read_text())["input_sha256"]


def test_round_report_is_offline_and_aggregate(solved):
    html = report.render_report(solved, 1)
    sol = json.loads((solved / "solution.json").read_text())
    summary = sol["summary"]
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html and "src=" not in html
    assert html.count("<svg") == 3
    assert f"cut-off {summary['score_cutoff']:.2f}" in html
    assert f"₩{summary['awarded_krw']:,}" in html and f"₩{summary['budget_krw']:,}" in html
    for gpu in summary["gpu_hours_capacity"]:
        assert f"{summary['gpu_hours_awarded'][gpu]:,}" in html
    for quota in sol["limits"]["quotas"]:
        assert quota["quota"] in html
    ctx = report.report_context(solved)
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    awarded = outcomes.filter(pl.col("status") == "awarded")
    assert sum(r["awarded_krw"] for r in ctx["regions"]) == awarded["awarded_krw"].sum()
    assert sum(b["count"] for b in ctx["hist"]["bars"]) == outcomes.filter(
        (pl.col("status") != "ineligible") & pl.col("score").is_not_nan()).height
    assert ctx["s"]["oversubscription"] > 1


def _changed_round(solved: Path, target: Path) -> tuple[str, str, str]:
    """A re-run in which one awardee loses, one applicant gains and one awardee changes."""
    shutil.copytree(solved, target)
    outcomes = pl.read_parquet(target / "outcomes.parquet")
    awards = pl.read_parquet(target / "awards.parquet")
    full = outcomes.filter(pl.col("reason") == "funded")["application_id"]
    lost, changed = full[0], full[1]
    gained = outcomes.filter(pl.col("status") == "not_selected")["application_id"][0]
    zero = dict(status=pl.lit("not_selected"), award_fraction=pl.lit(0.0), cost_krw=pl.lit(0),
                awarded_krw=pl.lit(0), copay_krw=pl.lit(0))
    outcomes = outcomes.with_columns(
        **{k: pl.when(pl.col("application_id") == lost).then(v).otherwise(pl.col(k)) for k, v in zero.items()})
    outcomes = outcomes.with_columns(
        status=pl.when(pl.col("application_id") == gained).then(pl.lit("awarded")).otherwise("status"),
        award_fraction=pl.when(pl.col("application_id") == gained).then(1.0).otherwise("award_fraction"),
        cost_krw=pl.when(pl.col("application_id") == gained).then(350_000).otherwise("cost_krw"),
        awarded_krw=pl.when(pl.col("application_id") == gained).then(280_000)
        .when(pl.col("application_id") == changed).then(pl.col("awarded_krw") + 1_000)
        .otherwise("awarded_krw"),
        copay_krw=pl.when(pl.col("application_id") == gained).then(70_000).otherwise("copay_krw"),
    )
    awards = pl.concat([
        awards.filter(pl.col("application_id") != lost).with_columns(
            gpu_hours=pl.when((pl.col("application_id") == changed) & (pl.col("gpu_type") == pl.col("gpu_type")
                              .filter(pl.col("application_id") == changed).first()))
            .then(pl.col("gpu_hours") + 10).otherwise("gpu_hours")),
        pl.DataFrame({"application_id": [gained], "gpu_type": ["A100"], "gpu_hours": [100],
                      "krw": [350_000]}, schema=awards.schema),
    ])
    outcomes.write_parquet(target / "outcomes.parquet")
    awards.write_parquet(target / "awards.parquet")
    return lost, gained, changed


def test_diff_between_versions(solved, tmp_path, capsys):
    root = tmp_path / "pub"
    v1 = Path(publish(solved, root)["path"])
    lost, gained, changed = _changed_round(solved, tmp_path / "rerun")
    second = publish(tmp_path / "rerun", root)
    assert second["version"] == 2 and second["created"]
    v2 = Path(second["path"])

    diff = diff_versions(v1, v2)
    old = pl.read_parquet(v1 / "awards_public.parquet")
    assert [e["application_id"] for e in diff["gained"]] == [gained]
    assert diff["gained"][0]["awarded_krw"] == 280_000 and diff["gained"][0]["gpu_hours"]["A100"] == 100
    assert [e["application_id"] for e in diff["lost"]] == [lost]
    lost_krw = old.filter(pl.col("application_id") == lost)["awarded_krw"][0]
    assert diff["lost"][0]["awarded_krw"] == lost_krw
    assert [c["application_id"] for c in diff["changed"]] == [changed]
    assert diff["changed"][0]["delta_krw"] == 1_000
    assert list(diff["changed"][0]["delta_gpu_hours"].values()) == [10]
    assert diff["unchanged"] == old.height - 2
    assert diff["delta"]["awarded_krw"] == 280_000 - lost_krw + 1_000
    assert diff["delta"]["awardees"] == 0

    text = render_diff_markdown(diff)
    assert "v1 → v2" in text and gained in text and lost in text and changed in text
    assert "+₩1,000" in text and "## Lost" in text and "## Gained" in text
    # only public data: the not-funded applicant who gained appears; nobody else who is not awarded
    others = set(pl.read_parquet(solved / "outcomes.parquet").filter(
        pl.col("status") != "awarded")["application_id"].drop_nulls()) - {gained}
    assert not [o for o in others if o in text]

    assert cli_diff(v1, v2) == 0 and capsys.readouterr().out == text
    assert cli_diff(v1, v2, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["changed"][0]["delta_krw"] == 1_000

    same = diff_versions(v1, v1)
    assert not (same["gained"] or same["lost"] or same["changed"])
    assert "No awardee changed." in render_diff_markdown(same)

    with open(v2 / "awards_public.parquet", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ValueError, match="manifest"):
        diff_versions(v1, v2)
