"""The Airflow side without a scheduler: the operator defers, the trigger runs the analysis and
yields one event, the resume method moves the registry — with a real MLflow server, real
predictors and the local backend that `make demo` uses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from airflow.exceptions import TaskDeferred
from airflow.sdk.exceptions import AirflowFailException
from mlflow_rest import register_version
from rollout_support import RPS, TEST_POLICY
from support.servers import venv_python

from shipyard.rollout import manual
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.operator import CanaryRolloutOperator
from shipyard.rollout.registry import CHALLENGER, CHAMPION, PREVIOUS, MlflowRegistry
from shipyard.rollout.trigger import CanaryAnalysisTrigger
from shipyard_spec import load_spec

PIPELINE = "rollout_probe"
TRIGGER_KWARGS = {
    "policy": {**TEST_POLICY, "backend": "local"},
    "backend": {"kind": "kserve", "name": "x", "pipeline": PIPELINE},  # does not match the policy
    "model_name": PIPELINE,
    "version": "3",
    "tracking_uri": None,
}


def test_trigger_serializes_to_json_safe_kwargs_and_round_trips():
    trigger = CanaryAnalysisTrigger(**TRIGGER_KWARGS)
    classpath, kwargs = trigger.serialize()
    assert classpath == "shipyard.rollout.trigger.CanaryAnalysisTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs == TRIGGER_KWARGS
    assert CanaryAnalysisTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_turns_a_failure_into_one_error_event_instead_of_raising():
    events = asyncio.run(_collect(CanaryAnalysisTrigger(**TRIGGER_KWARGS)))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "does not match the spec's rollout.backend 'local'" in events[0].payload["reason"]


async def _collect(trigger: CanaryAnalysisTrigger) -> list:
    return [event async for event in trigger.run()]


@pytest.fixture
def pipeline(tmp_path, monkeypatch, mlflow_tracking_uri) -> Path:
    """A spec with the test policy, the embedded environment, and a local stack stopped afterwards."""
    spec = {
        "name": PIPELINE,
        "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": ["unused.parquet"]},
        "columns": {"id": "customer_id", "target": "churn"},
        "features": {"numeric": ["tenure"]},
        "mlflow": {"experiment": PIPELINE, "registered_model": PIPELINE},
        "rollout": TEST_POLICY,
    }
    path = tmp_path / f"{PIPELINE}.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_SERVING_PYTHON", venv_python("serving"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    try:
        yield path
    finally:
        LocalBackend.for_pipeline(PIPELINE).stop_all()


def rollout(spec_path: Path, version: str, model_dir: Path, canary_args=()) -> dict:
    """The `rollout` task as Airflow runs it: execute → (defer → trigger → execute_complete)."""
    release = {"registered_model": PIPELINE, "version": version, "artifact_path": str(model_dir)}
    operator = CanaryRolloutOperator(
        task_id="rollout", spec=load_spec(spec_path), release=release, canary_args=list(canary_args)
    )
    try:
        return operator.execute(context={})
    except TaskDeferred as deferred:
        trigger, method_name = deferred.trigger, deferred.method_name
    assert method_name == "execute_complete"
    _classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs  # what the triggerer stores
    events = asyncio.run(_collect(CanaryAnalysisTrigger(**kwargs)))
    assert len(events) == 1
    return operator.execute_complete(context={}, event=events[0].payload)


@pytest.mark.slow
def test_release_then_promote_then_roll_back_through_the_registry(pipeline, model_dir, mlflow_tracking_uri):
    registry = MlflowRegistry(mlflow_tracking_uri, PIPELINE)
    v1, v2, v3 = (register_version(mlflow_tracking_uri, PIPELINE) for _ in range(3))
    backend = LocalBackend.for_pipeline(PIPELINE)
    records = load_records(model_dir / "input_example.json")

    first = rollout(pipeline, v1, model_dir)  # no champion yet: straight to 100 %
    assert (first["status"], registry.alias(CHAMPION)) == ("promoted", v1)

    with LoadDriver(backend.url, backend.served_name, records, RPS) as load:
        promoted = rollout(pipeline, v2, model_dir)
    assert promoted == {
        "status": "promoted",
        "version": v2,
        "previous": v1,
        "reason": "passed every step [20, 50, 100]",
    }
    assert (registry.alias(CHAMPION), registry.alias(PREVIOUS), registry.alias(CHALLENGER)) == (v2, v1, None)
    assert set(load.outcomes) == {"200"}  # zero failed requests across the whole rollout

    with (
        LoadDriver(backend.url, backend.served_name, records, RPS),
        pytest.raises(AirflowFailException) as failed,
    ):
        rollout(pipeline, v3, model_dir, canary_args=["--fault_error_rate", "0.5"])
    assert f"rolled back {PIPELINE} v{v3}: 1 failed check(s) reached failure_limit 1" in str(failed.value)
    assert registry.alias(CHAMPION) == v2  # untouched
    assert registry.tags(v3)["shipyard.rollout.status"] == "rolled_back"
    assert "above max_error_rate" in registry.tags(v3)["shipyard.rollout.reason"]
    assert backend.state()["stable"]["release"]["version"] == v2
    assert backend.state()["canary"] is None

    # The manual rollback (shipyard_rollback_<pipeline>): back to @previous = v1.
    with LoadDriver(backend.url, backend.served_name, records, RPS) as load:
        result = manual.rollback_to_previous(load_spec(pipeline), "pager says v2 is odd")
    assert result == {"champion": v1, "replaced": v2, "reason": "pager says v2 is odd"}
    assert (registry.alias(CHAMPION), registry.alias(PREVIOUS)) == (v1, None)
    assert registry.tags(v2)["shipyard.rollout.reason"] == f"manual rollback to v{v1}: pager says v2 is odd"
    assert backend.state()["stable"]["release"]["version"] == v1
    assert set(load.outcomes) == {"200"}  # the switch back lost no request
    with pytest.raises(manual.NothingToRollBackTo, match="has no @previous version"):
        manual.rollback_to_previous(load_spec(pipeline), "again")
