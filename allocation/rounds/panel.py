"""Review-panel assignment as a stage (`voucher assign`, the review_assignment DAG).

Reads the round folder's applications (topic_tags optional), reviewers and conflicts, gives
every eligible application k reviewers with no conflict of interest (allocation.solve.assignment:
exact min-cost flow), writes assignments.csv for the review system, one work list per reviewer
(CSV, plus every list in one XLSX), the reviewers' loads and panel.json. When it cannot be done,
it writes shortfall.csv and panel.json and raises RoundError saying which applications lack
non-conflicted expert reviewers and by how much capacity is short.

Eligible here: the application's own row passes intake (id present and unique, every field
valid). Reviews do not exist yet, so review-related reasons do not apply; request problems are
found when the round is allocated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from allocation import files, schema
from allocation.config import load_config
from allocation.errors import RoundError
from allocation.intake.panel_files import (REVIEWER_ID, conflict_pairs, list_cell_issues, panel_path,
                                           read_assignments, read_conflicts, read_reviewers, split_list)
from allocation.intake.tables import (APP_ID, ISSUES_SCHEMA, SOURCE_ROW, check_cells, duplicate_issues,
                                      issues_frame, raise_issues, read_table, table_path)
from allocation.publish.award_list import neutralise
from allocation.solve.assignment import PanelProblem, PanelSolution, solve_panel

SHOW = 10          # applications / bottlenecks named in messages
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WORK_LIST_COLUMNS = ("reviewer_id", "application_id", "company_name", "project_title", "topic_tags",
                     "shared_tags")


def work_list_name(reviewer_id: str) -> str:
    """A file name for a reviewer's work list that cannot leave the folder."""
    if _SAFE_NAME.match(reviewer_id):
        return f"{reviewer_id}.csv"
    return f"reviewer-{hashlib.sha256(reviewer_id.encode()).hexdigest()[:16]}.csv"


def _applications(round_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, str, str]:
    """(eligible applications: application_id, business_no, company_name, project_title,
    topic_tags (list), source_row; issues of the others; file name; sha256)."""
    path = table_path(round_dir, schema.APPLICATIONS)
    frame, digest = read_table(path, schema.APPLICATIONS)
    if schema.TOPIC_TAGS not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias(schema.TOPIC_TAGS))
    typed, issues = check_cells(frame, schema.APPLICATIONS, path.name, date.today(), pl.col(APP_ID))
    issues = pl.concat([issues, duplicate_issues(frame, schema.APPLICATIONS, path.name, "duplicate_id",
                                                 APP_ID, pl.col(APP_ID)),
                        list_cell_issues(frame, (schema.TOPIC_TAGS,), path.name, pl.col(APP_ID))])
    bad_rows = issues["row"].unique().implode()
    eligible = (typed.filter(~pl.col(SOURCE_ROW).is_in(bad_rows) & pl.col(APP_ID).is_not_null())
                .select(APP_ID, "business_no", "company_name", "project_title",
                        split_list(schema.TOPIC_TAGS).alias(schema.TOPIC_TAGS), SOURCE_ROW))
    return eligible, issues.sort("row", "column", "code", nulls_last=False), path.name, digest


def _csr(lists: pl.Series, vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = lists.explode().drop_nulls()
    index = flat.replace_strict(vocab, return_dtype=pl.Int64).to_numpy() if len(flat) else np.zeros(0, np.int64)
    return start, index.astype(np.int64)


def build_problem(apps: pl.DataFrame, reviewers: pl.DataFrame, pairs: pl.DataFrame, k: int) -> PanelProblem:
    vocab_list = sorted(set(apps[schema.TOPIC_TAGS].explode().drop_nulls().to_list())
                        | set(reviewers["expertise"].explode().drop_nulls().to_list()))
    vocab = {t: i for i, t in enumerate(vocab_list)}
    a_start, a_index = _csr(apps[schema.TOPIC_TAGS], vocab)
    r_start, r_index = _csr(reviewers["expertise"], vocab)
    app_pos = apps.select(APP_ID).with_row_index("__a")
    rev_pos = reviewers.select(REVIEWER_ID).with_row_index("__r")
    mapped = pairs.join(app_pos, on=APP_ID).join(rev_pos, on=REVIEWER_ID)
    return PanelProblem(
        k=k, app_tag_start=a_start, app_tag_index=a_index, reviewer_tag_start=r_start,
        reviewer_tag_index=r_index, max_load=reviewers["max_load"].to_numpy().astype(np.int64),
        conflict_app=mapped["__a"].to_numpy().astype(np.int64),
        conflict_reviewer=mapped["__r"].to_numpy().astype(np.int64))


def _tags_text(tags: list[str] | None) -> str:
    return schema.LIST_SEPARATOR.join(tags or []) or "(untagged: any reviewer)"


def _csv_strings(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")


def diagnose(apps: pl.DataFrame, reviewers: pl.DataFrame, sol: PanelSolution, need: np.ndarray
             ) -> tuple[list[str], pl.DataFrame, list[dict]]:
    """Why not every application can get its reviewers (k each, or what re-assignment needs):
    lines for people, shortfall table, parts."""
    k = int(need.max(initial=0))
    what = f"{k} reviewers" if (need == k).all() else "the reviewers it needs"
    lines = [f"cannot give every application {what}: {sol.shortfall:,} of "
             f"{sol.reviews_needed:,} reviews cannot be assigned."]
    lacking = np.flatnonzero(sol.candidates < need)
    frame = apps.select(APP_ID, SOURCE_ROW, pl.col(schema.TOPIC_TAGS).list.join(schema.LIST_SEPARATOR))
    part_of = np.full(len(apps), -1, dtype=np.int64)
    parts = []
    for i, b in enumerate(sol.bottlenecks):
        members = np.isin(sol.app_group, b.groups)
        part_of[members] = i
        by_tags = (apps.filter(pl.Series(members)).group_by(pl.col(schema.TOPIC_TAGS)
                   .list.join(schema.LIST_SEPARATOR).alias("tags")).len().sort("len", "tags", descending=[True, False]))
        parts.append({"part": i, "applications": int(members.sum()), "reviews_needed": b.demand,
                      "reviewers": len(b.reviewers), "reviewers_max_load": b.reviewer_capacity,
                      "reviews_from_other_reviewers": b.distinct_limit, "short": b.short,
                      "tag_sets": {(t or "(untagged)"): n for t, n in by_tags.iter_rows()},
                      "reviewer_ids": reviewers[REVIEWER_ID].gather(b.reviewers).to_list()})
    if len(lacking):
        shown = ", ".join(f"{apps[APP_ID][int(i)]} ({int(sol.candidates[i])})" for i in lacking[:SHOW])
        more = f" and {len(lacking) - SHOW} more" if len(lacking) > SHOW else ""
        lines.append(f"  - {len(lacking)} application(s) have fewer non-conflicted expert reviewers than "
                     f"the {k if (need == k).all() else 'reviews they need'} needed (candidates in brackets): "
                     f"{shown}{more}")
    for p in parts[:SHOW]:
        tags = ", ".join(f"{t} ×{n}" for t, n in list(p["tag_sets"].items())[:5])
        can = p["reviewers_max_load"] + p["reviews_from_other_reviewers"]
        detail = [f"{p['reviewers']} reviewer(s) with {p['reviewers_max_load']:,} review(s) of load left"]
        if p["reviews_from_other_reviewers"]:
            detail.append(f"{p['reviews_from_other_reviewers']:,} from reviewers who review each of them already")
        lines.append(
            f"  - {p['applications']} application(s) (topics {tags}) need {p['reviews_needed']:,} review(s); the "
            f"non-conflicted expert reviewers they can use give at most {can:,} ({'; '.join(detail)}): "
            f"capacity short by {p['short']:,} review(s)")
    if len(parts) > SHOW:
        lines.append(f"  - … and {len(parts) - SHOW} more shortage(s) (panel.json)")
    shortfall = frame.with_columns(
        pl.Series("candidates", sol.candidates, pl.Int64), pl.Series("needed", need, pl.Int64),
        pl.Series("lacking_candidates", np.maximum(need - sol.candidates, 0), pl.Int64),
        pl.Series("shortage", part_of, pl.Int64)).filter(
        (pl.col("lacking_candidates") > 0) | (pl.col("shortage") >= 0)).with_columns(
        pl.when(pl.col("shortage") >= 0).then(pl.col("shortage")).alias("shortage"))
    return lines, shortfall, parts


def _reassign_scope(round_dir: Path, apps: pl.DataFrame, reviewers: pl.DataFrame, list_file: Path, k: int
                    ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """Re-assignment: (listed applications, reviews each still needs, reviewers' current loads,
    pairs that may not be assigned again, the round's assignments as read, file hashes).

    An application keeps the reviewers whose reviews count (assigned, reviewed, no conflict
    since — conflicts are excluded by the caller); it needs k minus those. Nobody already assigned
    to it or who reviewed it is assigned again."""
    list_file = Path(list_file)
    if not list_file.is_file() or list_file.suffix not in schema.TABLE_EXTENSIONS:
        raise RoundError(f"{list_file}: not a .csv, .xlsx or .parquet file with an application_id column")
    listed, list_hash = read_table(list_file, schema.REASSIGN)
    typed, issues = check_cells(listed, schema.REASSIGN, list_file.name, date.today(), pl.col(APP_ID))
    unknown = typed.filter(pl.col(APP_ID).is_not_null() & ~pl.col(APP_ID).is_in(apps[APP_ID].implode()))
    raise_issues(list_file.name, pl.concat([issues, issues_frame(
        unknown, list_file.name, APP_ID, "unknown_application", pl.format(
            "application_id '{}' is not an application of the round (or its row is invalid)", pl.col(APP_ID)),
        pl.col(APP_ID))]), "the re-assignment")
    path = panel_path(round_dir, schema.ASSIGNMENTS)
    if path is None:
        raise RoundError(f"{round_dir}: re-assignment needs the round's assignments (assignments.csv "
                         f"as released by voucher assign) in the round folder")
    assigned, digest = read_assignments(path, apps[APP_ID])
    hashes = {path.name: digest}
    previous = read_table(path, schema.ASSIGNMENTS)[0].drop(SOURCE_ROW)
    reviews_file = panel_path(round_dir, schema.REVIEWS)
    reviewed = pl.DataFrame(schema={APP_ID: pl.String, REVIEWER_ID: pl.String})
    if reviews_file is not None:
        raw, hashes[reviews_file.name] = read_table(reviews_file, schema.REVIEWS)
        reviewed = raw.select(APP_ID, REVIEWER_ID).drop_nulls().unique()
    hashes[list_file.name] = list_hash
    scope = apps.filter(pl.col(APP_ID).is_in(typed[APP_ID].implode()))
    pairs = assigned.select(APP_ID, REVIEWER_ID)
    counted = pairs.join(reviewed, on=[APP_ID, REVIEWER_ID], how="semi")
    keep = scope.select(APP_ID).join(counted.group_by(APP_ID).len(), on=APP_ID, how="left", maintain_order="left")
    need = np.maximum(0, k - keep["len"].fill_null(0).to_numpy()).astype(np.int64)
    again = pl.concat([pairs, reviewed]).unique().with_columns(pl.lit("already assigned or reviewed").alias("reason"))
    base = (reviewers.select(REVIEWER_ID).join(pairs.group_by(REVIEWER_ID).len(), on=REVIEWER_ID, how="left",
                                               maintain_order="left")["len"].fill_null(0).to_numpy().astype(np.int64))
    return scope, need, base, again, previous, hashes


def write_outputs(out_dir: Path, apps: pl.DataFrame, reviewers: pl.DataFrame, sol: PanelSolution,
                  base: np.ndarray | None = None) -> pl.DataFrame:
    """assignments.csv, work_lists/<reviewer>.csv, work_lists.xlsx, reviewer_loads.csv."""
    pairs = pl.DataFrame({"__a": sol.app, "__r": sol.reviewer, "expertise_match": sol.match},
                         schema={"__a": pl.Int64, "__r": pl.Int64, "expertise_match": pl.Int64})
    apps_i = apps.with_row_index("__a").with_columns(pl.col("__a").cast(pl.Int64))
    revs_i = reviewers.with_row_index("__r").with_columns(pl.col("__r").cast(pl.Int64))
    joined = (pairs.join(apps_i, on="__a", maintain_order="left")
              .join(revs_i.select("__r", REVIEWER_ID, "expertise"), on="__r", maintain_order="left")
              .with_columns(pl.col(schema.TOPIC_TAGS).list.set_intersection("expertise")
                            .list.sort().list.join(schema.LIST_SEPARATOR).alias("shared_tags")))
    assignments = joined.select(APP_ID, REVIEWER_ID, "expertise_match", "shared_tags")
    files.write_csv(neutralise(assignments), out_dir / files.PANEL_ASSIGNMENTS)
    work = (joined.sort("__r", "__a").select(
        REVIEWER_ID, APP_ID, "company_name", "project_title",
        pl.col(schema.TOPIC_TAGS).list.join(schema.LIST_SEPARATOR), "shared_tags"))
    lists_dir = out_dir / files.PANEL_WORK_LISTS
    if lists_dir.exists():
        shutil.rmtree(lists_dir)
    files.private_dir(lists_dir)
    safe = neutralise(work)
    for (reviewer,), rows in safe.partition_by(REVIEWER_ID, as_dict=True, maintain_order=True).items():
        files.write_csv(rows, lists_dir / work_list_name(reviewer))
    files.write_xlsx_text(safe, out_dir / files.PANEL_WORK_LISTS_XLSX, sheet="work_lists")
    total = sol.load if base is None else sol.load + base
    loads = reviewers.select(REVIEWER_ID, "max_load").with_columns(
        pl.Series("assigned", total, pl.Int64)).with_columns(
        (pl.col("assigned") / pl.col("max_load")).round(4).alias("load_share"))
    files.write_csv(neutralise(loads), out_dir / files.PANEL_LOADS)
    return loads


def assign(round_dir: Path | str, out_dir: Path | str, *, reviewers_per_application: int | None = None,
           reassign: Path | str | None = None) -> dict:
    """The stage: read, solve, write. Returns panel.json's content; RoundError when infeasible
    (after writing panel.json and shortfall.csv) or when an input cannot be used.

    reassign: a table of application_ids (intake/reassign.csv) to give new reviewers, on top of
    the round folder's assignments: each gets k minus the reviewers whose reviews count, never
    one already assigned to it or who reviewed it, within what the reviewers' loads leave.
    assignments.csv is then the round's assignments plus the new ones (assignments_added.csv)."""
    started = time.perf_counter()
    round_dir, out_dir = Path(round_dir), files.private_dir(Path(out_dir))
    config = load_config(round_dir)
    k = reviewers_per_application or (config.panel.reviewers_per_application if config.panel else 3)
    if k < 1:
        raise RoundError(f"reviewers per application must be at least 1, got {k}")
    apps, app_issues, apps_file, apps_hash = _applications(round_dir)
    path = panel_path(round_dir, schema.REVIEWERS)
    if path is None:
        raise RoundError(f"{round_dir}: the reviewers table is missing; voucher assign needs one of "
                         + ", ".join(f"reviewers{e}" for e in schema.TABLE_EXTENSIONS))
    reviewers, reviewers_hash = read_reviewers(path)
    hashes = {apps_file: apps_hash, path.name: reviewers_hash}
    conflicts = None
    c_path = panel_path(round_dir, schema.CONFLICTS)
    if c_path is not None:
        conflicts, hashes[c_path.name] = read_conflicts(c_path, reviewers[REVIEWER_ID], apps[APP_ID])
    pairs = conflict_pairs(apps, reviewers, conflicts)
    need = base = previous = None
    if reassign is not None:
        apps, need, base, again, previous, more = _reassign_scope(round_dir, apps, reviewers, Path(reassign), k)
        pairs, hashes = pl.concat([pairs, again.select(pairs.columns)]), {**hashes, **more}
    read_s = time.perf_counter() - started

    problem = build_problem(apps, reviewers, pairs, k)
    if reassign is not None:
        problem = dataclasses.replace(problem, app_need=need, base_load=base)
    solve_started = time.perf_counter()
    sol = solve_panel(problem)
    solve_s = time.perf_counter() - solve_started
    files.write_csv(app_issues.select(list(ISSUES_SCHEMA)), out_dir / files.PANEL_ISSUES)
    report = {
        "round_id": config.round.id, "reviewers_per_application": k, "status": sol.status,
        "solver": {"name": "OR-Tools min-cost flow (SimpleMinCostFlow, max flow at min cost)",
                   "proven_optimal": True, "gap": 0.0, "objective": sol.objective,
                   "application_groups": sol.group_count, "arcs": sol.arc_count,
                   "match_weight": problem.match_weight, "balance_weight": problem.balance_weight},
        "applications": {"eligible": apps.height, "not_assigned_bad_rows": app_issues["row"].n_unique(),
                         "untagged": int((apps[schema.TOPIC_TAGS].list.len() == 0).sum())},
        "reviewers": {"count": reviewers.height, "max_load_total": int(reviewers["max_load"].sum())},
        "conflicts": {"pairs": pairs.height, "pairs_with_eligible_applications":
                      pairs.join(apps.select(APP_ID), on=APP_ID).height},
        "reviews": {"needed": sol.reviews_needed, "assigned": sol.reviews_assigned, "short": sol.shortfall},
        "input_hashes": dict(sorted(hashes.items())),
    }
    if reassign is not None:
        report["reassign"] = {"applications": apps.height, "reviews_needed": int(need.sum())}
    if sol.status != "optimal":
        lines, shortfall, parts = diagnose(apps, reviewers, sol, problem.need)
        files.write_csv(shortfall, out_dir / files.PANEL_SHORTFALL)
        report["diagnosis"] = {"message": lines, "applications_lacking_candidates":
                               int((sol.candidates < problem.need).sum()), "shortages": parts}
        files.write_json(out_dir / files.PANEL_REPORT, report)
        raise RoundError("\n".join(lines) + f"\n  Details: {out_dir / files.PANEL_SHORTFALL}, "
                                            f"{out_dir / files.PANEL_REPORT}")
    loads = write_outputs(out_dir, apps, reviewers, sol, base)
    if previous is not None:   # the round's assignments plus the new ones
        (out_dir / files.PANEL_ASSIGNMENTS).rename(out_dir / files.PANEL_ADDED)
        added = _csv_strings(out_dir / files.PANEL_ADDED)
        files.write_csv(pl.concat([previous, added], how="diagonal"), out_dir / files.PANEL_ASSIGNMENTS)
    share = loads["load_share"].drop_nulls()
    report["loads"] = {"min": int(loads["assigned"].min() or 0), "max": int(loads["assigned"].max() or 0),
                       "share_min": float(share.min()) if len(share) else None,
                       "share_max": float(share.max()) if len(share) else None}
    report["expertise"] = {"reviews_sharing_a_tag": int((sol.match > 0).sum()),
                           "shared_tags_total": int(sol.match.sum())}
    files.write_json(out_dir / files.PANEL_REPORT, report)
    files.merge_timings(out_dir, {"panel_read": round(read_s, 3), "panel_solve": round(solve_s, 3),
                                  "panel_total": round(time.perf_counter() - started, 3)})
    return report


def panel_markdown(report: dict, out_dir: Path) -> str:
    """What the approving officer reads before the work lists go out."""
    r, s = report["reviews"], report["solver"]
    lines = [f"### Round {report['round_id']}: review assignment ready for approval", "",
             f"- {report['applications']['eligible']:,} applications × {report['reviewers_per_application']} "
             f"reviewers = {r['needed']:,} reviews, {r['assigned']:,} assigned",
             f"- status: **{report['status']}** ({'proven optimal' if s['proven_optimal'] else 'not proven'}, "
             f"gap {s['gap']:g}; {s['application_groups']:,} application groups, {s['arcs']:,} arcs)",
             f"- {report['reviewers']['count']:,} reviewers; load {report['loads']['min']}–{report['loads']['max']} "
             f"(share of max load {report['loads']['share_min']}–{report['loads']['share_max']})",
             f"- conflicts of interest avoided: {report['conflicts']['pairs_with_eligible_applications']:,} pairs",
             f"- reviews sharing a topic tag: {report['expertise']['reviews_sharing_a_tag']:,}",
             f"- applications not assigned (bad rows): {report['applications']['not_assigned_bad_rows']}",
             "", f"Files: `{out_dir / files.PANEL_ASSIGNMENTS}`, `{out_dir / files.PANEL_WORK_LISTS}/`"]
    return "\n".join(lines)


def panel_fingerprint(out_dir: Path | str) -> str:
    """What a release stands for: the assignments, every work list and the assignment report
    (which holds the input hashes). The approval text leads with it; the DAG's release refuses a
    panel whose fingerprint is not the approved one."""
    out_dir = Path(out_dir)
    digest = hashlib.sha256()
    lists = sorted((out_dir / files.PANEL_WORK_LISTS).glob("*"))
    for path in [out_dir / files.PANEL_ASSIGNMENTS, out_dir / files.PANEL_WORK_LISTS_XLSX,
                 out_dir / files.PANEL_REPORT, *lists]:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return digest.hexdigest()


def release(out_dir: Path | str, outbox: Path | str, actor: dict | None = None) -> dict:
    """After approval: copy assignments.csv and the work lists to OUTBOX/<round_id>/ (replacing
    the previous release as a whole) and record who released them."""
    out_dir = Path(out_dir)
    report = files.read_json(out_dir / files.PANEL_REPORT)
    if report.get("status") != "optimal":
        raise RoundError(f"{out_dir}: no complete assignment to release (status {report.get('status')})")
    target = Path(outbox) / report["round_id"]
    staging = target.with_name(f".{target.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    files.private_dir(staging)
    shutil.copy2(out_dir / files.PANEL_ASSIGNMENTS, staging / files.PANEL_ASSIGNMENTS)
    shutil.copy2(out_dir / files.PANEL_WORK_LISTS_XLSX, staging / files.PANEL_WORK_LISTS_XLSX)
    shutil.copytree(out_dir / files.PANEL_WORK_LISTS, staging / files.PANEL_WORK_LISTS)
    info = {"round_id": report["round_id"], "source": str(out_dir), "actor": actor or {"source": "cli"},
            "reviews": report["reviews"], "input_hashes": report["input_hashes"]}
    files.write_json(staging / files.PANEL_RELEASE, info)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return {**info, "path": str(target)}
