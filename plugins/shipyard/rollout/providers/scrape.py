"""The scrape provider: reads the predictors' own /metrics directly (no Prometheus, no HAProxy).

It sees what happens inside the predictor — `contract.Metric.REQUESTS` by outcome and the
`contract.Metric.REQUEST_DURATION` histogram — not what clients see in front of it (queueing,
connection failures, requests that never reached the model): the `haproxy` provider does.
Counters are cumulative, so a window is the difference between two consecutive scrapes of
the same target: the first scrape of a target is its baseline (no data yet). A counter that
went down means the process restarted; as in Prometheus, the new value is the increase.
p99 comes from the differences of the histogram buckets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target, counter_increase, metric_samples
from shipyard_spec.contract import Metric, Outcome

DURATION_BUCKET = f"{Metric.REQUEST_DURATION}_bucket"


@dataclass(frozen=True)
class Totals:
    """Cumulative counters of one version at one scrape."""

    requests: float
    server_errors: float
    client_errors: float
    buckets: dict[float, float] = field(default_factory=dict)  # le → cumulative count


def totals_of(text: str, target: Target) -> Totals | None:
    """The target's counters in one exposition text; None when it exports no series for it."""
    by_outcome: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    wanted = {"model_name": target.model_name, "model_version": target.model_version}
    for name, labels, value in metric_samples(text, target.metrics_url):
        if any(labels.get(k) != v for k, v in wanted.items()):
            continue
        if name == Metric.REQUESTS:
            by_outcome[labels.get("outcome", "")] += value
        elif name == DURATION_BUCKET:
            buckets[float(labels["le"])] += value
    if not by_outcome:
        return None
    return Totals(
        sum(by_outcome.values()),
        by_outcome[Outcome.SERVER_ERROR],
        by_outcome[Outcome.CLIENT_ERROR],
        dict(buckets),
    )


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float | None:
    """The quantile of a histogram given its cumulative bucket counts by upper bound `le`.

    Prometheus' `histogram_quantile` rule: linear interpolation inside the bucket that holds
    the rank; a rank in the +Inf bucket returns the highest finite bound. None when the
    histogram holds no observations.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = quantile * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


class ScrapeProvider:
    """Deltas between consecutive scrapes of each target's /metrics endpoint."""

    def __init__(self, timeout: float = 5) -> None:
        self._client = httpx.Client(timeout=timeout)
        self._last: dict[tuple[str, str, str], Totals] = {}

    def is_online(self) -> bool:
        """Always: there is no server between us and the predictors; each scrape says for itself."""
        return True

    def scrape(self, target: Target) -> Totals | None:
        if not target.metrics_url:
            raise ProviderError(
                f"{target.role} {target.model_version} has no /metrics URL to scrape "
                "(the kserve backend needs metrics.provider 'prometheus')"
            )
        try:
            response = self._client.get(target.metrics_url)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise ProviderError(f"cannot scrape {target.role} metrics at {target.metrics_url}: {e}") from e
        return totals_of(response.text, target)

    def query(self, target: Target, window_seconds: float) -> Sample:
        """The increase since the previous query of this target (`window_seconds` is informative)."""
        key = (target.metrics_url, target.model_name, target.model_version)
        current = self.scrape(target)
        if current is None:
            raise NoDataError(
                f"no data: {target.metrics_url} exports no series for version {target.model_version}"
            )
        before = self._last.get(key)
        self._last[key] = current
        if before is None:
            raise NoDataError(
                f"no data yet: first scrape of {target.role} {target.metrics_url} is the baseline"
            )
        buckets = {
            le: counter_increase(count, before.buckets.get(le, 0.0)) for le, count in current.buckets.items()
        }
        p99 = histogram_quantile(0.99, buckets)
        return Sample(
            requests=counter_increase(current.requests, before.requests),
            server_errors=counter_increase(current.server_errors, before.server_errors),
            client_errors=counter_increase(current.client_errors, before.client_errors),
            p99_ms=None if p99 is None or math.isnan(p99) else p99 * 1000,
        )
