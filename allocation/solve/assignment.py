"""Review-panel assignment, solved exactly as a min-cost flow (arrays in, arrays out).

Every application needs ``k`` distinct reviewers. A reviewer may review an application when
they have no conflict of interest with it and, if the application carries topic tags, share at
least one tag with it (an *expert*; an untagged application may take any reviewer). A reviewer
reviews at most ``max_load`` applications. Among the assignments that give the most reviews
(all ``n × k`` when that is possible) the solver finds one that minimises

    Σ_reviews  -match_weight × (tags shared by the application and its reviewer)
  + Σ_reviewers Σ_{j < load}  (balance_weight × j) // max_load        (convex: balances load)

The network: source → group (capacity k × size) → reviewer (capacity = group size, cost
−match) → sink through unit-cost steps of increasing cost (the load penalty). Applications with
the same tag set and the same conflicted reviewers are interchangeable, so they form one group
node: the network has one arc per (group, candidate reviewer), not per (application, reviewer).
A group's reviewer quotas are then dealt round-robin over its applications; every quota is at
most the group size, so every application gets distinct reviewers and exactly k of them when the
group is fully served. Aggregating loses nothing: any per-application solution adds up to a group
flow of the same cost and every group flow splits back, so the optimum is the optimum of the
per-application problem, and min-cost flow proves it.

When not every application can get k reviewers, the maximum flow says how many reviews are
short, and its minimum cut says why: the applications that could still use a reviewer (reached
from the source in the residual network) and the reviewers they can reach, all full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow

MATCH_WEIGHT = 1000     # per tag shared by an application and its reviewer
BALANCE_WEIGHT = 1000   # the last review a reviewer can take costs this much more than the first


@dataclass(frozen=True)
class PanelProblem:
    """Tags and conflicts as integer arrays (applications 0..n-1, reviewers 0..m-1, tags 0..t-1).

    app_tags / reviewer_tags: CSR — the tags of application i are
    app_tag_index[app_tag_start[i]:app_tag_start[i + 1]] (likewise for reviewers).
    """

    k: int
    app_tag_start: np.ndarray
    app_tag_index: np.ndarray
    reviewer_tag_start: np.ndarray
    reviewer_tag_index: np.ndarray
    max_load: np.ndarray                 # per reviewer, ≥ 0
    conflict_app: np.ndarray             # conflicted (application, reviewer) pairs
    conflict_reviewer: np.ndarray
    match_weight: int = MATCH_WEIGHT
    balance_weight: int = BALANCE_WEIGHT
    # re-assignment: reviews each application still needs (default k each) and the reviews each
    # reviewer already has (they count against max_load and in the load penalty)
    app_need: np.ndarray | None = None
    base_load: np.ndarray | None = None

    @property
    def need(self) -> np.ndarray:
        if self.app_need is None:
            return np.full(self.n_applications, self.k, dtype=np.int64)
        return np.asarray(self.app_need, dtype=np.int64)

    @property
    def base(self) -> np.ndarray:
        if self.base_load is None:
            return np.zeros(self.n_reviewers, dtype=np.int64)
        return np.asarray(self.base_load, dtype=np.int64)

    @property
    def n_applications(self) -> int:
        return len(self.app_tag_start) - 1

    @property
    def n_reviewers(self) -> int:
        return len(self.max_load)


@dataclass
class Bottleneck:
    """A minimum cut of the flow: these applications cannot all be served by these reviewers."""

    groups: np.ndarray            # group ids (see PanelSolution.app_group)
    reviewers: np.ndarray         # reviewer ids, all at max_load
    demand: int                   # reviews the applications need (k each, or their need)
    reviewer_capacity: int        # Σ max_load of the reviewers (less the reviews they already have)
    distinct_limit: int           # reviews the applications could still get from other reviewers,
                                  # who already review every application of the group
    short: int                    # demand - reviewer_capacity - distinct_limit (> 0)


@dataclass
class PanelSolution:
    status: str                   # "optimal" (all n × k reviews) or "infeasible" (max flow < n × k)
    app: np.ndarray               # assignment pairs, sorted by application then reviewer
    reviewer: np.ndarray
    match: np.ndarray             # tags shared by each pair
    objective: int                # the cost above (lower is better), of the pairs found
    reviews_needed: int
    reviews_assigned: int
    load: np.ndarray              # per reviewer
    candidates: np.ndarray        # per application: reviewers it may take (non-conflicted experts with room)
    app_group: np.ndarray         # per application: its group
    group_count: int
    arc_count: int
    bottlenecks: list[Bottleneck] = field(default_factory=list)

    @property
    def shortfall(self) -> int:
        return self.reviews_needed - self.reviews_assigned


def step_costs(max_load: int, balance_weight: int = BALANCE_WEIGHT) -> np.ndarray:
    """Cost of a reviewer's j-th review (j = 0..max_load-1): nondecreasing, hence convex."""
    j = np.arange(max_load, dtype=np.int64)
    return (balance_weight * j) // max(max_load, 1)


def objective_of(problem: PanelProblem, app: np.ndarray, reviewer: np.ndarray,
                 match: np.ndarray) -> int:
    """The objective of a set of assignment pairs (for checks and the brute-force oracle)."""
    base = problem.base
    load = np.bincount(reviewer, minlength=problem.n_reviewers)
    balance = sum(int(step_costs(int(problem.max_load[r]), problem.balance_weight)[base[r]:base[r] + load[r]].sum())
                  for r in np.flatnonzero(load))
    return balance - problem.match_weight * int(np.asarray(match, dtype=np.int64).sum())


def _tag_matrix(start: np.ndarray, index: np.ndarray, rows: int, n_tags: int) -> np.ndarray:
    m = np.zeros((rows, n_tags), dtype=np.int32)
    owner = np.repeat(np.arange(rows), np.diff(start))
    m[owner, index] = 1
    return m


def _groups(problem: PanelProblem) -> tuple[np.ndarray, list[tuple[int, tuple[int, ...]]]]:
    """Group id per application and, per group, (tag-set id, conflicted reviewers), in order of
    first appearance. Also returns the tag sets through the tag-set ids' first application."""
    n = problem.n_applications
    conflicts: dict[int, list[int]] = {}
    order = np.lexsort((problem.conflict_reviewer, problem.conflict_app))
    for a, r in zip(problem.conflict_app[order].tolist(), problem.conflict_reviewer[order].tolist()):
        conflicts.setdefault(a, []).append(r)
    starts = problem.app_tag_start.tolist()
    tags = problem.app_tag_index.tolist()
    need = problem.need.tolist()
    keys: dict[tuple, int] = {}
    app_group = np.empty(n, dtype=np.int64)
    for i in range(n):
        key = (tuple(sorted(set(tags[starts[i]:starts[i + 1]]))), tuple(sorted(set(conflicts.get(i, ())))),
               need[i])
        app_group[i] = keys.setdefault(key, len(keys))
    return app_group, list(keys)


def _arcs(problem: PanelProblem, group_keys: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, reviewer, match) of every allowed pair: experts without conflict, max_load > 0."""
    n_tags = int(max(problem.app_tag_index.max(initial=-1), problem.reviewer_tag_index.max(initial=-1))) + 1
    rev_tags = _tag_matrix(problem.reviewer_tag_start, problem.reviewer_tag_index,
                           problem.n_reviewers, n_tags)
    available = problem.max_load > problem.base
    tag_sets: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
    out_g, out_r, out_m = [], [], []
    for g, (tagset, conflicted, _) in enumerate(group_keys):
        if tagset not in tag_sets:
            if tagset:
                match = rev_tags[:, list(tagset)].sum(axis=1)
                ok = (match > 0) & available
            else:
                match = np.zeros(problem.n_reviewers, dtype=np.int32)
                ok = available.copy()
            reviewers = np.flatnonzero(ok)
            tag_sets[tagset] = (reviewers, match[reviewers].astype(np.int64))
        reviewers, match = tag_sets[tagset]
        if conflicted:
            keep = ~np.isin(reviewers, np.asarray(conflicted, dtype=np.int64))
            reviewers, match = reviewers[keep], match[keep]
        out_g.append(np.full(len(reviewers), g, dtype=np.int64))
        out_r.append(reviewers)
        out_m.append(match)
    if not out_g:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(out_g), np.concatenate(out_r), np.concatenate(out_m)


def _reach(starts: list[int], g_to_r: list[list[int]], r_to_g: list[list[int]],
           seen_g: np.ndarray, seen_r: np.ndarray) -> tuple[list[int], list[int]]:
    groups, reviewers, stack = [], [], []
    for g in starts:
        if not seen_g[g]:
            seen_g[g] = True
            groups.append(g)
            stack.append(g)
    while stack:   # alternate: group -> its reviewers -> their groups
        for r in g_to_r[stack.pop()]:
            if seen_r[r]:
                continue
            seen_r[r] = True
            reviewers.append(r)
            for g in r_to_g[r]:
                if not seen_g[g]:
                    seen_g[g] = True
                    groups.append(g)
                    stack.append(g)
    return groups, reviewers


def _adjacency(n_groups: int, n_rev: int, arc_g: np.ndarray, arc_r: np.ndarray, fwd: np.ndarray,
               back: np.ndarray) -> tuple[list[list[int]], list[list[int]]]:
    g_to_r: list[list[int]] = [[] for _ in range(n_groups)]
    r_to_g: list[list[int]] = [[] for _ in range(n_rev)]
    for g, r in zip(arc_g[fwd].tolist(), arc_r[fwd].tolist()):
        g_to_r[g].append(r)
    for g, r in zip(arc_g[back].tolist(), arc_r[back].tolist()):
        r_to_g[r].append(g)
    return g_to_r, r_to_g


def _bottlenecks(k: np.ndarray, size: np.ndarray, served: np.ndarray, arc_g: np.ndarray, arc_r: np.ndarray,
                 arc_cap: np.ndarray, arc_flow: np.ndarray, max_load: np.ndarray) -> list[Bottleneck]:
    """The minimum cut of the maximum flow (groups reachable from the source in the residual
    network and the reviewers they reach, all full), split into its connected parts; each part's
    shortfall is what its applications lack, and the parts add up to the total shortfall."""
    n_groups, n_rev = len(size), len(max_load)
    unserved = np.flatnonzero(served < k * size).tolist()
    # residual: group -> reviewer while the arc has room; reviewer -> group where flow > 0
    g_to_r, r_to_g = _adjacency(n_groups, n_rev, arc_g, arc_r, arc_flow < arc_cap, arc_flow > 0)
    in_g, in_r = np.zeros(n_groups, dtype=bool), np.zeros(n_rev, dtype=bool)
    _reach(unserved, g_to_r, r_to_g, in_g, in_r)
    # connected parts of the cut's side: every arc between its groups and reviewers, both ways
    inside = in_g[arc_g] & in_r[arc_r]
    g_to_r, r_to_g = _adjacency(n_groups, n_rev, arc_g, arc_r, inside, inside)
    seen_g, seen_r = ~in_g, ~in_r
    found = []
    for start in unserved:
        if seen_g[start]:
            continue
        groups, reviewers = _reach([start], g_to_r, r_to_g, seen_g, seen_r)
        groups_a = np.array(sorted(groups), dtype=np.int64)
        reviewers_a = np.array(sorted(reviewers), dtype=np.int64)
        leaving = np.isin(arc_g, groups_a) & ~in_r[arc_r]   # saturated: not in the residual
        distinct = int(arc_cap[leaving].sum())
        demand = int((k * size)[groups_a].sum())
        capacity = int(max_load[reviewers_a].sum())
        found.append(Bottleneck(groups=groups_a, reviewers=reviewers_a, demand=demand,
                                reviewer_capacity=capacity, distinct_limit=distinct,
                                short=demand - capacity - distinct))
    return sorted(found, key=lambda b: (-b.short, int(b.groups[0])))


def solve_panel(problem: PanelProblem) -> PanelSolution:
    """The optimal assignment (or, when k reviews each cannot all be given, the most reviews
    at least cost, with the reasons)."""
    k, n, m = problem.k, problem.n_applications, problem.n_reviewers
    app_group, keys = _groups(problem)
    size = np.bincount(app_group, minlength=len(keys)).astype(np.int64)
    group_k = np.array([key[2] for key in keys], dtype=np.int64)   # reviews each member needs
    arc_g, arc_r, arc_m = _arcs(problem, keys)
    max_load = np.asarray(problem.max_load, dtype=np.int64)

    # nodes: 0 source, 1 sink, 2.. groups, then reviewers
    source, sink, g0, r0 = 0, 1, 2, 2 + len(keys)
    flow = min_cost_flow.SimpleMinCostFlow()
    tails, heads, caps, costs = [], [], [], []
    tails.append(np.full(len(keys), source)); heads.append(g0 + np.arange(len(keys)))
    caps.append(group_k * size); costs.append(np.zeros(len(keys), dtype=np.int64))
    first_pair_arc = len(keys)
    arc_cap = size[arc_g]   # reviewer loads are limited by their arcs to the sink
    tails.append(g0 + arc_g); heads.append(r0 + arc_r)
    caps.append(arc_cap); costs.append(-problem.match_weight * arc_m)
    # reviewer -> sink: runs of equal step cost become one arc (capacity = run length)
    used_rev = np.unique(arc_r)
    base = problem.base
    for r in used_rev.tolist():
        steps = step_costs(int(max_load[r]), problem.balance_weight)[base[r]:]
        values, counts = np.unique(steps, return_counts=True)
        tails.append(np.full(len(values), r0 + r)); heads.append(np.full(len(values), sink))
        caps.append(counts.astype(np.int64)); costs.append(values.astype(np.int64))
    tails_a, heads_a = np.concatenate(tails).astype(np.int32), np.concatenate(heads).astype(np.int32)
    caps_a, costs_a = np.concatenate(caps).astype(np.int64), np.concatenate(costs).astype(np.int64)
    flow.add_arcs_with_capacity_and_unit_cost(tails_a, heads_a, caps_a, costs_a)
    needed = int(problem.need.sum())
    flow.set_node_supply(source, needed)
    flow.set_node_supply(sink, -needed)
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")   # cannot happen: finite, integer
    arc_flow = flow.flows(np.arange(first_pair_arc, first_pair_arc + len(arc_g))).astype(np.int64)
    served = np.bincount(arc_g, weights=arc_flow, minlength=len(keys)).astype(np.int64)

    # deal each group's reviewer quotas round-robin over its applications (in input order)
    members = np.argsort(app_group, kind="stable")
    member_start = np.concatenate([[0], np.cumsum(size)])
    used = arc_flow > 0
    order = np.lexsort((arc_r[used], arc_g[used]))   # by group, then reviewer
    pg, pr, pm, pf = arc_g[used][order], arc_r[used][order], arc_m[used][order], arc_flow[used][order]
    slot_group = np.repeat(pg, pf)
    slot_rev = np.repeat(pr, pf)
    slot_match = np.repeat(pm, pf)
    first_slot = np.concatenate([[0], np.cumsum(np.bincount(pg, weights=pf, minlength=len(keys))
                                                .astype(np.int64))])
    position = np.arange(len(slot_group)) - first_slot[slot_group]
    slot_app = members[member_start[slot_group] + position % size[slot_group]]
    final = np.lexsort((slot_rev, slot_app))
    app_out, rev_out, match_out = slot_app[final], slot_rev[final], slot_match[final]

    load = np.bincount(rev_out, minlength=m).astype(np.int64)
    candidates = np.bincount(arc_g, minlength=len(keys))[app_group].astype(np.int64)
    assigned = int(len(app_out))
    solution = PanelSolution(
        status="optimal" if assigned == needed else "infeasible",
        app=app_out, reviewer=rev_out, match=match_out,
        objective=objective_of(problem, app_out, rev_out, match_out),
        reviews_needed=needed, reviews_assigned=assigned, load=load, candidates=candidates,
        app_group=app_group, group_count=len(keys), arc_count=len(arc_g))
    if assigned < needed:
        solution.bottlenecks = _bottlenecks(group_k, size, served, arc_g, arc_r, arc_cap, arc_flow,
                                            max_load - problem.base)
    return solution
