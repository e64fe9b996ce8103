"""Shared by the publishing tests: the sample round solved once, and published once, per session.

(No tests here. Solving the sample takes ~20 s, so every publishing test module, the browser
test included, uses these instead of solving it again.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation import lookup, pipeline, publishing

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "rounds" / "sample"
INJECTED_ID = "R1-000004"     # an awardee whose title would run as a spreadsheet formula
INJECTED_TITLE = '=HYPERLINK("http://x","<b>click</b>")'

_cache: dict[str, Path] = {}


def solved_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample round, with one injected title, solved into an output folder (once)."""
    if "solved" not in _cache:
        base = tmp_path_factory.mktemp("solved")
        round_dir = base / "round"
        shutil.copytree(SAMPLE, round_dir)
        apps = pl.read_csv(round_dir / "applications.csv", encoding="cp949", infer_schema=False)
        apps = apps.with_columns(project_title=pl.when(pl.col("application_id") == INJECTED_ID)
                                 .then(pl.lit(INJECTED_TITLE)).otherwise(pl.col("project_title")))
        apps.write_csv(round_dir / "applications.csv")
        pipeline.run_round(round_dir, base / "out")
        _cache["round"] = round_dir
        _cache["solved"] = base / "out"
    return _cache["solved"]


def sample_round_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    solved_sample(tmp_path_factory)
    return _cache["round"]


def published_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 of the solved sample, published once with the minimum production KDF strength."""
    if "published" not in _cache:
        out = solved_sample(tmp_path_factory)
        root = tmp_path_factory.mktemp("published")
        info = publishing.publish(out, root, lookup_iterations=lookup.MIN_ITERATIONS)
        _cache["published"] = Path(info["path"])
    return _cache["published"]


def receipt_codes(out_dir: Path) -> dict[str, str]:
    """application_id -> receipt code (first row of an id), from the officer's intake table."""
    apps = pl.read_parquet(out_dir / "intake" / "applications.parquet").drop_nulls(
        ["application_id", "receipt_code"])
    return dict(apps.unique("application_id", keep="first", maintain_order=True)
                .select("application_id", "receipt_code").iter_rows())
