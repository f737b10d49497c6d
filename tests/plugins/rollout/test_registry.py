"""MlflowRegistry against a real MLflow server: aliases move with traffic, tags carry the reason,
the decision log lands on the version's run."""

from __future__ import annotations

import httpx
import pytest
from mlflow_rest import register_version

from shipyard.rollout.registry import (
    ABORT_TAG,
    CHALLENGER,
    CHAMPION,
    CONFIRM_TAG,
    PREVIOUS,
    MlflowRegistry,
    RegistryError,
)


@pytest.fixture
def registry(mlflow_tracking_uri, request) -> MlflowRegistry:
    return MlflowRegistry(mlflow_tracking_uri, f"registry_probe_{request.node.name[-12:].strip('[]_')}")


def test_promotion_moves_champion_and_previous_and_clears_challenger(registry):
    v1, v2 = (
        register_version(registry.url, registry.model_name),
        register_version(registry.url, registry.model_name),
    )
    assert registry.promote(v1) is None
    registry.set_alias(CHALLENGER, v2)

    assert registry.promote(v2) == v1
    assert (registry.alias(CHAMPION), registry.alias(PREVIOUS), registry.alias(CHALLENGER)) == (v2, v1, None)
    assert registry.tags(v2)["shipyard.rollout.status"] == "promoted"


def test_rollback_leaves_the_champion_and_tags_the_reason(registry):
    v1, v2 = (
        register_version(registry.url, registry.model_name),
        register_version(registry.url, registry.model_name),
    )
    registry.promote(v1)
    registry.set_alias(CHALLENGER, v2)
    registry.mark_rolled_back(v2, "canary error rate 12.00% above max_error_rate 1.00%")
    assert (registry.alias(CHAMPION), registry.alias(CHALLENGER)) == (v1, None)
    assert registry.tags(v2)["shipyard.rollout.status"] == "rolled_back"
    assert (
        registry.tags(v2)["shipyard.rollout.reason"] == "canary error rate 12.00% above max_error_rate 1.00%"
    )


def test_gate_reads_confirmation_and_abort_tags(registry):
    version = register_version(registry.url, registry.model_name)
    assert (registry.gate(version).confirmed, registry.gate(version).abort_reason) == (False, None)
    registry.set_tag(version, CONFIRM_TAG, "TRUE")
    registry.set_tag(version, ABORT_TAG, "pager says no")
    assert (registry.gate(version).confirmed, registry.gate(version).abort_reason) == (True, "pager says no")


def test_checks_become_metrics_and_the_decision_log_an_artifact(registry):
    version = register_version(registry.url, registry.model_name)
    checks = [
        {
            "index": 0,
            "at": 1.7e9,
            "weight": 10,
            "requests": 40,
            "error_rate": 0.0,
            "p99_ms": 3.1,
            "verdict": "pass",
        },
        {"index": 1, "at": 1.7e9 + 5, "weight": 25, "requests": None, "error_rate": None, "p99_ms": None},
    ]
    registry.log_checks(version, checks)
    uri = registry.upload_decision_log(version, {"status": "promoted", "checks": checks})

    run_id = registry.version(version)["run_id"]
    history = httpx.get(
        f"{registry.url}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": run_id, "metric_key": "rollout.weight"},
    ).json()["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(0, 10.0), (1, 25.0)]
    assert uri.endswith(f"/rollout/v{version}/decision_log.json")
    path = uri.removeprefix("mlflow-artifacts:/")
    stored = httpx.get(f"{registry.url}/api/2.0/mlflow-artifacts/artifacts/{path}").json()
    assert stored["status"] == "promoted"
    assert len(stored["checks"]) == 2


def test_unknown_version_is_a_registry_error_naming_it(registry):
    with pytest.raises(RegistryError, match="model-versions/get answered 404"):
        registry.version("999")
