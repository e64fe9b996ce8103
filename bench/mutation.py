"""Mutation testing of the modules where a wrong line changes who gets funded or what they are told.

    .venv/bin/python bench/mutation.py            # mutmut run over SCOPE, then the report
    .venv/bin/python bench/mutation.py --report   # the report only, from the last run (mutants/)

Needs the `mutation` extra (pip install -e '.[mutation]'). Configuration (modules, tests, fork
server) is [tool.mutmut] in pyproject.toml; mutmut copies the project into mutants/ (git-ignored),
maps every mutant to the tests that call its function and runs only those. The report,
bench/results/mutation.md, gives per module the mutants total / killed / survived / timeout /
score and every surviving mutant with its diff and why it is accepted (ACCEPTED below; a
survivor without a reason there is marked "UNEXPLAINED" so a new one cannot slip by).
Exit status 1 when a module scores below 90 %.
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
        "x_normalise_id__*", "x_normalise_code__*", "x__b64__*", "xǁLookupParamsǁ*", "x__hkdf__*",
        "x_derive__*", "x_seal__*", "x_unseal__*")],
}

# Surviving mutants accepted, with why: mutant name -> reason. Kept short and specific.
_CODEC = "equivalent: Python codec names are case-insensitive (\"UTF-8\" is \"utf-8\")"
ACCEPTED: dict[str, str] = {
    LOOKUP + "x__b64__mutmut_4": _CODEC,
    LOOKUP + "x_derive__mutmut_9": _CODEC,
    LOOKUP + "x_derive__mutmut_24": _CODEC,
    LOOKUP + "x__hkdf__mutmut_7": "equivalent: salt=None is HKDF's default (an empty salt, as documented)",
    "allocation.rounds.lifecycle.states.x_award_states__mutmut_74":
        "equivalent: Previous.offered has exactly the current awards as keys (rounds/lifecycle/previous.py), "
        "so offered.get() of a released award is None either way",
}


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


def report(elapsed: float | None) -> int:
    os.chdir(ROOT)    # mutmut reads [tool.mutmut] from the working directory
    from mutmut.stats import status_by_exit_code

    results = _results()
    rows, survivors, failing = [], [], []
    totals = Counter()
    for module, codes in results.items():
        status = Counter(status_by_exit_code[c] for c in codes.values())
        total = len(codes)
        killed = status["killed"]
        timeout = status["timeout"]
        survived = status["survived"]
        other = total - killed - timeout - survived
        # a timeout is a mutant the tests did not let pass (an endless loop, a hang): counted as caught
        score = 100.0 * (killed + timeout) / total if total else 0.0
        rows.append(f"| `{module}` | {total} | {killed} | {survived} | {timeout} | {other} | {score:.1f} % |")
        totals.update(total=total, killed=killed, survived=survived, timeout=timeout, other=other)
        if score < THRESHOLD:
            failing.append(module)
        for name, code in sorted(codes.items(), key=lambda kv: _sort_key(kv[0])):
            if status_by_exit_code[code] in ("killed", "timeout"):
                continue
            diff = _diff(name, module)
            line = _line(module, diff)
            survivors.append((module, line, name, status_by_exit_code[code], diff))
    t = totals
    score = 100.0 * (t["killed"] + t["timeout"]) / t["total"] if t["total"] else 0.0
    rows.append(f"| **all** | {t['total']} | {t['killed']} | {t['survived']} | {t['timeout']} | "
                f"{t['other']} | {score:.1f} % |")

    from importlib.metadata import version
    text = [
        "# Mutation testing",
        "",
        f"mutmut {version('mutmut')}, `.venv/bin/python bench/mutation.py` (configuration: `[tool.mutmut]` in "
        "pyproject.toml; each mutant runs only the tests that call its function, out of the fast unit "
        "tests listed there). Score = (killed + timeout) / total; the target is ≥ 90 % per module.",
        "",
        f"Full run: {elapsed / 60:.1f} min on 2 cores (2 workers)." if elapsed is not None else
        "Report regenerated from the last run (`--report`).",
        "",
        "| module | mutants | killed | survived | timeout | other (no tests, suspicious) | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
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
        print(f"below {THRESHOLD:.0f} %: {module}")
    return 1 if failing else 0


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
    args = parser.parse_args()
    elapsed = None if args.report else run(args.max_children)
    return report(elapsed)


if __name__ == "__main__":
    raise SystemExit(main())
