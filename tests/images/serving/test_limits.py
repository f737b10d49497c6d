"""Request limits before parsing (issue 12 item 7): size → 413, a body that never arrives → 408, counted."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import MODEL_NAME, Predictor, Trained, predictor_process

from shipyard_spec.contract import Metric, Outcome

V1 = f"/v1/models/{MODEL_NAME}:predict"
LIMIT = 100_000
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def limited(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    args = ("--max_request_bytes", str(LIMIT), "--request_body_timeout_seconds", str(BODY_TIMEOUT))
    with predictor_process(trained.model_dir, tmp_path_factory.mktemp("limited"), *args) as p:
        yield p


def _connect(predictor: Predictor) -> socket.socket:
    url = urlparse(predictor.url)
    return socket.create_connection((url.hostname, url.port), timeout=30)


def _head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: predictor", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_declared_length_over_the_limit_is_a_413_before_any_body_byte(predictor: Predictor) -> None:
    """The default limit: a declared Content-Length of 10^12 with a 20-byte body is refused at once."""
    before = predictor.counter(Outcome.CLIENT_ERROR)
    with _connect(predictor) as sock:
        sock.sendall(_head(V1, "Content-Length: 1000000000000") + b'{"instances": [{}]} ')
        status, body = _response(sock)
    assert status == 413
    assert "request size limit" in body["error"]
    assert predictor.counter(Outcome.CLIENT_ERROR) == before + 1


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_sent(limited: Predictor) -> None:
    """The predictor stops reading at the limit: a client streaming 200 MB gets its 413 after about
    the limit, so the body is never held in memory."""
    before = limited.counter(Outcome.CLIENT_ERROR)
    chunk = b"x" * 65536
    sent = 0
    with _connect(limited) as sock:
        sock.sendall(_head(V1, "Transfer-Encoding: chunked"))
        try:
            while sent < 200_000_000:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed
        status, body = _response(sock)
    assert status == 413
    assert str(LIMIT) in body["error"]
    assert sent < 50 * LIMIT  # socket buffers hold a few MB; nowhere near the 200 MB offered
    assert limited.counter(Outcome.CLIENT_ERROR) == before + 1


def test_a_declared_length_that_never_arrives_is_a_408_within_the_body_timeout(limited: Predictor) -> None:
    before = limited.counter(Outcome.CLIENT_ERROR)
    with _connect(limited) as sock:
        start = time.monotonic()
        sock.sendall(_head(V1, "Content-Length: 1000") + b'{"instances": [{}]} ')
        status, body = _response(sock)
        waited = time.monotonic() - start
    assert status == 408
    assert "not received within" in body["error"]
    assert BODY_TIMEOUT <= waited < BODY_TIMEOUT + 5
    assert limited.counter(Outcome.CLIENT_ERROR) == before + 1


def test_a_body_under_the_limit_is_served(
    limited: Predictor, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    status, body = limited.post(V1, {"instances": rows(0, 5)})
    assert (status, len(body["predictions"])) == (200, 5)


def test_one_warning_line_per_refused_request(limited: Predictor) -> None:
    with _connect(limited) as sock:
        sock.sendall(_head(V1, "Content-Length: 999999999") + b"{}")
        assert _response(sock)[0] == 413
    time.sleep(0.2)
    lines = [line for line in limited.output.read_text().splitlines() if "999999999" in line]
    assert len(lines) == 1
    assert "client error 413" in lines[0]


def test_the_whole_request_time_includes_what_happens_before_the_model(
    limited: Predictor, rows: Callable[[int, int], list[dict[str, Any]]]
) -> None:
    """A body that takes 0.6 s to arrive: the front-door histogram sees it, the model-time one does not."""
    whole, model = f"{Metric.HTTP_REQUEST_DURATION}_sum", f"{Metric.REQUEST_DURATION}_sum"
    before = (limited.sample(whole), limited.sample(model))
    body = json.dumps({"instances": rows(0, 1)}).encode()
    with _connect(limited) as sock:
        sock.sendall(_head(V1, f"Content-Length: {len(body)}") + body[:10])
        time.sleep(0.6)
        sock.sendall(body[10:])
        assert _response(sock)[0] == 200
    after = (limited.sample(whole), limited.sample(model))
    # The server's clock starts when the head has arrived, a moment after the client's sleep began.
    assert after[0] - before[0] >= 0.5
    assert after[1] - before[1] < 0.3
