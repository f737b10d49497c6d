"""Figures of finished or short-lived work pushed to the Prometheus Pushgateway, never failing it.

A rollout runs in a trigger that ends with its decision, a drift check is a batch step: Prometheus
cannot scrape either when it wants to, so they push what the dashboards show (the Pushgateway is
Prometheus's way for batch jobs) under `contract.PushJob` and the grouping key
`contract.push_grouping_key(model)`. Each push replaces the group's previous push (HTTP PUT), so the
Pushgateway holds the latest figures of each job and model until the next push.

Pushing is best effort: the rollout or the step goes on whatever the Pushgateway does. A failed push
is logged with its cause and counted (`failures`); the caller records the count in its result or
decision log. Without a URL (`SHIPYARD_PUSHGATEWAY_URL` unset) nothing is pushed, which the first
push says once in the log.

Used by the Airflow side (the rollout) and the pipeline image (the drift step); both lock
prometheus-client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shipyard_spec.contract import Env, PushJob, push_grouping_key

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0


def gauge(
    name: str, documentation: str, labels: Sequence[str], samples: Iterable[tuple[Sequence[str], float]]
) -> GaugeMetricFamily:
    """One gauge family: `samples` are (label values in the order of `labels`, value)."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), float(value))
    return family


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class Pushgateway:
    """Pushes one job's figures for one model (the served name); counts what it could not push."""

    def __init__(
        self, url: str | None, job: PushJob, model: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.url = url or None
        self.job = job
        self.model = model
        self.timeout = timeout
        self.pushed = 0
        self.failures = 0
        self._said_disabled = False

    @classmethod
    def from_env(cls, job: PushJob, model: str) -> Pushgateway:
        """The Pushgateway named by `SHIPYARD_PUSHGATEWAY_URL` (none when unset)."""
        return cls(os.environ.get(Env.PUSHGATEWAY_URL), job, model)

    def push(self, families: Iterable[Metric]) -> bool:
        """Replace this job's and model's figures with `families`; False when not pushed."""
        if self.url is None:
            if not self._said_disabled:
                log.info(
                    "%s not set: %s figures of %s are not pushed", Env.PUSHGATEWAY_URL, self.job, self.model
                )
                self._said_disabled = True
            return False
        registry = CollectorRegistry()
        registry.register(_Families(families))
        try:
            push_to_gateway(
                self.url,
                job=self.job.value,
                grouping_key=push_grouping_key(self.model),
                registry=registry,
                timeout=self.timeout,
            )
        except (OSError, ValueError) as e:  # URLError, HTTP errors (raised as OSError), timeouts, bad URL
            self.failures += 1
            log.warning(
                "could not push %s figures of %s to the Pushgateway at %s (%d failed so far): %s; "
                "the dashboards miss them until the next push",
                self.job, self.model, self.url, self.failures, e,
            )  # fmt: skip
            return False
        self.pushed += 1
        return True

    def status(self) -> dict[str, object]:
        """What was pushed, for a step result or a decision log."""
        return {"url": self.url, "job": self.job.value, "pushed": self.pushed, "failed": self.failures}
