"""What changed between two published versions of a round: who gained, who lost, by how much.

Computed from the public award lists only (``awards_public.parquet``), i.e. from what the two
versions actually published. A version holds awardees only, so:

* *gained*  — awarded in the new version, not in the old one;
* *lost*    — awarded in the old version, no longer awarded in the new one (whether it is now
  waitlisted, not selected or ineligible is deliberately not public, so the diff cannot say);
* *changed* — awarded in both, with a different awarded amount, co-payment, share or GPU-hours.

There is no officer-only copy of the full outcomes inside the publish root on purpose: the
publish root is what gets served, and anything in it must be safe to serve. Officers who need
the full picture compare the two run folders (outcomes.parquet), which never leave their side.
Both versions are checked against their manifests first; a tampered version is refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

from allocation import files
from allocation.text import markdown_cell, terminal
from allocation.publish.manifest import verify

AMOUNTS = ("awarded_krw", "copay_krw")


def _load(version_dir: Path) -> tuple[dict, pl.DataFrame]:
    version_dir = Path(version_dir)
    problems = verify(version_dir)
    if problems:
        raise ValueError(f"{version_dir} does not match its manifest: {', '.join(problems[:5])}"
                         + (" …" if len(problems) > 5 else ""))
    manifest = json.loads((version_dir / files.MANIFEST).read_text(encoding="utf-8"))
    return manifest, pl.read_parquet(version_dir / files.AWARDS_PUBLIC_PARQUET)


def _hours(row: dict, gpu_types: list[str]) -> dict[str, int]:
    return {g: int(row.get(f"gpu_hours_{g}") or 0) for g in gpu_types}


def compare_award_lists(old: pl.DataFrame, new: pl.DataFrame) -> dict:
    """Awardee-level differences between two public award lists (the one comparison behind
    `voucher diff`, changes.json and the audit trail's diff summary)."""
    gpu_types = sorted({c.removeprefix("gpu_hours_") for c in (*old.columns, *new.columns)
                        if c.startswith("gpu_hours_")})
    old_rows = {r["application_id"]: r for r in old.iter_rows(named=True)}
    new_rows = {r["application_id"]: r for r in new.iter_rows(named=True)}

    def entry(row: dict) -> dict:
        return {"application_id": row["application_id"], "company_name": row["company_name"],
                "region": row["region"], "award_fraction": row["award_fraction"],
                "awarded_krw": int(row["awarded_krw"]), "copay_krw": int(row["copay_krw"]),
                "gpu_hours": _hours(row, gpu_types)}

    gained = [entry(new_rows[a]) for a in sorted(new_rows.keys() - old_rows.keys())]
    lost = [entry(old_rows[a]) for a in sorted(old_rows.keys() - new_rows.keys())]
    changed, unchanged = [], 0
    for app_id in sorted(old_rows.keys() & new_rows.keys()):
        before, after = entry(old_rows[app_id]), entry(new_rows[app_id])
        if all(before[k] == after[k] for k in ("award_fraction", "gpu_hours", *AMOUNTS)):
            unchanged += 1
            continue
        changed.append({
            "application_id": app_id, "company_name": after["company_name"], "region": after["region"],
            "award_fraction_old": before["award_fraction"], "award_fraction_new": after["award_fraction"],
            **{f"{k}_old": before[k] for k in AMOUNTS}, **{f"{k}_new": after[k] for k in AMOUNTS},
            "delta_krw": after["awarded_krw"] - before["awarded_krw"],
            "delta_copay_krw": after["copay_krw"] - before["copay_krw"],
            "delta_gpu_hours": {g: after["gpu_hours"][g] - before["gpu_hours"][g] for g in gpu_types
                                if after["gpu_hours"][g] != before["gpu_hours"][g]},
        })

    def totals(frame: pl.DataFrame) -> dict:
        return {"awardees": frame.height,
                "awarded_krw": int(frame["awarded_krw"].sum() or 0),
                "copay_krw": int(frame["copay_krw"].sum() or 0),
                "gpu_hours": {g: int(frame[f"gpu_hours_{g}"].sum() or 0) if f"gpu_hours_{g}" in frame.columns
                              else 0 for g in gpu_types}}

    t_old, t_new = totals(old), totals(new)
    return {
        "old": t_old, "new": t_new,
        "delta": {"awardees": t_new["awardees"] - t_old["awardees"],
                  "awarded_krw": t_new["awarded_krw"] - t_old["awarded_krw"],
                  "copay_krw": t_new["copay_krw"] - t_old["copay_krw"],
                  "gpu_hours": {g: t_new["gpu_hours"][g] - t_old["gpu_hours"][g] for g in gpu_types}},
        "gained": gained, "lost": lost, "changed": changed, "unchanged": unchanged,
        "gained_krw": sum(e["awarded_krw"] for e in gained),
        "lost_krw": sum(e["awarded_krw"] for e in lost),
    }


def diff_versions(v_old_dir: Path, v_new_dir: Path) -> dict:
    """Awardee-level differences between two published versions of the same round."""
    old_manifest, old = _load(v_old_dir)
    new_manifest, new = _load(v_new_dir)
    if old_manifest["round_id"] != new_manifest["round_id"]:
        raise ValueError(f"different rounds: {old_manifest['round_id']} and {new_manifest['round_id']}")
    diff = compare_award_lists(old, new)
    diff["old"] = {"version": old_manifest["version"], "path": str(v_old_dir), **diff["old"]}
    diff["new"] = {"version": new_manifest["version"], "path": str(v_new_dir), **diff["new"]}
    return {"round_id": new_manifest["round_id"], **diff}


def public_diff(old: pl.DataFrame, new: pl.DataFrame) -> dict:
    """What a new version changed, for the public: the gained awardees (public in the new list)
    and counts otherwise (the audit trail's diff summary)."""
    d = compare_award_lists(old, new)
    gained = [{**g, "gpu_hours": {t: h for t, h in g["gpu_hours"].items() if h}} for g in d["gained"]]
    return {"gained": gained, "diff": {
        "gained": len(gained), "gained_krw": d["gained_krw"],
        "lost": len(d["lost"]), "lost_krw": d["lost_krw"],
        "changed": len(d["changed"]), "unchanged": d["unchanged"],
        "awardees_old": old.height, "awardees_new": new.height,
        "delta_krw": d["delta"]["awarded_krw"]}}


def _krw(value: int, signed: bool = False) -> str:
    if not signed:
        return f"₩{value:,}"
    return f"{'+' if value >= 0 else '−'}₩{abs(value):,}"


def _hours_text(hours: dict[str, int], signed: bool = False) -> str:
    parts = [f"{g} {h:+,}" if signed else f"{g} {h:,}" for g, h in hours.items() if h]
    return ", ".join(parts) or "-"


def render_diff_markdown(diff: dict) -> str:
    """The diff as Markdown (readable as plain text too)."""
    o, n, d = diff["old"], diff["new"], diff["delta"]
    lines = [f"# Round {diff['round_id']}: v{o['version']} → v{n['version']}", "",
             f"- awardees: {o['awardees']} → {n['awardees']} ({d['awardees']:+d})",
             f"- awarded: {_krw(o['awarded_krw'])} → {_krw(n['awarded_krw'])} ({_krw(d['awarded_krw'], True)})",
             f"- co-payments: {_krw(o['copay_krw'])} → {_krw(n['copay_krw'])} ({_krw(d['copay_krw'], True)})",
             f"- GPU-hours: {_hours_text(d['gpu_hours'], True)}",
             f"- gained {len(diff['gained'])} ({_krw(diff['gained_krw'])}), lost {len(diff['lost'])} "
             f"({_krw(diff['lost_krw'])}), changed {len(diff['changed'])}, unchanged {diff['unchanged']}", ""]
    for key, title, was in (("gained", "Gained (newly awarded)", ""), ("lost", "Lost (no longer awarded)", "was ")):
        if diff[key]:
            lines += [f"## {title}", "",
                      f"| application | company | region | {was}awarded | {was}co-payment | GPU-hours |",
                      "|---|---|---|---:|---:|---|"]
            lines += [f"| {markdown_cell(e['application_id'])} | {markdown_cell(e['company_name'])} | {markdown_cell(e['region'])} | "
                      f"{_krw(e['awarded_krw'])} | {_krw(e['copay_krw'])} | {_hours_text(e['gpu_hours'])} |"
                      for e in diff[key]]
            lines.append("")
    if diff["changed"]:
        lines += ["## Changed amount", "",
                  "| application | company | awarded old → new | change | share | GPU-hours change |",
                  "|---|---|---:|---:|---|---|"]
        lines += [f"| {markdown_cell(c['application_id'])} | {markdown_cell(c['company_name'])} | "
                  f"{_krw(c['awarded_krw_old'])} → {_krw(c['awarded_krw_new'])} | {_krw(c['delta_krw'], True)} | "
                  f"{c['award_fraction_old']:.0%} → {c['award_fraction_new']:.0%} | "
                  f"{_hours_text(c['delta_gpu_hours'], True)} |" for c in diff["changed"]]
        lines.append("")
    if not (diff["gained"] or diff["lost"] or diff["changed"]):
        lines += ["No awardee changed.", ""]
    lines.append("_From the public award lists: an awardee that is 'lost' is no longer awarded; its new "
                 "status is not public._")
    return "\n".join(lines) + "\n"


def cli_diff(v_old_dir: Path, v_new_dir: Path, *, as_json: bool = False) -> int:
    """`voucher diff V1_DIR V2_DIR`: print the diff (Markdown, or JSON); exit code 0.

    Raises ValueError for versions of different rounds or a version that fails its manifest,
    FileNotFoundError when a folder is not a published version.
    """
    diff = diff_versions(Path(v_old_dir), Path(v_new_dir))
    sys.stdout.write(terminal(json.dumps(diff, ensure_ascii=False, indent=2) + "\n" if as_json
                              else render_diff_markdown(diff)))
    return 0


# --- Refills and appeals: changes.json / changes.md of the new version ---------------------

def lifecycle_changes(public: dict, previous_dir: Path | None, new_awards: pl.DataFrame,
                      version: int) -> dict:
    """What a refill/appeal changed against the previous version: new awardees by name (they
    are public awardees now), everything else as aggregates."""
    old = (pl.read_parquet(previous_dir / files.AWARDS_PUBLIC_PARQUET) if previous_dir is not None
           else new_awards.clear())
    diff = public_diff(old, new_awards)
    return {"version": version, "previous_version": int(previous_dir.name[1:]) if previous_dir else None,
            **public, "gained_awardees": diff["gained"], "diff": diff["diff"]}


def write_changes(target: Path, changes: dict) -> None:
    (target / files.CHANGES_JSON).write_text(json.dumps(changes, indent=2, sort_keys=True, ensure_ascii=False)
                                       + "\n", encoding="utf-8")
    d = changes["diff"]
    lines = [f"# Round changes: v{changes['previous_version']} → v{changes['version']} "
             f"({changes['kind']} as of {changes['as_of']})", "",
             f"- awards released (declined or lapsed): {changes['released']} (₩{changes['released_krw']:,})",
             f"- newly awarded: {d['gained']} (₩{d['gained_krw']:,}); awards kept unchanged: {d['unchanged']}; "
             f"changed: {d['changed']}",
             f"- appeals: upheld {changes['appeals']['upheld']}, rejected {changes['appeals']['rejected']}", ""]
    if changes["gained_awardees"]:
        lines += ["## Newly awarded", "", "| application | company | region | share | awarded |",
                  "|---|---|---|---:|---:|"]
        lines += [f"| {markdown_cell(g['application_id'])} | {markdown_cell(g['company_name'])} | "
                  f"{markdown_cell(g['region'])} | "
                  f"{g['award_fraction']:.0%} | ₩{g['awarded_krw']:,} |" for g in changes["gained_awardees"]]
        lines.append("")
    lines += ["## Capacity re-used and unused", "",
              "| limit | capacity | used | freed by releases | used by new awards | unused | why unused |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['limit']} | {r['capacity']:,} | {r['used']:,} | {r['freed_by_releases']:,} | "
              f"{r['used_by_new_awards']:,} | {r['unused']:,} | {r['why_unused']} |"
              for r in changes["resources"]]
    (target / files.CHANGES_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")
