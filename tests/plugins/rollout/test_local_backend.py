"""Pieces of the local backend that need no process: the HAProxy configuration it writes, where
its runtime socket lives, and the log lines a failed predictor's reason carries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipyard.rollout.backends.local import log_tail
from shipyard.rollout.local.haproxy import (
    SOCKET_PATH_MAX,
    Server,
    ServerSettings,
    render_config,
    socket_path_for,
)

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
