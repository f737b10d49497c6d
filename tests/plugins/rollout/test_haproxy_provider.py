"""The haproxy provider's arithmetic on HAProxy's own output: the exporter's per-server response
counters and the request log's `%Ta` (the ring `show events` prints on the runtime API socket),
differences between consecutive reads (the whole path, against a real HAProxy, is in
test_local_rollout.py; the ring's bound in test_local_backend.py)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest
from http_stub import http_server, text_handler

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target
from shipyard.rollout.providers.haproxy import HAProxyProvider, parse_request_log, percentile, request_times


def exporter(ok: int, refused: int, failed: int) -> str:
    """haproxy_server_http_responses_total as HAProxy 2.6's exporter writes it (plus another server)."""
    lines = ["# TYPE haproxy_server_http_responses_total counter"]
    for code, value in (("1xx", 0), ("2xx", ok), ("3xx", 0), ("4xx", refused), ("5xx", failed), ("other", 0)):
        for server, count in (("v2-pid9", value), ("v1-pid8", 999)):
            labels = f'proxy="predictors",server="{server}",code="{code}"'
            lines.append(f"haproxy_server_http_responses_total{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


def log_lines(server: str, times: list[int], first_id: int) -> str:
    return "".join(
        f"shipyard-request {first_id + n} predictors/{server} 200 {t} 0 ----\n" for n, t in enumerate(times)
    )


@pytest.fixture
def haproxy_output(tmp_path) -> Iterator[tuple[Target, list[str], list[str]]]:
    """An exporter endpoint serving body[0], and a runtime API socket printing ring[0] for
    `show events requests`; yields (canary target, body, ring)."""
    body = [exporter(0, 0, 0)]
    ring = [log_lines("v2-pid9", [900, 900], first_id=0)]  # before the baseline: not counted

    class Ring(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            assert self.rfile.readline() == b"show events requests\n"
            self.wfile.write(ring[0].encode())

    runtime = socketserver.ThreadingUnixStreamServer(str(tmp_path / "haproxy.sock"), Ring)
    threading.Thread(target=runtime.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with http_server(text_handler(body)) as url:
            target = Target(
                "canary", "m", "2", proxy_metrics_url=f"{url}/metrics", proxy_server="predictors/v2-pid9",
                proxy_socket=str(runtime.server_address),
            )  # fmt: skip
            yield target, body, ring
    finally:
        runtime.shutdown()
        runtime.server_close()


def test_counts_by_status_class_and_p99_of_request_times_since_the_previous_read(haproxy_output):
    target, body, ring = haproxy_output
    provider = HAProxyProvider(timeout=1)
    with pytest.raises(NoDataError, match="baseline"):
        provider.query(target, 1)

    body[0] = exporter(ok=90, refused=8, failed=2)
    ring[0] += log_lines("v2-pid9", [5] * 99 + [400], first_id=2) + log_lines("v1-pid8", [5000], first_id=102)
    assert provider.query(target, 1) == Sample(requests=100, server_errors=2, client_errors=8, p99_ms=5)

    # The ring overflowed: only the newest lines are left, the ones already read are not counted again.
    body[0] = exporter(ok=91, refused=8, failed=2)
    ring[0] = log_lines("v2-pid9", [5], first_id=101) + log_lines("v2-pid9", [7], first_id=103)
    assert provider.query(target, 1) == Sample(requests=1, server_errors=0, client_errors=0, p99_ms=7)

    body[0] = exporter(ok=3, refused=0, failed=0)  # HAProxy restarted: counters and ids start again
    ring[0] = log_lines("v2-pid9", [1, 2, 3], first_id=0)
    assert provider.query(target, 1) == Sample(requests=3, server_errors=0, client_errors=0, p99_ms=3)


def test_a_target_not_behind_haproxy_is_an_error_not_no_data():
    with pytest.raises(ProviderError, match=r"needs metrics\.provider 'prometheus'") as raised:
        HAProxyProvider().query(Target("canary", "m", "2", revision="m-00002"), 1)
    assert not isinstance(raised.value, NoDataError)


def test_request_times_skip_other_servers_other_lines_and_unfinished_requests():
    text = "\n".join([
        "shipyard-request 1 predictors/a 200 12 0 ----", "shipyard-request 2 predictors/b 200 99 0 ----",
        "shipyard-request 3 predictors/a -1 -1 0 CD--", "[WARNING] something",
    ])  # fmt: skip
    assert request_times(parse_request_log(text), "predictors/a") == [12.0]
    assert percentile([], 0.99) is None
    assert percentile([float(v) for v in range(1, 101)], 0.99) == 99
