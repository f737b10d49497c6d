"""The Airflow side without a scheduler: the operator defers, the trigger runs the analysis and
yields one event, the resume method moves the registry — with a real MLflow server, real
predictors and the local backend that `make demo` uses."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.sdk.exceptions import AirflowFailException
from mlflow_rest import register_version
from rollout_support import RPS, TEST_POLICY
from rollout_task import PIPELINE, collect, rollout

from shipyard.rollout import manual
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.registry import MlflowRegistry
from shipyard.rollout.trigger import CanaryAnalysisTrigger
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias

TRIGGER_KWARGS = {
    "policy": {**TEST_POLICY, "backend": "local"},
    "backend": {"kind": "kserve", "name": "x", "pipeline": PIPELINE},  # does not match the policy
    "model_name": PIPELINE,
    "version": "3",
    "mlflow_conn_id": None,
    "replay_requests": [{"request": "logged request 0", "inputs": {"tenure": 3, "contract": None}}],
    "shadow": None,
}


def test_trigger_serializes_to_json_safe_kwargs_and_round_trips():
    trigger = CanaryAnalysisTrigger(**TRIGGER_KWARGS)
    classpath, kwargs = trigger.serialize()
    assert classpath == "shipyard.rollout.trigger.CanaryAnalysisTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs == TRIGGER_KWARGS
    assert CanaryAnalysisTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_turns_a_failure_into_one_error_event_instead_of_raising():
    events = asyncio.run(collect(CanaryAnalysisTrigger(**TRIGGER_KWARGS)))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "does not match the spec's rollout.backend 'local'" in events[0].payload["reason"]


@pytest.mark.slow
def test_release_then_promote_then_roll_back_through_the_registry(pipeline, model_dir, mlflow_tracking_uri):
    registry = MlflowRegistry.for_spec(load_spec(pipeline))
    v1, v2, v3 = (register_version(mlflow_tracking_uri, PIPELINE, model_dir) for _ in range(3))
    backend = LocalBackend.for_pipeline(PIPELINE)
    records = load_records(model_dir / "input_example.json")

    first = rollout(pipeline, v1, model_dir)  # no champion yet: straight to 100 %
    assert (first["status"], registry.alias(Alias.CHAMPION)) == ("promoted", v1)

    with LoadDriver(backend.url, backend.served_name, records, RPS) as load:
        promoted = rollout(pipeline, v2, model_dir)
    assert promoted == {
        "status": "promoted",
        "version": v2,
        "previous": v1,
        "reason": "passed every step [20, 50, 100]",
    }
    aliases = registry.aliases()
    assert (aliases[Alias.CHAMPION], aliases[Alias.PREVIOUS], aliases.get(Alias.CHALLENGER)) == (v2, v1, None)
    assert set(load.outcomes) == {"200"}  # zero failed requests across the whole rollout

    with (
        LoadDriver(backend.url, backend.served_name, records, RPS),
        pytest.raises(AirflowFailException) as failed,
    ):
        rollout(pipeline, v3, model_dir, canary_args=["--fault_error_rate", "0.5"])
    assert f"rolled back {PIPELINE} v{v3}: 1 failed check(s) reached failure_limit 1" in str(failed.value)
    assert registry.alias(Alias.CHAMPION) == v2  # untouched
    assert registry.tags(v3)["shipyard.rollout.status"] == "rolled_back"
    assert "above max_error_rate" in registry.tags(v3)["shipyard.rollout.reason"]
    assert backend.state()["stable"]["release"]["version"] == v2
    assert backend.state()["canary"] is None

    # The manual rollback (shipyard_rollback_<pipeline>): back to @previous = v1.
    with LoadDriver(backend.url, backend.served_name, records, RPS) as load:
        result = manual.rollback_to_previous(load_spec(pipeline), "pager says v2 is odd")
    assert result == {"champion": v1, "replaced": v2, "reason": "pager says v2 is odd"}
    assert (registry.alias(Alias.CHAMPION), registry.alias(Alias.PREVIOUS)) == (v1, None)
    assert registry.tags(v2)["shipyard.rollout.reason"] == f"manual rollback to v{v1}: pager says v2 is odd"
    assert backend.state()["stable"]["release"]["version"] == v1
    assert set(load.outcomes) == {"200"}  # the switch back lost no request
    with pytest.raises(manual.NothingToRollBackTo, match="has no @previous version"):
        manual.rollback_to_previous(load_spec(pipeline), "again")
