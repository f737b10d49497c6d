"""The Prometheus provider: PromQL over the HTTP query API, with metric-name presets.

Presets exist because the names moved: Shipyard's predictor exports its own counters per
model version; Knative's queue-proxy exports per-revision metrics whose names changed when
Knative 1.19+ moved to OpenTelemetry (1.21 names here). Each preset is four queries over a
window: requests, server errors (5xx), client errors (4xx), p99 in milliseconds.

Which latency each preset reads: the Knative presets read the queue-proxy's request latency
(the sidecar in front of the predictor: queueing in the pod, the whole request as the
revision's clients see it; not `revision_app_request_latencies`, which is the container
alone); `shipyard` reads the predictor's own histogram, time inside the model server only —
use it where no queue-proxy exists (Standard mode) and know that it misses queueing in front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target
from shipyard_spec.contract import Metric, Outcome


@dataclass(frozen=True)
class Preset:
    selector: str  # label matchers; {model_name} {model_version} {namespace} {revision}
    requests: str  # {sel} {window}
    errors: str
    client_errors: str
    p99_ms: str


PRESETS = {
    "shipyard": Preset(
        selector='model_name="{model_name}",model_version="{model_version}"',
        requests=f"sum(increase({Metric.REQUESTS}{{{{{{sel}}}}}}[{{window}}]))",
        errors=f'sum(increase({Metric.REQUESTS}{{{{{{sel}},outcome="{Outcome.SERVER_ERROR}"}}}}[{{window}}]))',
        client_errors=f'sum(increase({Metric.REQUESTS}{{{{{{sel}},outcome="{Outcome.CLIENT_ERROR}"}}}}[{{window}}]))',
        p99_ms="1000 * histogram_quantile(0.99, sum by (le) "
        f"(rate({Metric.REQUEST_DURATION}_bucket{{{{{{sel}}}}}}[{{window}}])))",
    ),
    "knative-legacy": Preset(  # Knative <= 1.18 queue-proxy (OpenCensus); latencies already in ms
        selector='namespace_name="{namespace}",revision_name="{revision}"',
        requests="sum(increase(revision_request_count{{{sel}}}[{window}]))",
        errors='sum(increase(revision_request_count{{{sel},response_code_class="5xx"}}[{window}]))',
        client_errors='sum(increase(revision_request_count{{{sel},response_code_class="4xx"}}[{window}]))',
        p99_ms="histogram_quantile(0.99, sum by (le) "
        "(rate(revision_request_latencies_bucket{{{sel}}}[{window}])))",
    ),
    "knative-otel": Preset(  # Knative >= 1.21 (OpenTelemetry): no response_code_class any more
        selector='k8s_namespace_name="{namespace}",kn_revision_name="{revision}"',
        requests="sum(increase(kn_serving_invocation_duration_seconds_count{{{sel}}}[{window}]))",
        errors="sum(increase(kn_serving_invocation_duration_seconds_count"
        '{{{sel},http_response_status_code=~"5.."}}[{window}]))',
        client_errors="sum(increase(kn_serving_invocation_duration_seconds_count"
        '{{{sel},http_response_status_code=~"4.."}}[{window}]))',
        p99_ms="1000 * histogram_quantile(0.99, sum by (le) "
        "(rate(kn_serving_invocation_duration_seconds_bucket{{{sel}}}[{window}])))",
    ),
}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render(preset: Preset, query: str, target: Target, window_seconds: float) -> str:
    """One PromQL query of a preset for one target."""
    fields = {k: _quote(getattr(target, k)) for k in ("model_name", "model_version", "namespace", "revision")}
    selector = preset.selector.format(**fields)
    return getattr(preset, query).format(sel=selector, window=f"{math.ceil(window_seconds)}s")


class PrometheusProvider:
    def __init__(self, url: str, preset: str, timeout: float = 5) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown PromQL preset {preset!r}: expected one of {sorted(PRESETS)}")
        self.url = url.rstrip("/")
        self.preset = PRESETS[preset]
        self._client = httpx.Client(timeout=timeout)

    def is_online(self) -> bool:
        try:
            return self._client.get(f"{self.url}/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def instant(self, promql: str) -> float | None:
        """The single value of an instant query; None for an empty result."""
        try:
            response = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ProviderError(f"Prometheus at {self.url} did not answer {promql!r}: {e}") from e
        if body.get("status") != "success":
            raise ProviderError(f"Prometheus at {self.url} refused {promql!r}: {body.get('error')}")
        result = body["data"]["result"]
        if not result:
            return None
        if len(result) > 1:
            raise ProviderError(f"{promql!r} returned {len(result)} series; expected one (sum it)")
        return float(result[0]["value"][1])

    def query(self, target: Target, window_seconds: float) -> Sample:
        requests = self.instant(render(self.preset, "requests", target, window_seconds))
        if requests is None or math.isnan(requests):
            raise NoDataError(f"no data: Prometheus has no requests of {target.role} {target.model_version}")
        errors = self.instant(render(self.preset, "errors", target, window_seconds))
        client_errors = self.instant(render(self.preset, "client_errors", target, window_seconds))
        p99 = self.instant(render(self.preset, "p99_ms", target, window_seconds))
        return Sample(
            requests=requests,
            server_errors=_count(errors),
            client_errors=_count(client_errors),
            p99_ms=None if p99 is None or math.isnan(p99) else p99,
        )


def _count(value: float | None) -> float:
    """An increase() result: no series or NaN (no sample in the window) is zero."""
    return 0.0 if value is None or math.isnan(value) else value
