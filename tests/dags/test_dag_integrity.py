"""The DAGs folder parses cleanly and the DAGs are wired as decided (no DB, no task runs)."""

from __future__ import annotations

import configparser
import copy
import os
from pathlib import Path

import pytest

from tests.dags.dagrun import PROJECT, ROUNDS

TRANSIENT = {"score", "allocate", "publish_prepare", "publish_pages", "seal_lookup", "publish"}
PUBLISH_STEPS = ["publish_prepare", "publish_pages", "seal_lookup", "publish"]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"allocation_round", "results_index"} <= set(dagbag.dags)


def test_round_dag_shape(dagbag):
    dag = dagbag.dags["allocation_round"]
    assert dag.schedule is None  # manual trigger only
    assert [t.task_id for t in dag.topological_sort()] == [
        "validate", "score", "allocate", "whatif", "needs_approval", "approve", *PUBLISH_STEPS]
    # nothing from allocate's XCom: the publish steps hang off approve alone, the sealing is mapped
    assert dag.get_task("publish_prepare").upstream_task_ids == {"approve"}
    assert dag.get_task("seal_lookup").upstream_task_ids == {"publish_prepare"}
    assert dag.get_task("publish").upstream_task_ids == {"publish_pages", "seal_lookup"}
    assert dag.get_task("publish").trigger_rule == "none_failed_min_one_success"
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    assert isinstance(dag.get_task("seal_lookup"), MappedOperator)
    outlets = dag.get_task("publish").outlets
    assert [a.name for a in outlets] == ["published_round"]
    index_dag = dagbag.dags["results_index"]
    assert [a.name for a in index_dag.timetable.asset_condition.objects] == ["published_round"]


def test_round_param_offers_the_rounds_and_leaves_bad_values_to_a_plain_message(dagbag, vc):
    params = dagbag.dags["allocation_round"].params
    schema = params.get_param("round").schema
    assert schema["examples"] == vc.available_rounds() and "sample" in schema["examples"]
    assert "pattern" not in schema and "enum" not in schema   # no raw JSON-schema 400 for '../sample'
    assert params.get_param("round").resolve("../sample") == "../sample"
    with pytest.raises(ValueError, match="give a folder name under"):
        vc.resolve_round("../sample")


def test_whatif_param_is_a_list_of_scenarios(dagbag):
    params = dagbag.dags["allocation_round"].params
    assert params["whatif"] == []
    assert params.get_param("whatif").schema["items"] == {"type": "string"}
    assert params.get_param("whatif").resolve(["budget=+10%", "min_score=65"]) == ["budget=+10%", "min_score=65"]
    with pytest.raises(Exception):
        params.get_param("whatif").resolve([65])


def parse_dag(dag_id: str):
    """The DAG as a fresh parse of its file (not the shared dagbag's object)."""
    from airflow.dag_processing.dagbag import BundleDagBag
    dags = PROJECT / "dags"
    bag = BundleDagBag(dag_folder=dags / f"{dag_id}.py", bundle_path=dags, bundle_name="dags-folder")
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def test_round_run_has_a_deadline_alert(monkeypatch):
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk import DeadlineReference

    monkeypatch.setenv("VOUCHER_DEADLINE_HOURS", "36")
    dags = PROJECT / "dags"
    bag = BundleDagBag(dag_folder=dags / "allocation_round.py", bundle_path=dags, bundle_name="dags-folder")
    (alert,) = bag.dags["allocation_round"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval.total_seconds() == 36 * 3600
    assert alert.callback.path == "voucher_common.on_deadline_missed"


def test_deadline_callback_writes_a_notification(vc, runs_root):
    vc.on_deadline_missed(context={"dag_run": {"dag_id": "allocation_round", "dag_run_id": "r1", "state": "running"},
                                   "deadline": {"deadline_time": "2026-01-01T00:00:00+00:00"}})
    assert "allocation_round run r1 missed its deadline" in (runs_root / "notifications.log").read_text()


def test_every_task_has_owner_retries_and_failure_notice(dagbag):
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            assert t.owner == "voucher-ops", t.task_id
            assert t.on_failure_callback, t.task_id
    dag = dagbag.dags["allocation_round"]
    assert dag.get_task("validate").retries == 0       # bad input (RoundError) is final
    assert dag.get_task("approve").retries == 0        # a human decision is never retried
    for task_id in TRANSIENT:
        t = dag.get_task(task_id)
        assert t.retries == 2 and t.retry_exponential_backoff > 0, task_id


def test_params_are_typed_form_fields(airflow_env):
    # a fresh parse: dag.test() in other tests leaves its run's params on the shared DAG object
    params = parse_dag("allocation_round").params
    schemas = {k: params.get_param(k).schema for k in params}
    assert set(schemas) == {"round", "budget_krw_override", "time_limit_s", "dry_run", "allow_empty", "whatif"}
    assert all("type" in s and "title" in s for s in schemas.values())
    assert schemas["round"]["type"] == "string" and "sample" in schemas["round"]["examples"]
    assert schemas["budget_krw_override"]["type"] == ["null", "integer"]
    assert schemas["budget_krw_override"]["minimum"] == 1   # a budget of 0 funds nobody
    assert schemas["allow_empty"]["type"] == "boolean" and params["allow_empty"] is False
    assert (schemas["time_limit_s"]["minimum"], schemas["time_limit_s"]["maximum"]) == (1, 3600)
    assert schemas["dry_run"]["type"] == "boolean"
    assert params["round"] == "sample" and params["time_limit_s"] == 60 and params["dry_run"] is False


def test_params_reject_bad_values(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["allocation_round"].params

    def with_conf(conf: dict) -> dict:  # what a trigger with this conf does
        p = copy.deepcopy(params)
        p.update(conf)
        return p.validate()

    assert with_conf({"round": "/abs/path", "budget_krw_override": 10})["budget_krw_override"] == 10
    # a round outside the rounds root passes the form and fails validate in plain words (see
    # test_round_param_offers_the_rounds_and_leaves_bad_values_to_a_plain_message)
    for bad in ({"time_limit_s": 0}, {"time_limit_s": 4000}, {"budget_krw_override": -1}, {"budget_krw_override": 0},
                {"budget_krw_override": "lots"}, {"dry_run": "yes"}, {"whatif": "budget=+10%"}):
        with pytest.raises(ParamValidationError):
            with_conf(bad)


def test_round_paths_stay_inside_the_rounds_root(vc, tmp_path):
    assert vc.resolve_round("sample") == (ROUNDS / "sample").resolve()
    assert vc.resolve_round(str(ROUNDS / "sample")) == (ROUNDS / "sample").resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (ROUNDS / "escape").symlink_to(outside)
    try:
        for bad in ("../sample", str(ROUNDS / ".." / "rounds" / ".." / "x"), "/etc", str(ROUNDS),
                    "sub/dir", "escape", str(ROUNDS / "escape"), "missing", ""):
            with pytest.raises(ValueError):
                vc.resolve_round(bad)
    finally:
        (ROUNDS / "escape").unlink()
    assert vc.sanitise("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00_00_00"


def test_validate_starts_from_an_empty_run_folder(vc, runs_root):
    run = vc.run_dir((ROUNDS / "sample").resolve(), "manual__2026-01-01T00:00:00+00:00")
    assert run == runs_root / "sample" / "manual__2026-01-01T00_00_00_00_00"
    run.mkdir(parents=True, exist_ok=True)
    (run / "outcomes.csv").write_text("stale")
    assert list(vc.reset_dir(run).iterdir()) == []
    with pytest.raises(ValueError):
        vc.reset_dir(ROUNDS / "sample")   # never outside the runs root


def test_airflow_cfg_is_portable_and_holds_no_secret():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(PROJECT / "airflow.cfg")
    home = "/any/clone/airflow-home"
    dags = os.path.expandvars(cfg["core"]["dags_folder"].replace("$AIRFLOW_HOME", home))
    assert Path(os.path.normpath(dags)) == Path("/any/clone/dags")
    assert cfg["core"]["load_examples"] == "False" and cfg["core"]["executor"] == "LocalExecutor"
    assert "$AIRFLOW_HOME" in cfg["database"]["sql_alchemy_conn"]
    users = dict(u.split(":") for u in cfg["core"]["simple_auth_manager_users"].split(","))
    assert users == {"officer": "user", "approver": "user", "operator": "op", "admin": "admin", "viewer": "viewer"}
    for section, key in (("core", "fernet_key"), ("api_auth", "jwt_secret"), ("api", "secret_key")):
        assert not cfg.has_option(section, key)
