"""The scrape provider: reads the predictors' own /metrics directly (embedded mode, no Prometheus).

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

from shipyard.rollout import exposition
from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target

REQUESTS = "shipyard_requests_total"
DURATION_BUCKET = "shipyard_request_duration_seconds_bucket"


@dataclass(frozen=True)
class Totals:
    """Cumulative counters of one version at one scrape."""

    requests: float
    server_errors: float
    buckets: dict[float, float] = field(default_factory=dict)  # le → cumulative count


def totals_of(text: str, target: Target) -> Totals | None:
    """The target's counters in one exposition text; None when it exports no series for it."""
    requests = errors = 0.0
    buckets: dict[float, float] = defaultdict(float)
    seen = False
    wanted = {"model_name": target.model_name, "model_version": target.model_version}
    for sample in exposition.parse(text):
        if any(sample.labels.get(k) != v for k, v in wanted.items()):
            continue
        if sample.name == REQUESTS:
            seen = True
            requests += sample.value
            if sample.labels.get("outcome") == "server_error":
                errors += sample.value
        elif sample.name == DURATION_BUCKET:
            buckets[float(sample.labels["le"])] += sample.value
    return Totals(requests, errors, dict(buckets)) if seen else None


def _increase(now: float, before: float) -> float:
    return now if now < before else now - before


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
        try:
            return totals_of(response.text, target)
        except ValueError as e:
            raise ProviderError(f"unreadable metrics at {target.metrics_url}: {e}") from e

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
        buckets = {le: _increase(count, before.buckets.get(le, 0.0)) for le, count in current.buckets.items()}
        p99 = exposition.histogram_quantile(0.99, buckets)
        return Sample(
            requests=_increase(current.requests, before.requests),
            server_errors=_increase(current.server_errors, before.server_errors),
            p99_ms=None if p99 is None or math.isnan(p99) else p99 * 1000,
        )
