"""Airflow test harness: a throwaway AIRFLOW_HOME, set up before Airflow is imported.

Airflow reads its configuration once, when it is first imported. Nothing in tests/dags imports
Airflow at module level: the package-scoped `airflow_env` fixture below sets the environment
first, and every test imports Airflow inside its body or fixtures. The fixture restores the
environment afterwards, so tests collected after these ones (e.g. tests/deploy, which pass
os.environ on to subprocesses) never see the throwaway settings.
The real project airflow.cfg is used (AIRFLOW_CONFIG); only locations and secrets are overridden.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dags.dagrun import HOME, PROJECT, ROUNDS


ENV = {
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
    # airflow.cfg says $AIRFLOW_HOME/../dags, which is right for <project>/airflow-home only
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW__API_AUTH__JWT_SECRET": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW__API__SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "VOUCHER_ROUNDS_ROOT": str(ROUNDS),
    "VOUCHER_RUNS_ROOT": str(HOME / "runs"),
    "VOUCHER_PUBLISH_ROOT": str(HOME / "published"),
    "VOUCHER_RETRY_DELAY_S": "1",   # a failing transient task fails in seconds, not minutes
    # dag.test() in Airflow 3.3.2 cannot finish a successful run of a DAG with a DeadlineAlert
    # (see dags/allocation_round.py); test_dag_integrity checks the deadline wiring separately.
    "VOUCHER_DEADLINE_HOURS": "0",
}
UNSET = ("VOUCHER_ALERT_EMAIL", "VOUCHER_SOLVER_POOL", "VOUCHER_DEMO", "VOUCHER_APPROVERS", "VOUCHER_ALLOW_SELF_APPROVAL")


def _synthetic(name: str, applications: int) -> None:
    subprocess.run([sys.executable, "-m", "bench.synthetic", str(ROUNDS / name),
                    "--applications", str(applications), "--bad-rows"], check=True, cwd=PROJECT,
                   stdout=subprocess.DEVNULL)


def _make_rounds() -> None:
    ROUNDS.mkdir(parents=True, exist_ok=True)
    HOME.mkdir(parents=True, exist_ok=True)
    if (ROUNDS / "sample").exists():
        return
    # The sample round (copied, so tests never write next to it); generated if it is not there yet.
    sample = PROJECT / "data" / "rounds" / "sample"
    if (sample / "round.toml").is_file():
        shutil.copytree(sample, ROUNDS / "sample")
    else:
        _synthetic("sample", 200)
    # A small round for tests that only need *a* solved round (rejected approval, dry run).
    try:
        _synthetic("small", 60)
    except subprocess.CalledProcessError:
        shutil.copytree(ROUNDS / "sample", ROUNDS / "small")


@pytest.fixture(scope="package", autouse=True)
def airflow_env():
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != ENV["AIRFLOW_HOME"]:
        pytest.fail("airflow was imported before tests/dags set its AIRFLOW_HOME; it would use the wrong config")
    saved = {k: os.environ.get(k) for k in (*ENV, *UNSET)}
    os.environ.update(ENV)
    for k in UNSET:
        os.environ.pop(k, None)
    _make_rounds()
    yield ENV
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="package")
def airflow_db(airflow_env):
    """A migrated metadata DB in the throwaway AIRFLOW_HOME (the CLI, as an operator would)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    return HOME


@pytest.fixture(scope="package")
def dagbag(airflow_env):
    """The DAGs folder parsed the way the dag processor does (bundle path on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    dags = PROJECT / "dags"
    return BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")


@pytest.fixture
def vc(airflow_env):
    """dags/voucher_common.py, imported as Airflow does (the DAGs folder is on sys.path)."""
    if str(PROJECT / "dags") not in sys.path:
        sys.path.append(str(PROJECT / "dags"))
    import voucher_common

    return voucher_common


@pytest.fixture
def publish_root() -> Path:
    return Path(ENV["VOUCHER_PUBLISH_ROOT"])


@pytest.fixture
def runs_root() -> Path:
    return Path(ENV["VOUCHER_RUNS_ROOT"])


@pytest.fixture
def own_publish_root(tmp_path, monkeypatch) -> Path:
    """Each test publishes into its own folder (tasks run in-process and read the env at run time)."""
    root = tmp_path / "published"
    monkeypatch.setenv("VOUCHER_PUBLISH_ROOT", str(root))
    return root
