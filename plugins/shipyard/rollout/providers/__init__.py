"""Metric providers: where the numbers of a canary check come from.

A provider answers two questions (Flagger's `Interface`): is it online, and what did one
version serve in a window (`query` → `analysis.Sample`). It raises `NoDataError` when there
is no series yet and `ProviderError` when it cannot be asked. `build_provider` picks one by
type and refuses a type it does not know.
"""

from __future__ import annotations

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


class MetricsProvider(Protocol):
    def is_online(self) -> bool:
        """Whether the provider can be queried at all."""

    def query(self, target: Target, window_seconds: float) -> Sample:
        """Requests, server errors and p99 of `target` over the last `window_seconds`."""


def build_provider(metrics: Metrics) -> MetricsProvider:
    """The provider the spec names; an unknown type is an error, never a silent default."""
    if metrics.provider == "prometheus":
        from shipyard.rollout.providers.prometheus import PrometheusProvider

        return PrometheusProvider(
            str(metrics.prometheus_url), metrics.preset, timeout=metrics.timeout_seconds
        )
    if metrics.provider == "scrape":
        from shipyard.rollout.providers.scrape import ScrapeProvider

        return ScrapeProvider(timeout=metrics.timeout_seconds)
    raise ValueError(f"unknown metrics provider {metrics.provider!r}: expected 'prometheus' or 'scrape'")
