"""Shared fixtures of the whole suite (no test module imports another).

- ``valid_toml``: a complete, valid round.toml text (config, scoring and modelling tests edit it).
- ``VOUCHER_SIGNING_KEY``: a throwaway signing key for the session (publishing signs manifests).
- plugins: pytester (tests of pytest behaviour) and tests.ci_skips (under CI a skip is a failure).
- ``solved_sample`` / ``sample_round_dir``: the sample round with one injected title, solved
  once per session (~20 s); ``published_sample``: its v1, published once; ``receipt_codes``:
  application_id -> receipt code of the solved sample (officer side).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.publish import signing
from allocation.publish.version import publish
from allocation.rounds.allocate import run_round

pytest_plugins = ["pytester", "tests.ci_skips"]

# Publishing signs every manifest: one throwaway Ed25519 key for the whole session (outside any
# publish root, mode 600), inherited by the voucher subprocesses and the in-process DAG runs.
if not os.environ.get(signing.KEY_ENV):
    _KEY_DIR = tempfile.mkdtemp(prefix="voucher-test-key-")
    atexit.register(shutil.rmtree, _KEY_DIR, True)
    os.environ[signing.KEY_ENV] = str(signing.generate_key(Path(_KEY_DIR) / "signing_key.pem"))

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "rounds" / "sample"
INJECTED_ID = "R1-000004"     # an awardee whose title would run as a spreadsheet formula
INJECTED_TITLE = '=HYPERLINK("http://x","<b>click</b>")'

VALID_TOML = """
[round]
id = "2026-R1"
budget_krw = 5_000_000_000
copay_share = 0.2
[award]
levels = [0.5, 0.75, 1.0]
max_krw_per_company = 300_000_000
min_score = 60
[scoring]
weights = { technical = 0.4, feasibility = 0.3, impact = 0.3 }
bonus = { first_time = 3.0, non_capital = 2.0 }
[[quota]]
name = "non_capital"
regions_not_in = ["Seoul", "Gyeonggi", "Incheon"]
min_share = 0.4
[solver]
time_limit_s = 60
"""

@pytest.fixture
def valid_toml() -> str:
    return VALID_TOML


@pytest.fixture(scope="session")
def injected() -> dict[str, str]:
    """The application whose project title is a spreadsheet formula in the solved sample."""
    return {"application_id": INJECTED_ID, "project_title": INJECTED_TITLE}


@pytest.fixture(scope="session")
def _solved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("solved")
    round_dir = base / "round"
    shutil.copytree(SAMPLE, round_dir)
    apps = pl.read_csv(round_dir / "applications.csv", encoding="cp949", infer_schema=False)
    apps = apps.with_columns(project_title=pl.when(pl.col("application_id") == INJECTED_ID)
                             .then(pl.lit(INJECTED_TITLE)).otherwise(pl.col("project_title")))
    apps.write_csv(round_dir / "applications.csv")
    run_round(round_dir, base / "out")
    return round_dir, base / "out"


@pytest.fixture(scope="session")
def solved_sample(_solved) -> Path:
    """The sample round, with one injected title, solved into a run folder (once)."""
    return _solved[1]


@pytest.fixture(scope="session")
def sample_round_dir(_solved) -> Path:
    return _solved[0]


@pytest.fixture(scope="session")
def published_sample(solved_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 of the solved sample, published once (KDF strength: the codes' classes)."""
    root = tmp_path_factory.mktemp("published")
    info = publish(solved_sample, root)
    return Path(info["path"])


def codes_of(round_dir: Path) -> dict[str, str]:
    """application_id -> receipt code (first row of an id) that intake accepts (>= 8 characters),
    from the round folder: the run folder keeps lookup masters, never the codes."""
    path = next(p for p in sorted(round_dir.glob("applications.*")))
    apps = (pl.read_csv(path, infer_schema=False) if path.suffix == ".csv"
            else pl.read_parquet(path)).drop_nulls(["application_id", "receipt_code"])
    apps = apps.filter(pl.col("receipt_code").str.strip_chars().str.len_chars() >= 8)
    return dict(apps.unique("application_id", keep="first", maintain_order=True)
                .select("application_id", "receipt_code").iter_rows())


@pytest.fixture(scope="session")
def receipt_codes(sample_round_dir: Path) -> dict[str, str]:
    return codes_of(sample_round_dir)
