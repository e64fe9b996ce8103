"""`voucher` command line: validate, allocate, whatif, publish, lookup, diff, refill, appeal.

Synthetic rounds for demos and benchmarks: python -m bench.synthetic (not part of the engine).

Exit codes: 0 done; 1 `validate --strict` found problems; 2 the round cannot run
(the message says why); 3 internal error (re-run with --debug for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from allocation import files, intake, text
from allocation.config import load_config
from allocation.errors import RoundError
from allocation.intake import receipt
from allocation.publish import diff, lookup, signing
from allocation.publish.index import refresh_index
from allocation.publish.verify import cross_check, verify_round
from allocation.publish.version import publish
from allocation.rounds import allocate, panel, retention, whatif
from allocation.rounds.approval import lifecycle_markdown
from allocation.rounds.lifecycle.refill import run_lifecycle

class SafeConsole(Console):
    """A console that never passes a control character or escape sequence from the data to
    the terminal (allocation.text.terminal); markup off: [brackets] in messages are text."""

    def print(self, *objects, **kwargs) -> None:
        super().print(*(text.terminal(o) if isinstance(o, str) else o for o in objects), **kwargs)


console = SafeConsole(highlight=False, markup=False)
err = SafeConsole(stderr=True, highlight=False, markup=False)
SHOW_ISSUES = 40


def _krw(x: int | None) -> str:
    return "-" if x is None else f"₩{x:,}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def print_issues(issues: pl.DataFrame) -> None:
    if issues.is_empty():
        console.print("No problems found in the input files.", style="green")
        return
    shown = issues.head(SHOW_ISSUES)
    if not console.is_terminal:  # logs and pipes: one grep-able line per problem
        console.print(f"{issues.height} problem(s) in the input files:")
        for row in shown.iter_rows(named=True):
            where = row["file"] + ("" if row["row"] is None else f" row {row['row']}")
            where += f" [{row['column']}]" if row["column"] else ""
            console.print(f"  {where}: {row['code']}: {row['message']}", soft_wrap=True)
    else:
        _print_issue_table(issues, shown)
    if issues.height > SHOW_ISSUES:
        console.print(f"... and {issues.height - SHOW_ISSUES} more (all in issues.csv)")


def _print_issue_table(issues: pl.DataFrame, shown: pl.DataFrame) -> None:
    table = Table(title=f"{issues.height} problem(s) in the input files", title_justify="left")
    for col in ("file", "row", "column", "code", "message"):
        table.add_column(col, overflow="fold")
    for row in shown.iter_rows(named=True):
        table.add_row(*(text.terminal(v) for v in (row["file"], "" if row["row"] is None else row["row"],
                                                   row["column"] or "", row["code"], row["message"])))
    console.print(table)


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.round_dir)
    validated = intake.read_round(args.round_dir, config)
    print_issues(validated.issues)
    apps = validated.applications
    eligible = int(apps["eligible"].sum())
    console.print(f"Round {config.round.id}: {apps.height} applications, {eligible} eligible, "
                  f"{apps.height - eligible} ineligible (kept, with a reason).")
    if args.out:
        intake.save_validated(validated, args.out)
        console.print(f"Validated tables and issues.csv written to {args.out}")
    return 1 if args.strict and not validated.issues.is_empty() else 0


def print_summary(report: dict, out_dir: Path) -> None:
    s = report["summary"]
    console.rule(f"Round {report['round_id']}")
    statuses = ", ".join(f"{k} {v}" for k, v in s["by_status"].items())
    console.print(f"Applications: {s['applications']} ({statuses})")
    console.print(f"Funded: {s['funded']}   budget used: {_krw(s['awarded_krw'])} of "
                  f"{_krw(s['budget_krw'])} ({_pct(s['budget_used_share'])})   "
                  f"co-payments: {_krw(s['copay_krw'])}   score cut-off: {s['score_cutoff']}")
    table = Table(title="GPU-hours", title_justify="left")
    for col in ("GPU", "awarded", "capacity", "utilisation"):
        table.add_column(col, justify="right")
    for gpu, cap in s["gpu_hours_capacity"].items():
        table.add_row(gpu, f"{s['gpu_hours_awarded'].get(gpu, 0):,}", f"{cap:,}",
                      _pct(s["gpu_utilisation"][gpu]))
    console.print(table)
    for q in report["limits"]["quotas"]:
        cost = q["objective_cost"]
        console.print(f"Quota {q['quota']}: share {_pct(q['share'])} (min {_pct(q['min_share'])})"
                      f"{' binding' if q['binding'] else ''}; costs {_pct(q['objective_cost_share'])} "
                      f"of the objective" + ("" if cost is not None else " (not computed)"))
    binding = [r["limit"] for r in report["limits"]["rows"] if r["binding"]]
    console.print(f"Binding limits: {', '.join(binding) or 'none'}; companies at cap: "
                  f"{report['limits']['company_caps']['companies_blocked']}")
    proof = "proven optimal" if report["status"] == "optimal" else report["status"]
    console.print(f"Solver: {report['solver']['name']} — {proof}, gap {report['gap']:.2e}")
    for warning in report["warnings"]:
        console.print(f"Warning: {warning}", style="bold yellow")
    console.print(f"Results: {out_dir / (files.OUTCOMES + '.csv')}, {out_dir / (files.AWARDS + '.csv')}, "
                  f"{out_dir / files.SOLUTION}")


def cmd_allocate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with console.status("starting") as status:
        def on_stage(name: str) -> None:
            status.update(f"{name} …")
            console.log(f"{name}")
        report = allocate.run_round(args.round_dir, args.out, budget_krw=args.budget_krw,
                                    time_limit_s=args.time_limit, on_stage=on_stage)
    print_summary(report, args.out)
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    info = publish(args.out_dir, args.publish_root, allow_empty=args.allow_empty,
                   signing_key=args.signing_key)
    if info["created"]:
        console.print(f"Round {info['round_id']} published as v{info['version']}: {info['path']}")
    else:
        console.print(f"Round {info['round_id']} unchanged: v{info['version']} kept ({info['path']}); "
                      f"the approval is recorded in the audit trail")
    refresh_index(args.publish_root)
    console.print(f"Index of published rounds: {Path(args.publish_root) / files.INDEX}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0: every version's signature, files and the audit chain are intact; 1: the first
    break is named; 2: nothing to verify."""
    result = verify_round(args.round_root, args.public_key)
    console.print(f"public key {result['public_key']} (sha256 {result['key_sha256']})")
    problems = list(result["problems"])
    if result["ok"]:
        console.print(f"intact: v{result['versions'][0]}..v{result['versions'][-1]} signed and "
                      f"unchanged; audit trail of {result['audit_lines']} line(s) chained")
    if args.officer_trail is not None:
        officers = cross_check(args.round_root, None if args.officer_trail == "" else Path(args.officer_trail))
        if officers["ok"]:
            console.print(f"officers' trail {officers['path']}: {officers['officer_lines']} line(s) chained, "
                          f"each bound to its public line"
                          + (f"; {officers['legacy_lines']} legacy public line(s) carry their own detail"
                             if officers["legacy_lines"] else ""), soft_wrap=True)
        for note in officers["notes"]:
            console.print(f"  note: {note}", soft_wrap=True)
        problems += officers["problems"]
    if not problems:
        return 0
    err.print(f"BROKEN: {problems[0]}", soft_wrap=True)
    for problem in problems[1:]:
        err.print(f"  also: {problem}", soft_wrap=True)
    return 1


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.path.exists():
        raise RoundError(f"{args.path} exists; not overwritten")
    key = signing.load_private_key(signing.generate_key(args.path))
    console.print(f"signing key written to {args.path} (mode 600; keep it outside the publish root); "
                  f"public key sha256 {signing.key_id(key)}")
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    try:
        return lookup.cli_lookup(args.published, args.application_id, args.code, as_json=args.json)
    except FileNotFoundError as exc:
        raise RoundError(f"{args.published}: not a published round or version ({exc})") from None


def cmd_codes(args: argparse.Namespace) -> int:
    """N strong receipt codes (80 bits, Crockford base32, grouped) for a submission system."""
    if args.n < 1 or args.n > 10_000_000:
        raise RoundError("voucher codes N: N must be between 1 and 10,000,000")
    codes = receipt.new_codes(args.n)
    lines = "".join(c + "\n" for c in codes)
    if args.out is None:
        sys.stdout.write(lines)
        return 0
    if args.out.exists():
        raise RoundError(f"{args.out} exists; not overwritten")
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # a secret: owner only
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("receipt_code\n" + lines)
    err.print(f"{len(codes):,} receipt codes ({receipt.CODE_GROUPS * receipt.CODE_GROUP_LEN * 5} bits "
              f"each) written to {args.out} (mode 600)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        return diff.cli_diff(args.old, args.new, as_json=args.json)
    except (FileNotFoundError, ValueError) as exc:
        raise RoundError(str(exc)) from None


def cmd_lifecycle(args: argparse.Namespace) -> int:
    """`voucher refill` / `voucher appeal`: run, print the officer summary.

    RoundError (exit 2) for any bad input: responses/appeals files, previous version, infeasible refill.
    """
    try:
        day = date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        raise RoundError(f"--as-of {args.as_of!r}: not a date YYYY-MM-DD") from None
    out = Path(args.out)
    report = run_lifecycle(Path(args.round_dir), Path(args.previous), out, as_of=day,
                           responses=args.responses, appeals=args.appeals,
                           require_appeals=args.command == "appeal", time_limit_s=args.time_limit)
    print(text.terminal(lifecycle_markdown(report, out)))
    print(f"Results: {out / (files.OUTCOMES + '.csv')}, {out / (files.CHANGES + '.csv')}, "
          f"{out / files.LIFECYCLE_REPORT}")
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    with console.status("starting") as status:
        def on_stage(name: str) -> None:
            status.update(f"{name} …")
            console.log(name)
        rows = whatif.run_whatif(args.round_dir, args.out, args.scenario, budget_krw=args.budget_krw,
                                 time_limit_s=args.time_limit, on_stage=on_stage)
    console.print(whatif.render_markdown(rows), soft_wrap=True)
    out = Path(args.out)
    console.print(f"Side by side: {out / whatif.WHATIF_MD}, {out / whatif.WHATIF_CSV}; each scenario's "
                  f"outcomes in {out / 'scenario-<k>'}; who changed (officers only): {out / whatif.WHATIF_CHANGES}")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    """`voucher assign`: review-panel assignment (allocation.rounds.panel); exit 2 when it cannot be done."""
    started = time.perf_counter()
    report = panel.assign(args.round_dir, args.out, reviewers_per_application=args.reviewers_per_application,
                          reassign=args.reassign)
    print(text.terminal(panel.panel_markdown(report, Path(args.out))))
    print(f"Solver: min-cost flow, proven optimal, gap {report['solver']['gap']:g}. "
          f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RoundError(f"{option} {value!r}: not a date YYYY-MM-DD") from None


def cmd_purge(args: argparse.Namespace) -> int:
    """Dry run unless --apply: what goes, by a date (--before) or by the round's retention policy."""
    if (args.before is None) == (not args.policy):
        raise RoundError("voucher purge: give either --before DATE or --policy (round.toml [retention])")
    folders = [args.round_folder] if args.round_folder else []
    if args.policy:
        as_of = _date(args.as_of, "--as-of") if args.as_of else date.today()
        plan = retention.plan_by_policy(args.round_id, args.publish_root, args.runs_root, folders, as_of)
    else:
        plan = retention.plan_purge(args.round_id, args.publish_root, args.runs_root,
                                    _date(args.before, "--before"), round_folders=folders)
    s = plan.summary()
    cut = s["cutoffs"]
    lookup = ", ".join(f"{v}: {n:,} files" for v, n in s["lookup_files"].items()) or "none"
    if args.policy:
        p = s["policy"]
        console.print(f"Round {s['round_id']}, retention policy as of {s['as_of']} ({p['source']}): lookup files "
                      f"{p['lookup_files_days']} days after publication, run folders {p['run_folders_days']} days, "
                      f"round folder " + (f"{p['round_folder_days']} days after the newest publication"
                                          if p["round_folder_days"] is not None else "not by policy"))
    else:
        console.print(f"Round {s['round_id']}, personal data older than {s['before']}:")
    console.print(f"  run folders last written before {cut['run_folders']}: {len(s['run_folders'])}"
                  + (f" (kept: {s['kept_run_folder']}, the newest version's)" if s["kept_run_folder"] else ""))
    console.print(f"  lookup files of versions published before {cut['lookup_files']}: {lookup}")
    for folder, found in s["round_folder_files"].items():
        console.print(f"  round folder {folder}: {len(found)} file(s): {', '.join(found)} "
                      f"(round.toml and capacity stay, with {files.PURGED_NOTE})", soft_wrap=True)
    if s["closed"]:
        console.print("  the round is closed: its newest run folder goes too; no refill or appeal after this")
    for note in s["notes"]:
        console.print(f"  {note}", soft_wrap=True)
    console.print(f"  {s['bytes']:,} bytes in all")
    if plan.empty:
        console.print("Nothing is due: nothing to remove.")
        return 0
    if not args.apply:
        console.print("Dry run: nothing was removed. Add --apply to remove it (recorded in the audit trail).")
        return 0
    retention.purge(plan, args.publish_root)
    console.print("Removed, and recorded in the audit trail.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voucher", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a round folder and list every bad row")
    p.add_argument("round_dir", type=Path)
    p.add_argument("--out", type=Path, help="also write validated tables and issues.csv here")
    p.add_argument("--strict", action="store_true", help="exit 1 if any problem is found")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("allocate", help="validate, score and allocate a round")
    p.add_argument("round_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--budget-krw", type=int, help="override [round] budget_krw")
    p.add_argument("--time-limit", type=float, help="override [solver] time_limit_s")
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("whatif", help="solve the round under other policies and compare them side by side")
    p.add_argument("round_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder (base/ and scenario-<k>/)")
    p.add_argument("--scenario", action="append", required=True,
                   help="e.g. budget=+10%% | quota.non_capital=0.3 | min_score=65 | "
                        "max_krw_per_company=200000000 | copay_share=0.3; several settings: comma-separated")
    p.add_argument("--budget-krw", type=int, help="override [round] budget_krw for every scenario")
    p.add_argument("--time-limit", type=float, help="override [solver] time_limit_s")
    p.set_defaults(func=cmd_whatif)

    p = sub.add_parser("publish", help="publish an allocated round as PUBLISH_ROOT/<round>/v<N>/")
    p.add_argument("out_dir", type=Path, help="output folder of voucher allocate")
    p.add_argument("--publish-root", type=Path, required=True)
    p.add_argument("--allow-empty", action="store_true",
                   help="publish even if the result funds nobody (refused otherwise)")
    p.add_argument("--signing-key", type=Path,
                   help=f"Ed25519 private key (PEM) that signs the manifest (default ${signing.KEY_ENV})")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("verify", help="check a published round: signatures, files and audit chain")
    p.add_argument("round_root", type=Path, help="PUBLISH_ROOT/<round_id>")
    p.add_argument("--public-key", type=Path,
                   help="the programme's public key (default: the round's signing_key.pub)")
    p.add_argument("--officer-trail", nargs="?", const="", metavar="PATH",
                   help="officers only: also cross-check the officers' audit trail against the public one "
                        "(default PATH: <publish root>.officers/<round_id>.audit.jsonl)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("keygen", help="generate an Ed25519 signing key (mode 600) for publishing")
    p.add_argument("path", type=Path)
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("purge", help="remove personal data no longer needed (dry run unless --apply)")
    p.add_argument("round_id")
    p.add_argument("--publish-root", type=Path, required=True)
    p.add_argument("--runs-root", type=Path, help="the runs root whose run folders of this round may go")
    p.add_argument("--before", help="YYYY-MM-DD: remove what is older than this (the end of the appeal window)")
    p.add_argument("--policy", action="store_true",
                   help="instead of --before: what the round's retention policy (round.toml [retention]) says is due")
    p.add_argument("--as-of", help="with --policy: the date the policy is applied at (default today)")
    p.add_argument("--round-folder", type=Path, metavar="DIR",
                   help="the round's folder (officers' input): once the round is closed, its applicant-data "
                        "files go too (round.toml and capacity stay, with a PURGED.txt note)")
    p.add_argument("--apply", action="store_true", help="remove (default: only say what would go)")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("lookup", help="an applicant's outcome from a published round (needs their code)")
    p.add_argument("application_id")
    p.add_argument("--published", type=Path, required=True,
                   help="a published version folder, or the round folder (latest version)")
    p.add_argument("--code", required=True, help="the applicant's receipt code; - reads it from stdin")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("codes", help="N strong receipt codes (80 bits, grouped) for the submission system")
    p.add_argument("n", type=int, metavar="N")
    p.add_argument("--out", type=Path, default=None, help="write a receipt_code CSV (mode 600) instead of printing")
    p.set_defaults(func=cmd_codes)
    p = sub.add_parser("diff", help="who gained, who lost, by how much between two published versions")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("assign", help="assign reviewers to applications (conflicts, expertise, loads)")
    p.add_argument("round_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--reviewers-per-application", "-k", type=int,
                   help="override [panel] reviewers_per_application (default 3)")
    p.add_argument("--reassign", type=Path, metavar="FILE",
                   help="only give new reviewers to these applications (e.g. OUT/intake/reassign.csv), "
                        "on top of the round folder's assignments")
    p.set_defaults(func=cmd_assign)

    for name, about in (("refill", "re-allocate freed awards after acceptances/declines/lapses"),
                       ("appeal", "apply appeal decisions (upheld appeals re-score and re-allocate)")):
        p = sub.add_parser(name, help=about)
        p.add_argument("round_dir", type=Path)
        p.add_argument("--previous", type=Path, required=True,
                       help="the previous run folder, published version, or published round folder (latest)")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--as-of", help="YYYY-MM-DD: the date deadlines are judged at (default today)")
        p.add_argument("--responses", help="responses file name in the round folder (default responses.csv)")
        p.add_argument("--appeals", help="appeals file name in the round folder (default appeals.csv)")
        p.add_argument("--time-limit", type=float)
        p.set_defaults(func=cmd_lifecycle)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RoundError as exc:
        err.print(f"error: {exc}", style="bold red", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback for users
        if args.debug:
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for details)",
                  style="bold red")
        return 3
