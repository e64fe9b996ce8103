"""Tamper evidence (allocation.publish.verify, signing, audit): every published manifest is signed,
the audit trail is a hash chain pinned by the manifests, `voucher verify` names the first break,
and refills read the officers' run folder, never the public files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.errors import RoundError
from allocation.publish import audit, signing
from allocation.publish.manifest import sha256_file
from allocation.publish.verify import cross_check, verify_round
from allocation.publish.version import publish
from allocation.rounds import allocate as stages
from allocation.rounds.lifecycle import refill
from allocation.rounds.lifecycle.previous import load_previous
from bench.synthetic import generate_round

ROOT = Path(__file__).resolve().parents[2]
ITER = 100_000
ROUND_ID = "2026-R1"


def voucher(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "allocation", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def allocated(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("trust")
    round_dir = generate_round(base / "round", 14, seed=5)
    with open(round_dir / "round.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[lifecycle]\naccept_by = 2026-03-01\n")
    stages.run_round(round_dir, base / "out1")
    return round_dir, base / "out1"


@pytest.fixture
def published(allocated, tmp_path) -> Path:
    """v1 published into a fresh publish root; returns PUBLISH_ROOT/<round>."""
    publish(allocated[1], tmp_path / "pub", lookup_iterations=ITER)
    return tmp_path / "pub" / ROUND_ID


def _forge_award(version: Path) -> str:
    """Add an award to awards_public.parquet and recompute its manifest hash (no private key)."""
    frame = pl.read_parquet(version / files.AWARDS_PUBLIC_PARQUET)
    forged = frame.head(1).with_columns(pl.lit("FORGED-1").alias("application_id"))
    pl.concat([frame, forged]).write_parquet(version / files.AWARDS_PUBLIC_PARQUET)
    manifest = json.loads((version / files.MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][files.AWARDS_PUBLIC_PARQUET] = sha256_file(version / files.AWARDS_PUBLIC_PARQUET)
    (version / files.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return "FORGED-1"


def _trail(published: Path) -> Path:
    trail = audit.trail_path(published.parent, ROUND_ID)
    assert trail == published / files.AUDIT_TRAIL   # served with the round: verify needs nothing else
    return trail


def test_published_round_verifies_with_its_public_key(published):
    assert (published / "v1" / files.SIGNATURE).is_file()
    pem = (published / files.SIGNING_KEY_PUB).read_bytes()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----") and b"PRIVATE" not in pem
    result = verify_round(published)
    assert result["ok"], result["problems"]
    cli = voucher("verify", published)
    assert cli.returncode == 0 and "intact: v1..v1" in cli.stdout, cli.stdout + cli.stderr
    entry = audit.read(published.parent, ROUND_ID)[0]
    assert entry["prev_hash"] == audit.GENESIS


def test_a_copy_of_the_served_round_folder_alone_verifies(published, tmp_path):
    mirror = tmp_path / "mirror" / ROUND_ID
    shutil.copytree(published, mirror)          # what a downloader of PUBLISH_ROOT/<round>/ has
    result = verify_round(mirror)
    assert result["ok"] and result["audit_lines"] == 1, result["problems"]


def test_openssl_alone_verifies_the_signature(published):
    openssl = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                              published / files.SIGNING_KEY_PUB, "-rawin", "-in",
                              published / "v1" / files.MANIFEST, "-sigfile", published / "v1" / files.SIGNATURE],
                             capture_output=True, text=True)
    if "unknown option" in openssl.stderr or "rawin" in openssl.stderr and openssl.returncode:
        pytest.skip(f"this openssl has no -rawin: {openssl.stderr.strip()}")
    assert openssl.returncode == 0 and "Signature Verified Successfully" in openssl.stdout, openssl.stderr


def test_forged_award_with_recomputed_manifest_hash_fails_verify(published):
    _forge_award(published / "v1")
    cli = voucher("verify", published)
    assert cli.returncode == 1
    assert "BROKEN: v1: signature of manifest.json does not verify" in cli.stderr


def test_changed_file_without_manifest_change_fails_verify(published):
    (published / "v1" / files.REPORT_HTML).write_text("<p>nothing to see</p>", encoding="utf-8")
    result = verify_round(published)
    assert not result["ok"] and "report.html" in result["problems"][0]


@pytest.mark.parametrize("tamper, expected", [
    (lambda lines: [lines[0].replace('"kind":"allocation"', '"kind":"appeal"'), *lines[1:]], "line 2: chain broken"),   # line 1 edited
    (lambda lines: lines[1:], "line 1: chain broken"),                  # first line deleted
    (lambda lines: [lines[0], "{not json", *lines[1:]], "line 2: not a JSON record"),
])
def test_audit_tampering_fails_verify(published, allocated, tmp_path, tamper, expected):
    # a second line, chained after v1's (a republish's approval record)
    audit.append(published.parent, ROUND_ID, {"round_id": ROUND_ID, "version": 1, "kind": "unchanged"})
    trail = _trail(published)
    lines = trail.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and verify_round(published)["ok"]
    trail.write_text("\n".join(tamper(lines)) + "\n", encoding="utf-8")
    result = verify_round(published)
    cli = voucher("verify", published)
    assert not result["ok"] and cli.returncode == 1
    assert expected in result["problems"][0] and expected in cli.stderr


def test_deleting_a_versions_own_audit_line_fails_verify(published):
    _trail(published).write_text("", encoding="utf-8")
    result = verify_round(published)
    assert not result["ok"] and "the line of v1" in result["problems"][0]
    with pytest.raises(RoundError, match="audit line"):
        load_previous(published)


def test_unparsable_audit_line_is_an_error_not_skipped(published):
    with open(_trail(published), "a", encoding="utf-8") as handle:
        handle.write("{torn")
    with pytest.raises(RoundError, match="incomplete"):
        audit.read(published.parent, ROUND_ID)


def test_forged_public_file_never_reaches_a_refill(published, allocated, tmp_path, monkeypatch):
    round_dir, out1 = allocated
    forged = _forge_award(published / "v1")
    # with the officers' key: the tampered version is refused outright
    with pytest.raises(RoundError, match="signed manifest"):
        load_previous(published)
    # the forger also re-signs with their own key and replaces signing_key.pub; a process that
    # does not hold the officers' key trusts that public key, yet reads the run folder
    other = signing.load_private_key(signing.generate_key(tmp_path / "forger.pem"))
    (published / "v1" / files.SIGNATURE).write_bytes(
        signing.sign(other, (published / "v1" / files.MANIFEST).read_bytes()))
    (published / files.SIGNING_KEY_PUB).write_bytes(signing.public_pem(other))
    monkeypatch.delenv(signing.KEY_ENV)
    previous = load_previous(published)
    assert forged not in previous.awards and previous.out_dir == out1.resolve()
    honest = load_previous(out1)
    assert previous.awards == honest.awards and previous.label == "v1"
    report = refill.run_lifecycle(round_dir, published, tmp_path / "refill", as_of=date(2026, 2, 1))
    after = pl.read_parquet(tmp_path / "refill" / "outcomes.parquet")
    assert forged not in after["application_id"].to_list()
    kept = after.filter(pl.col("status") == "awarded")["application_id"].to_list()
    assert set(honest.awards) <= set(kept), report["lifecycle"]


def test_publishing_needs_a_signing_key_outside_the_publish_root(allocated, tmp_path, monkeypatch):
    monkeypatch.delenv(signing.KEY_ENV)
    with pytest.raises(RoundError, match="no signing key"):
        publish(allocated[1], tmp_path / "pub", lookup_iterations=ITER)
    inside = signing.generate_key(tmp_path / "pub" / "key.pem")
    with pytest.raises(RoundError, match="inside the publish root"):
        publish(allocated[1], tmp_path / "pub", lookup_iterations=ITER, signing_key=inside)
    loose = signing.generate_key(tmp_path / "loose.pem")
    loose.chmod(0o644)
    with pytest.raises(RoundError, match="readable by others"):
        publish(allocated[1], tmp_path / "pub", lookup_iterations=ITER, signing_key=loose)


def test_unchanged_publish_keeps_the_version_and_records_the_approval(published, allocated):
    again = publish(allocated[1], published.parent, lookup_iterations=ITER,
                    actor={"via": "airflow", "triggered_by": "kim", "approved_by": "lee (Approve)"})
    assert not again["created"] and again["version"] == 1 and again["message"] == "unchanged: v1 kept"
    trail = audit.read(published.parent, ROUND_ID)
    assert [(e["version"], e["kind"]) for e in trail] == [(1, "allocation"), (1, "unchanged")]
    assert trail[1]["roles"] == {"triggered": "officer", "approved": "approver"} and trail[1]["note"] == "unchanged: v1 kept"
    assert "lee" not in _trail(published).read_text(encoding="utf-8")
    officers = audit.read_officer(published.parent, ROUND_ID)
    assert officers[1]["approved_by"] == "lee (Approve)" and officers[1]["triggered_by"] == "kim"
    assert officers[1]["public_sha256"] == audit.line_hash(_trail(published).read_text().splitlines()[1])
    assert verify_round(published)["ok"]
    cli = voucher("publish", allocated[1], "--publish-root", published.parent)
    assert cli.returncode == 0 and "unchanged: v1 kept" in cli.stdout, cli.stderr


def test_demo_versions_are_marked_and_never_mix_with_official_ones(allocated, tmp_path):
    demo = publish(allocated[1], tmp_path / "demo", lookup_iterations=ITER, demo=True)
    version = Path(demo["path"])
    pages = sorted(version.rglob("*.html"))
    assert len(pages) >= 3
    for page in pages:
        assert "<strong>DEMO</strong>" in page.read_text(encoding="utf-8"), page.name
    assert json.loads((version / files.MANIFEST).read_text())["demo"] is True
    assert verify_round(version.parent)["ok"]
    with pytest.raises(RoundError, match="holds demo versions"):
        publish(allocated[1], tmp_path / "demo", lookup_iterations=ITER)
    official = publish(allocated[1], tmp_path / "official", lookup_iterations=ITER)
    assert "DEMO" not in (Path(official["path"]) / files.REPORT_HTML).read_text(encoding="utf-8")
    with pytest.raises(RoundError, match="holds official versions"):
        publish(allocated[1], tmp_path / "official", lookup_iterations=ITER, demo=True)


# --- the officers' trail, bound to the public one (issue 14) -----------------------------------

def test_officers_trail_is_private_and_bound_line_by_line(published, allocated):
    publish(allocated[1], published.parent, lookup_iterations=ITER,
            actor={"via": "airflow", "triggered_by": "kim", "approved_by": "lee (Approve)", "run_id": "manual__x"})
    officer = audit.officer_path(published.parent, ROUND_ID)
    assert not officer.is_relative_to(published.parent)            # never inside the served folder
    assert officer.stat().st_mode & 0o777 == 0o600 and officer.parent.stat().st_mode & 0o777 == 0o700
    result = cross_check(published)
    assert result["ok"], result["problems"]
    assert (result["public_lines"], result["officer_lines"], result["legacy_lines"]) == (2, 2, 0)
    cli = voucher("verify", published, "--officer-trail")
    assert cli.returncode == 0 and "2 line(s) chained, each bound to its public line" in cli.stdout, cli.stderr
    lines = officer.read_text(encoding="utf-8").splitlines()
    # the officers' line of the unchanged approval removed: its public line is unbound
    officer.write_text(lines[0] + "\n", encoding="utf-8")
    result = cross_check(published)
    assert not result["ok"] and "public line 2 (unchanged v1): no officers' line" in result["problems"][0]
    cli = voucher("verify", published, "--officer-trail", officer)
    assert cli.returncode == 1 and "no officers' line" in cli.stderr
    # an edited officers' line: the public line's commitment to it no longer matches (even the last line)
    officer.write_text("\n".join([lines[0], lines[1].replace("kim", "someone")]) + "\n", encoding="utf-8")
    assert "public line 2 (unchanged v1): the officers' line bound to it was changed" in cross_check(published)["problems"][0]
    officer.write_text("\n".join([lines[0].replace(str(allocated[1].resolve()), "/elsewhere"), lines[1]]) + "\n",
                       encoding="utf-8")
    assert "chain broken" in cross_check(published)["problems"][0]
    # the public trail alone still verifies: anyone's check does not need the officers' side
    assert verify_round(published)["ok"]


def test_cross_check_compares_the_run_folder_with_the_signed_result(allocated, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(allocated[1], out)
    publish(out, tmp_path / "pub", lookup_iterations=ITER)
    round_root = tmp_path / "pub" / ROUND_ID
    assert cross_check(round_root)["ok"]
    with open(out / files.SOLUTION, "a", encoding="utf-8") as handle:
        handle.write("\n")
    problems = cross_check(round_root)["problems"]
    assert problems and "no longer holds the result v1 published" in problems[0]
    shutil.rmtree(out)    # a run folder removed (a purge): a note, not a break
    result = cross_check(round_root)
    assert result["ok"] and "no longer there" in result["notes"][0]


def _make_legacy(publish_root: Path, out_dir: Path) -> None:
    """Turn a freshly published v1 into what publishing wrote before the public/officers' split:
    the trail next to the round folder, with account names and the run folder, pinned and signed."""
    round_root = publish_root / ROUND_ID
    public = json.loads((round_root / files.AUDIT_TRAIL).read_text(encoding="utf-8").splitlines()[0])
    legacy = {k: v for k, v in public.items() if k not in ("format", "roles", "staff", "officer_sha256")}
    legacy.update(via="airflow", triggered_by="kim.legacy", approved_by="lee.legacy (Approve)",
                  out_dir=str(out_dir.resolve()), prev_hash=audit.GENESIS)
    line = json.dumps(legacy, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    (publish_root / f"{ROUND_ID}{files.AUDIT_SUFFIX}").write_text(line + "\n", encoding="utf-8")
    (round_root / files.AUDIT_TRAIL).unlink()
    shutil.rmtree(files.officer_root(publish_root))
    manifest_path = round_root / "v1" / files.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["audit"] = {"trail": f"{ROUND_ID}{files.AUDIT_SUFFIX}", "line_sha256": audit.line_hash(line)}
    data = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    manifest_path.write_bytes(data)
    (round_root / "v1" / files.SIGNATURE).write_bytes(signing.sign(signing.load_private_key(), data))


def test_a_legacy_trail_keeps_verifying_and_continues_without_names(allocated, tmp_path):
    round_dir, out1 = allocated
    pub = tmp_path / "pub"
    publish(out1, pub, lookup_iterations=ITER)
    _make_legacy(pub, out1)
    round_root = pub / ROUND_ID
    assert verify_round(round_root)["ok"] and verify_round(round_root)["audit_lines"] == 1
    assert load_previous(round_root).out_dir == out1.resolve()     # a legacy line is its own detail
    # the next version goes to the same (legacy) file, in the public form, with an officers' line
    out2 = tmp_path / "out2"
    stages.run_round(round_dir, out2, budget_krw=1_000_000_000)
    publish(out2, pub, lookup_iterations=ITER,
            actor={"via": "airflow", "triggered_by": "kim.new", "approved_by": "lee.new (Approve)"})
    assert not (round_root / files.AUDIT_TRAIL).exists()
    lines = (pub / f"{ROUND_ID}{files.AUDIT_SUFFIX}").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "kim.new" not in lines[1] and str(tmp_path) not in lines[1]
    assert verify_round(round_root)["ok"]
    result = cross_check(round_root)
    assert result["ok"] and (result["legacy_lines"], result["officer_lines"]) == (1, 1), result
    assert load_previous(round_root).out_dir == out2.resolve()
