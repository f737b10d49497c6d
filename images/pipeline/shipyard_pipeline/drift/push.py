"""The drift check's PSI per feature on the dashboards: pushed to the Pushgateway after each check.

The drift step is a batch job (a pod or a subprocess that ends), so it pushes
(`shipyard_spec.pushgateway`, job `contract.PushJob.DRIFT`, grouped by the served model name)
instead of waiting to be scraped; each push replaces the previous check's figures. A push that
fails is logged and counted in the step result (`metrics_push`), never failing the step.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily

from shipyard_spec.contract import Metric, MetricLabel, PushJob, serving_name
from shipyard_spec.pushgateway import Pushgateway, gauge


def psi_gauge(result: dict[str, Any]) -> GaugeMetricFamily:
    """`shipyard_drift_psi{model, version, feature}` from a checked step result (pure)."""
    model = serving_name(result["pipeline"])
    version = str(result["model_version"])
    return gauge(
        Metric.DRIFT_PSI,
        "PSI of the live feature values against the model version's reference profile (last drift check)",
        [MetricLabel.MODEL, MetricLabel.VERSION, MetricLabel.FEATURE],
        (((model, version, feature), value) for feature, value in sorted(result["psi"].items())),
    )


def push_psi(result: dict[str, Any], pushgateway: Pushgateway | None = None) -> dict[str, object]:
    """Push the PSI of a result that has one; what was pushed, for the result's `metrics_push`."""
    pushgateway = pushgateway or Pushgateway.from_env(PushJob.DRIFT, serving_name(result["pipeline"]))
    if result.get("psi"):
        pushgateway.push([psi_gauge(result)])
    return pushgateway.status()
