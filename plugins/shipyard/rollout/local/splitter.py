"""A local traffic splitter: an HTTP reverse proxy that forwards each request to one backend by weight.

The embedded stand-in for KServe's traffic split (Knative routes / Gateway API backends).
Each request picks its backend when it arrives (smooth weighted round robin, so a 10 % split
is exactly 1 request in 10) and is served to completion there; a weight change only affects
requests that arrive after it, so moving weights loses nothing. The rollout controller
removes a backend only after setting its weight to 0 and waiting until `in_flight` is 0.

    python -m shipyard.rollout.local.splitter --port 8780

Admin API: `GET /-/routes` → `{"routes": [{name, url, weight, in_flight, requests, failures}]}`;
`PUT /-/routes` with `{"routes": [{name, url, weight}]}` replaces the table atomically.
A request that no backend can take (no weight, connection refused) is answered 502/503.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("shipyard.splitter")

ADMIN_PATH = "/-/routes"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"}
# A kept-alive upstream connection the server closed before our request reached it: safe to resend once.
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Route:
    name: str
    url: str
    weight: int
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    current: int = 0  # smooth weighted round robin state

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("name", "url", "weight", "in_flight", "requests", "failures")}


class RouteTable:
    """The weighted backends; every method is atomic under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}

    def replace(self, routes: list[dict[str, object]]) -> None:
        for route in routes:
            weight = route.get("weight")
            if not isinstance(weight, int) or weight < 0:
                raise ValueError(f"route {route.get('name')!r}: weight {weight!r} is not an integer >= 0")
        with self._lock:
            kept, self._routes = self._routes, {}
            for spec in routes:
                name, url = str(spec["name"]), str(spec["url"])
                same = kept.get(name)
                route = same if same is not None and same.url == url else Route(name, url, 0)
                route.weight = int(spec["weight"])  # type: ignore[call-overload]
                self._routes[name] = route

    def snapshot(self) -> list[dict[str, object]]:
        with self._lock:
            return [route.as_dict() for route in self._routes.values()]

    def acquire(self) -> Route | None:
        """The next backend by smooth weighted round robin (nginx's algorithm); None without weight."""
        with self._lock:
            live = [route for route in self._routes.values() if route.weight > 0]
            if not live:
                return None
            total = sum(route.weight for route in live)
            for route in live:
                route.current += route.weight
            chosen = max(live, key=lambda route: route.current)
            chosen.current -= total
            chosen.in_flight += 1
            chosen.requests += 1
            return chosen

    def release(self, route: Route, failed: bool) -> None:
        with self._lock:
            route.in_flight -= 1
            route.failures += failed


class SplitterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls
    server: SplitterServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), [("Content-Type", "application/json")])

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _admin(self, body: bytes) -> None:
        if self.command == "PUT":
            try:
                self.server.routes.replace(json.loads(body)["routes"])
            except (ValueError, KeyError, TypeError) as e:
                self._send_json(400, {"error": f"bad routes: {e}"})
                return
            log.info("routes now %s", self.server.routes.snapshot())
        self._send_json(200, {"routes": self.server.routes.snapshot()})

    def _exchange(self, url: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection, reused = self.server.connection(url)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as e:
            self.server.drop_connection(url)
            if reused and isinstance(e, STALE_CONNECTION):
                return self._exchange(url, body)  # a fresh connection now: no further retry
            raise
        dropped = HOP_BY_HOP | {"content-length"}
        return (
            response.status,
            [(k, v) for k, v in response.getheaders() if k.lower() not in dropped],
            payload,
        )

    def _proxy(self) -> None:
        body = self._body()
        if self.path == ADMIN_PATH:
            self._admin(body)
            return
        route = self.server.routes.acquire()
        if route is None:
            self._send_json(503, {"error": "no backend has traffic weight"})
            return
        failed = True
        try:
            status, headers, payload = self._exchange(route.url, body)
            failed = status >= 500
            self._send(status, payload, headers)
        except OSError as e:
            log.warning("backend %s at %s failed: %s", route.name, route.url, e)
            self._send_json(502, {"error": f"backend {route.name} at {route.url} failed: {e}"})
        finally:
            self.server.routes.release(route, failed)

    do_GET = do_POST = do_PUT = do_DELETE = _proxy


class SplitterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, SplitterHandler)
        self.routes = RouteTable()
        self._local = threading.local()

    def connection(self, url: str) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's kept-alive connection to `url`, and whether it was used before."""
        pool = self._local.__dict__.setdefault("pool", {})
        if url in pool:
            return pool[url], True
        parsed = urllib.parse.urlsplit(url)
        pool[url] = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        return pool[url], False

    def drop_connection(self, url: str) -> None:
        pool = self._local.__dict__.setdefault("pool", {})
        if url in pool:
            pool.pop(url).close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = SplitterServer((args.host, args.port))
    log.info("splitter listening on %s:%d", args.host, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
