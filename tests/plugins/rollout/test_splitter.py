"""The local splitter: exact weighted split, atomic route changes, and no request lost by a switch.

Backends here are small stdlib HTTP servers (fast, deterministic); the predictor-backed runs
in test_local_rollout.py check the same under real models."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shipyard.rollout.local.load import LoadDriver
from shipyard.rollout.local.splitter import SplitterServer


class NamedBackend(BaseHTTPRequestHandler):
    """Answers every request with its server's name after a short think time."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(0.005)
        body = json.dumps({"served_by": self.server.name}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(server: ThreadingHTTPServer) -> str:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def stack() -> Iterator[tuple[str, dict[str, str]]]:
    """A splitter and two named backends; yields (splitter URL, {name: backend URL})."""
    servers = []
    backends = {}
    for name in ("stable", "canary"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), NamedBackend)
        server.name = name
        servers.append(server)
        backends[name] = serve(server)
    splitter = SplitterServer(("127.0.0.1", 0))
    servers.append(splitter)
    try:
        yield serve(splitter), backends
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def put_routes(url: str, backends: dict[str, str], weights: dict[str, int]) -> httpx.Response:
    table = [{"name": n, "url": backends[n], "weight": w} for n, w in weights.items()]
    return httpx.put(f"{url}/-/routes", json={"routes": table})


@pytest.mark.parametrize("canary_weight", [0, 10, 25, 50, 100])
def test_split_is_exact_per_hundred_requests(stack, canary_weight):
    url, backends = stack
    put_routes(url, backends, {"stable": 100 - canary_weight, "canary": canary_weight}).raise_for_status()
    with httpx.Client() as client:
        served = Counter(
            client.post(f"{url}/v1/models/m:predict", json={}).json()["served_by"] for _ in range(100)
        )
    assert served["canary"] == canary_weight
    assert served["stable"] == 100 - canary_weight


def test_no_backend_with_weight_is_a_503_not_a_hang(stack):
    url, backends = stack
    put_routes(url, backends, {"stable": 0}).raise_for_status()
    response = httpx.post(f"{url}/v1/models/m:predict", json={})
    assert response.status_code == 503
    assert "no backend has traffic weight" in response.text


def test_bad_weights_are_refused_and_the_table_kept(stack):
    url, backends = stack
    put_routes(url, backends, {"stable": 100}).raise_for_status()
    response = put_routes(url, backends, {"stable": -5})
    assert response.status_code == 400
    assert "weight -5 is not an integer >= 0" in response.text
    assert [r["weight"] for r in httpx.get(f"{url}/-/routes").json()["routes"]] == [100]


def test_switching_weights_under_steady_load_loses_no_request(stack):
    url, backends = stack
    put_routes(url, backends, {"stable": 100, "canary": 0}).raise_for_status()
    with LoadDriver(url, "m", [{"x": 1}], rps=200, workers=16) as load:
        for weight in [10, 25, 50, 100, 0, 50, 100] * 3:  # 21 switches in about 2 s
            put_routes(url, backends, {"stable": 100 - weight, "canary": weight}).raise_for_status()
            time.sleep(0.1)
    assert load.failures == []
    assert set(load.outcomes) == {"200"}
    assert load.outcomes["200"] > 300
