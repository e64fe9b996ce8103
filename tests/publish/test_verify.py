"""Tamper evidence (allocation.publish.verify, signing, audit): every published manifest is signed,
the audit trail is a hash chain pinned by the manifests, `voucher verify` names the first break,
and refills read the officers' run folder, never the public files."""

from __future__ import annotations

import json
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
from allocation.publish.verify import verify_round
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
    return published.parent / f"{ROUND_ID}{files.AUDIT_SUFFIX}"


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
    assert trail[1]["approved_by"] == "lee (Approve)" and trail[1]["note"] == "unchanged: v1 kept"
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
