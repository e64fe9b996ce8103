"""bench.synthetic --panel: the committed sample-panel round is in sync with the generator, and the
generated panel is usable (every topic has experts, the assignment respects conflicts and loads)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bench import synthetic

SAMPLE_PANEL = Path(__file__).resolve().parents[2] / "data" / "rounds" / "sample-panel"
TABLES = ("applications", "requests", "reviews", "capacity", "reviewers", "conflicts", "assignments")


def test_sample_panel_is_in_sync_with_the_generator(tmp_path):
    out = synthetic.generate_round(tmp_path / "sample-panel", 300, seed=2026, panel=True)
    for name in [f"{t}.csv" for t in TABLES] + ["round.toml"]:
        assert (SAMPLE_PANEL / name).read_bytes() == (out / name).read_bytes(), \
            f"{name} is stale: regenerate with the command in data/rounds/README.md"
    readme = (SAMPLE_PANEL / "README.md").read_text(encoding="utf-8")
    assert readme == (out / "README.md").read_text(encoding="utf-8").replace(str(out), "data/rounds/sample-panel")
    command = "python -m bench.synthetic data/rounds/sample-panel --applications 300 --seed 2026 --panel"
    assert command in readme and command in (SAMPLE_PANEL.parent / "README.md").read_text(encoding="utf-8")


def test_without_panel_the_round_is_unchanged():
    plain = synthetic.build_round(120, seed=3)
    with_panel = synthetic.build_round(120, seed=3, review_panel=True)
    for stem in ("requests", "capacity"):
        assert plain.tables[stem].equals(with_panel.tables[stem])
    assert with_panel.tables["applications"].drop("topic_tags").equals(plain.tables["applications"])
    assert set(plain.tables) == {"applications", "requests", "reviews", "capacity"}
    # same scores, only the reviewers relabelled to the assigned panels (+ the two defects)
    assert with_panel.tables["reviews"]["score"].equals(plain.tables["reviews"]["score"])
    assigned = set(zip(with_panel.tables["assignments"]["application_id"],
                       with_panel.tables["assignments"]["reviewer_id"]))
    reviewed = with_panel.tables["reviews"].select("application_id", "reviewer_id").unique()
    outside = [p for p in zip(reviewed["application_id"], reviewed["reviewer_id"]) if p not in assigned]
    assert len(outside) == len([b for b in with_panel.bad_rows if b.table == "reviews"])
    per_app = with_panel.tables["assignments"].group_by("application_id").len()
    assert per_app.height == 120 and (per_app["len"] == 3).all()
    assert pl.Series(with_panel.tables["reviewers"]["max_load"]).min() >= 3
