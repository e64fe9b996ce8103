"""Applicant lookup files (r/), and what the public files of a version do not contain."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from allocation.publish import lookup
from allocation.publish.manifest import verify


@pytest.fixture(scope="module")
def solved(solved_sample) -> Path:
    return solved_sample


@pytest.fixture(scope="module")
def version(published_sample) -> Path:
    return published_sample


@pytest.fixture(scope="module")
def codes(receipt_codes) -> dict[str, str]:
    return receipt_codes


def _public_texts(version: Path) -> dict[str, str]:
    """Decoded content of every public file except the encrypted r/ blobs."""
    texts = {}
    for path in sorted(version.rglob("*")):
        rel = path.relative_to(version).as_posix()
        if not path.is_file() or rel.startswith("r/"):
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            texts[rel] = "\n".join([",".join(frame.columns)]
                                   + [",".join("" if v is None else str(v) for v in row)
                                      for row in frame.iter_rows()])
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                texts[rel] = "\n".join(archive.read(name).decode("utf-8", "replace")
                                       for name in archive.namelist())
        elif path.suffix == ".sig":   # the raw Ed25519 signature of manifest.json: 64 random-looking bytes
            texts[rel] = path.read_bytes().hex()
        else:
            texts[rel] = path.read_bytes().decode("utf-8-sig")
    return texts


def test_public_files_hold_nothing_about_non_awardees(solved, version, codes):
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    apps = pl.read_parquet(solved / "intake" / "applications.parquet")
    awarded = outcomes.filter(pl.col("status") == "awarded")
    others = outcomes.filter(pl.col("status") != "awarded")
    award_titles = set(apps.filter(pl.col("application_id").is_in(awarded["application_id"].implode()))
                       ["project_title"].drop_nulls())
    award_names = set(awarded["company_name"])

    def not_in(values, public: set[str]) -> set[str]:
        """Values that are not (part of) some awardee's public value: those must not appear."""
        return {v for v in values if not any(v in p for p in public)}

    secrets = {
        "ids": not_in(others["application_id"].drop_nulls(), set(awarded["application_id"])),
        "names": not_in(others["company_name"].drop_nulls(), award_names),
        "titles": not_in(apps.filter(pl.col("application_id").is_in(others["application_id"].implode()))
                         ["project_title"].drop_nulls(), award_titles),
        # nobody's full business number, awardee or not, and nobody's receipt code
        "business_nos": set(outcomes["business_no"].drop_nulls())
        | {b.replace("-", "") for b in outcomes["business_no"].drop_nulls()},
        "codes": set(codes.values()),
    }
    assert all(secrets.values())
    texts = _public_texts(version)
    assert {"awards_public.csv", "awards_public.xlsx", "awards_public.parquet", "awards_public.html",
            "report.html", "index.html", "lookup.json", "manifest.json"} <= set(texts)
    for name, text in texts.items():
        for kind, values in secrets.items():
            leaked = sorted(v for v in values if v in text)
            assert not leaked, (name, kind, leaked[:5])
    # receipt codes are not in the encrypted files either
    blobs = b"".join(p.read_bytes() for p in (version / "r").iterdir())
    assert not [c for c in codes.values() if c.encode() in blobs]


def test_injection_is_neutralised_in_every_award_format(version, injected):
    texts = _public_texts(version)
    raw = injected["project_title"]
    csv = texts["awards_public.csv"]
    assert "'=HYPERLINK" in csv and f",{raw}" not in csv and f',"{raw}' not in csv.replace('""', '"')
    assert "'" + raw in pl.read_parquet(version / "awards_public.parquet")["project_title"].to_list()
    xlsx = pl.read_excel(version / "awards_public.xlsx")
    assert "'" + raw in xlsx["project_title"].to_list()
    assert "<f>" not in texts["awards_public.xlsx"]           # no formula cell at all
    for page in ("awards_public.html", "report.html", "index.html"):
        assert "<b>click</b>" not in texts[page]
    assert "&lt;b&gt;click&lt;/b&gt;" in texts["awards_public.html"]
    # every text cell that starts like a formula is neutralised
    public = pl.read_parquet(version / "awards_public.parquet")
    for column, dtype in public.schema.items():
        if dtype == pl.String:
            assert not public[column].str.contains(r"^[=+\-@\t\r]").any(), column


def test_lookup_files_are_indistinguishable(version, solved):
    files = sorted((version / "r").iterdir())
    manifest = json.loads((version / "manifest.json").read_text())
    counts = manifest["lookup"]
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    # one file per application with an id and a usable code; the duplicated id shares one
    assert counts["rows"] == outcomes.height
    assert counts["skipped_missing_code"] == 1 and counts["merged_duplicate_rows"] == 1
    assert len(files) == counts["files"] == outcomes.height - 2
    assert all(re.fullmatch(r"[0-9a-f]{64}\.json", p.name) for p in files)
    assert len({p.stat().st_size for p in files}) == 1                   # sizes say nothing
    assert len({p.stat().st_mtime for p in files}) == 1                  # nor write order
    shapes = {tuple(sorted(json.loads(p.read_bytes()))) for p in files}
    assert shapes == {("ct", "iv", "v")}
    assert all(f"r/{p.name}" in manifest["files"] for p in files)
    params = json.loads((version / "lookup.json").read_text())
    assert params["kdf"]["iterations"] >= lookup.MIN_ITERATIONS >= 100_000
    assert len(params["salt"]) >= 20 and params["round_id"] == "2026-R1"


def _expect(solved: Path, application_id: str) -> dict:
    return pl.read_parquet(solved / "outcomes.parquet").filter(
        pl.col("application_id") == application_id).row(0, named=True)


@pytest.mark.parametrize("pick", ["funded", "funded_partially", "waitlisted", "not_selected",
                                  "below_min_score", "invalid_request", "duplicate_application_id"])
def test_lookup_round_trip(pick, solved, version, codes):
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    if pick in ("waitlisted", "not_selected"):
        row = outcomes.filter((pl.col("status") == pick) & (pl.col("reason") == "budget_exhausted")).row(0, named=True)
    else:
        row = outcomes.filter(pl.col("reason") == pick).row(0, named=True)
    app_id = row["application_id"]
    result = lookup.lookup_result(version, app_id, codes[app_id])
    assert result is not None
    assert result["application_id"] == app_id and result["status"] == row["status"]
    assert result["reason"] == row["reason"] and result["reason_detail"] == row["reason_detail"]
    assert result["company_name"] == row["company_name"]
    assert result["explanation"]["ko"] and result["explanation"]["en"]
    awards = pl.read_parquet(solved / "awards.parquet").filter(pl.col("application_id") == app_id)
    if row["status"] == "awarded":
        assert (result["awarded_krw"], result["copay_krw"], result["cost_krw"]) == \
            (row["awarded_krw"], row["copay_krw"], row["cost_krw"])
        assert result["gpu_hours_awarded"] == dict(awards.select("gpu_type", "gpu_hours").iter_rows())
        assert result["awarded_krw"] > 0
    else:
        assert result["awarded_krw"] == result["copay_krw"] == 0 and result["gpu_hours_awarded"] == {}
    if row["status"] == "waitlisted":
        assert result["waitlist_rank"] == row["waitlist_rank"] and str(row["waitlist_rank"]) in \
            result["explanation"]["en"]
    if pick == "below_min_score":
        assert "minimum score" in result["explanation"]["en"] and "최소 점수" in result["explanation"]["ko"]
    # the text the officer reads on the phone
    text = lookup.format_result(result)
    assert app_id in text and result["status_label"]["ko"] in text


def test_wrong_code_and_unknown_rows_find_nothing(solved, version, codes):
    awarded = pl.read_parquet(solved / "outcomes.parquet").filter(pl.col("status") == "awarded")
    app_id = awarded["application_id"][0]
    other_id = awarded["application_id"][1]
    assert lookup.lookup_result(version, app_id, "WRONGCODE1") is None
    assert lookup.lookup_result(version, app_id, codes[other_id]) is None     # someone else's code
    assert lookup.lookup_result(version, "R1-999999", codes[app_id]) is None
    assert lookup.lookup_result(version, app_id, "") is None
    # the application whose receipt code was unusable has no file (documented)
    row = pl.read_parquet(solved / "outcomes.parquet").filter(
        pl.col("reason_detail").str.contains("receipt_code")).row(0, named=True)
    assert row["application_id"] not in codes
    assert "Not found" in lookup.format_result(None)
    # forgiving input: spaces and case; a round folder resolves to its latest version
    assert lookup.lookup_result(version.parent, f"  {app_id} ", codes[app_id].lower() + " ") is not None


def test_tampered_lookup_file_reveals_nothing(solved, version, codes, tmp_path):
    copy = tmp_path / "v1"
    shutil.copytree(version, copy)
    app_id = pl.read_parquet(solved / "outcomes.parquet").filter(
        pl.col("status") == "awarded")["application_id"][0]
    params = lookup.LookupParams.from_json(json.loads((copy / "lookup.json").read_text()))
    name, _ = lookup.derive(params, app_id, codes[app_id])
    path = copy / "r" / f"{name}.json"
    blob = json.loads(path.read_text())
    ct = bytearray(base64.b64decode(blob["ct"]))
    ct[0] ^= 1
    blob["ct"] = base64.b64encode(bytes(ct)).decode()
    path.write_text(json.dumps(blob))
    assert lookup.lookup_result(copy, app_id, codes[app_id]) is None
    assert verify(copy) == [f"r/{name}.json"]
    (copy / "r" / ("0" * 64 + ".json")).write_text("{}")
    assert verify(copy)[-1] == f"r/{'0' * 64}.json"


def test_derivation_matches_the_documented_construction():
    """Python side of the browser contract (the page is checked in tests/browser)."""
    import hashlib
    import hmac

    params = lookup.LookupParams("2026-R1", bytes(range(16)), 1_000)
    name, key = lookup.derive(params, " R1-000001 ", "abcd efgh")
    master = hashlib.pbkdf2_hmac("sha256", "ABCD EFGH".encode(),
                                 bytes(range(16)) + b"2026-R1\x00R1-000001", 1_000)
    prk = hmac.new(b"\x00" * 32, master, "sha256").digest()            # HKDF-Extract, empty salt

    def expand(info: str) -> bytes:
        return hmac.new(prk, info.encode() + b"\x01", "sha256").digest()

    assert name == expand(lookup.NAME_INFO).hex() and key == expand(lookup.KEY_INFO)
    sealed = lookup.seal(name, key, b"hello")
    assert lookup.unseal(name, key, sealed) == b"hello"
    assert lookup.unseal("0" * 64, key, sealed) is None                 # bound to its name
    assert json.loads(io.BytesIO(sealed).read())["v"] == 1


def test_rows_without_id_or_code_and_duplicates(tmp_path):
    """No id or no usable code → no file; a duplicated id → one file per distinct code."""
    out = tmp_path / "out"
    (out / "intake").mkdir(parents=True)
    ids = [None, "A-1", "A-2", "A-2", "A-3", "A-3", "A-4"]
    codes = ["CODE0000", "CODE1111", "SAMECODE", "SAMECODE", "FIRST333", "OTHER333", None]
    reasons = ["missing_application_id", "funded", "duplicate_application_id",
               "duplicate_application_id", "duplicate_application_id", "duplicate_application_id",
               "invalid_field"]
    n = len(ids)
    status = ["ineligible", "awarded"] + ["ineligible"] * 5
    pl.DataFrame({
        "application_id": ids, "source_row": list(range(2, n + 2)), "company_name": [f"c{i}" for i in range(n)],
        "business_no": ["124-81-00998"] * n, "region": ["Seoul"] * n, "status": status,
        "score": [None, 90.0, None, None, None, None, None], "rank": [None, 1] + [None] * 5,
        "waitlist_rank": [None] * n, "award_fraction": [0.0, 1.0] + [0.0] * 5,
        "cost_krw": [0, 1000] + [0] * 5, "awarded_krw": [0, 800] + [0] * 5, "copay_krw": [0, 200] + [0] * 5,
        "reason": reasons, "score_needed": [None] * n, "reason_detail": [f"detail {i}" for i in range(n)],
    }, schema_overrides={"rank": pl.Int64, "waitlist_rank": pl.Int64, "score": pl.Float64,
                         "score_needed": pl.Float64}).write_parquet(out / "outcomes.parquet")
    pl.DataFrame({"application_id": ["A-1"], "gpu_type": ["H100"], "gpu_hours": [1], "krw": [1000]}) \
        .write_parquet(out / "awards.parquet")
    pl.DataFrame({"application_id": ids, "source_row": list(range(2, n + 2)), "receipt_code": codes,
                  "project_title": [f"t{i}" for i in range(n)]}).write_parquet(out / "intake" / "applications.parquet")
    pl.DataFrame({"application_id": ["A-1", "A-2"], "gpu_type": ["H100", "H100"], "gpu_hours": [1, 5]}) \
        .write_parquet(out / "intake" / "requests.parquet")

    target = tmp_path / "v"
    target.mkdir()
    counts = lookup.write_lookup_files(out, target, "R-T", iterations=1_000)
    assert counts == {"rows": n, "files": 4, "skipped_missing_id": 1, "skipped_missing_code": 1,
                      "merged_duplicate_rows": 1, "plaintext_bytes": counts["plaintext_bytes"],
                      "iterations": 1_000}
    assert len(list((target / "r").iterdir())) == 4
    assert lookup.lookup_result(target, "A-1", "code1111")["awarded_krw"] == 800
    dup = lookup.lookup_result(target, "A-2", "SAMECODE")
    assert dup["reason"] == "duplicate_application_id" and dup["gpu_hours_requested"] == {}
    assert "more than one" in dup["explanation"]["en"]
    assert lookup.lookup_result(target, "A-3", "FIRST333")["company_name"] == "c4"
    assert lookup.lookup_result(target, "A-3", "OTHER333")["company_name"] == "c5"
    assert lookup.lookup_result(target, "A-4", "anything") is None


def test_cli_lookup(version, codes, capsys, monkeypatch):
    app_id = next(iter(codes))
    assert lookup.cli_lookup(version.parent, app_id, codes[app_id]) == 0
    assert app_id in capsys.readouterr().out
    assert lookup.cli_lookup(version, app_id, "WRONGCODE1") == 1
    assert "Not found" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(codes[app_id] + "\n"))
    assert lookup.cli_lookup(version, app_id, "-", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["application_id"] == app_id
    with pytest.raises(FileNotFoundError):
        lookup.cli_lookup(version / "r", app_id, codes[app_id])
