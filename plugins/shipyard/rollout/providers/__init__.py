"""Metric providers: where the numbers of a canary check come from.

A provider answers two questions (Flagger's `Interface`): is it online, and what did one
version serve in a window (`query` → `analysis.Sample`). It raises `NoDataError` when there
is no series yet and `ProviderError` when it cannot be asked. `build_provider` picks one by
type and refuses a type it does not know. `metric_samples` and `counter_increase` serve the
providers that read `/metrics` endpoints themselves (haproxy, scrape).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from shipyard.rollout.analysis import Sample
from shipyard_spec.model import Metrics


@dataclass(frozen=True)
class Target:
    """One served version, named in every way a provider may need (JSON-safe fields)."""

    role: str  # "canary" or "stable"
    model_name: str  # the name the predictor serves under (`--model_name`)
    model_version: str
    namespace: str = ""
    revision: str = ""  # Knative revision, for the queue-proxy presets
    metrics_url: str = ""  # the predictor's /metrics, for the scrape provider
    # The local backend's load balancer, for the haproxy provider: its Prometheus exporter, the
    # version's server there (`backend/server`), and its runtime API socket (the request log).
    proxy_metrics_url: str = ""
    proxy_server: str = ""
    proxy_socket: str = ""


class MetricsProvider(Protocol):
    def is_online(self) -> bool:
        """Whether the provider can be queried at all."""

    def query(self, target: Target, window_seconds: float) -> Sample:
        """Requests, server errors and p99 of `target` over the last `window_seconds`."""


def metric_samples(text: str, source: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample of a Prometheus text exposition (prometheus_client's
    parser); a malformed text is a `ProviderError` naming `source`."""
    from prometheus_client.parser import text_string_to_metric_families

    from shipyard.rollout.errors import ProviderError

    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                yield sample.name, sample.labels, sample.value
    except ValueError as e:
        raise ProviderError(f"unreadable metrics at {source}: {e}") from e


def counter_increase(now: float, before: float) -> float:
    """The increase of a counter between two reads; a counter that went down restarted (Prometheus' rule)."""
    return now if now < before else now - before


def build_provider(metrics: Metrics) -> MetricsProvider:
    """The provider the spec names; an unknown type is an error, never a silent default."""
    if metrics.provider == "prometheus":
        from shipyard.rollout.providers.prometheus import PrometheusProvider

        return PrometheusProvider(
            str(metrics.prometheus_url), metrics.preset, timeout=metrics.timeout_seconds
        )
    if metrics.provider == "haproxy":
        from shipyard.rollout.providers.haproxy import HAProxyProvider

        return HAProxyProvider(timeout=metrics.timeout_seconds)
    if metrics.provider == "scrape":
        from shipyard.rollout.providers.scrape import ScrapeProvider

        return ScrapeProvider(timeout=metrics.timeout_seconds)
    raise ValueError(
        f"unknown metrics provider {metrics.provider!r}: expected 'haproxy', 'prometheus' or 'scrape'"
    )
