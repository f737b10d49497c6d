"""The haproxy provider: each version as its clients saw it, at the local backend's load balancer.

Counts come from HAProxy's built-in Prometheus exporter: `haproxy_server_http_responses_total`
of the version's server, by status class (`2xx`, `4xx`, `5xx`, ...), which includes the 502/504
answers HAProxy itself gave on the server's behalf. Latency comes from HAProxy's request log
(a fixed-size ring in HAProxy's memory, read through its runtime API): the exporter of HAProxy
2.6 has per-server averages and maxima but no histogram, so the p99 is computed exactly from
each request's `%Ta` (total active time: first request byte received to last response byte
sent — queueing, connection, retries and the predictor's whole request handling included).

Like the scrape provider it works on differences between consecutive queries of a target:
the first query is the baseline (no data yet); a counter that went down means HAProxy
restarted and the new value is the increase. Request lines are new when their request id
(`%rt`, rising within one HAProxy process) is above the last one seen; ids below it mean a
restart, and every line is new. A ring that overflowed between two queries leaves the newest
requests of the window: the p99 of those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import httpx

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import BackendError, NoDataError, ProviderError
from shipyard.rollout.local.haproxy import REQUEST_LOG_TAG, Runtime
from shipyard.rollout.providers import Target, counter_increase, metric_samples

RESPONSES = "haproxy_server_http_responses_total"  # labels proxy, server, code (1xx … 5xx, other)


def percentile(values: list[float], quantile: float) -> float | None:
    """The nearest-rank quantile of `values`; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def responses_of(text: str, server: str, source: str) -> dict[str, float] | None:
    """{status class: cumulative responses} of `backend/server`; None when it is not exported."""
    backend, _, name = server.partition("/")
    counts: dict[str, float] = {}
    for sample, labels, value in metric_samples(text, source):
        if sample == RESPONSES and labels.get("proxy") == backend and labels.get("server") == name:
            counts[labels["code"]] = value
    return counts or None


@dataclass(frozen=True)
class LoggedRequest:
    id: int  # HAProxy's request counter (%rt)
    server: str  # backend/server
    active_ms: float  # %Ta; -1: the request never completed (the client gave up)


def parse_request_log(text: str) -> list[LoggedRequest]:
    """The request lines of `show events` output; other lines are skipped."""
    requests = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == REQUEST_LOG_TAG and fields[1].isdigit():
            requests.append(LoggedRequest(int(fields[1]), fields[2], float(fields[4])))
    return requests


def request_times(requests: list[LoggedRequest], server: str) -> list[float]:
    """The `%Ta` (ms) of `server`'s completed requests."""
    return [r.active_ms for r in requests if r.server == server and r.active_ms >= 0]


class HAProxyProvider:
    """Deltas of HAProxy's per-server counters and request log between consecutive queries."""

    def __init__(self, timeout: float = 5) -> None:
        self._client = httpx.Client(timeout=timeout)
        self._last: dict[str, dict[str, float]] = {}
        self._last_ids: dict[str, int] = {}

    def is_online(self) -> bool:
        """Always: each query says for itself whether the exporter answered."""
        return True

    def _responses(self, target: Target) -> dict[str, float] | None:
        try:
            response = self._client.get(target.proxy_metrics_url)
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise ProviderError(f"cannot read HAProxy's exporter at {target.proxy_metrics_url}: {e}") from e
        return responses_of(response.text, target.proxy_server, target.proxy_metrics_url)

    def _new_requests(self, target: Target) -> list[LoggedRequest]:
        """Request lines logged since this target's previous query (all of them after a restart)."""
        try:
            logged = parse_request_log(Runtime(Path(target.proxy_socket)).request_log())
        except BackendError as e:
            raise ProviderError(f"cannot read HAProxy's request log: {e}") from e
        last = self._last_ids.get(target.proxy_server)
        newest = max((r.id for r in logged), default=-1)
        self._last_ids[target.proxy_server] = newest
        if last is None:
            return []
        if newest < last:  # HAProxy restarted: its request ids start again
            return logged
        return [r for r in logged if r.id > last]

    def query(self, target: Target, window_seconds: float) -> Sample:
        """The increase since the previous query of this target (`window_seconds` is informative)."""
        if not (target.proxy_metrics_url and target.proxy_server and target.proxy_socket):
            raise ProviderError(
                f"{target.role} {target.model_version} is not behind the local backend's HAProxy "
                "(the kserve backend needs metrics.provider 'prometheus')"
            )
        current = self._responses(target)
        if current is None:
            raise NoDataError(f"no data: HAProxy exports no responses of {target.proxy_server} yet")
        logged = self._new_requests(target)
        before = self._last.get(target.proxy_server)
        self._last[target.proxy_server] = current
        if before is None:
            raise NoDataError(
                f"no data yet: first read of {target.role} {target.proxy_server} is the baseline"
            )
        delta = {code: counter_increase(value, before.get(code, 0.0)) for code, value in current.items()}
        return Sample(
            requests=sum(delta.values()),
            server_errors=delta.get("5xx", 0.0),
            client_errors=delta.get("4xx", 0.0),
            p99_ms=percentile(request_times(logged, target.proxy_server), 0.99),
        )
