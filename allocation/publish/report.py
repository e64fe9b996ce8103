"""Round report: one self-contained HTML page (inline CSS and SVG, no script, no CDN).

Aggregates only: counts, totals, shares and distributions. Nothing in it names or
describes an individual application that was not funded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import tomllib
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np
import polars as pl

from allocation import files, schema
from allocation.config import load_config
from allocation.model.money import copay_and_awarded
from allocation.publish import labels

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


# --- Templates ----------------------------------------------------------------------

def _num(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def _krw(value) -> str:
    return "-" if value is None else f"₩{int(value):,}"


def _pct(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * 100:.{digits}f}%"


def _ratio(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2f}×"


def _score(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2f}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(num=_num, krw=_krw, pct=_pct, ratio=_ratio, score=_score)
    env.globals["zip"] = zip
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(csp_extra="", **context)


def script_csp(script: str) -> str:
    """CSP fragment that allows exactly this inline script and same-origin fetches."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return f"script-src 'sha256-{digest}'; connect-src 'self'; "


# --- Inputs ---------------------------------------------------------------------------

def round_config(out_dir: Path) -> dict:
    path = Path(out_dir) / files.INTAKE / schema.CONFIG_FILE
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _fmt_tick(value: float) -> str:
    return f"{value:g}"


# --- Charts (SVG geometry; templates draw it) -----------------------------------------

def _hbars(label: str, items: list[tuple[str, float, str, float | None]], width: int = 720,
           label_width: int = 110, bar_h: int = 20, gap: int = 8, value_width: int = 90) -> dict:
    """items: (label, value, value label, capacity or None). Bars scale to the largest value;
    value_width is kept free on the right for the value labels."""
    top = max([max(v, c or 0) for _, v, _, c in items] + [1e-9])
    span = width - label_width - value_width
    bars = []
    for i, (name, value, text, cap) in enumerate(items):
        bars.append({"label": name, "value": text, "y": 6 + i * (bar_h + gap), "h": bar_h,
                     "w": round(span * value / top, 1),
                     "cap_w": None if cap is None else round(span * cap / top, 1)})
    return {"label": label, "width": width, "label_width": label_width,
            "height": 12 + len(items) * (bar_h + gap), "bars": bars}


def _nice_step(top: int, ticks: int = 5) -> int:
    raw = max(top / ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def _histogram(scores: list[tuple[float, bool]], cutoff: float | None, min_score: float | None) -> dict:
    """scores: (score, awarded). Stacked bins: awarded (dark) under not awarded (light)."""
    width, height, x0, y0, ytop = 720, 290, 50, 250, 50
    x1 = width - 20
    values = [s for s, _ in scores]
    if values:
        lo = math.floor(min(values + [min_score if min_score is not None else 100]) / 5) * 5
        hi = max(math.floor(max(values) / 5) * 5 + 5, lo + 5)
    else:
        lo, hi = 0, 100
    step = 2.5 if hi - lo <= 40 else 5.0
    n = int(round((hi - lo) / step))
    funded, other = [0] * n, [0] * n
    for value, awarded in scores:
        i = min(int((value - lo) // step), n - 1)
        (funded if awarded else other)[i] += 1
    top = max([f + o for f, o in zip(funded, other)] + [1])
    ystep = _nice_step(top)
    ymax = math.ceil(top / ystep) * ystep
    yscale = (y0 - ytop) / ymax
    xscale = (x1 - x0) / (hi - lo)
    bars = []
    for i in range(n):
        left = lo + i * step
        x, w = round(x0 + (left - lo) * xscale + 1, 1), round(step * xscale - 2, 1)
        label = f"{left:g}–{left + step:g}"
        base = y0
        for count, hi_bar, what in ((funded[i], True, "선정 / awarded"),
                                    (other[i], False, "그 외 / not awarded")):
            if count:
                h = round(count * yscale, 1)
                bars.append({"x": x, "w": w, "y": round(base - h, 1), "h": h, "count": count,
                             "label": f"{label} {what}", "hi": hi_bar})
                base -= h
    tick_step = 5 if hi - lo <= 40 else 10
    xticks = [{"x": round(x0 + (v - lo) * xscale, 1), "label": _fmt_tick(v)}
              for v in range(int(lo), int(hi) + 1, tick_step)]
    yticks = [{"y": round(y0 - v * yscale, 1), "label": str(v)} for v in range(0, ymax + 1, ystep)]
    lines = []
    if cutoff is not None and lo <= cutoff <= hi:
        lines.append({"x": round(x0 + (cutoff - lo) * xscale, 1), "cls": "cut", "dy": -30,
                      "label": f"선정 최저 점수 / cut-off {cutoff:.2f}"})
    if min_score is not None and lo <= min_score <= hi:
        lines.append({"x": round(x0 + (min_score - lo) * xscale, 1), "cls": "min", "dy": -14,
                      "label": f"최소 점수 / minimum {min_score:g}"})
    return {"label": "Score histogram of eligible applications with the cut-off line",
            "width": width, "height": height, "x0": x0, "x1": x1, "y0": y0, "ytop": ytop,
            "bars": bars, "xticks": xticks, "yticks": yticks, "lines": lines,
            "note": f"구간 {step:g}점 / bins of {step:g} points, n = {len(scores)}"}


def month_heat(by_month: dict | None) -> dict | None:
    """GPU capacity by month: a heat map table (rows GPU types, columns months), each cell the
    share of that month's hours awarded, shaded by it; None for a single-period round."""
    if not by_month:
        return None
    months = list(next(iter(by_month.values())))
    rows = []
    for gpu, cells in by_month.items():
        row = []
        for month in months:
            c = cells[month]
            used = c["utilisation"]
            row.append({"text": _pct(used), "title": f"{gpu} {month}: {c['awarded']:,} / {c['capacity']:,} h",
                        "alpha": round(min(max(used or 0.0, 0.0), 1.0) * 0.85, 3),
                        "full": used is not None and used >= 0.999})
        rows.append({"gpu_type": gpu, "cells": row})
    return {"months": months, "rows": rows}


# --- Context ----------------------------------------------------------------------------

def report_context(out_dir: Path, version: int | None = None) -> dict:
    out_dir = Path(out_dir)
    sol = json.loads((out_dir / files.SOLUTION).read_text(encoding="utf-8"))
    cfg = round_config(out_dir)
    summary = sol["summary"]
    outcomes = pl.read_parquet(out_dir / files.OUTCOMES_PARQUET, columns=[   # what the report counts
        "application_id", "status", "reason", "region", "score", "awarded_krw", "copay_krw"])
    capacity = pl.read_parquet(out_dir / files.INTAKE / "capacity.parquet")
    requests = pl.read_parquet(out_dir / files.INTAKE / "requests.parquet")
    copay_share = float(cfg.get("round", {}).get("copay_share", 0.0))
    min_score = cfg.get("award", {}).get("min_score")
    round_id = sol.get("round_id") or cfg.get("round", {}).get("id", "")
    round_name = cfg.get("round", {}).get("name", "") or round_id

    counts = dict(outcomes.group_by("status").len().iter_rows())
    eligible_ids = outcomes.filter(pl.col("status") != schema.STATUS_INELIGIBLE)["application_id"]
    price = dict(capacity.select("gpu_type", "krw_per_gpu_hour").iter_rows())
    req = requests.filter(pl.col("application_id").is_in(eligible_ids.implode()))
    requested_hours = dict(req.group_by("gpu_type").agg(pl.col("gpu_hours").sum()).iter_rows())
    # the budget's share of every eligible request in full, per application (allocation.model.money)
    cost_per_app = (req.with_columns(krw=pl.col("gpu_hours") * pl.col("gpu_type").replace_strict(
        price, default=0, return_dtype=pl.Int64)).group_by("application_id").agg(pl.col("krw").sum()))
    _, requested_gov = copay_and_awarded(cost_per_app["krw"].to_numpy().astype(np.int64),
                                         load_config(out_dir / files.INTAKE).copay_fraction)
    requested_gov = int(requested_gov.sum())
    budget = int(summary["budget_krw"])
    limits = {row["limit"]: row for row in sol.get("limits", {}).get("rows", [])}

    gpus = []
    per_type = capacity
    if schema.CAPACITY_MONTH in capacity.columns:   # by month: the type's hours over all months
        per_type = capacity.group_by("gpu_type").agg(pl.col("gpu_hours").sum(), pl.col("krw_per_gpu_hour").first())
    for gpu, cap_hours, krw_h in per_type.sort("gpu_type").select(
            "gpu_type", "gpu_hours", "krw_per_gpu_hour").iter_rows():
        awarded = int(summary.get("gpu_hours_awarded", {}).get(gpu, 0))
        wanted = int(requested_hours.get(gpu, 0))
        gpus.append({"gpu_type": gpu, "price": krw_h, "capacity": cap_hours, "awarded": awarded,
                     "requested": wanted, "used": awarded / cap_hours if cap_hours else None,
                     "oversubscription": wanted / cap_hours if cap_hours else None,
                     "binding": any(row.get("binding") for name, row in limits.items()
                                    if name == f"gpu:{gpu}" or name.startswith(f"gpu:{gpu}@"))})
    # utilisation as a share of each type's own capacity: 99.9 % of a small pool is a full bar
    util_chart = _hbars("Share of each GPU type's hours awarded",
                        [(g["gpu_type"], 100 * (g["used"] or 0.0),
                          f"{_pct(g['used'])} ({g['awarded']:,} / {g['capacity']:,} h)", 100.0) for g in gpus],
                        value_width=250)

    awarded = outcomes.filter(pl.col("status") == schema.STATUS_AWARDED)
    total_awarded = int(awarded["awarded_krw"].sum() or 0)
    regions = [{"region": r, "funded": n, "awarded_krw": int(k),
                "share": k / total_awarded if total_awarded else None}
               for r, n, k in awarded.group_by("region").agg(pl.len(), pl.col("awarded_krw").sum())
               .sort(["awarded_krw", "region"], descending=[True, False]).iter_rows()]
    region_chart = _hbars("Awarded budget (KRW) by region",
                          [(r["region"], r["awarded_krw"], f"₩{r['awarded_krw'] / 1e8:,.1f}억", None)
                           for r in regions])

    scored = outcomes.filter((pl.col("status") != schema.STATUS_INELIGIBLE)
                             & pl.col("score").is_not_null() & pl.col("score").is_not_nan())
    cutoff = summary.get("score_cutoff")
    hist = _histogram(list(zip(scored["score"].to_list(),
                               (scored["status"] == schema.STATUS_AWARDED).to_list())), cutoff, min_score)

    by_reason = [{"status": labels.status_label(s), "reason": labels.reason_label(r), "count": n}
                 for s, r, n in
                 outcomes.group_by("status", "reason").len()
                 .with_columns(order=pl.col("status").replace_strict(
                     {k: i for i, k in enumerate(schema.STATUSES)}, default=len(schema.STATUSES)))
                 .sort("order", "reason").select("status", "reason", "len").iter_rows()]
    quotas = sol.get("limits", {}).get("quotas", [])

    s = {
        "applications": outcomes.height,
        "eligible": outcomes.height - counts.get(schema.STATUS_INELIGIBLE, 0),
        "funded": counts.get(schema.STATUS_AWARDED, 0),
        "funded_partially": awarded.filter(pl.col("reason") == "funded_partially").height,
        "waitlisted": counts.get(schema.STATUS_WAITLISTED, 0),
        "awarded_krw": int(summary["awarded_krw"]), "budget_krw": budget,
        "budget_used_share": summary.get("budget_used_share"),
        "copay_krw": int(summary["copay_krw"]), "copay_share": copay_share,
        "score_cutoff": cutoff, "min_score": min_score,
        "oversubscription": requested_gov / budget if budget else None,
    }
    return {
        "title": f"컴퓨팅 바우처 결과 보고서 — {round_id}",
        "round_id": round_id, "round_name": round_name, "version": version, "s": s,
        "budget": {"requested": requested_gov, "awarded": int(summary["awarded_krw"]), "limit": budget,
                   "used": summary.get("budget_used_share"),
                   "oversubscription": s["oversubscription"],
                   "binding": bool(limits.get("budget", {}).get("binding"))},
        "gpus": gpus, "util_chart": util_chart, "month_heat": month_heat(summary.get("gpu_by_month")), "regions": regions, "region_chart": region_chart,
        "hist": hist, "quotas": quotas, "by_reason": by_reason,
        "solver": {"name": sol.get("solver", {}).get("name", ""), "status": sol.get("status"),
                   "proven_optimal": summary.get("proven_optimal"), "gap": sol.get("gap")},
    }


ROLE_LABELS = {"officer": "담당자 / programme officer", "approver": "승인권자 / approving officer",
               "operator": "운영자 / operator", "system": "시스템 (예약 실행) / system (scheduled)"}


def _role(entry: dict, step: str) -> str:
    """Who acted, as a role for the public report: the programme office, its approving officer
    (and whether four eyes held), an operator (the command line) or the system (a scheduled run);
    the account name too only where the public audit line carries it (round.toml opted in)."""
    if "roles" in entry:   # audit lines since the public/officers' split (allocation.publish.audit)
        role = (entry.get("roles") or {}).get(step)
        if not role:
            return "-"
        label = ROLE_LABELS.get(role, "-")
        if role == "operator" and entry.get("via") != "airflow":
            label = "운영자 (명령줄) / operator (command line)"
        if step == "approved" and str(entry.get("four_eyes") or "").startswith("WAIVED"):
            label = "승인권자 (본인 승인) / approver (self-approved)"
        name = (entry.get("staff") or {}).get(f"{step}_by")
        return f"{label}: {name}" if name else label
    if entry.get("via") != "airflow":   # legacy lines: roles derived, their account names never shown
        return "명령줄 / command line"
    if step == "triggered":
        return "담당자 / programme officer"
    if not entry.get("approved_by"):
        return "-"
    waived = str(entry.get("four_eyes") or "").startswith("WAIVED")
    return "승인권자 (본인 승인) / approver (self-approved)" if waived else "승인권자 / approving officer"


def timeline_rows(entries: list[dict]) -> list[dict]:
    """Audit entries (allocation.audit) as timeline rows for the report, oldest first."""
    rows = []
    for e in entries:
        if e.get("kind") == "purge":   # allocation.rounds.retention
            removed = e.get("removed") or {}
            rows.append({"version": "-", "kind": "개인정보 파기 / personal data removed",
                         "date": (e.get("purged_at") or "")[:10],
                         "as_of": e.get("before") or e.get("as_of") or "-",
                         "triggered_by": _role(e, "triggered"), "approved_by": "-", "funded": None,
                         "awarded_krw": None, "solver": "-", "inputs": "-",
                         "changes": f"{removed.get('run_folders', 0)} run folder(s); lookup files of "
                                    + (", ".join(removed.get("lookup_files") or {}) or "no version")
                                    + (f"; round folder: {removed['round_folder_files']} file(s)"
                                       if removed.get("round_folder_files") else "")})
            continue
        diff = e.get("diff") or {}
        appeals = e.get("appeals") or {}
        parts = []
        if diff:
            parts.append(f"+{diff.get('gained', 0)} awarded / −{diff.get('lost', 0)} released "
                         f"({'+' if diff.get('delta_krw', 0) >= 0 else '−'}₩{abs(diff.get('delta_krw', 0)):,})")
        if appeals:
            parts.append(f"appeals: {appeals.get('upheld', 0)} upheld, {appeals.get('rejected', 0)} rejected")
        summary = e.get("summary") or {}
        rows.append({"version": e.get("version"), "kind": e.get("kind", "allocation"),
                     "date": (e.get("published_at") or "")[:10], "as_of": e.get("as_of") or "-",
                     # roles, never staff account names (unless the round opted in): the officers' trail keeps those
                     "triggered_by": _role(e, "triggered"), "approved_by": _role(e, "approved"),
                     "funded": summary.get("funded"), "awarded_krw": summary.get("awarded_krw"),
                     "solver": (e.get("solver") or {}).get("status") or "-",
                     "inputs": hashlib.sha256(json.dumps(e.get("input_sha256") or {}, sort_keys=True)
                                              .encode()).hexdigest()[:12],
                     "changes": "; ".join(parts) or "-"})
    return rows


def render_report(out_dir: Path, version: int | None = None, *, timeline: list[dict] | None = None,
                  changes: dict | None = None) -> str:
    """The report; timeline = audit entries (oldest first), changes = lifecycle changes
    against the previous version (allocation.publishing.lifecycle_changes)."""
    context = report_context(out_dir, version)
    context["timeline"] = timeline_rows(timeline or [])
    context["changes"] = changes
    return render("report.html.j2", **context)
