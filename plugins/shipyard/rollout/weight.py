"""The canary's traffic share on the dashboards (`contract.Metric.CANARY_WEIGHT`).

The controller knows the weight: it sets it. It runs in the triggerer, inside a trigger that ends
with the decision, so nothing long-lived is left to be scraped; the weight is pushed to the
Pushgateway instead (`shipyard_spec.pushgateway`, job `contract.PushJob.ROLLOUT`, grouped by the
served model name) at every change: each step's weight, 100 at promotion, 0 at rollback. The
Pushgateway keeps the last value until the next rollout of the model replaces it, and
Prometheus's scrapes of it make the weight over time. Never fails the rollout: a failed push is
logged and counted, and the count goes into the decision log (`metrics_push`).
"""

from __future__ import annotations

from shipyard.rollout.providers import Target
from shipyard_spec.contract import Metric, MetricLabel, PushJob
from shipyard_spec.pushgateway import Pushgateway, gauge


class CanaryWeightPublisher:
    """Called by the controller with the canary and its weight (0-100) whenever the weight changes."""

    def __init__(self, pushgateway_url: str | None) -> None:
        self.pushgateway_url = pushgateway_url
        self._gateway: Pushgateway | None = None

    def __call__(self, canary: Target, weight: int) -> None:
        if self._gateway is None:
            self._gateway = Pushgateway(self.pushgateway_url, PushJob.ROLLOUT, canary.model_name)
        self._gateway.push(
            [
                gauge(
                    Metric.CANARY_WEIGHT,
                    "Share of the model's traffic sent to the version under rollout, in percent",
                    [MetricLabel.MODEL, MetricLabel.VERSION],
                    [((canary.model_name, canary.model_version), weight)],
                )
            ]
        )

    def status(self) -> dict[str, object]:
        """Pushes done and failed, for the decision log."""
        if self._gateway is None:
            return {"url": self.pushgateway_url, "job": PushJob.ROLLOUT.value, "pushed": 0, "failed": 0}
        return self._gateway.status()
