"""Per-model-version request counters and latencies for canary analysis (names: shipyard_spec.contract).

kserve's own `/metrics` has latency histograms labelled by model name only and no error
counter, so a canary and its stable version cannot be told apart. These families can:

    shipyard_requests_total{model_name, model_version, outcome}  (success | client_error | server_error)
    shipyard_http_request_duration_seconds{model_name, model_version}  whole request, histogram
    shipyard_request_duration_seconds{model_name, model_version}  time inside the model, histogram
    shipyard_feature_out_of_range_total{model_name, model_version, feature}

Requests are counted and timed by `RequestMetricsMiddleware`, the outermost ASGI layer, from
the HTTP status of every prediction request: a body refused for its size, a malformed V2
document, an unknown model name or a batch the model rejects are all `client_error`, and the
duration includes reading and decoding the body, as a client sees it. The model time is
observed by the model itself (predictor.py).

With several uvicorn workers (`--workers N`) each worker is its own process and a scrape
reaches one of them at random. `__main__` then sets PROMETHEUS_MULTIPROC_DIR before the
workers start, and these families are exported summed over all workers (prometheus_client's
multiprocess mode), so the counters a canary analysis reads never jump between workers.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client import Metric as Family
from prometheus_client.multiprocess import MultiProcessCollector

from shipyard_spec.contract import Metric, Outcome

# Family names as prometheus_client's multiprocess merge reports them (counters without _total).
FAMILIES = frozenset(name.removesuffix("_total") for name in Metric)
# Finer than the default buckets at the low end: the predictor answers in about a millisecond.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# The prediction routes of kserve's V1 and V2 protocols; health, metadata and /metrics are not counted.
PREDICTION_PATH = re.compile(r"^/v1/models/[^/]+:predict$|^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
LABELS = ["model_name", "model_version"]


class _WorkersSum:
    """Exports the contract's families summed over every worker's multiprocess file."""

    def __init__(self, directory: str):
        self.directory = directory

    def describe(self) -> list[Family]:
        return []  # names are not known up front; registration must not collect

    def collect(self) -> Iterator[Family]:
        files = glob.glob(os.path.join(self.directory, "*.db"))
        for metric in MultiProcessCollector.merge(files, accumulate=True):
            if metric.name in FAMILIES:
                yield metric


# In multiprocess mode the families are kept out of the default registry (which would show
# this worker's share only) and exported through _WorkersSum instead.
FAMILY_REGISTRY = None if MULTIPROCESS_DIR else REGISTRY
REQUESTS = Counter(
    Metric.REQUESTS, "Prediction requests by outcome", [*LABELS, "outcome"], registry=FAMILY_REGISTRY
)
HTTP_DURATION = Histogram(
    Metric.HTTP_REQUEST_DURATION,
    "Whole prediction request at the predictor's HTTP server: body read to response sent, every status",
    LABELS,
    buckets=BUCKETS,
    registry=FAMILY_REGISTRY,
)
DURATION = Histogram(
    Metric.REQUEST_DURATION,
    "Time from request decoded to response built, inside the model",
    LABELS,
    buckets=BUCKETS,
    registry=FAMILY_REGISTRY,
)
OUT_OF_RANGE = Counter(
    Metric.FEATURE_OUT_OF_RANGE,
    "Feature values outside the range seen in training (scored, not rejected)",
    [*LABELS, "feature"],
    registry=FAMILY_REGISTRY,
)
if MULTIPROCESS_DIR:
    REGISTRY.register(_WorkersSum(MULTIPROCESS_DIR))


@dataclass(frozen=True)
class ModelMetrics:
    """The label children of one model version (label lookup done once, not per request)."""

    outcomes: dict[Outcome, Counter]
    http_duration: Histogram
    duration: Histogram

    def count(self, status: int) -> None:
        self.outcomes[outcome_of(status)].inc()


def outcome_of(status: int) -> Outcome:
    if status >= 500:
        return Outcome.SERVER_ERROR
    if status >= 400:
        return Outcome.CLIENT_ERROR
    return Outcome.SUCCESS


@functools.cache
def for_model(model_name: str, model_version: str) -> ModelMetrics:
    """Children for one model version; every outcome starts at 0 so rates exist before the first error."""
    return ModelMetrics(
        outcomes={outcome: REQUESTS.labels(model_name, model_version, outcome) for outcome in Outcome},
        http_duration=HTTP_DURATION.labels(model_name, model_version),
        duration=DURATION.labels(model_name, model_version),
    )


@dataclass(frozen=True)
class ServedModel:
    """The one model version this process serves: every prediction request is counted under it."""

    name: str
    version: str


class RequestMetricsMiddleware:
    """ASGI middleware: outcome and whole duration of every prediction request, by response status.

    Outermost layer, so it sees what a client sees: 4xx answered by kserve or FastAPI before
    the model is called, the request limits' 413/408, and exceptions that end in a 500.
    """

    def __init__(self, app: Any, served: ServedModel):
        self.app = app
        self.metrics = for_model(served.name, served.version)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not PREDICTION_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping the app becomes a 500

        async def observe(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self.metrics.count(status)
            self.metrics.http_duration.observe(time.perf_counter() - start)
