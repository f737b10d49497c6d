"""The rollout's figures on the dashboards: the canary's traffic share and the shadow comparison.

The controller knows both: it sets the weight and judges the shadow comparison. It runs in the
triggerer, inside a trigger that ends with the decision, so nothing long-lived is left to be
scraped; the figures are pushed to the Pushgateway instead (`shipyard_spec.pushgateway`, grouped
by the served model name):

- job `contract.PushJob.ROLLOUT`: `Metric.CANARY_WEIGHT` at every change (each step's weight,
  100 at promotion, 0 at rollback);
- job `contract.PushJob.SHADOW`: each judged shadow comparison that has figures (replay, live):
  decision-flip ratio, |score difference| mean and p99, score PSI, and the pairs compared as
  `Metric.SHADOW_REQUESTS{outcome="paired"}` — the names and labels the mirroring predictor
  exports while it mirrors, so one panel shows both.

The Pushgateway keeps the last values until the next rollout of the model replaces them, and
Prometheus's scrapes of it make them a series over time. Never fails the rollout: a failed push
is logged and counted, and the counts go into the decision log (`metrics_push`).
"""

from __future__ import annotations

from prometheus_client.core import Metric as MetricFamily

from shipyard.rollout.providers import Target
from shipyard.rollout.shadow import ShadowCheck
from shipyard_spec.contract import Metric, MetricLabel, PushJob, ShadowOutcome
from shipyard_spec.pushgateway import Pushgateway, gauge

MODEL_VERSION = [MetricLabel.MODEL, MetricLabel.VERSION]


class RolloutFigures:
    """The controller's sinks (`weight`, `shadow`) for one rollout; one Pushgateway group per job."""

    def __init__(self, pushgateway_url: str | None) -> None:
        self.pushgateway_url = pushgateway_url
        self._gateways: dict[PushJob, Pushgateway] = {}

    def _push(self, job: PushJob, canary: Target, families: list[MetricFamily]) -> None:
        if job not in self._gateways:
            self._gateways[job] = Pushgateway(self.pushgateway_url, job, canary.model_name)
        self._gateways[job].push(families)

    def weight(self, canary: Target, weight: int) -> None:
        """The canary's traffic share changed (0-100)."""
        labels = (canary.model_name, canary.model_version)
        self._push(PushJob.ROLLOUT, canary, [
            gauge(Metric.CANARY_WEIGHT, "Share of the model's traffic sent to the version under rollout, "
                  "in percent", MODEL_VERSION, [(labels, weight)]),
        ])  # fmt: skip

    def shadow(self, canary: Target, check: ShadowCheck) -> None:
        """A shadow comparison was judged; one without figures (no logs, an error) pushes nothing."""
        figures = check.figures
        if figures is None:
            return
        labels = (canary.model_name, canary.model_version)
        self._push(PushJob.SHADOW, canary, [
            gauge(Metric.SHADOW_DECISION_FLIP_RATIO, "Share of compared requests whose decision flips",
                  MODEL_VERSION, [(labels, figures.decision_flip_ratio)]),
            gauge(Metric.SHADOW_SCORE_ABS_DIFF, "|challenger score - champion score| by statistic",
                  [*MODEL_VERSION, MetricLabel.STATISTIC],
                  [((*labels, "mean"), figures.mean_abs_diff), ((*labels, "p99"), figures.p99_abs_diff)]),
            gauge(Metric.SHADOW_SCORE_PSI, "PSI of the challenger's scores against the champion's",
                  MODEL_VERSION, [(labels, figures.score_psi)]),
            gauge(Metric.SHADOW_REQUESTS, "Requests scored by both versions in the last comparison",
                  [*MODEL_VERSION, MetricLabel.OUTCOME], [((*labels, ShadowOutcome.PAIRED), figures.rows)]),
        ])  # fmt: skip

    def status(self) -> list[dict[str, object]]:
        """Pushes done and failed per job that had something to push, for the decision log."""
        return [gateway.status() for gateway in self._gateways.values()]
