"""What the approving officer reads before a result is published (the DAGs' approval step and
the CLI's summary of a refill or appeal), and the binding of an approval to one result.

An approval is bound to the result's fingerprint (allocation.publish.version.result_fingerprint:
inputs, outcomes, awards, solution). The approval text leads with it; the approve step records
the request (which fingerprint was shown) and the response Airflow recorded (who chose what, when)
in the officers' run folder; :func:`approved_actor` refuses to publish unless a recorded Approve
exists for exactly the fingerprint the run folder holds now, given by someone other than whoever
triggered the run (four eyes) unless a one-person office is explicitly allowed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from allocation import files
from allocation.errors import RoundError
from allocation.publish import labels
from allocation.publish.version import result_fingerprint
from allocation.rounds.panel import panel_fingerprint

APPROVE = "Approve"


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


# A funded count or awarded KRW that moved by at least this share against the previous version
# is listed under "Needs attention" (FAR_LESS above is the loud banner for a collapse).
BIG_CHANGE = 0.2


def big_changes(summary: dict, previous: dict | None) -> list[str]:
    """Totals that moved a lot against the previous published version (a collapse is a banner)."""
    found = []
    for key, what, fmt in (("funded", "funded applications", "{:,}"), ("awarded_krw", "awarded", "₩{:,}")):
        before, now = (previous or {}).get(key), summary.get(key)
        if not before or now is None or now < FAR_LESS * before:
            continue
        change = (now - before) / before
        if abs(change) >= BIG_CHANGE:
            found.append(f"{what} {'up' if change > 0 else 'down'} {100 * abs(change):.0f} % against the "
                         f"previous version {previous.get('label', '')}: {fmt.format(now)} (was {fmt.format(before)})")
    return found


def attention_lines(report: dict, previous: dict | None = None) -> list[str]:
    """What the approver should look at first: big changes against the previous version and the
    solver's warnings (totals only, never an applicant)."""
    items = big_changes(report.get("summary", {}), previous) + [str(w) for w in report.get("warnings") or []]
    if not items:
        return []
    return ["**Needs attention**", "", *[f"- ⚠ {item}" for item in items], ""]


def _totals_lines(report: dict) -> list[str]:
    s, gap = report.get("summary", {}), report.get("gap")
    return ["| | |", "|---|---|",
            f"| Funded | **{s.get('funded')}** of {s.get('applications')} applications |",
            f"| Awarded (budget share) | {_krw(s.get('awarded_krw'))} of {_krw(s.get('budget_krw'))} "
            f"(**{_pct(s.get('budget_used_share'))}** used) |",
            f"| SME co-pay | {_krw(s.get('copay_krw'))} |",
            f"| Score cut-off | {s.get('score_cutoff')} |",
            f"| Solver | {report.get('status')}, gap {'n/a' if gap is None else f'{100 * gap:.2f} %'} |", ""]


def _gpu_lines(s: dict) -> list[str]:
    lines = ["**GPU utilisation**", "", "| GPU | awarded h | capacity h | used |", "|---|---:|---:|---:|"]
    for gpu, used in (s.get("gpu_utilisation") or {}).items():
        lines.append(f"| {gpu} | {s.get('gpu_hours_awarded', {}).get(gpu, 0):,} | "
                     f"{s.get('gpu_hours_capacity', {}).get(gpu, 0):,} | {_pct(used)} |")
    by_month = s.get("gpu_by_month") or {}   # GPU capacity by month: share used per type and month
    if by_month:
        months = list(next(iter(by_month.values())))
        lines += ["", "| GPU | " + " | ".join(months) + " |", "|---|" + "---:|" * len(months)]
        lines += [f"| {gpu} | " + " | ".join(_pct(cells[m]["utilisation"]) for m in months) + " |"
                  for gpu, cells in by_month.items()]
    return lines + [""]


def _quota_lines(report: dict) -> list[str]:
    lines = ["**Quotas** (share of awarded budget)", "", "| quota | share | minimum |", "|---|---:|---:|"]
    for q in (report.get("limits") or {}).get("quotas") or []:
        lines.append(f"| {q.get('quota')} | {_pct(q.get('share'))} | {_pct(q.get('min_share'))} |")
    return lines + [""]


def _outcome_lines(s: dict) -> list[str]:
    statuses = ", ".join(f"{labels.status_label(k)}: {v:,}" for k, v in
                         sorted((s.get("by_status") or {}).items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
    top = sorted((s.get("by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    reasons = "; ".join(f"{labels.reason_label(k)}: {v:,}" for k, v in top) or "none"
    return [f"**Outcomes:** {statuses}", "", f"**Top reasons:** {reasons}", ""]


def _whatif_lines(whatif_md: str | None) -> list[str]:
    return ["**What-if scenarios** (totals; the base is this result)", "", whatif_md.strip(), ""] if whatif_md else []


def approval_markdown(report: dict, out_dir: Path, previous: dict | None = None, *,
                      preview_url: str | None = None, whatif_md: str | None = None) -> str:
    """What the approving officer sees in the Required Actions page: loud warnings (funds nobody,
    far less than previous) first, then what needs attention, then the totals, the what-if
    table and a link to the preview (report and per-applicant table) in the Voucher rounds view.
    Totals only: never an applicant's id, name, score or rank."""
    s = report.get("summary", {})
    lines = warning_banner(degenerate_warnings(s, previous)) + [
        f"### Round {report.get('round_id')}: allocation ready for approval", ""]
    lines += attention_lines(report, previous)
    if preview_url:
        lines += [f"**Before answering:** [open the preview]({preview_url}) (the round report and the "
                  f"per-applicant table, officers only) in the Voucher rounds view.", ""]
    lines += _totals_lines(report) + _gpu_lines(s) + _quota_lines(report) + _outcome_lines(s)
    lines += _whatif_lines(whatif_md)
    if not preview_url:
        lines += [f"Full results (on the server): `{out_dir}` (outcomes.csv, awards.csv, solution.json).", ""]
    lines += ["**Approve** publishes a new version of the award list; **Reject** publishes nothing."]
    return "\n".join(lines)


def lifecycle_markdown(report: dict, out_dir: Path) -> str:
    """What the approving officer reads (CLI and DAG approval step): totals and what each limit
    holds, never a row per applicant (a 100k round releases and adds thousands); the full
    report and the table of every applicant stay in the run folder."""
    lc = report["lifecycle"]
    s = report["summary"]
    out_dir = Path(out_dir)
    state_path = out_dir / files.LIFECYCLE_STATE
    state = files.read_json(state_path) if state_path.is_file() else {}
    before = state.get("previous", {})
    released_now = [a["state"] for a in state.get("awards", []) if a.get("current")
                    and a.get("state") in ("declined", "lapsed")]
    by_reason = {k: released_now.count(k) for k in sorted(set(released_now))}   # officers only
    lines = warning_banner(degenerate_warnings(s, {"label": before.get("label"),
                                                   "funded": before.get("awardees")})) + [
             f"### Round {report['round_id']}: {lc['kind']} as of {lc['as_of']} ready for approval", "",
             f"- previous: {lc.get('previous')}; awards now "
             + ", ".join(f"{k} {v}" for k, v in (state.get("counts") or {}).items()),
             f"- released {lc['released']} award(s) ({_krw(lc['released_krw'])}"
             + (f": {counts_text(by_reason)}" if by_reason else "")
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


# --- Binding an approval to one result --------------------------------------------------

def fingerprint(out_dir: Path) -> str:
    """The fingerprint an approval binds: a review-panel folder's (assignments, work lists,
    report) or an allocation run's (inputs, outcomes, awards, solution)."""
    out_dir = Path(out_dir)
    if (out_dir / files.PANEL_REPORT).is_file() and not (out_dir / files.SOLUTION).is_file():
        return panel_fingerprint(out_dir)
    return result_fingerprint(out_dir)


def with_fingerprint(text: str, fingerprint: str) -> str:
    """The approval text, led by the fingerprint of the result it approves."""
    return f"**Result fingerprint (sha256):** `{fingerprint}`\n\n{text}"


def record_request(out_dir: Path, *, ti_id: str, triggered_by: str | None) -> dict:
    """Written by the approve step when it asks: which result (fingerprint) it showed."""
    request = {"ti_id": str(ti_id), "fingerprint": fingerprint(out_dir),
               "triggered_by": triggered_by,
               "requested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    files.write_json(Path(out_dir) / files.APPROVAL_REQUEST, request)
    (Path(out_dir) / files.APPROVAL_RECORD).unlink(missing_ok=True)
    return request


def record_response(out_dir: Path, *, ti_id: str, chosen_options: list[str], responded_by: dict | None,
                    responded_at: str | None, timed_out: bool = False) -> dict:
    """Written by the approve step when Airflow hands it the recorded response."""
    request = files.read_json(Path(out_dir) / files.APPROVAL_REQUEST)
    if request.get("ti_id") != str(ti_id):
        raise RoundError(f"approval response for task instance {ti_id}, but the request was made by "
                         f"{request.get('ti_id')}; nothing recorded")
    record = {**request, "chosen_options": list(chosen_options or []), "responded_by": responded_by,
              "responded_at": responded_at, "timed_out": bool(timed_out)}
    files.write_json(Path(out_dir) / files.APPROVAL_RECORD, record)
    return record


def _who(user: dict | None) -> set[str]:
    return {str(v) for v in ((user or {}).get("id"), (user or {}).get("name")) if v}


def approved_actor(out_dir: Path, *, triggered_by: str | None, allow_self_approval: bool = False,
                   dag_id: str | None = None, run_id: str | None = None,
                   refusal: str = "NOT PUBLISHED") -> dict:
    """The audit actor of an approved result, or RoundError saying why nothing may be published
    (refusal: how the message starts, e.g. "NOT RELEASED" for review work lists)."""
    out_dir = Path(out_dir)
    if not (out_dir / files.APPROVAL_REQUEST).is_file():
        raise RoundError(f"{refusal}: no approval was ever requested for this result (the approve "
                         "step did not run — was it marked success by hand?)")
    if not (out_dir / files.APPROVAL_RECORD).is_file():
        raise RoundError(f"{refusal}: no recorded response to the approval request (the approve step "
                         "was marked success by hand, or is still waiting); a marked task approves nothing")
    record = files.read_json(out_dir / files.APPROVAL_RECORD)
    if record.get("chosen_options") != [APPROVE] or record.get("timed_out"):
        raise RoundError(f"{refusal}: the recorded response is {record.get('chosen_options')}"
                         f"{' (timed out)' if record.get('timed_out') else ''}, not {APPROVE}")
    approver = record.get("responded_by")
    if not _who(approver):
        raise RoundError(f"{refusal}: the recorded approval names nobody")
    now = fingerprint(out_dir)
    if now != record.get("fingerprint"):
        raise RoundError(f"{refusal}: the result changed after it was approved (approved fingerprint "
                         f"{str(record.get('fingerprint'))[:16]}…, now {now[:16]}…); run the approval again")
    triggered = triggered_by or record.get("triggered_by")
    four_eyes = "approver differs from the triggering user"
    if triggered and triggered in _who(approver):
        if not allow_self_approval:
            raise RoundError(f"{refusal}: {triggered} triggered this run and approved it; a second "
                             f"person must approve (four eyes). A one-person office may allow it "
                             f"explicitly (VOUCHER_ALLOW_SELF_APPROVAL=1).")
        four_eyes = "WAIVED: self-approved (one-person office allowed by VOUCHER_ALLOW_SELF_APPROVAL)"
    elif not triggered:
        four_eyes = "trigger not by a named user (scheduled or test run)"
    name = approver.get("name") or approver.get("id")
    return {"via": "airflow", "triggered_by": str(triggered or "unknown"),
            "approved_by": f"{name} ({APPROVE})", "approver_id": str(approver.get("id")),
            "approved_at": record.get("responded_at"), "approved_fingerprint": now,
            "four_eyes": four_eyes, "dag_id": dag_id, "run_id": run_id}
