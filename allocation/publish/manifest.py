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


def verify(version_dir: Path) -> list[str]:
    """Files whose sha256 does not match the manifest, then files it does not list (empty = intact)."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    bad = [name for name, digest in manifest["files"].items()
           if not (version_dir / name).is_file() or sha256_file(version_dir / name) != digest]
    extra = [rel_name(p, version_dir) for p in tree_files(version_dir)
             if rel_name(p, version_dir) not in manifest["files"]
             and rel_name(p, version_dir) not in (files.MANIFEST, files.SIGNATURE)]
    return bad + extra
