"""HAProxy as the local backend's load balancer: its configuration and its runtime API.

The embedded stand-in for KServe's traffic split (Knative routes / Gateway API backends) is a
real load balancer, Debian's `haproxy` 2.6 (`make haproxy`). One HAProxy per pipeline:

- frontend `predict` on the pipeline's client port → backend `predictors`, weighted round
  robin; each predictor is one server named `v<version>-pid<pid>`;
- active health checks (`GET /v2/health/ready`, the predictor's own readiness), and a refused
  connection from real traffic takes a server out at once (`observe layer4`);
- a request that got no answer (refused, reset, empty, timed out after `timeout server`) is
  sent again, to another server (`retry-on`, `option redispatch`): predictions are pure, so
  resending is safe (at worst a prediction is logged twice);
- frontend `metrics` on its own port: HAProxy's built-in Prometheus exporter (per-server
  response counters by status class);
- one line per request in an in-memory ring (`ring requests`, the request log, read with the
  runtime API's `show events requests`): request id, backend/server, status, total active
  time `%Ta` (first request byte to last response byte, as the client saw it), retries and
  termination state. The exporter of HAProxy 2.6 has per-server averages, no histograms, so
  the p99 comes from these lines. The ring has a fixed size (`request_log_bytes`): the newest
  lines overwrite the oldest, so the log never grows, on disk or in memory.

The runtime API (stats socket, `level admin`) adds and removes servers and changes weights
without a reload, so no connection is dropped by a change. `render_config` is pure; the
`Runtime` class speaks to the socket.
"""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.rollout.errors import BackendError

BACKEND = "predictors"
# A backup server (no health check) pointing at the stable predictor: HAProxy uses it only when
# every checked server is down. A stable predictor too busy to answer its check in time is
# slow, not dead; without this, HAProxy would answer 503 to every client instead.
LAST_RESORT = "last-resort"
HEALTH_PATH = "/v2/health/ready"
REQUEST_LOG_TAG = "shipyard-request"
REQUEST_RING = "requests"
# The request log line: tag, request id (rising, per HAProxy process), backend/server, HTTP
# status, total active ms, retries, termination state.
LOG_FORMAT = f"{REQUEST_LOG_TAG} %rt %b/%s %ST %Ta %rc %tsc"
SOCKET_PATH_MAX = 97  # HAProxy 2.6 refuses a longer `stats socket` path


def socket_path_for(state_dir: Path) -> Path:
    """The runtime API socket: in the state directory, or — when that path is too long for
    HAProxy — a name derived from it in the temporary directory (every process finds the same)."""
    path = state_dir / "haproxy.sock"
    if len(str(path)) <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"shipyard-haproxy-{digest}.sock"


@dataclass(frozen=True)
class ServerSettings:
    """How HAProxy watches one predictor and gives up on it."""

    check_interval_ms: int
    check_timeout_ms: int
    server_timeout_ms: int
    retries: int

    def server_line(self) -> str:
        """The options of every predictor server (static in the file or added at runtime alike):
        one failed check (no answer within `timeout check`) takes a server out, so a hung
        predictor gets no new request after at most interval + check timeout; two good ones
        bring it back. A wrongly marked-down stable still serves through the last-resort backup."""
        return (
            f"check inter {self.check_interval_ms} fall 1 rise 2 "
            "observe layer4 error-limit 1 on-error mark-down"
        )


@dataclass(frozen=True)
class Server:
    """One predictor as a server of the `predictors` backend."""

    name: str
    port: int
    weight: int


def render_config(
    *,
    port: int,
    metrics_port: int,
    socket_path: Path,
    settings: ServerSettings,
    servers: list[Server],
    stable_port: int | None = None,
    request_log_bytes: int = 4 << 20,
) -> str:
    """The whole haproxy.cfg: the servers recorded in the state file, with their weights, and
    the last-resort backup on the stable predictor (disabled while there is none)."""
    last_resort = f"127.0.0.1:{stable_port} backup" if stable_port else "127.0.0.1:1 backup disabled"
    options = settings.server_line()
    lines = [
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        f"    log ring@{REQUEST_RING} local0 info",
        "    nbthread 1",
        "",
        f"ring {REQUEST_RING}",
        "    format raw",
        "    maxlen 256",
        f"    size {request_log_bytes}",
        "",
        "defaults",
        "    mode http",
        "    log global",
        f'    log-format "{LOG_FORMAT}"',
        "    option http-buffer-request",  # the whole body is kept so the request can be sent again
        f"    retries {settings.retries}",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response junk-response response-timeout",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout http-request 10s",
        f"    timeout server {settings.server_timeout_ms}ms",
        "    timeout queue 5s",
        f"    timeout check {settings.check_timeout_ms}ms",
        "",
        "frontend predict",
        f"    bind 127.0.0.1:{port}",
        f"    default_backend {BACKEND}",
        "",
        "frontend metrics",
        "    no log",
        f"    bind 127.0.0.1:{metrics_port}",
        "    http-request use-service prometheus-exporter",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        f"    option httpchk GET {HEALTH_PATH}",
        "    http-check expect status 200",
        *(f"    server {s.name} 127.0.0.1:{s.port} weight {s.weight} {options}" for s in servers),
        f"    server {LAST_RESORT} {last_resort}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ServerStatus:
    name: str
    weight: int  # the configured (user) weight
    status: str  # UP, DOWN, MAINT, "UP 1/2" while changing ...
    sessions: int  # requests in flight to the server (scur)
    queued: int  # requests waiting for it (qcur)
    check: str = ""  # the last health check: status and detail, e.g. "L7TOUT in 1001ms"


class Runtime:
    """HAProxy's runtime API over its stats socket (one command per connection)."""

    def __init__(self, socket_path: Path, timeout: float = 5) -> None:
        if len(str(socket_path)) > SOCKET_PATH_MAX:
            raise BackendError(f"HAProxy socket path {socket_path} is longer than {SOCKET_PATH_MAX} bytes")
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, command: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.socket_path))
                s.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as e:
            raise BackendError(f"HAProxy runtime API at {self.socket_path} failed on {command!r}: {e}") from e
        return b"".join(chunks).decode()

    def add_server(self, server: Server, settings: ServerSettings) -> None:
        """A new predictor, health-checked from the start; dynamic servers start in maintenance."""
        name = f"{BACKEND}/{server.name}"
        added = self.command(
            f"add server {name} 127.0.0.1:{server.port} weight {server.weight} {settings.server_line()}"
        )
        if "New server registered" not in added and "Already exists" not in added:
            raise BackendError(f"HAProxy refused server {name}: {added.strip()}")
        self._expect_empty(f"enable health {name}")
        self._expect_empty(f"enable server {name}")

    def point_last_resort(self, port: int) -> None:
        """The backup server to the stable predictor on `port` (new connections go there)."""
        self._expect_empty(
            f"set server {BACKEND}/{LAST_RESORT} addr 127.0.0.1 port {port}",
            "IP changed",
            "no need to change",
        )
        self._expect_empty(f"enable server {BACKEND}/{LAST_RESORT}")

    def set_weight(self, name: str, weight: int) -> None:
        self._expect_empty(f"set server {BACKEND}/{name} weight {weight}")

    def remove_server(self, name: str) -> bool:
        """Put the server in maintenance and delete it; False while it still holds connections."""
        self._expect_empty(f"disable server {BACKEND}/{name}")
        answer = self.command(f"del server {BACKEND}/{name}").strip()
        if answer in {"Server deleted.", "No such server."} or answer.startswith("No such server"):
            return True
        if "connection" in answer or "queue" in answer:
            return False
        raise BackendError(f"HAProxy refused to delete {BACKEND}/{name}: {answer}")

    def servers(self) -> dict[str, ServerStatus]:
        """Every server of the `predictors` backend as `show stat` reports it (a server deleted
        meanwhile is left out)."""
        text = self.command(f"show stat {BACKEND} 4 -1").lstrip("# ")
        found = {}
        for row in csv.DictReader(io.StringIO(text)):
            name = row.get("svname")
            if name in (None, "", "BACKEND", "FRONTEND", LAST_RESORT):
                continue
            weight = self.weight(name)
            if weight is not None:
                check = f"{row.get('check_status') or ''} in {row.get('check_duration') or '?'}ms"
                found[name] = ServerStatus(
                    name, weight, row["status"], int(row["scur"] or 0), int(row["qcur"] or 0), check
                )
        return found

    def request_log(self) -> str:
        """The request lines the ring still holds, oldest first."""
        return self.command(f"show events {REQUEST_RING}")

    def weight(self, name: str) -> int | None:
        """The current (user) weight of a server: `get weight` answers `<current> (initial <n>)`;
        None when there is no such server."""
        answer = self.command(f"get weight {BACKEND}/{name}").strip()
        if answer.startswith("No such server"):
            return None
        try:
            return int(answer.split()[0])
        except (IndexError, ValueError) as e:
            raise BackendError(f"HAProxy: unexpected weight of {name}: {answer!r}") from e

    def _expect_empty(self, command: str, *accepted: str) -> None:
        """Run a command whose success is a blank answer (or one starting with `accepted`)."""
        answer = self.command(command).strip()
        if answer and not answer.startswith(accepted):
            raise BackendError(f"HAProxy refused {command!r}: {answer}")
