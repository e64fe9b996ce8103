"""Mutation testing of the modules where a wrong line changes who gets funded or what they are told.

    .venv/bin/python bench/mutation.py            # mutmut run over SCOPE, then the report
    .venv/bin/python bench/mutation.py --report   # the report only, from the last run (mutants/)

Needs the `mutation` extra (pip install -e '.[mutation]'). Configuration (modules, tests, fork
server) is [tool.mutmut] in pyproject.toml; mutmut copies the project into mutants/ (git-ignored),
maps every mutant to the tests that call its function and runs only those. The report,
bench/results/mutation.md, gives per module the mutants total / killed / survived / timeout /
score and every surviving mutant with its diff and why it is accepted (ACCEPTED below; a
survivor without a reason there is marked "UNEXPLAINED" so a new one cannot slip by).
Exit status 1 when a module scores below 90 % without its equivalent mutants, or a survivor is unexplained.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "results" / "mutation.md"
THRESHOLD = 90.0

# module file -> mutmut name patterns (module.x_<function>__mutmut_<n>, module.xǁClassǁmethod__...)
LOOKUP = "allocation.publish.lookup."
SCOPE: dict[str, list[str]] = {
    "allocation/model/money.py": ["allocation.model.money.*"],
    "allocation/scoring.py": ["allocation.scoring.*"],
    "allocation/model/build.py": ["allocation.model.build.*"],
    "allocation/explain/reasons.py": ["allocation.explain.reasons.*"],
    "allocation/explain/outcomes.py": ["allocation.explain.outcomes.*"],
    "allocation/rounds/lifecycle/states.py": ["allocation.rounds.lifecycle.states.*"],
    # the lookup derivation only (what publishing and the page compute a file name and key with);
    # what the records say (explain, outcome_records) is out of scope here
    "allocation/publish/lookup.py": [LOOKUP + p for p in (
        "x__b64__*", "xǁLookupParamsǁ*", "x__hkdf__*", "x_file_keys__*", "x_master_of__*",
        "x_derive__*", "x_seal__*", "x_unseal__*")],
}

# Surviving mutants accepted, with why: mutant name -> reason. Kept short and specific.
_CODEC = "equivalent: Python codec names are case-insensitive (\"UTF-8\" is \"utf-8\")"
_DTYPE = ("equivalent: the dtype given is the one numpy/polars infer here anyway (float64 from floats, "
          "bool from bools, int64 from ints, str/object strings of the same values)")
_EMPTY = ("equivalent: only changes the branch for a round without items (n = 0), whose arrays are empty "
          "either way")
_SORT_SCORES = ("equivalent: only the row order before group-wise means changes; every output is a "
                "per-application aggregate sorted by application_id (and rounded)")
_NEXT = ("equivalent: money grows with the level, so the first level with money above the current one is "
         "the next allowed level whenever one is allowed (next_step/next_allowed_option agree)")
_TOP = ("equivalent: _top_option only matters for an unfunded item with no allowed level, where every "
        "variant gives -1 (nothing to price)")
_SCORE_LEVEL = ("accepted: score_needed read at the top allowed level instead of the lowest one; the ratio "
                "price / awarded differs only through floor and half-up rounding of hours and co-payments, "
                "which no hand-made round here separates (to do: a round where it does)")
_ACCEPT: list[tuple[str, str, list[int]]] = [
    # (mutmut function name, reason, mutant numbers)
    ("allocation.publish.lookup.x__b64", _CODEC, [4]),
    ("allocation.publish.lookup.x_derive", _CODEC, [9, 24]),
    ("allocation.publish.lookup.x__hkdf",
     "equivalent: salt=None is HKDF's default (an empty salt, as documented)", [7]),
    ("allocation.rounds.lifecycle.states.x_award_states",
     "equivalent: Previous.offered has exactly the current awards as keys (rounds/lifecycle/previous.py), "
     "so offered.get() of a released award is None either way", [74]),
    ("allocation.scoring.x_score_applications", _SORT_SCORES, [8, 9, 10, 11, 12, 13]),
    ("allocation.scoring.x_score_applications", _DTYPE + " (weights are floats)", [56, 58]),
    ("allocation.scoring.x_score_applications",
     "equivalent: the criterion columns are put in sorted order by the final select anyway", [83, 87, 94]),
    ("allocation.scoring.x_score_applications",
     "equivalent in practice: an inner instead of a left join drops an eligible application without any "
     "review, and intake makes such an application ineligible (missing_reviews)", [131, 137]),
    ("allocation.model.build.x_selectable", "equivalent: how='inner' is polars' default", [8]),
    ("allocation.model.build.x_build_model", _DTYPE + " (integer-valued floats below 2^53 compare and "
     "floor the same)", [23, 36, 38, 92, 127]),
    ("allocation.model.build.x_build_model", "equivalent: axis=0 is np.concatenate's default", [116]),
    ("allocation.model.build.x_build_model",
     "accepted: differs only for a level awarding exactly ₩1 (a 1-hour request at ₩1 an hour)", [106]),
    ("allocation.explain.reasons.x_next_step", _NEXT, [27, 33, 34]),
    ("allocation.explain.reasons.x__top_option", _TOP, [3, 4, 5, 15, 16, 19]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent: the fallback is for items without a next step, whose key is 0 (nothing to explain) "
     "whatever their row checks say", [36]),
    ("allocation.explain.reasons.x_explain_items", _EMPTY, [54, 58, 60, 61, 81, 88, 116, 118]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent: codes is empty before this line, so = and += agree", [165]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent: pattern is already one-dimensional; numpy accepts these reshape arguments", [197, 200]),
    ("allocation.explain.reasons.x_explain_items", _SCORE_LEVEL, [214, 220, 221]),
    ("allocation.explain.reasons.x_explain_items", _DTYPE, [244]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent: np.errstate only silences warnings here; no test turns numpy warnings into errors",
     [245, 246, 247, 248]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent: the level priced is allowed, so its award is > ₩0 (and ₩1 only for a ₩1 award)", [261, 262]),
    ("allocation.explain.reasons.x_explain_items",
     "equivalent in practice: changes the float-noise tolerance only for ratios below 2 centipoints per KRW, "
     "by 1e-9", [274]),
    ("allocation.explain.reasons.x_limits_report", _DTYPE, [7, 9, 125, 127]),
    ("allocation.explain.reasons.x_limits_report",
     "equivalent in practice: differs only when the objective equals the quota's cost", [118]),
    ("allocation.explain.reasons.x_limits_report", _EMPTY, [133, 135, 136, 137, 138, 139]),
    ("allocation.explain.outcomes.x__blocker_sentence",
     "equivalent: the fallback OUTCOME_REASONS['budget_exhausted'] is the same sentence", [2, 3]),
    ("allocation.explain.outcomes.x_build_awards",
     "equivalent: np.nonzero yields each application's lines in GPU-type order already", [12, 14]),
    ("allocation.explain.outcomes.x_build_awards", _DTYPE + " (the frame is cast to AWARDS_SCHEMA's "
     "types either way)", [16, 18, 27, 29, 36, 39]),
    ("allocation.explain.outcomes.x_build_awards", _EMPTY + " (no award lines)", [25, 31, 33]),
    ("allocation.explain.outcomes.x_build_outcomes",
     "equivalent: nulls_equal=False is polars' default", [60, 68]),
    ("allocation.explain.outcomes.x_build_outcomes",
     "equivalent in practice: no application_id on either side of these joins is null (rows without an id "
     "are ineligible and have no score nor item)", [73, 87]),
    ("allocation.explain.outcomes.x_build_outcomes",
     "equivalent: scores are already rounded to 2 decimals by scoring", [144]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: next_option of a funded item is -1 or above its level (>= 1); 'top' only counts "
     "together with 'funded'", [14, 15]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: the looked-up fraction of an unfunded item is discarded by the outer np.where", [35, 42, 43]),
    ("allocation.explain.outcomes.x_item_outcomes", _DTYPE,
     [72, 74, 84, 86, 119, 121, 126, 128, 181, 183, 196, 204, 227, 339, 353]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "accepted: 'not_optimal' without codes is only reached by the bug pinned in "
     "tests/explain/test_outcomes_mutants.py (xfail): every level grants 0 hours", [79, 80]),
    ("allocation.explain.outcomes.x_item_outcomes", _EMPTY,
     [81, 91, 123, 130, 133, 135, 137, 138, 141, 144, 146, 170, 172, 173, 234, 238, 240, 241, 281, 283, 285,
      286, 323, 327]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: any marker that no sentence contains works, and it occurs at most once", [93, 115]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: the business number and quota list only matter for the sentence they are not used in",
     [105, 112, 158]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: the index array is already one-dimensional", [188, 190]),
    ("allocation.explain.outcomes.x_item_outcomes",
     "equivalent: '.2F' and '.2f' differ only for inf/nan, and scores are finite", [198, 229]),
]
ACCEPTED: dict[str, str] = {f"{func}__mutmut_{n}": reason for func, reason, ns in _ACCEPT for n in ns}


def _match(name: str, patterns: list[str]) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def run(max_children: int) -> float:
    patterns = [p for ps in SCOPE.values() for p in ps]
    start = time.monotonic()
    subprocess.run([str(ROOT / ".venv" / "bin" / "mutmut"), "run", "--max-children", str(max_children),
                    *patterns], cwd=ROOT, check=True)
    return time.monotonic() - start


def _results() -> dict[str, dict[str, int | None]]:
    out = {}
    for module in SCOPE:
        meta = ROOT / "mutants" / (module + ".meta")
        data = json.loads(meta.read_text()) if meta.is_file() else {"exit_code_by_key": {}}
        out[module] = {k: v for k, v in data["exit_code_by_key"].items() if _match(k, SCOPE[module])}
    return out


def _diff(name: str, module: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    return get_diff_for_mutant(name, path=Path(module))


def _line(module: str, diff: str) -> int | None:
    """Line of the original file that the mutant changes (first removed line of the diff)."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    if not removed:
        return None
    lines = (ROOT / module).read_text(encoding="utf-8").splitlines()
    candidates = [i + 1 for i, text in enumerate(lines) if text.strip() == removed[0].strip()]
    if not candidates:
        return None
    return candidates[0] if len(candidates) == 1 else _nearest(candidates, diff, lines)


def _nearest(candidates: list[int], diff: str, lines: list[str]) -> int:
    """Several identical lines: pick the one inside the mutated function (its def line in the diff)."""
    defs = [line[1:].strip() for line in diff.splitlines() if line[1:].lstrip().startswith("def ")]
    if defs:
        starts = [i + 1 for i, text in enumerate(lines) if text.strip() == defs[0]]
        if starts:
            after = [c for c in candidates if c > starts[0]]
            if after:
                return after[0]
    return candidates[0]


def report(elapsed: float | None, note: str = "") -> int:
    os.chdir(ROOT)    # mutmut reads [tool.mutmut] from the working directory
    from mutmut.stats import status_by_exit_code

    results = _results()
    rows, survivors, failing = [], [], []
    totals = Counter()
    for module, codes in results.items():
        status = Counter(status_by_exit_code[c] for c in codes.values())
        total = len(codes)
        killed, timeout, survived = status["killed"], status["timeout"], status["survived"]
        unchecked = status["not checked"]
        other = total - killed - timeout - survived - unchecked
        equivalent = sum(1 for name, c in codes.items() if status_by_exit_code[c] == "survived"
                         and ACCEPTED.get(name, "").startswith("equivalent"))
        # a timeout is a mutant the tests did not let pass (an endless loop, a hang): counted as caught
        score = 100.0 * (killed + timeout) / total if total else 0.0
        net = 100.0 * (killed + timeout) / (total - equivalent) if total - equivalent else 0.0
        rows.append(f"| `{module}` | {total} | {killed} | {survived} | {equivalent} | {timeout} | {other} "
                    f"| {unchecked} | {score:.1f} % | {net:.1f} % |")
        totals.update(total=total, killed=killed, survived=survived, timeout=timeout, other=other,
                      unchecked=unchecked, equivalent=equivalent)
        if net < THRESHOLD:
            failing.append(module)
        for name, code in sorted(codes.items(), key=lambda kv: _sort_key(kv[0])):
            if status_by_exit_code[code] in ("killed", "timeout", "not checked"):
                continue
            diff = _diff(name, module)
            line = _line(module, diff)
            survivors.append((module, line, name, status_by_exit_code[code], diff))
    t = totals
    score = 100.0 * (t["killed"] + t["timeout"]) / t["total"] if t["total"] else 0.0
    net = 100.0 * (t["killed"] + t["timeout"]) / (t["total"] - t["equivalent"]) if t["total"] else 0.0
    rows.append(f"| **all** | {t['total']} | {t['killed']} | {t['survived']} | {t['equivalent']} | "
                f"{t['timeout']} | {t['other']} | {t['unchecked']} | {score:.1f} % | {net:.1f} % |")

    from importlib.metadata import version
    text = [
        "# Mutation testing",
        "",
        f"mutmut {version('mutmut')}, `.venv/bin/python bench/mutation.py` (configuration: `[tool.mutmut]` in "
        "pyproject.toml; each mutant runs only the tests that call its function, out of the fast unit "
        "tests listed there). Score = (killed + timeout) / total; the target is ≥ 90 % per module. "
        "A survivor is *equivalent* when no input the program can receive tells it apart (reason below); "
        "the last column leaves those out of the total.",
        "",
        f"Full run: {elapsed / 60:.1f} min on 2 cores (2 workers)." if elapsed is not None else
        note or "Report regenerated from the last run (`--report`).",
        "",
        "| module | mutants | killed | survived | of which equivalent | timeout | no tests, suspicious "
        "| not checked | score | score without equivalent mutants |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "`allocation/publish/lookup.py`: only the derivation (normalise_id, normalise_code, _b64, "
        "LookupParams, _hkdf, derive, seal, unseal); the applicant texts and records are out of scope.",
        "",
        f"## Surviving mutants ({len(survivors)})",
        "",
        "Each with why it is equivalent (no input can tell it apart) or accepted.",
        "",
    ]
    unexplained = 0
    for module, line, name, status, diff in survivors:
        reason = ACCEPTED.get(name)
        if reason is None:
            unexplained += 1
            reason = "UNEXPLAINED"
        where = f"{module}:{line}" if line else module
        text += [f"### `{where}` {name.split('.')[-1]} ({status})", "", f"{reason}", "", "```diff",
                 _short(diff), "```", ""]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(text), encoding="utf-8")
    print(f"wrote {REPORT.relative_to(ROOT)}: {t['total']} mutants, {score:.1f} % caught, "
          f"{len(survivors)} surviving ({unexplained} unexplained)")
    for module in failing:
        print(f"below {THRESHOLD:.0f} % (without equivalent mutants): {module}")
    return 1 if failing or unexplained else 0


def _short(diff: str) -> str:
    """Only the changed lines and one line around them."""
    lines = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    keep = set()
    for i, line in enumerate(lines):
        if line.startswith(("-", "+")):
            keep.update({i - 1, i, i + 1})
    return "\n".join(lines[i] for i in sorted(keep) if 0 <= i < len(lines))


def _sort_key(name: str) -> tuple[str, int]:
    base, _, n = name.rpartition("__mutmut_")
    return base, int(n) if n.isdigit() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only write the report from mutants/")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant workers (default 2)")
    parser.add_argument("--note", default="", help="with --report: how the results were obtained (kept in the report)")
    args = parser.parse_args()
    elapsed = None if args.report else run(args.max_children)
    return report(elapsed, args.note)


if __name__ == "__main__":
    raise SystemExit(main())
