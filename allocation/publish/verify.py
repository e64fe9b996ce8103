"""Check a published round end to end (``voucher verify PUBLISH_ROOT/<round_id>``).

For every version v1…vN, oldest first: the manifest's Ed25519 signature (manifest.sig) with the
round's public key, every file against the manifest's sha256 (nothing missing, nothing added),
the version number; then the round's public audit trail (PUBLISH_ROOT/<round_id>/audit.jsonl,
or the legacy one next to the round folder): the hash chain, and that each version's own line
(pinned by its signed manifest) is in it. Problems are listed in that order, so the first one is
the first break. Anyone can run it on a copy of the served round folder alone.

:func:`cross_check` is the officers' side (``voucher verify ROUND --officer-trail [PATH]``): the
officers' trail is an intact chain, bound one to one to the public lines, agreeing with them, and
every run folder it names that still exists holds the result the signed manifest names.
"""

from __future__ import annotations

import json
from pathlib import Path

from allocation import files
from allocation.errors import RoundError
from allocation.publish import audit, signing
from allocation.publish.manifest import verify as verify_files
from allocation.publish.version import result_fingerprint


def verify_version(version_dir: Path, public, *, lookup_purged: bool = False) -> list[str]:
    """Problems of one version (empty: signed by public's key and intact). lookup_purged: a
    recorded purge removed its lookup files, so their absence is no break."""
    version_dir = Path(version_dir)
    name = version_dir.name
    manifest_path, sig_path = version_dir / files.MANIFEST, version_dir / files.SIGNATURE
    if not manifest_path.is_file():
        return [f"{name}: {files.MANIFEST} missing"]
    if not sig_path.is_file():
        return [f"{name}: {files.SIGNATURE} missing (unsigned version)"]
    data = manifest_path.read_bytes()
    if not signing.is_valid(public, data, sig_path.read_bytes()):
        return [f"{name}: signature of {files.MANIFEST} does not verify with the round's public key "
                f"(the manifest was changed or signed by another key)"]
    problems = []
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError:
        return [f"{name}: {files.MANIFEST} is not JSON"]
    if f"v{manifest.get('version')}" != name:
        problems.append(f"{name}: the signed manifest is for v{manifest.get('version')}")
    bad = verify_files(version_dir)
    if lookup_purged:
        bad = [b for b in bad if not (files.is_lookup_file(b) and not (version_dir / b).exists())]
    if bad:
        problems.append(f"{name}: files do not match the signed manifest: {', '.join(bad[:5])}"
                        + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return problems


def verify_round(round_root: Path, public_key: Path | None = None) -> dict:
    """{"ok", "problems", "versions", "audit_lines", "key_sha256"} for PUBLISH_ROOT/<round_id>.

    public_key: a PEM file obtained independently (default: the round's signing_key.pub).
    RoundError when there is nothing to verify (no versions, no public key)."""
    round_root = Path(round_root)
    versions = files.list_versions(round_root)
    if not versions:
        raise RoundError(f"{round_root}: no published version (v1, v2, …) to verify")
    key_file = Path(public_key) if public_key else round_root / files.SIGNING_KEY_PUB
    if not key_file.is_file():
        raise RoundError(f"{key_file}: public key not found (give --public-key FILE)")
    public = signing.load_public_key(key_file)
    problems: list[str] = []
    manifests: dict[int, dict] = {}
    try:
        purged = audit.purged_lookup_versions(audit.read(round_root.parent, round_root.name))
    except RoundError:   # a broken chain is reported below
        purged = set()
    for v in versions:
        version_dir = round_root / files.version_name(v)
        found = verify_version(version_dir, public, lookup_purged=v in purged)
        problems += found
        if not found:
            manifests[v] = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    round_id = round_root.name
    lines: list[tuple[str, dict]] = []
    try:
        lines = audit.read_lines(round_root.parent, round_id)
    except RoundError as exc:
        problems.append(f"audit trail: {exc}")
    else:
        pinned = {audit.line_hash(text): entry for text, entry in lines}
        for v, manifest in manifests.items():
            want = (manifest.get("audit") or {}).get("line_sha256")
            entry = pinned.get(want)
            if want is None:
                problems.append(f"v{v}: the manifest pins no audit line")
            elif entry is None or entry.get("version") != v:
                problems.append(f"audit trail: the line of v{v} (sha256 {want[:12]}…) is missing or "
                                f"was changed")
    return {"ok": not problems, "problems": problems, "versions": versions,
            "audit_lines": len(lines), "key_sha256": signing.key_id(public), "public_key": str(key_file)}


def cross_check(round_root: Path, officer_trail: Path | None = None) -> dict:
    """{"ok", "problems", "notes", "public_lines", "officer_lines", "legacy_lines", "path"}: the
    officers' trail of PUBLISH_ROOT/<round_id> against its public trail (default path:
    allocation.publish.audit.officer_path)."""
    round_root = Path(round_root)
    publish_root, round_id = round_root.parent, round_root.name
    path = Path(officer_trail) if officer_trail else audit.officer_path(publish_root, round_id)
    problems: list[str] = []
    notes: list[str] = []
    public, officer = [], []
    try:
        public = audit.read_lines(publish_root, round_id)
    except RoundError as exc:
        problems.append(f"public audit trail: {exc}")
    if not path.is_file():
        problems.append(f"{path}: the officers' audit trail is not there")
    else:
        try:
            officer = audit.read_chain(path)
        except RoundError as exc:
            problems.append(f"officers' audit trail: {exc}")
    bound: dict[str, tuple[int, dict]] = {}
    for number, (_, entry) in enumerate(officer, start=1):
        key = entry.get("public_sha256")
        if key in bound:
            problems.append(f"officers' line {number}: bound to the same public line as officers' line "
                            f"{bound[key][0]}")
        bound[key] = (number, entry)
    seen, legacy = set(), 0
    for number, (text, entry) in enumerate(public, start=1):
        key = audit.line_hash(text)
        seen.add(key)
        what = f"public line {number} ({entry.get('kind')}" + (f" v{entry['version']})" if entry.get("version") else ")")
        if audit.is_legacy(entry):
            legacy += 1
            continue
        if key not in bound:
            problems.append(f"{what}: no officers' line is bound to it")
            continue
        _, detail = bound[key]
        if audit.commitment(detail) != entry.get("officer_sha256"):
            problems.append(f"{what}: the officers' line bound to it was changed (its detail does not "
                            f"match the public line's officer_sha256)")
        elif (detail.get("kind"), detail.get("version")) != (entry.get("kind"), entry.get("version")):
            problems.append(f"{what}: the officers' line bound to it records {detail.get('kind')} "
                            f"v{detail.get('version')}")
        names = {k: str(detail.get("account") if detail.get("via") == audit.CLI else detail.get(k) or "")
                 for k in (entry.get("staff") or {})}
        if entry.get("staff") and names != entry["staff"]:
            problems.append(f"{what}: the names it shows differ from the officers' line")
        problems += _run_folder_problems(round_root, what, entry, detail, notes)
    for key, (number, entry) in bound.items():
        if key not in seen:
            problems.append(f"officers' line {number} ({entry.get('kind')}): bound to no public line "
                            f"(sha256 {str(key)[:12]}…)")
    return {"ok": not problems, "problems": problems, "notes": notes, "public_lines": len(public),
            "officer_lines": len(officer), "legacy_lines": legacy, "path": str(path)}


def _run_folder_problems(round_root: Path, what: str, entry: dict, detail: dict, notes: list[str]) -> list[str]:
    """A publication's run folder, if it still exists, holds the result its version's signed
    manifest names; a run folder removed (by a purge) is a note, not a problem."""
    if entry.get("kind") == audit.PURGE or not detail.get("out_dir") or not entry.get("version"):
        return []
    out_dir = Path(detail["out_dir"])
    manifest_path = round_root / files.version_name(entry["version"]) / files.MANIFEST
    if not files.is_run_folder(out_dir):
        notes.append(f"{what}: its run folder is no longer there (purged or moved)")
        return []
    if not manifest_path.is_file():
        return [f"{what}: v{entry['version']} has no manifest"]
    signed = json.loads(manifest_path.read_text(encoding="utf-8")).get("result_fingerprint")
    if result_fingerprint(out_dir) != signed:
        return [f"{what}: its run folder no longer holds the result v{entry['version']} published "
                f"(fingerprint differs from the signed manifest)"]
    return []
