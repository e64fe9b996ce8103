"""A version's manifest: the sha256 of every file, and checking a version against it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from allocation import files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def rel_name(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def read_listing(path: Path) -> dict[str, str]:
    """A sha256sum-format listing (``<hex>  <relative path>`` per line) → {path: hex}."""
    listed = {}
    with open(path, encoding="ascii") as handle:
        for line in handle:
            digest, _, name = line.rstrip("\n").partition("  ")
            listed[name] = digest
    return listed


def verify(version_dir: Path) -> list[str]:
    """Files whose sha256 does not match the manifest, then files it does not list (empty = intact).

    The lookup files r/* are listed in r.sha256 (whose own sha256 is in the manifest), not in
    the manifest itself: a million entries would make the signed manifest ~145 MB."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    expected = dict(manifest["files"])
    listing = (manifest.get("lookup") or {}).get("listing")
    bad = [name for name, digest in expected.items()
           if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    if listing and listing in expected and listing not in bad:
        expected.update(read_listing(version_dir / listing))
        bad += [name for name, digest in read_listing(version_dir / listing).items()
                if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    extra = [rel_name(p, version_dir) for p in tree_files(version_dir)
             if rel_name(p, version_dir) not in expected
             and rel_name(p, version_dir) not in (files.MANIFEST, files.SIGNATURE)]
    return bad + extra
