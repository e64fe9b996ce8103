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


def approval_markdown(report: dict, out_dir: Path) -> str:
    """What the approving officer sees in the Required Actions page."""
    s = report.get("summary", {})
    gap = report.get("gap")
    lines = [
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
    """What the approving officer reads (CLI and DAG approval step): totals and what each limit
    holds, never a row per applicant (a 100k round releases and adds thousands); the full
    report and the table of every applicant stay in the run folder."""
    lc = report["lifecycle"]
    s = report["summary"]
    out_dir = Path(out_dir)
    lines = [f"### Round {report['round_id']}: {lc['kind']} as of {lc['as_of']} ready for approval", "",
             f"- previous: {lc.get('previous')}; awards now "
             + ", ".join(f"{k} {v}" for k, v in (lc.get("award_states") or {}).items()),
             f"- released {lc['released']} award(s) ({_krw(lc['released_krw'])}"
             + (f": {counts_text(lc.get('released_by_reason'))}" if lc.get("released_by_reason") else "")
             + f"), added {lc['gained']} ({_krw(lc['gained_krw'])}); appeals upheld "
             f"{lc['appeals']['upheld']}, rejected {lc['appeals']['rejected']}",
             f"- funded {s['funded']}, awarded {_krw(s['awarded_krw'])} of {_krw(s['budget_krw'])}; "
             f"solver {report['status']}, gap {report['gap']:.2e}", ""]
    resources = lc.get("resources") or []
    if resources:
        lines += ["| limit | capacity | used | freed by releases | used by new awards | unused | why unused |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['limit']} | {r['capacity']:,} | {r['used']:,} | {r['freed_by_releases']:,} | "
                  f"{r['used_by_new_awards']:,} | {r['unused']:,} | {r['why_unused']} |" for r in resources]
        lines.append("")
    if not lc.get("reallocated", True):
        lines += ["Nothing was released and no appeal was upheld: the previous awards are kept exactly.", ""]
    lines += [f"Every released and added award, appeal and applicant: `{out_dir / files.LIFECYCLE_REPORT}` "
              f"and `{out_dir / (files.CHANGES + '.csv')}` (officers only).", "",
              "**Approve** publishes the next version; **Reject** publishes nothing.", ""]
    return "\n".join(lines)
