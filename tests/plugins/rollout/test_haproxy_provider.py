"""The haproxy provider's arithmetic on HAProxy's own output: the exporter's per-server response
counters and the request log's `%Ta`, differences between consecutive reads (the whole path,
against a real HAProxy, is in test_local_rollout.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target
from shipyard.rollout.providers.haproxy import HAProxyProvider, percentile, request_times


def exporter(ok: int, refused: int, failed: int) -> str:
    """haproxy_server_http_responses_total as HAProxy 2.6's exporter writes it (plus another server)."""
    lines = ["# TYPE haproxy_server_http_responses_total counter"]
    for code, value in (("1xx", 0), ("2xx", ok), ("3xx", 0), ("4xx", refused), ("5xx", failed), ("other", 0)):
        for server, count in (("v2-pid9", value), ("v1-pid8", 999)):
            labels = f'proxy="predictors",server="{server}",code="{code}"'
            lines.append(f"haproxy_server_http_responses_total{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


def log_lines(server: str, times: list[int]) -> str:
    return "".join(f"shipyard-request predictors/{server} 200 {t} 0 ----\n" for t in times)


@pytest.fixture
def haproxy_output(tmp_path) -> Iterator[tuple[Target, list[str]]]:
    """An exporter endpoint serving body[0], and a request log; yields (canary target, body)."""
    body = [exporter(0, 0, 0)]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            payload = body[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    log = tmp_path / "requests.log"
    log.write_text(log_lines("v2-pid9", [900, 900]))  # before the baseline: not counted
    target = Target(
        "canary",
        "m",
        "2",
        proxy_metrics_url=f"http://127.0.0.1:{server.server_address[1]}/metrics",
        proxy_server="predictors/v2-pid9",
        request_log=str(log),
    )
    try:
        yield target, body
    finally:
        server.shutdown()
        server.server_close()


def test_counts_by_status_class_and_p99_of_request_times_since_the_previous_read(haproxy_output):
    target, body = haproxy_output
    provider = HAProxyProvider(timeout=1)
    with pytest.raises(NoDataError, match="baseline"):
        provider.query(target, 1)

    body[0] = exporter(ok=90, refused=8, failed=2)
    with open(target.request_log, "a") as log:
        log.write(log_lines("v2-pid9", [5] * 99 + [400]) + log_lines("v1-pid8", [5000]))
        log.write("Server predictors/v2-pid9 is UP, reason: Layer7 check passed\n")
        log.write("shipyard-request predictors/v2-pid9 200 7")  # not complete yet: next time
    assert provider.query(target, 1) == Sample(requests=100, server_errors=2, client_errors=8, p99_ms=5)

    body[0] = exporter(ok=91, refused=8, failed=2)
    with open(target.request_log, "a") as log:
        log.write(" 0 ----\n")
    assert provider.query(target, 1) == Sample(requests=1, server_errors=0, client_errors=0, p99_ms=7)

    body[0] = exporter(ok=3, refused=0, failed=0)  # HAProxy restarted: counters start again
    assert provider.query(target, 1) == Sample(requests=3, server_errors=0, client_errors=0, p99_ms=None)


def test_a_target_not_behind_haproxy_is_an_error_not_no_data():
    with pytest.raises(ProviderError, match=r"needs metrics\.provider 'prometheus'") as raised:
        HAProxyProvider().query(Target("canary", "m", "2", revision="m-00002"), 1)
    assert not isinstance(raised.value, NoDataError)


def test_request_times_skip_other_servers_other_lines_and_unfinished_requests():
    lines = ["shipyard-request predictors/a 200 12 0 ----", "shipyard-request predictors/b 200 99 0 ----",
             "shipyard-request predictors/a -1 -1 0 CD--", "[WARNING] something"]  # fmt: skip
    assert request_times(lines, "predictors/a") == [12.0]
    assert percentile([], 0.99) is None
    assert percentile([float(v) for v in range(1, 101)], 0.99) == 99
