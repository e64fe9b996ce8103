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

from allocation.intake import receipt
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
    blobs = b"".join(p.read_bytes() for p in (version / "r").glob("*/*.json"))
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
    files = sorted((version / "r").glob("*/*.json"))
    manifest = json.loads((version / "manifest.json").read_text())
    counts = manifest["lookup"]
    outcomes = pl.read_parquet(solved / "outcomes.parquet")
    # one file per application with an id and a usable code; the duplicated id shares one
    assert counts["rows"] == outcomes.height
    assert counts["skipped_missing_code"] == 1 and counts["merged_duplicate_rows"] == 1
    assert counts["skipped_weak_code"] == 0 and counts["skipped_ambiguous"] == 0
    assert len(files) == counts["files"] == outcomes.height - 2
    assert all(re.fullmatch(r"[0-9a-f]{64}\.json", p.name) for p in files)
    assert {p.stat().st_size for p in files} == {3993}                  # sizes say nothing, under one 4 KiB block
    assert len({p.stat().st_mtime for p in files}) == 1                  # nor write order
    shapes = {tuple(sorted(json.loads(p.read_bytes()))) for p in files}
    assert shapes == {("ct", "iv", "v")}
    # the r/ files are pinned through r.sha256, whose hash the signed manifest holds
    listing = (version / "r.sha256").read_text().splitlines()
    assert sorted(f"r/{p.parent.name}/{p.name}" for p in files) == [line.split("  ")[1] for line in listing]
    assert all(p.parent.name == p.name[:2] for p in files)              # r/<first 2 hex>/<name>.json
    assert "r.sha256" in manifest["files"] and not any(k.startswith("r/") for k in manifest["files"])
    params = json.loads((version / "lookup.json").read_text())
    assert params["format"] == "voucher-lookup/2" and params["round_id"] == "2026-R1"
    assert len(params["round_salt"]) >= 20 and len(params["version_salt"]) >= 20
    assert params["floor"]["gpu_years_per_code"] == 100 and "10900" in params["floor"]["rate"]["source"]
    assert [c["iterations"] for c in params["floor"]["classes"]] == [it for _, it in receipt.CLASSES]


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
    path = copy / "r" / name[:2] / f"{name}.json"
    blob = json.loads(path.read_text())
    ct = bytearray(base64.b64decode(blob["ct"]))
    ct[0] ^= 1
    blob["ct"] = base64.b64encode(bytes(ct)).decode()
    path.write_text(json.dumps(blob))
    assert lookup.lookup_result(copy, app_id, codes[app_id]) is None
    assert verify(copy) == [f"r/{name[:2]}/{name}.json"]
    (copy / "r" / "00" / ("0" * 64 + ".json")).write_text("{}")
    assert verify(copy)[-1] == f"r/00/{'0' * 64}.json"


def test_derivation_matches_the_documented_construction():
    """Python side of the browser contract (the page is checked in tests/browser)."""
    import hashlib
    import hmac

    params = lookup.LookupParams("2026-R1", bytes(range(16)), bytes(range(16, 32)))
    code = "abcd 2345-jkmn"          # 12 Crockford characters: 60 bits, class 60
    assert receipt.iterations_for(code) == dict(receipt.CLASSES)[60]
    name, key = lookup.derive(params, " r1-000001 ", code)
    master = hashlib.pbkdf2_hmac("sha256", "ABCD2345JKMN".encode(),
                                 bytes(range(16)) + b"2026-R1\x00R1-000001", dict(receipt.CLASSES)[60])

    def hkdf(info: str) -> bytes:
        prk = hmac.new(bytes(range(16, 32)), master, "sha256").digest()      # Extract, version salt
        return hmac.new(prk, info.encode() + b"\x01", "sha256").digest()    # one Expand block

    assert name == hkdf(lookup.NAME_INFO).hex() and key == hkdf(lookup.KEY_INFO)
    sealed = lookup.seal(name, key, b"hello")
    assert lookup.unseal(name, key, sealed) == b"hello"
    assert lookup.unseal("0" * 64, key, sealed) is None                 # bound to its name
    assert json.loads(io.BytesIO(sealed).read())["v"] == 2
    assert lookup.derive(params, "R1-000001", "12345678") is None       # weak: no file to look for


def _run_folder(tmp_path: Path, ids, codes, reasons, status, titles=None) -> Path:
    """A minimal run folder: outcomes, awards, requests and intake with sealed codes."""
    out = tmp_path / "out"
    (out / "intake").mkdir(parents=True)
    n = len(ids)
    awarded = [s == "awarded" for s in status]
    pl.DataFrame({
        "application_id": ids, "source_row": list(range(2, n + 2)), "company_name": [f"c{i}" for i in range(n)],
        "business_no": ["124-81-00998"] * n, "region": ["Seoul"] * n, "status": status,
        "score": [90.0 if a else None for a in awarded], "rank": [1 if a else None for a in awarded],
        "waitlist_rank": [None] * n, "award_fraction": [1.0 if a else 0.0 for a in awarded],
        "cost_krw": [1000 if a else 0 for a in awarded], "awarded_krw": [800 if a else 0 for a in awarded],
        "copay_krw": [200 if a else 0 for a in awarded],
        "reason": reasons, "score_needed": [None] * n, "reason_detail": [f"detail {i}" for i in range(n)],
    }, schema_overrides={"rank": pl.Int64, "waitlist_rank": pl.Int64, "score": pl.Float64,
                         "score_needed": pl.Float64}).write_parquet(out / "outcomes.parquet")
    winners = [a for a, w in zip(ids, awarded) if w]
    pl.DataFrame({"application_id": winners, "gpu_type": ["H100"] * len(winners),
                  "gpu_hours": [1] * len(winners), "krw": [1000] * len(winners)},
                 schema_overrides={"application_id": pl.String}).write_parquet(out / "awards.parquet")
    salt = receipt.round_salt("R-T", "0" * 64)
    apps = pl.DataFrame({"application_id": ids, "source_row": list(range(2, n + 2)), "receipt_code": codes,
                         "project_title": titles or [f"t{i}" for i in range(n)]},
                        schema_overrides={"application_id": pl.String, "receipt_code": pl.String})
    receipt.seal_codes(apps, "R-T", salt).write_parquet(out / "intake" / "applications.parquet")
    (out / "intake" / "intake.json").write_text(json.dumps({"lookup_salt": salt.hex()}))
    pl.DataFrame({"application_id": ["A-1", "A-2"], "gpu_type": ["H100", "H100"], "gpu_hours": [1, 5]}) \
        .write_parquet(out / "intake" / "requests.parquet")
    return out


STRONG = {"A-1": "CODE-1111-AAAA", "A-2": "SAME-CODE-2222", "A-3a": "FIRS-T333-3333",
          "A-3b": "OTHE-R333-3333", "a-5": "CASE-CODE-5555"}


def test_rows_without_id_or_code_and_duplicates(tmp_path):
    """No id, no usable or a weak code → no file; a duplicated id → one file per distinct code;
    two applications whose id and code normalise alike → no file for either."""
    ids = [None, "A-1", "A-2", "A-2", "A-3", "A-3", "A-4", "A-6", "a-5", "A-5"]
    codes = ["CODE0000", STRONG["A-1"], STRONG["A-2"], STRONG["A-2"], STRONG["A-3a"], STRONG["A-3b"], None,
             "12345678", STRONG["a-5"], STRONG["a-5"].lower()]
    reasons = ["missing_application_id", "funded", "duplicate_application_id",
               "duplicate_application_id", "duplicate_application_id", "duplicate_application_id",
               "invalid_field", "funded", "funded", "not_optimal"]
    status = ["ineligible", "awarded"] + ["ineligible"] * 5 + ["awarded", "awarded", "not_selected"]
    out = _run_folder(tmp_path, ids, codes, reasons, status)
    target = tmp_path / "v"
    target.mkdir()
    counts = lookup.write_lookup_files(out, target, "R-T")
    assert {k: counts[k] for k in ("rows", "files", "skipped_missing_id", "skipped_missing_code",
                                   "skipped_weak_code", "skipped_ambiguous", "merged_duplicate_rows")} == \
        {"rows": 10, "files": 4, "skipped_missing_id": 1, "skipped_missing_code": 1, "skipped_weak_code": 1,
         "skipped_ambiguous": 2, "merged_duplicate_rows": 1}
    assert len(list((target / "r").glob("*/*.json"))) == 4
    assert lookup.lookup_result(target, "a-1", "code1111aaaa")["awarded_krw"] == 800
    dup = lookup.lookup_result(target, "A-2", STRONG["A-2"])
    assert dup["reason"] == "duplicate_application_id" and dup["gpu_hours_requested"] == {}
    assert "more than one" in dup["explanation"]["en"]
    assert lookup.lookup_result(target, "A-3", STRONG["A-3a"])["company_name"] == "c4"
    assert lookup.lookup_result(target, "A-3", STRONG["A-3b"])["company_name"] == "c5"
    assert lookup.lookup_result(target, "A-4", "anything") is None
    assert lookup.lookup_result(target, "A-6", "12345678") is None        # weak code: no public file
    assert lookup.lookup_result(target, "A-5", STRONG["a-5"]) is None     # ambiguous: neither


def test_absurdly_long_text_stays_within_the_cap(tmp_path):
    huge = "가" * 200_000
    capped = lookup.cap_record({"company_name": huge, "project_title": huge, "reason_detail": huge,
                                "explanation": {"ko": "x" * 500, "en": "y" * 500}})
    assert len(capped) <= lookup.PLAINTEXT_SIZE
    record = json.loads(capped)
    assert record["project_title"].endswith("…") and len(record["project_title"]) <= 120
    out = _run_folder(tmp_path, ["A-1", "A-2"], [STRONG["A-1"], STRONG["A-2"]], ["funded", "not_optimal"],
                      ["awarded", "not_selected"], titles=["x" * 200_000, "short"])
    target = tmp_path / "v"
    target.mkdir()
    lookup.write_lookup_files(out, target, "R-T")
    assert {p.stat().st_size for p in (target / "r").glob("*/*.json")} == {3993}   # no pad-to-largest
    shown = lookup.lookup_result(target, "A-1", STRONG["A-1"])["project_title"]
    assert shown == "x" * 119 + "…"


def test_republish_derives_no_pbkdf2(tmp_path, monkeypatch):
    """Masters come from intake: publishing (and republishing) never runs PBKDF2."""
    out = _run_folder(tmp_path, ["A-1", "A-2"], [STRONG["A-1"], STRONG["A-2"]], ["funded", "not_optimal"],
                      ["awarded", "not_selected"])

    def forbidden(*args, **kwargs):
        raise AssertionError("PBKDF2 while publishing")

    monkeypatch.setattr(receipt, "master", forbidden)
    monkeypatch.setattr(receipt.hashlib, "pbkdf2_hmac", forbidden)
    names = []
    for k in range(2):
        target = tmp_path / f"v{k}"
        target.mkdir()
        lookup.write_lookup_files(out, target, "R-T", workers=1)
        names.append({p.name for p in (target / "r").glob("*/*.json")})
    assert len(names[0]) == len(names[1]) == 2 and not names[0] & names[1]     # fresh names per version


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


def _file_of(version: Path, application_id: str, code: str) -> Path:
    params = lookup.LookupParams.from_json(json.loads((version / "lookup.json").read_text()))
    name, _ = lookup.derive(params, application_id, code)
    return version / "r" / name[:2] / f"{name}.json"


def test_republish_reseals_only_changed_records(solved, codes, tmp_path):
    """v1 → v2 with one outcome changed and one removed: the unchanged records keep their file
    (the same bytes, hard-linked), the changed one is sealed again and reads the new outcome,
    the removed one is gone; both versions verify and every record is found in its version."""
    from allocation.publish.verify import verify_round
    from allocation.publish.version import publish

    run = tmp_path / "run"
    shutil.copytree(solved, run)
    root = tmp_path / "pub"
    v1 = Path(publish(run, root)["path"])
    found = [a for a, c in codes.items() if lookup.lookup_result(v1, a, c) is not None]
    kept, changed, removed = found[0], found[1], found[-1]
    outcomes = pl.read_parquet(run / "outcomes.parquet")
    outcomes = outcomes.with_columns(reason_detail=pl.when(pl.col("application_id") == changed)
                                     .then(pl.lit("changed on appeal")).otherwise(pl.col("reason_detail")))
    outcomes.filter(pl.col("application_id") != removed).write_parquet(run / "outcomes.parquet")
    info = publish(run, root)
    v2 = Path(info["path"])
    assert info["version"] == 2 and v2.name == "v2"

    old, new = _file_of(v1, kept, codes[kept]), _file_of(v2, kept, codes[kept])
    assert old.name == new.name and old.read_bytes() == new.read_bytes()
    assert old.stat().st_ino == new.stat().st_ino                       # reused, not sealed again
    old_c, new_c = _file_of(v1, changed, codes[changed]), _file_of(v2, changed, codes[changed])
    assert old_c.read_bytes() != new_c.read_bytes() and old_c.stat().st_ino != new_c.stat().st_ino
    assert lookup.lookup_result(v2, changed, codes[changed])["reason_detail"] == "changed on appeal"
    assert lookup.lookup_result(v1, changed, codes[changed])["reason_detail"] != "changed on appeal"
    assert lookup.lookup_result(v2, removed, codes[removed]) is None
    assert not _file_of(v2, removed, codes[removed]).exists()
    assert lookup.lookup_result(v1, removed, codes[removed]) is not None
    for a in found:
        if a != removed:
            assert lookup.lookup_result(v2, a, codes[a])["application_id"] == a
    meta = json.loads((run / "lookup_state.json").read_text())
    assert (meta["sealed"], meta["reused"]) == (1, len(list((v2 / "r").glob("*/*.json"))) - 1)
    assert (run / "lookup_state.parquet").stat().st_mode & 0o777 == 0o600
    assert not [p for p in root.rglob("lookup_state*")]                 # never in the publish root
    result = verify_round(root / v2.parent.name)
    assert result["ok"], result["problems"]
    assert result["versions"] == [1, 2]


def test_republish_without_a_matching_state_seals_everything(tmp_path):
    """No state for the previous version (another run folder, or a missing previous file): the
    records are sealed again under the carried salt, so every one is still found."""
    ids, status = ["A-1", "A-2"], ["awarded", "not_selected"]
    out = _run_folder(tmp_path, ids, [STRONG["A-1"], STRONG["A-2"]], ["funded", "not_optimal"], status)
    v1, v2, v3 = (tmp_path / n for n in ("v1", "v2", "v3"))
    for v in (v1, v2, v3):
        v.mkdir()
    lookup.write_lookup_files(out, v1, "R-T", workers=1)
    _file_of(v1, "A-1", STRONG["A-1"]).unlink()                         # lost on the server
    lookup.write_lookup_files(out, v2, "R-T", workers=1, previous=v1)
    assert json.loads((out / "lookup_state.json").read_text())["sealed"] == 1   # A-1 sealed again
    assert lookup.lookup_result(v2, "A-1", STRONG["A-1"])["awarded_krw"] == 800
    assert _file_of(v2, "A-2", STRONG["A-2"]).stat().st_ino == _file_of(v1, "A-2", STRONG["A-2"]).stat().st_ino
    (out / "lookup_state.json").unlink()
    lookup.write_lookup_files(out, v3, "R-T", workers=1, previous=v2)
    assert json.loads((out / "lookup_state.json").read_text())["sealed"] == 2
    assert _file_of(v3, "A-2", STRONG["A-2"]).name == _file_of(v1, "A-2", STRONG["A-2"]).name
    assert all(lookup.lookup_result(v3, a, STRONG[a]) is not None for a in ids)


def test_chunks_in_worker_processes_and_again_after_a_crash(tmp_path):
    """The three phases with one row per chunk, run by two worker processes (as mapped tasks
    would): the rows to seal stay in the run folder (0700), a chunk run twice replaces its
    files, and the result is found like a one-call publish."""
    ids = ["A-1", "A-2", "A-3a"]
    out = _run_folder(tmp_path, ids, [STRONG["A-1"], STRONG["A-2"], STRONG["A-3a"]],
                      ["funded", "not_optimal", "not_optimal"], ["awarded", "not_selected", "not_selected"])
    target = tmp_path / "v1"
    target.mkdir()
    plan = lookup.prepare_lookup(out, target, "R-T", chunk_rows=1)
    assert [c["kind"] for c in plan["chunks"]] == ["seal"] * 3
    work = out / "lookup_work"
    assert work.stat().st_mode & 0o777 == 0o700 and not list(target.glob("*.parquet"))
    lookup.seal_lookup_chunk(out, 1)
    lookup.seal_lookup_chunk(out, 1)                                     # a retried task
    lookup.run_lookup_chunks(out, len(plan["chunks"]), workers=2)
    counts = lookup.finalize_lookup(out)
    assert counts["files"] == 3 and not work.exists()
    import hashlib
    listed = sorted((target / "r.sha256").read_text().splitlines())
    on_disk = sorted(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(target).as_posix()}"
                     for p in (target / "r").glob("*/*.json"))
    assert len(on_disk) == 3 and listed == on_disk
    assert [lookup.lookup_result(target, a, STRONG[a])["application_id"] for a in ids] == ids
