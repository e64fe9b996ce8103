"""The benchmark harness (bench/): OR-Library reader and one measurement per method."""

from __future__ import annotations

import numpy as np
import pytest

from allocation import solving
from allocation.solving import brute_force
from bench import methods, orlib

# Chu-Beasley format: K, then per problem "n m best", n profits, m x n weights, m capacities
TINY_ORLIB = """2
4 2 0
10 7 5 3
4 3 2 1
1 2 3 4
6 6
3 1 0
5 4 3
2 2 2
4
"""
TINY_BEST = """Problem Name        Best Feasible Solution Value

5.100-00                  17
5.100-01                  9

LP relaxation

5.100-00        1.8e+01
"""


def test_orlib_reader_and_mapping_to_an_allocation_problem(tmp_path):
    path = tmp_path / "mknapcb1.txt"
    path.write_text(TINY_ORLIB)
    problems = orlib.read_file(path)
    assert [p.tolist() for p, _, _ in problems] == [[10, 7, 5, 3], [5, 4, 3]]
    assert problems[0][1].tolist() == [[4, 3, 2, 1], [1, 2, 3, 4]]
    assert problems[1][2].tolist() == [4]
    (tmp_path / "best.txt").write_text(TINY_BEST)
    assert orlib.best_known(tmp_path / "best.txt") == {"5.100-00": 17, "5.100-01": 9}
    for profits, weights, caps in problems:
        problem = orlib.to_problem(profits, weights, caps)
        opt, _ = brute_force(problem)
        sol = solving.solve(problem, strategy="lp_guided", time_limit_s=1, workers=2)
        assert problem.violations(sol.choice) == []
        assert sol.objective == opt
    # items 0 and 2 (weights 6/6 and 4/6): 10 + 5; items 0 and 1 need 7 > 6 on row 0
    assert brute_force(orlib.to_problem(*problems[0]))[0] == 15


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    import os
    d = tmp_path_factory.mktemp("bench")
    old = os.environ.get("VOUCHER_BENCH_DATA")
    os.environ["VOUCHER_BENCH_DATA"] = str(d)
    yield d
    if old is None:
        os.environ.pop("VOUCHER_BENCH_DATA")
    else:
        os.environ["VOUCHER_BENCH_DATA"] = old


def test_methods_measure_feasible_results_side_by_side(bench_data):
    ours = methods.measure("ours", 300, time_limit=2)
    greedy = methods.measure("greedy", 300, time_limit=2)
    single = methods.measure("greedy1", 300, time_limit=2)
    for r in (ours, greedy, single):
        assert r["violations"] == [] and r["objective"] is not None
        assert r["seconds"] >= 0 and r["peak_rss_mib"] > 10
    assert ours["bound"] >= ours["objective"] >= greedy["objective"]
    assert (bench_data / "problem_300.npz").exists()


def test_peak_rss_is_this_process_not_an_inherited_high_water_mark():
    before = methods.peak_rss_mib()
    block = np.ones(64 * 1024 * 1024 // 8)        # touch 64 MiB
    after = methods.peak_rss_mib()
    assert after >= before + 50
    del block
