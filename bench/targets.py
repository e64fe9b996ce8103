"""The Issue 5 targets, judged from one benchmark run's numbers (no hand-written verdicts).

Each target row: what was asked, what was measured, and "met" / "NOT met" with the reason
when the numbers show a target cannot be reached on these rounds (e.g. greedy already
within 0.1% of the proven bound: no allocation can then beat it by 0.5%).
"""

from __future__ import annotations

import statistics

GAP_TARGET = 1e-5
GREEDY_TARGET = 0.005
SOLVE_1M_S = 30.0
ALLOCATE_1M_S = 180.0
ALLOCATE_100K_S = 60.0
RSS_1M_MIB = 8 * 1024.0
ORLIB_GAP = 0.001
ORLIB_SECONDS = 10.0
GAP_SIZES = (10_000, 100_000, 1_000_000)
E2E_STAGES = ("validate", "score", "build_model", "solve", "explain")


def _k(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def gap_row(results: dict[int, dict]) -> list[str] | None:
    sizes = [n for n in GAP_SIZES if results.get(n, {}).get("ours", {}).get("objective")]
    if not sizes:
        return None
    parts, ok = [], True
    for n in sizes:
        ours = results[n]["ours"]
        gap = (ours["bound"] - ours["objective"]) / ours["bound"]
        ok &= gap <= GAP_TARGET
        text = f"{_k(n)}: {gap:.1e}"
        lp = results[n].get("lp", {}).get("bound")
        if lp:
            text += (f" (LP relaxation bound {(lp - ours['bound']) / lp:.1e} above our bound, "
                     f"so {(lp - ours['objective']) / lp:.1e} below it)")
        parts.append(text)
    note = ("gap to our proven upper bound: the Lagrangian dual with the company blocks solved "
            "exactly, never above the LP bound; the LP relaxation is looser than the integer optimum "
            "itself, so no allocation can get within 1e-5 of it where it is more than 1e-5 above ours")
    return ["gap to the bound ≤ 1e-5 at 10k / 100k / 1M", "; ".join(parts) + f" — {note}",
            _verdict(ok and len(sizes) == len(GAP_SIZES))]


def greedy_row(results: dict[int, dict]) -> list[str] | None:
    sizes = [n for n in GAP_SIZES if results.get(n, {}).get("ours", {}).get("objective")
             and results[n].get("greedy", {}).get("objective")]
    if not sizes:
        return None
    parts, ok, unreachable = [], True, []
    for n in sizes:
        ours, greedy = results[n]["ours"], results[n]["greedy"]["objective"]
        single = results[n].get("greedy1", {}).get("objective")
        over = ours["objective"] / greedy - 1
        ceiling = ours["bound"] / greedy - 1
        ok &= over >= GREEDY_TARGET and (single is None or ours["objective"] / single - 1 >= GREEDY_TARGET)
        text = f"{_k(n)}: {over:+.3%}"
        if single:
            text += f" ({ours['objective'] / single - 1:+.3%} over the single pass)"
        parts.append(text)
        if ceiling < GREEDY_TARGET:
            unreachable.append(f"{_k(n)} {ceiling:.3%}")
    result = "; ".join(parts) + " over greedy by score (quota repair + fill)"
    if unreachable:
        result += (". Unreachable on these rounds by any method: the proven bound is only "
                   + ", ".join(unreachable) + " above greedy, and no allocation exceeds the bound")
    return ["≥ 0.5% more objective than greedy", result, _verdict(ok)]


def solve_1m_row(results: dict[int, dict]) -> list[str] | None:
    ours = results.get(1_000_000, {}).get("ours", {})
    if ours.get("seconds") is None or ours.get("objective") is None:
        return None
    secs = ours.get("seconds_all", [ours["seconds"]])
    stages = ours.get("stage_seconds") or {}
    detail = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
    return ["1M solve ≤ 30 s (2 cores)",
            f"{ours['seconds']:.1f} s (median of {len(secs)}: {', '.join(f'{s:.1f}' for s in secs)}; "
            f"stages of the first run: {detail})", _verdict(ours["seconds"] <= SOLVE_1M_S)]


def e2e_rows(e2e: dict[int, dict]) -> list[list[str]]:
    rows = []
    big, small = e2e.get(1_000_000), e2e.get(100_000)
    if big and big.get("wall") is not None:
        timings = big.get("timings", {})
        stages = ", ".join(f"{k} {timings[k]:.1f}" for k in E2E_STAGES if k in timings)
        rows.append(["1M whole `voucher allocate` ≤ 3 min", f"{big['wall']:.1f} s ({stages})",
                     _verdict(big["wall"] <= ALLOCATE_1M_S)])
        rows.append(["1M peak RSS ≤ 8 GiB", f"{big['peak_rss_mib'] / 1024:.2f} GiB (whole allocate, one process)",
                     _verdict(big["peak_rss_mib"] <= RSS_1M_MIB)])
    if small and small.get("wall") is not None:
        rows.append(["100k whole `voucher allocate` ≤ 60 s", f"{small['wall']:.1f} s",
                     _verdict(small["wall"] <= ALLOCATE_100K_S)])
    return rows


def orlib_row(orlib: dict[str, list[dict]]) -> list[str] | None:
    rows = orlib.get("lp_guided") or next(iter(orlib.values()), None)
    if not rows:
        return None
    classes: dict[str, list[dict]] = {}
    for r in rows:
        classes.setdefault(r["class"], []).append(r)
    means = {c: statistics.mean(r["gap_to_best"] for r in rs) for c, rs in classes.items()
             if all(r.get("gap_to_best") is not None for r in rs)}
    missing = [c for c in classes if c not in means]
    worst = max(means, key=means.get) if means else None
    slow = [r for r in rows if r["seconds"] > ORLIB_SECONDS]
    secs = [r["seconds"] for r in rows]
    worst_text = f"worst class mean {means[worst]:.3%} ({worst})" if worst else "no class fully solved"
    text = (f"{len(rows)} instances, {len(classes)} classes: {worst_text}; "
            f"{len(rows) - len(slow)} of {len(rows)} within {ORLIB_SECONDS:g} s (median "
            f"{statistics.median(secs):.1f} s, max {max(secs):.1f} s)")
    if slow:
        text += "; over: " + ", ".join(f"{r['instance']} {r['seconds']:.1f} s" for r in slow[:10])
    if missing:
        text += "; no feasible answer in " + ", ".join(missing)
    ok = not missing and not slow and worst is not None and means[worst] <= ORLIB_GAP
    return ["OR-Library mean gap ≤ 0.1% per class at ≤ 10 s per instance", text, _verdict(ok)]


def targets_table(results: dict[int, dict], orlib: dict[str, list[dict]], e2e: dict[int, dict]) -> list[str]:
    rows = [gap_row(results), greedy_row(results), solve_1m_row(results), *e2e_rows(e2e), orlib_row(orlib)]
    lines = ["| target | measured in this run | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in (r for r in rows if r)]
    return lines
