"""Per-model-version request counters and latency for canary analysis (names fixed by docs/architecture.md).

kserve's own `/metrics` has latency histograms labelled by model name only and no error
counter, so a canary and its stable version cannot be told apart. These two families can:

    shipyard_requests_total{model_name, model_version, outcome}  (success | client_error | server_error)
    shipyard_request_duration_seconds{model_name, model_version}  histogram

With several uvicorn workers (`--workers N`) each worker is its own process and a scrape
reaches one of them at random. `__main__` then sets PROMETHEUS_MULTIPROC_DIR before the
workers start, and these families are exported summed over all workers (prometheus_client's
multiprocess mode), so the counters a canary analysis reads never jump between workers.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "shipyard_"
OUTCOMES = ("success", "client_error", "server_error")
# Finer than the default buckets at the low end: the predictor answers in about a millisecond.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class _WorkersSum:
    """Exports the shipyard_* families summed over every worker's multiprocess file."""

    def __init__(self, directory: str):
        self.directory = directory

    def describe(self) -> list[Metric]:
        return []  # names are not known up front; registration must not collect

    def collect(self) -> Iterator[Metric]:
        files = glob.glob(os.path.join(self.directory, "*.db"))
        for metric in MultiProcessCollector.merge(files, accumulate=True):
            if metric.name.startswith(PREFIX):
                yield metric


# In multiprocess mode the families are kept out of the default registry (which would show
# this worker's share only) and exported through _WorkersSum instead.
_registry = None if MULTIPROCESS_DIR else REGISTRY
REQUESTS = Counter(
    "shipyard_requests",
    "Prediction requests by outcome",
    ["model_name", "model_version", "outcome"],
    registry=_registry,
)
DURATION = Histogram(
    "shipyard_request_duration_seconds",
    "Time from request decoded to response built, inside the model",
    ["model_name", "model_version"],
    buckets=BUCKETS,
    registry=_registry,
)
if MULTIPROCESS_DIR:
    REGISTRY.register(_WorkersSum(MULTIPROCESS_DIR))


@dataclass(frozen=True)
class ModelMetrics:
    """The label children of one model version (label lookup done once, not per request)."""

    success: Counter
    client_error: Counter
    server_error: Counter
    duration: Histogram


@functools.cache
def for_model(model_name: str, model_version: str) -> ModelMetrics:
    """Children for one model version; every outcome starts at 0 so rates exist before the first error."""
    counters = {outcome: REQUESTS.labels(model_name, model_version, outcome) for outcome in OUTCOMES}
    return ModelMetrics(**counters, duration=DURATION.labels(model_name, model_version))
