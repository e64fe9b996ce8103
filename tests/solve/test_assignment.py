"""Review-panel assignment (allocation.solve.assignment) against brute force on tiny rounds."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.solve.assignment import PanelProblem, objective_of, solve_panel


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    start = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    index = np.array([t for x in lists for t in x], dtype=np.int64)
    return start, index


def make_problem(k, app_tags, reviewer_tags, max_load, conflicts=(), need=None, base=None) -> PanelProblem:
    a_start, a_index = _csr(app_tags)
    r_start, r_index = _csr(reviewer_tags)
    conflicts = list(conflicts)
    return PanelProblem(
        k=k, app_tag_start=a_start, app_tag_index=a_index, reviewer_tag_start=r_start,
        reviewer_tag_index=r_index, max_load=np.array(max_load, dtype=np.int64),
        conflict_app=np.array([a for a, _ in conflicts], dtype=np.int64),
        conflict_reviewer=np.array([r for _, r in conflicts], dtype=np.int64),
        app_need=None if need is None else np.array(need, dtype=np.int64),
        base_load=None if base is None else np.array(base, dtype=np.int64))


def allowed(app_tags, reviewer_tags, max_load, conflicts, a, r, base=None) -> int | None:
    """Tags shared when reviewer r may review application a, else None."""
    if (a, r) in conflicts or max_load[r] <= (base[r] if base else 0):
        return None
    shared = len(set(app_tags[a]) & set(reviewer_tags[r]))
    if app_tags[a] and shared == 0:
        return None
    return shared


def brute_force(problem, k, app_tags, reviewer_tags, max_load, conflicts, need=None, base=None):
    """(most reviews, least objective among those) by enumerating every per-application subset."""
    n, m = len(app_tags), len(reviewer_tags)
    need = need or [k] * n
    base_load = np.array(base or [0] * m, dtype=np.int64)
    options = []
    for a in range(n):
        ok = [r for r in range(m) if allowed(app_tags, reviewer_tags, max_load, conflicts, a, r, base) is not None]
        options.append([c for size in range(min(need[a], len(ok)) + 1) for c in itertools.combinations(ok, size)])
    best = (-1, 0)
    for choice in itertools.product(*options):
        load = np.zeros(m, dtype=np.int64)
        for subset in choice:
            load[list(subset)] += 1
        if (load + base_load > max_load).any():
            continue
        pairs = [(a, r) for a, subset in enumerate(choice) for r in subset]
        app = np.array([a for a, _ in pairs], dtype=np.int64)
        rev = np.array([r for _, r in pairs], dtype=np.int64)
        match = np.array([len(set(app_tags[a]) & set(reviewer_tags[r])) for a, r in pairs], dtype=np.int64)
        value = (len(pairs), -objective_of(problem, app, rev, match))
        best = max(best, value)
    return best[0], -best[1]


def check_valid(sol, k, app_tags, reviewer_tags, max_load, conflicts, need=None, base=None):
    pairs = list(zip(sol.app.tolist(), sol.reviewer.tolist()))
    assert len(set(pairs)) == len(pairs), "an application got the same reviewer twice"
    for (a, r), shared in zip(pairs, sol.match.tolist()):
        assert allowed(app_tags, reviewer_tags, max_load, conflicts, a, r, base) == shared
    per_app = np.bincount(sol.app, minlength=len(app_tags))
    assert (per_app <= np.array(need or [k] * len(app_tags))).all()
    assert (np.bincount(sol.reviewer, minlength=len(reviewer_tags)) + np.array(base or 0) <= max_load).all()
    assert (sol.load == np.bincount(sol.reviewer, minlength=len(reviewer_tags))).all()


tiny = st.integers(1, 4).flatmap(lambda n: st.integers(1, 4).flatmap(lambda m: st.tuples(
    st.integers(1, 2),
    st.lists(st.lists(st.integers(0, 2), max_size=2, unique=True), min_size=n, max_size=n),
    st.lists(st.lists(st.integers(0, 2), max_size=2, unique=True), min_size=m, max_size=m),
    st.lists(st.integers(0, 3), min_size=m, max_size=m),
    st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, m - 1)), max_size=3),
)))


@settings(max_examples=300, deadline=None)
@given(tiny)
def test_optimal_against_brute_force(case):
    k, app_tags, reviewer_tags, max_load, conflicts = case
    problem = make_problem(k, app_tags, reviewer_tags, max_load, conflicts)
    sol = solve_panel(problem)
    check_valid(sol, k, app_tags, reviewer_tags, max_load, conflicts)
    most, least = brute_force(problem, k, app_tags, reviewer_tags, max_load, conflicts)
    assert sol.reviews_assigned == most
    assert sol.objective == least
    assert sol.status == ("optimal" if most == k * len(app_tags) else "infeasible")
    # the minimum cut explains the whole shortfall, part by part
    assert sum(b.short for b in sol.bottlenecks) == sol.shortfall
    assert all(b.short > 0 for b in sol.bottlenecks)


@settings(max_examples=200, deadline=None)
@given(tiny.flatmap(lambda case: st.tuples(
    st.just(case),
    st.lists(st.integers(0, case[0]), min_size=len(case[1]), max_size=len(case[1])),
    st.tuples(*[st.integers(0, x) for x in case[3]]))))
def test_reassignment_with_needs_and_existing_loads_against_brute_force(drawn):
    """Re-assignment: each application needs its own number of reviews and reviewers already
    carry some load (it counts against max_load and in the load penalty)."""
    (k, app_tags, reviewer_tags, max_load, conflicts), need, base = drawn
    base = list(base)
    problem = make_problem(k, app_tags, reviewer_tags, max_load, conflicts, need=need, base=base)
    sol = solve_panel(problem)
    check_valid(sol, k, app_tags, reviewer_tags, max_load, conflicts, need=need, base=base)
    most, least = brute_force(problem, k, app_tags, reviewer_tags, max_load, conflicts, need=need, base=base)
    assert sol.reviews_needed == sum(need)
    assert sol.reviews_assigned == most and sol.objective == least
    assert sum(b.short for b in sol.bottlenecks) == sol.shortfall


def test_interchangeable_applications_share_one_group_and_get_distinct_reviewers():
    # 50 applications with the same tag and no conflict: one group; 5 experts with load 30 each
    app_tags = [[0]] * 50
    reviewer_tags = [[0], [0, 1], [0], [0], [0]]
    sol = solve_panel(make_problem(3, app_tags, reviewer_tags, [30] * 5))
    assert sol.group_count == 1 and sol.arc_count == 5
    assert sol.status == "optimal" and sol.reviews_assigned == 150
    check_valid(sol, 3, app_tags, reviewer_tags, [30] * 5, set())
    assert (np.bincount(sol.app) == 3).all()
    assert sol.load.tolist() == [30] * 5     # balanced: every reviewer full (150 = 5 × 30)


def test_load_is_balanced_when_expertise_is_equal():
    app_tags = [[0]] * 12
    sol = solve_panel(make_problem(2, app_tags, [[0]] * 4, [12] * 4))
    assert sol.load.tolist() == [6, 6, 6, 6]


def test_conflict_is_never_assigned_and_application_stays_alone():
    app_tags = [[0]] * 4
    sol = solve_panel(make_problem(2, app_tags, [[0]] * 3, [8] * 3, conflicts=[(2, 1)]))
    assert sol.status == "optimal"
    assert (2, 1) not in set(zip(sol.app.tolist(), sol.reviewer.tolist()))
    assert sol.group_count == 2
    assert sol.candidates.tolist() == [3, 3, 2, 3]


def test_infeasible_says_which_applications_lack_experts_and_by_how_much():
    # tag 0: 4 applications × 2 reviews = 8, but the two tag-0 experts take 3 each (short 2);
    # tag 1: one application, one expert (short 1: needs 2 distinct reviewers)
    app_tags = [[0], [0], [0], [0], [1]]
    reviewer_tags = [[0], [0], [1], [2]]
    sol = solve_panel(make_problem(2, app_tags, reviewer_tags, [3, 3, 5, 5]))
    assert sol.status == "infeasible" and sol.shortfall == 3
    assert sol.candidates.tolist() == [2, 2, 2, 2, 1]
    parts = {tuple(b.reviewers.tolist()): b for b in sol.bottlenecks}
    assert parts[(0, 1)].demand == 8 and parts[(0, 1)].reviewer_capacity == 6 and parts[(0, 1)].short == 2
    assert parts[()].demand == 2 and parts[()].distinct_limit == 1 and parts[()].short == 1
