"""Published versions: public award list, manifest, immutability, atomicity."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation.errors import RoundError
from allocation.publish.manifest import verify
from allocation.publish import version as version_module
from allocation.publish.version import publish


@pytest.fixture(scope="module")
def solved(solved_sample) -> Path:
    # The sample round with an awardee-to-be whose title would run as a spreadsheet formula
    # (R1-000004), solved once per session (tests/conftest.py).
    return solved_sample



def test_public_list_has_awardees_only_and_masks(solved, tmp_path):
    info = publish(solved, tmp_path / "pub")
    version = Path(info["path"])
    assert info["version"] == 1 and info["created"]
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    awarded = set(outcomes.filter(pl.col("status") == "awarded")["application_id"])
    others = set(outcomes.filter(pl.col("status") != "awarded")["application_id"].drop_nulls())
    public = pl.read_parquet(version / "awards_public.parquet")
    assert set(public["application_id"]) == awarded
    assert public["business_no"].str.contains(r"^\d{3}-\d{2}-\*{5}$").all()
    for name in ("awards_public.csv", "awards_public.html", "awards_public.parquet"):
        raw = (version / name).read_bytes()
        for other in others:
            assert other.encode() not in raw, (name, other)
    csv = (version / "awards_public.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in csv
    html = (version / "awards_public.html").read_text(encoding="utf-8")
    assert "<b>click</b>" not in html and "&lt;b&gt;click&lt;/b&gt;" in html
    assert "receipt" not in csv


def test_manifest_verifies_and_detects_tampering(solved, tmp_path):
    version = Path(publish(solved, tmp_path / "pub")["path"])
    assert verify(version) == []
    manifest = json.loads((version / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"awards_public.csv", "awards_public.xlsx", "awards_public.parquet",
                                      "awards_public.html"}
    assert manifest["input_sha256"] and manifest["solver"]["status"] == "optimal"
    with open(version / "awards_public.csv", "ab") as handle:
        handle.write(b"tampered\n")
    assert verify(version) == ["awards_public.csv"]


def test_publishing_twice_is_a_no_op_and_a_change_makes_v2(solved, tmp_path):
    first = publish(solved, tmp_path / "pub")
    again = publish(solved, tmp_path / "pub")
    assert again == {**first, "created": False, "message": "unchanged: v1 kept"}
    changed = tmp_path / "changed"
    shutil.copytree(solved, changed)
    outcomes = pl.read_parquet(changed / "outcomes.parquet")
    outcomes.with_columns(copay_krw=pl.col("copay_krw") + 1).write_parquet(changed / "outcomes.parquet")
    second = publish(changed, tmp_path / "pub")
    assert second["version"] == 2 and second["created"]
    assert verify(Path(first["path"])) == []


def test_crash_mid_publish_leaves_no_visible_version(solved, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(version_module, "_write_pages", crash)   # while the workers seal
    with pytest.raises(OSError):
        publish(solved, tmp_path / "pub")
    round_root = tmp_path / "pub" / "2026-R1"
    assert [p.name for p in round_root.iterdir()] == ["signing_key.pub"]   # the round's key, no version


@pytest.mark.parametrize("round_id", ["../escaped_round", "a/b", "", None, "x" * 65, "/abs"])
def test_publish_refuses_a_round_id_that_is_not_a_folder_name(solved, tmp_path, round_id):
    out = tmp_path / "out"
    shutil.copytree(solved, out)
    report = json.loads((out / "solution.json").read_text(encoding="utf-8"))
    report["round_id"] = round_id
    (out / "solution.json").write_text(json.dumps(report), encoding="utf-8")
    root = tmp_path / "pub" / "root"
    root.mkdir(parents=True)
    with pytest.raises(RoundError, match="not a valid folder name"):
        publish(out, root)
    assert list(tmp_path.joinpath("pub").rglob("*")) == [root]      # nothing created, inside or out
