"""Pieces of the local backend: the HAProxy configuration it writes, where its runtime socket
lives, the log lines a failed predictor's reason carries, and the request log's fixed size
(a real HAProxy in front of a stand-in HTTP server)."""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from support.servers import free_port

from shipyard.rollout.backends.local import log_tail
from shipyard.rollout.local.haproxy import (
    SOCKET_PATH_MAX,
    Runtime,
    Server,
    ServerSettings,
    render_config,
    socket_path_for,
)
from shipyard.rollout.providers.haproxy import parse_request_log

SETTINGS = ServerSettings(check_interval_ms=1000, check_timeout_ms=1000, server_timeout_ms=5000, retries=2)


def test_the_configuration_keeps_the_recorded_servers_and_weights_and_haproxy_accepts_it(tmp_path):
    config = render_config(
        port=18080,
        metrics_port=18081,
        socket_path=tmp_path / "haproxy.sock",
        settings=SETTINGS,
        servers=[Server("v1-pid10", 18100, 90), Server("v2-pid11", 18101, 10)],
        stable_port=18100,
    )
    assert "server v1-pid10 127.0.0.1:18100 weight 90 check inter 1000 fall 1 rise 2" in config
    assert "server v2-pid11 127.0.0.1:18101 weight 10 check" in config
    assert "server last-resort 127.0.0.1:18100 backup\n" in config  # stable, no health check
    assert "retry-on conn-failure empty-response junk-response response-timeout" in config
    assert "timeout server 5000ms" in config
    assert "timeout check 1000ms" in config
    (tmp_path / "haproxy.cfg").write_text(config)
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_state_directory_too_deep_for_haproxy_gets_a_short_derived_socket(tmp_path):
    shallow = Path("/tmp/s")
    assert socket_path_for(shallow) == shallow / "haproxy.sock"
    deep = tmp_path / ("d" * 120)
    path = socket_path_for(deep)
    assert len(str(path)) <= SOCKET_PATH_MAX
    assert path == socket_path_for(deep)  # every process finds the same one
    assert path != socket_path_for(tmp_path / ("e" * 120))


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\n'
            "shipyard_serving.model_dir.ModelDirError: cannot unpickle /m/model.pkl\n",
            'Traceback (most recent call last): | File "x.py", line 1 | '
            "shipyard_serving.model_dir.ModelDirError: cannot unpickle /m/model.pkl",
        ),
        (
            "INFO started\n/v/routing.py:161: FastAPIDeprecationWarning: ORJSONResponse is deprecated\n"
            "  response = await f(request)\nINFO: Shutting down\n",
            "INFO started | INFO: Shutting down",
        ),
        ("", "is empty"),
    ],
)
def test_the_log_tail_keeps_what_explains_an_exit(tmp_path, log, expected):
    path = tmp_path / "predictor.log"
    path.write_text(log)
    assert expected in log_tail(path)


def test_the_request_log_keeps_the_newest_requests_in_a_fixed_size_and_writes_nothing_to_disk(tmp_path):
    """Issue 12: the request log grew without bound. 3,000 requests through a 16 KiB ring: only
    the newest few hundred lines are kept, the newest last; nothing in the state directory grows."""

    class Ok(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=upstream.serve_forever, args=(0.05,), daemon=True).start()
    port, socket_path = free_port(), tmp_path / "haproxy.sock"
    (tmp_path / "haproxy.cfg").write_text(
        render_config(port=port, metrics_port=free_port(), socket_path=socket_path, settings=SETTINGS,
                      servers=[Server("v1-pid1", upstream.server_address[1], 100)], request_log_bytes=16384)
    )  # fmt: skip
    with (tmp_path / "haproxy.log").open("wb") as out:
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")], stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        runtime = Runtime(socket_path)
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client() as client:
            statuses = {client.get(f"http://127.0.0.1:{port}/").status_code for _ in range(3000)}
        assert statuses == {200}
        logged = parse_request_log(runtime.request_log())
        assert 100 < len(logged) < 400  # ~60 bytes a line in 16 KiB
        assert logged[-1].id > 2900
        assert logged[-1].server == "predictors/v1-pid1"
        assert [r.id for r in logged] == sorted(r.id for r in logged)
        assert sum(f.stat().st_size for f in tmp_path.iterdir() if f.is_file()) < 20_000
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        upstream.shutdown()
        upstream.server_close()
