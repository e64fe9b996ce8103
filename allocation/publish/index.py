"""PUBLISH_ROOT/index.json: every published round and where its latest pages are.

Rewritten from the folders on disk (idempotent) after every publication: by `voucher publish`
and by the results_index DAG (scheduled on the published_round Asset).
"""

from __future__ import annotations

from pathlib import Path

from allocation import files


def refresh_index(publish_root: Path) -> dict:
    """Rewrite PUBLISH_ROOT/index.json; returns its content."""
    root = Path(publish_root)
    rounds = {}
    for round_root in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        versions = files.list_versions(round_root)
        if versions:
            latest = round_root / files.version_name(versions[-1])
            pages = [latest / n for n in (files.REPORT_HTML, files.AWARDS_PUBLIC_HTML) if (latest / n).is_file()]
            rounds[round_root.name] = {
                "versions": versions, "latest": versions[-1], "latest_path": str(latest),
                "results_page": str(pages[0]) if pages else None,
                "award_list": str(latest / files.AWARDS_PUBLIC_CSV),
                "applicant_lookup": (str(latest / files.LOOKUP_PAGE)
                                     if (latest / files.LOOKUP_PAGE).is_file() else None),
            }
    index = {"publish_root": str(root), "rounds": rounds}
    root.mkdir(parents=True, exist_ok=True)
    files.write_json(root / files.INDEX, index)
    return index
