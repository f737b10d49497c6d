"""The Prometheus provider: exact PromQL per preset, errors that are not passes, and — against a
real Prometheus server scraping real predictors — a canary judged by PromQL end to end."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_server import prometheus_server
from rollout_support import MODEL_NAME, RPS, policy
from support.servers import free_port

from shipyard.rollout.backends import Release
from shipyard.rollout.controller import ROLLED_BACK, CanaryController
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.providers import Target, build_provider
from shipyard.rollout.providers.prometheus import PRESETS, PrometheusProvider, render
from shipyard_spec.model import Metrics

CANARY = Target("canary", "telco-churn", "7", namespace="shipyard", revision="telco-churn-predictor-00002")


@pytest.mark.parametrize(
    ("preset", "query", "expected"),
    [
        (
            "shipyard",
            "errors",
            'sum(increase(shipyard_requests_total{model_name="telco-churn",model_version="7",'
            'outcome="server_error"}[60s]))',
        ),
        (
            "shipyard",
            "client_errors",
            'sum(increase(shipyard_requests_total{model_name="telco-churn",model_version="7",'
            'outcome="client_error"}[60s]))',
        ),
        (
            "knative-otel",
            "client_errors",
            "sum(increase(kn_serving_invocation_duration_seconds_count"
            '{k8s_namespace_name="shipyard",kn_revision_name="telco-churn-predictor-00002",'
            'http_response_status_code=~"4.."}[60s]))',
        ),
        (
            "knative-legacy",
            "requests",
            'sum(increase(revision_request_count{namespace_name="shipyard",'
            'revision_name="telco-churn-predictor-00002"}[60s]))',
        ),
        (
            "knative-legacy",
            "errors",
            'sum(increase(revision_request_count{namespace_name="shipyard",'
            'revision_name="telco-churn-predictor-00002",response_code_class="5xx"}[60s]))',
        ),
        (
            "knative-otel",
            "p99_ms",
            "1000 * histogram_quantile(0.99, sum by (le) (rate(kn_serving_invocation_duration_seconds_bucket"
            '{k8s_namespace_name="shipyard",kn_revision_name="telco-churn-predictor-00002"}[60s])))',
        ),
    ],
)
def test_presets_render_promql(preset, query, expected):
    assert render(PRESETS[preset], query, CANARY, 60) == expected


def test_label_values_are_escaped():
    tricky = Target("canary", 'a"b\\c', "1")
    assert 'model_name="a\\"b\\\\c"' in render(PRESETS["shipyard"], "requests", tricky, 1.2)


def test_unknown_provider_and_preset_are_errors_not_defaults():
    with pytest.raises(ValueError, match="unknown metrics provider 'datadog'"):
        build_provider(Metrics.model_construct(provider="datadog", timeout_seconds=1))
    with pytest.raises(ValueError, match="unknown PromQL preset 'istio'"):
        PrometheusProvider("http://prometheus:9090", "istio")


def test_unreachable_prometheus_is_a_provider_error_and_offline():
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", "shipyard", timeout=0.5)
    assert provider.is_online() is False
    with pytest.raises(ProviderError, match="did not answer") as raised:
        provider.query(CANARY, 60)
    assert not isinstance(raised.value, NoDataError)


@pytest.mark.slow
def test_promql_path_against_a_real_prometheus(local_stack, model_dir, tmp_path):
    """Prometheus scrapes the stable and canary predictors; the error-rate fault is found by PromQL."""
    stable = Release.from_dict(local_stack.state()["stable"]["release"])
    canary = Release(MODEL_NAME, "90", str(model_dir), args=["--fault_error_rate", "0.5"])
    local_stack.deploy_canary(stable, canary)
    ports = [local_stack.state()[role]["port"] for role in ("stable", "canary")]
    records = load_records(model_dir / "input_example.json")
    with (
        prometheus_server(tmp_path, [f"127.0.0.1:{p}" for p in ports]) as url,
        LoadDriver(local_stack.url, local_stack.served_name, records, RPS),
    ):
        rollout = policy(
            interval_seconds=1.0,
            max_client_error_rate_increase=1,
            no_data_deadline_seconds=10,
            metrics={"provider": "prometheus", "prometheus_url": url, "window_seconds": 3},
        )
        provider = build_provider(rollout.metrics)
        assert provider.is_online()
        outcome = asyncio.run(CanaryController(rollout, local_stack, provider).run())

    assert outcome.status == ROLLED_BACK
    assert "above max_error_rate" in outcome.reason
    failed = outcome.checks[-1]
    assert failed["verdict"] == "fail"
    assert failed["requests"] > 0
    # 50 % injected; a few seconds of 1 s scrapes hold a few dozen requests, so only "clearly bad".
    assert 0.05 < failed["error_rate"] <= 1
    assert failed["p99_ms"] is not None
    assert failed["p99_ms"] < 250
    assert "pass" not in {c["verdict"] for c in outcome.checks}
