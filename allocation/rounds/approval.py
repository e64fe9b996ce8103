"""What the approving officer reads before a result is published (the DAGs' approval step and
the CLI's summary of a refill or appeal). Built from solution.json's content only."""

from __future__ import annotations

from pathlib import Path

from allocation import files


def counts_text(d: dict | None) -> str:
    """'a=3, b=1': largest first."""
    items = sorted((d or {}).items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ", ".join(f"{k}={v}" for k, v in items) or "none"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _krw(x) -> str:
    return "n/a" if x is None else f"₩{int(x):,}"


# A result funding less than this share of the previous version (funded count or awarded KRW)
# is flagged at the top of the approval text.
FAR_LESS = 0.5


def degenerate_warnings(summary: dict, previous: dict | None = None) -> list[str]:
    """Loud warnings for a result nobody should approve by accident: it funds nothing, or far
    less than the previous version (previous: {"label", "funded", "awarded_krw"})."""
    found = []
    funded = int(summary.get("funded") or 0)
    if funded == 0:
        found.append("THIS RESULT FUNDS NOBODY: 0 applications are awarded. Publishing it tells every "
                     "applicant they were not funded. It is refused unless publishing an empty result "
                     "is explicitly allowed (DAG param allow_empty / voucher publish --allow-empty).")
    if previous:
        for key, what in (("funded", "funded applications"), ("awarded_krw", "awarded KRW")):
            before, now = previous.get(key), summary.get(key)
            if before and now is not None and now < FAR_LESS * before:
                found.append(f"FAR LESS THAN THE PREVIOUS VERSION ({previous.get('label', 'previous')}): "
                             f"{what} {now:,} against {before:,} before.")
    return found


def warning_banner(warnings: list[str]) -> list[str]:
    """The warnings as the first lines of an approval text (empty list: none)."""
    if not warnings:
        return []
    return [f"> ## ⚠⚠ WARNING: {w}" for w in warnings] + [""]


def approval_markdown(report: dict, out_dir: Path, previous: dict | None = None) -> str:
    """What the approving officer sees in the Required Actions page; warnings about a degenerate
    result (funds nobody, far less than previous) come first."""
    s = report.get("summary", {})
    gap = report.get("gap")
    lines = warning_banner(degenerate_warnings(s, previous)) + [
        f"### Round {report.get('round_id')}: allocation ready for approval",
        "",
        "| | |", "|---|---|",
        f"| Funded | **{s.get('funded')}** of {s.get('applications')} applications |",
        f"| Awarded (budget share) | {_krw(s.get('awarded_krw'))} of {_krw(s.get('budget_krw'))} "
        f"(**{_pct(s.get('budget_used_share'))}** used) |",
        f"| SME co-pay | {_krw(s.get('copay_krw'))} |",
        f"| Score cut-off | {s.get('score_cutoff')} |",
        f"| Solver | {report.get('status')}, gap {'n/a' if gap is None else f'{100 * gap:.2f} %'} |",
        "", "**GPU utilisation**", "",
        "| GPU | awarded h | capacity h | used |", "|---|---:|---:|---:|",
    ]
    for gpu, used in (s.get("gpu_utilisation") or {}).items():
        lines.append(f"| {gpu} | {s.get('gpu_hours_awarded', {}).get(gpu, 0):,} | "
                     f"{s.get('gpu_hours_capacity', {}).get(gpu, 0):,} | {_pct(used)} |")
    lines += ["", "**Quotas** (share of awarded budget)", "", "| quota | share | minimum |", "|---|---:|---:|"]
    for q in (report.get("limits") or {}).get("quotas") or []:
        lines.append(f"| {q.get('quota')} | {_pct(q.get('share'))} | {_pct(q.get('min_share'))} |")
    lines += ["", f"**Outcomes:** {counts_text(s.get('by_status'))}",
              "", f"**Top reasons:** {counts_text(dict(list(sorted((s.get('by_reason') or {}).items(), key=lambda kv: -kv[1]))[:6]))}"]
    for w in report.get("warnings") or []:
        lines.append(f"\n> ⚠ {w}")
    lines += ["", f"Full results: `{out_dir}` (outcomes.csv, awards.csv, solution.json).",
              "", "**Approve** publishes a new version of the award list; **Reject** publishes nothing."]
    return "\n".join(lines)


def lifecycle_markdown(report: dict, out_dir: Path) -> str:
    """What the approving officer reads: the allocation summary and the lifecycle changes."""
    text = (Path(out_dir) / files.LIFECYCLE_REPORT).read_text(encoding="utf-8")
    lc = report["lifecycle"]
    s = report["summary"]
    state_path = Path(out_dir) / files.LIFECYCLE_STATE
    before = files.read_json(state_path).get("previous", {}) if state_path.is_file() else {}
    head = warning_banner(degenerate_warnings(s, {"label": before.get("label"),
                                                  "funded": before.get("awardees")})) + [f"### Round {report['round_id']}: {lc['kind']} as of {lc['as_of']} ready for approval", "",
            f"- released {lc['released']} award(s) ({_krw(lc['released_krw'])}), added {lc['gained']} "
            f"({_krw(lc['gained_krw'])}); appeals upheld {lc['appeals']['upheld']}, rejected "
            f"{lc['appeals']['rejected']}",
            f"- funded {s['funded']}, awarded {_krw(s['awarded_krw'])} of {_krw(s['budget_krw'])}; "
            f"solver {report['status']}, gap {report['gap']:.2e}", "",
            "**Approve** publishes the next version; **Reject** publishes nothing.", ""]
    return "\n".join(head) + text
