"""MlflowRegistry against a real MLflow server: aliases move with traffic, tags carry the reason,
the decision log lands on the version's run, unset aliases are read as unset, and every move
finishes when it is called again after a failure at any request (a fault proxy fails them)."""

from __future__ import annotations

import itertools

import httpx
import pytest
from mlflow_rest import register_version, registry_state
from support.fault_proxy import FaultProxy

from shipyard.hooks.mlflow import MlflowError, MlflowHook
from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec.contract import Alias, RolloutStatus, Tag


def bound(monkeypatch, url: str, name: str) -> MlflowRegistry:
    """A registry whose hook reaches `url` through an Airflow Connection (environment variable)."""
    conn_id = f"mlflow_{abs(hash(url))}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", url)
    return MlflowRegistry(MlflowHook(conn_id, attempts=2, backoff=0.05), name)


@pytest.fixture
def registry(mlflow_tracking_uri, monkeypatch, request) -> MlflowRegistry:
    return bound(monkeypatch, mlflow_tracking_uri, f"registry_probe_{request.node.name[-24:].strip('[]_')}")


def versions(registry: MlflowRegistry, url: str, count: int) -> list[str]:
    return [register_version(url, registry.model_name) for _ in range(count)]


def test_unset_aliases_and_an_unregistered_model_read_as_unset(registry, mlflow_tracking_uri):
    assert registry.aliases() == {}  # not registered yet: RESOURCE_DOES_NOT_EXIST
    (v1,) = versions(registry, mlflow_tracking_uri, 1)
    assert registry.alias(Alias.CHAMPION) is None  # MLflow answers 400 INVALID_PARAMETER_VALUE here
    registry.set_alias(Alias.CHAMPION, v1)
    assert registry.alias(Alias.CHAMPION) == v1


def test_promotion_moves_champion_and_previous_and_clears_challenger(registry, mlflow_tracking_uri):
    v1, v2 = versions(registry, mlflow_tracking_uri, 2)
    assert registry.promote(v1) is None
    registry.start(v2)
    assert registry_state(registry, v2) == (v1, None, v2, RolloutStatus.CANARY)

    assert registry.promote(v2) == v1
    assert registry_state(registry, v2) == (v2, v1, None, RolloutStatus.PROMOTED)
    assert registry.promote(v2) == v1  # again: nothing changes


def test_rollback_leaves_the_champion_and_tags_the_reason(registry, mlflow_tracking_uri):
    v1, v2 = versions(registry, mlflow_tracking_uri, 2)
    registry.promote(v1)
    registry.start(v2)
    registry.mark_rolled_back(v2, "canary error rate 12.00% above max_error_rate 1.00%")
    assert registry_state(registry, v2) == (v1, None, None, RolloutStatus.ROLLED_BACK)
    assert registry.tags(v2)[Tag.ROLLOUT_REASON] == "canary error rate 12.00% above max_error_rate 1.00%"


@pytest.mark.parametrize("move", ["promote", "mark_rolled_back"])
def test_a_move_cut_off_after_any_request_finishes_when_called_again(mlflow_tracking_uri, monkeypatch, move):
    """The registry side of a decision, cut off after each of its requests in turn (the server
    answers 503 from then on), then called again once MLflow is back: always the same end state."""
    args = ["gone bad"] if move == "mark_rolled_back" else []
    with FaultProxy(mlflow_tracking_uri) as proxy:
        for cut in itertools.count():
            registry = bound(monkeypatch, proxy.url, f"cut_{move}_{cut}")
            v1, v2 = versions(registry, mlflow_tracking_uri, 2)
            registry.promote(v1)
            registry.start(v2)
            expected = {
                "promote": (v2, v1, None, RolloutStatus.PROMOTED),
                "mark_rolled_back": (v1, None, None, RolloutStatus.ROLLED_BACK),
            }[move]
            proxy.fail(after=cut)
            try:
                getattr(registry, move)(v2, *args)
                cut_off = False
            except MlflowError:
                cut_off = True
            finally:
                proxy.heal()
            if not cut_off:
                break
            assert registry_state(registry, v2) != expected or move == "mark_rolled_back"
            getattr(registry, move)(v2, *args)  # the retry
            assert registry_state(registry, v2) == expected, f"cut off after {cut} requests"
        assert registry_state(registry, v2) == expected
        assert cut >= 4  # the move has that many requests, each was cut off once


def test_an_unrecorded_rollout_is_recorded_by_the_next_one(registry, mlflow_tracking_uri):
    v1, v2, v3 = versions(registry, mlflow_tracking_uri, 3)
    registry.promote(v1)
    registry.start(v2)  # ... and the registry went down before the decision was recorded
    assert registry.close_interrupted(v3) == [v2]
    assert registry_state(registry, v2) == (v1, None, None, RolloutStatus.ROLLED_BACK)
    assert "rollout interrupted before its decision was recorded" in registry.tags(v2)[Tag.ROLLOUT_REASON]
    assert registry.close_interrupted(v3) == []


def test_gate_reads_confirmation_and_abort_tags(registry, mlflow_tracking_uri):
    (version,) = versions(registry, mlflow_tracking_uri, 1)
    assert registry.gate(version) == (registry.gate(version).__class__(False, None))
    registry.set_tag(version, Tag.ROLLOUT_CONFIRM, "TRUE")
    registry.set_tag(version, Tag.ROLLOUT_ABORT, "pager says no")
    assert (registry.gate(version).confirmed, registry.gate(version).abort_reason) == (True, "pager says no")


def test_checks_become_metrics_and_the_decision_log_an_artifact(registry, mlflow_tracking_uri):
    (version,) = versions(registry, mlflow_tracking_uri, 1)
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

    run_id = registry.version(version).run_id
    history = httpx.get(
        f"{mlflow_tracking_uri}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": run_id, "metric_key": "rollout.weight"},
    ).json()["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(0, 10.0), (1, 25.0)]
    assert uri.endswith(f"/rollout/v{version}/decision_log.json")
    path = uri.removeprefix("mlflow-artifacts:/")
    stored = httpx.get(f"{mlflow_tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{path}").json()
    assert stored["status"] == "promoted"
    assert len(stored["checks"]) == 2


def test_unknown_version_is_an_error_naming_it_with_mlflows_code(registry, mlflow_tracking_uri):
    versions(registry, mlflow_tracking_uri, 1)
    with pytest.raises(MlflowError, match=rf"reading v999 \({registry.model_name}\) failed") as failed:
        registry.version("999")
    assert failed.value.error_code == "RESOURCE_DOES_NOT_EXIST"
