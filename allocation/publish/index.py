"""PUBLISH_ROOT/index.json: every published round and where its latest pages are.

Rewritten from the folders on disk (idempotent) after every publication: by `voucher publish`
and by the results_index DAG (scheduled on the published_round Asset).
"""

from __future__ import annotations

import os
from pathlib import Path

from allocation import files


def refresh_index(publish_root: Path) -> dict:
    """Rewrite PUBLISH_ROOT/index.json; returns its content. Paths are relative to the publish
    root (it may be served as it is: no server path is published)."""
    root = Path(publish_root)
    rounds = {}
    for round_root in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        versions = files.list_versions(round_root)
        if versions:
            latest = round_root / files.version_name(versions[-1])

            def rel(name: str) -> str | None:
                return (latest / name).relative_to(root).as_posix() if (latest / name).is_file() else None

            rounds[round_root.name] = {
                "versions": versions, "latest": versions[-1], "latest_path": latest.relative_to(root).as_posix(),
                "results_page": rel(files.REPORT_HTML) or rel(files.AWARDS_PUBLIC_HTML),
                "award_list": rel(files.AWARDS_PUBLIC_CSV),
                "applicant_lookup": rel(files.LOOKUP_PAGE),
            }
    index = {"rounds": rounds}
    root.mkdir(parents=True, exist_ok=True)
    files.write_json(root / files.INDEX, index)
    os.chmod(root / files.INDEX, 0o644)   # public, like the versions it lists
    return index
