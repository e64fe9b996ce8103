"""bench.run --render: BENCHMARKS.md rewritten from its own raw results, measuring nothing."""

from pathlib import Path

from bench import run as bench_run
from bench.publish import verdicts as publish_verdicts

PROJECT = Path(__file__).resolve().parents[2]


def test_render_is_a_fixed_point_of_the_raw_results(tmp_path):
    first, second = tmp_path / "first.md", tmp_path / "second.md"
    assert bench_run.main(["--render", str(PROJECT / "BENCHMARKS.md"), "--out", str(first)]) == 0
    assert bench_run.main(["--render", str(first), "--out", str(second)]) == 0
    text = first.read_text(encoding="utf-8")
    assert second.read_text(encoding="utf-8") == text
    original = (PROJECT / "BENCHMARKS.md").read_text(encoding="utf-8")
    # the command, date and every measured table row of the original survive
    assert text.splitlines()[2] == original.splitlines()[2]
    rows = [line for line in original.splitlines() if line.startswith("| ours (auto)")]
    assert rows and all(row in text for row in rows)


def test_publish_verdicts_judge_the_1m_targets():
    gib = 1024 ** 3
    row = {"n": 1_000_000, "v1": {"seconds": 590.0, "peak_rss_bytes": 1.5 * gib},
           "v2": {"seconds": 121.0, "peak_rss_bytes": 1.2 * gib}, "largest_html": 3 * 1024 * 1024}
    lines = publish_verdicts([row])
    assert "publish v1: 590.00 s (target ≤ 600 s) — met" in lines[0]
    assert "republish, 5% changed: 121.00 s (target ≤ 120 s) — **NOT met**" in lines[3]
    assert lines[4].endswith("**NOT met**")       # a 3 MB page
    assert publish_verdicts([{**row, "n": 100_000}])[0].startswith("- 100,000: largest HTML page")
