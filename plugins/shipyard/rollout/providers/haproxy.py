"""The haproxy provider: each version as its clients saw it, at the local backend's load balancer.

Counts come from HAProxy's built-in Prometheus exporter: `haproxy_server_http_responses_total`
of the version's server, by status class (`2xx`, `4xx`, `5xx`, ...), which includes the 502/504
answers HAProxy itself gave on the server's behalf. Latency comes from HAProxy's request log:
the exporter of HAProxy 2.6 has per-server averages and maxima but no histogram, so the p99
is computed exactly from each request's `%Ta` (total active time: first request byte received
to last response byte sent — queueing, connection, retries and the predictor's whole request
handling included).

Like the scrape provider it works on differences between consecutive queries of a target:
the first query is the baseline (no data yet); a counter that went down means HAProxy
restarted and the new value is the increase.
"""

from __future__ import annotations

import math
from pathlib import Path

import httpx

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.local.haproxy import REQUEST_LOG_TAG
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


def request_times(lines: list[str], server: str) -> list[float]:
    """The `%Ta` (ms) of `server`'s requests in request-log lines; other lines are skipped."""
    times = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == REQUEST_LOG_TAG and fields[1] == server:
            active_ms = float(fields[3])
            if active_ms >= 0:  # -1: the request never completed (the client gave up)
                times.append(active_ms)
    return times


class HAProxyProvider:
    """Deltas of HAProxy's per-server counters and request log between consecutive queries."""

    def __init__(self, timeout: float = 5) -> None:
        self._client = httpx.Client(timeout=timeout)
        self._last: dict[str, dict[str, float]] = {}
        self._offsets: dict[str, int] = {}

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

    def _new_lines(self, target: Target) -> list[str]:
        """Complete request-log lines written since this target's previous query."""
        path = Path(target.request_log)
        try:
            with path.open("rb") as f:
                f.seek(self._offsets.get(target.proxy_server, 0))
                chunk = f.read()
        except OSError as e:
            raise ProviderError(f"cannot read HAProxy's request log {path}: {e}") from e
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offsets[target.proxy_server] = self._offsets.get(target.proxy_server, 0) + len(complete)
        return complete.decode(errors="replace").splitlines()

    def query(self, target: Target, window_seconds: float) -> Sample:
        """The increase since the previous query of this target (`window_seconds` is informative)."""
        if not (target.proxy_metrics_url and target.proxy_server and target.request_log):
            raise ProviderError(
                f"{target.role} {target.model_version} is not behind the local backend's HAProxy "
                "(the kserve backend needs metrics.provider 'prometheus')"
            )
        first = target.proxy_server not in self._last
        current = self._responses(target)
        if current is None:
            raise NoDataError(f"no data: HAProxy exports no responses of {target.proxy_server} yet")
        if first:
            self._offsets[target.proxy_server] = Path(target.request_log).stat().st_size
        lines = self._new_lines(target)
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
            p99_ms=percentile(request_times(lines, target.proxy_server), 0.99),
        )
