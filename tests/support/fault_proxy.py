"""A loopback HTTP proxy in front of a real server that fails requests on demand.

EMULATED boundary: the network between a client and the real MLflow server. The proxy
forwards every request unchanged unless told to fail: the next `first` requests, or every
request once `after` more have been forwarded (until `heal()`), are answered with `status`
(or, with `status=None`, the connection is closed without an answer). Standard library only.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.requests: list[tuple[str, str, int | None]] = []  # (method, path, status answered)
        self._lock = threading.Lock()
        self._first = 0
        self._after: int | None = None
        self._status: int | None = 503
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, *, first: int = 0, after: int | None = None, status: int | None = 503) -> None:
        with self._lock:
            self._first, self._after, self._status = first, after, status

    def heal(self) -> None:
        self.fail()

    def _should_fail(self) -> bool:
        with self._lock:
            if self._first > 0:
                self._first -= 1
                return True
            if self._after is None:
                return False
            if self._after > 0:
                self._after -= 1
                return False
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet test output
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._should_fail():
                    status = proxy._status
                    proxy.requests.append((self.command, self.path, status))
                    if status is None:
                        self.close_connection = True
                        return
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = proxy.upstream
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                proxy.requests.append((self.command, self.path, answer.status))
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
