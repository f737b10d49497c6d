"""The local backend (embedded default): predictor processes behind one HAProxy per pipeline.

Stable and canary run as `python -m shipyard_serving` in the serving virtualenv
(`SHIPYARD_SERVING_PYTHON`), each on its own free port, serving under the pipeline's served
name (`contract.serving_name`, as KServe names the InferenceService). HAProxy
(`shipyard.rollout.local.haproxy`) owns the pipeline's client port and splits by weight;
weights and servers change through its runtime API. Processes are started in their own
session so they outlive the Airflow task that started them (the analysis continues in the
triggerer); what runs where — pids, ports, weights, log files — is kept in
`${SHIPYARD_HOME}/serving/<pipeline>/state.json`, so a backend rebuilt from `config()` in
another process finds them, and a restarted HAProxy gets the same servers and weights.

Ports are allocated when the pipeline's HAProxy first starts and recorded in the state file
(reused while free): two pipelines never share one. A predictor is retired only after its
weight is 0 and HAProxy holds no request for it, so no request is lost by a switch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from shipyard.rollout.backends import Mirror, Readiness, Release
from shipyard.rollout.errors import BackendError
from shipyard.rollout.local.haproxy import (
    BACKEND,
    HEALTH_PATH,
    Runtime,
    Server,
    ServerSettings,
    render_config,
    socket_path_for,
)
from shipyard.rollout.providers import Target
from shipyard_spec.contract import Env, serving_name
from shipyard_spec.model import LocalServing

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10
DRAIN_TIMEOUT_SECONDS = 60
PROXY_START_SECONDS = 15
READY_PROBE_SECONDS = 2
LOG_TAIL_LINES = 4
LOG_LINE_CHARS = 300
WARNING_LINE = re.compile(r":\d+: \w*Warning: ")
STABLE, CANARY, PROXY = "stable", "canary", "proxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie child does not: it is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def stop(pid: int) -> None:
    """SIGTERM the process group of `pid` (SIGCONT first: it may be stopped), SIGKILL after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGCONT)
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)
    raise BackendError(f"process {pid} survived SIGKILL")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a process log that say something, joined with ' | ' (for a decision's
    reason): Python warnings (`file:line: SomeWarning: ...` and the source line after) are
    left out, and each line is cut at LOG_LINE_CHARS."""
    if not path.exists():
        return f"no log at {path}"
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 16384))
        text = f.read().decode(errors="replace")
    kept: list[str] = []
    after_warning = False
    for line in text.splitlines():
        if WARNING_LINE.search(line):
            after_warning = True
        elif not (after_warning and line.startswith(" ")) and line.strip():
            kept.append(line.strip()[:LOG_LINE_CHARS])
            after_warning = False
    return " | ".join(kept[-lines:]) or f"{path} is empty"


class LocalBackend:
    def __init__(
        self,
        state_dir: str,
        serving_python: str,
        *,
        served_name: str,
        settings: LocalServing | None = None,
        prediction_log_uri: str | None = None,
        haproxy: str = "haproxy",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.serving_python = serving_python
        self.served_name = served_name
        self.settings = settings or LocalServing()
        self.prediction_log_uri = prediction_log_uri
        self.haproxy = haproxy
        self.runtime = Runtime(socket_path_for(self.state_dir))
        self._http = httpx.Client(timeout=READY_PROBE_SECONDS)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LocalBackend:
        return cls(
            config["state_dir"],
            config["serving_python"],
            served_name=config["served_name"],
            settings=LocalServing.model_validate(config["settings"]),
            prediction_log_uri=config.get("prediction_log_uri"),
            haproxy=config.get("haproxy", "haproxy"),
        )

    @classmethod
    def for_pipeline(cls, pipeline: str, settings: LocalServing | None = None) -> LocalBackend:
        """The embedded default: state under ${SHIPYARD_HOME}/serving/<pipeline>; predictors log
        their predictions where `SHIPYARD_PREDICTION_LOG_URI` says (the drift step reads there)."""
        from shipyard.settings import shipyard_home

        return cls(
            str(shipyard_home() / "serving" / pipeline),
            os.environ.get(Env.SERVING_PYTHON, sys.executable),
            served_name=serving_name(pipeline),
            settings=settings,
            prediction_log_uri=os.environ.get(Env.PREDICTION_LOG_URI) or None,
        )

    def config(self) -> dict[str, Any]:
        return {
            "kind": "local",
            "state_dir": str(self.state_dir),
            "serving_python": self.serving_python,
            "served_name": self.served_name,
            "settings": self.settings.model_dump(mode="json"),
            "prediction_log_uri": self.prediction_log_uri,
            "haproxy": self.haproxy,
        }

    @property
    def url(self) -> str:
        """Where clients send predictions: the pipeline's HAProxy."""
        proxy = self.state().get(PROXY)
        if not proxy:
            raise BackendError(f"no load balancer has been started for {self.state_dir}")
        return f"http://127.0.0.1:{proxy['port']}"

    def _server_settings(self) -> ServerSettings:
        return ServerSettings(
            check_interval_ms=round(self.settings.health_check_interval_seconds * 1000),
            check_timeout_ms=round(self.settings.health_check_timeout_seconds * 1000),
            server_timeout_ms=round(self.settings.server_timeout_seconds * 1000),
            retries=self.settings.retries,
        )

    # --- state -------------------------------------------------------------------------------

    @property
    def _state_path(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict[str, Any]:
        """{"proxy": {pid, port, metrics_port}, "stable": {pid, port, server, weight, log, release},
        "canary": {...} | None}."""
        if not self._state_path.exists():
            return {PROXY: None, STABLE: None, CANARY: None}
        return json.loads(self._state_path.read_text())

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    def _spawn(self, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        return process.pid

    # --- the load balancer -------------------------------------------------------------------

    def _ensure_proxy(self, state: dict[str, Any]) -> None:
        """Start the pipeline's HAProxy unless it runs: its ports recorded, the servers of the state."""
        proxy = state.get(PROXY) or {}
        if proxy.get("pid") and alive(proxy["pid"]):
            return
        ports = [proxy.get("port"), proxy.get("metrics_port")]
        if not all(port and port_is_free(port) for port in ports):
            ports = [free_port(), free_port()]
        servers = [
            Server(entry["server"], entry["port"], entry["weight"])
            for entry in (state.get(STABLE), state.get(CANARY))
            if entry and alive(entry["pid"])
        ]
        config = self.state_dir / "haproxy.cfg"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.runtime.socket_path.unlink(missing_ok=True)
        config.write_text(
            render_config(
                port=ports[0],
                metrics_port=ports[1],
                socket_path=self.runtime.socket_path,
                settings=self._server_settings(),
                servers=servers,
                stable_port=state[STABLE]["port"] if state.get(STABLE) else None,
                request_log_bytes=self.settings.request_log_bytes,
            )
        )
        haproxy_log = self.state_dir / "haproxy.log"
        pid = self._spawn([self.haproxy, "-db", "-f", str(config)], haproxy_log)
        state[PROXY] = {"pid": pid, "port": ports[0], "metrics_port": ports[1]}
        self._save(state)
        deadline = time.monotonic() + PROXY_START_SECONDS
        while time.monotonic() < deadline and alive(pid):
            with contextlib.suppress(BackendError):
                self.runtime.command("show info")
                log.info("HAProxy (pid %d) serving %s (metrics on port %d)", pid, self.url, ports[1])
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise BackendError(f"HAProxy did not start on port {ports[0]}: {log_tail(haproxy_log)}")

    def _route(self, state: dict[str, Any], weighted: list[tuple[dict[str, Any], int]]) -> None:
        """Set these (predictor, weight) pairs in HAProxy, verify them, and record them in the state."""
        for entry, weight in weighted:
            self.runtime.set_weight(entry["server"], weight)
        actual = {entry["server"]: self.runtime.weight(entry["server"]) for entry, _ in weighted}
        expected = {entry["server"]: weight for entry, weight in weighted}
        if actual != expected:
            raise BackendError(f"HAProxy reports weights {actual}, expected {expected}")
        for entry, weight in weighted:
            entry["weight"] = weight
        self._save(state)
        log.info("traffic: %s", ", ".join(f"{name} {weight}%" for name, weight in expected.items()))

    def _retire(self, entries: list[dict[str, Any]]) -> None:
        """Predictors at weight 0: wait until HAProxy holds no request for them, remove, stop."""
        for entry in entries:
            name = entry["server"]
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            while True:
                status = self.runtime.servers().get(name)
                if status is None:
                    break
                if not status.sessions and not status.queued and self.runtime.remove_server(name):
                    break
                if time.monotonic() > deadline:
                    raise BackendError(f"{name} still holds requests after {DRAIN_TIMEOUT_SECONDS}s")
                time.sleep(0.05)
            if alive(entry["pid"]):
                stop(entry["pid"])
            log.info("stopped %s", name)

    def routes(self) -> dict[str, int]:
        """{server: weight} as HAProxy has them now."""
        return {name: status.weight for name, status in self.runtime.servers().items()}

    # --- predictors --------------------------------------------------------------------------

    def _start_predictor(
        self, release: Release, role: str, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        port = free_port()
        log_path = self.state_dir / f"predictor-v{release.version}-{role}{'-mirroring' if env else ''}.log"
        command = [
            self.serving_python, "-m", "shipyard_serving",
            "--model_name", self.served_name, "--model_dir", release.model_dir,
            "--http_port", str(port), "--model_version", release.version,
            *(["--prediction_log_uri", self.prediction_log_uri] if self.prediction_log_uri else []),
            *release.args,
        ]  # fmt: skip
        pid = self._spawn(command, log_path, env=env)
        entry = {
            "pid": pid,
            "port": port,
            "server": f"v{release.version}-pid{pid}",
            "weight": 0,
            "log": str(log_path),
            "release": release.as_dict(),
            "mirroring": bool(env),
        }
        self.runtime.add_server(Server(entry["server"], port, 0), self._server_settings())
        log.info(
            "started %s predictor %s v%s (pid %d, port %d)",
            role,
            self.served_name,
            release.version,
            pid,
            port,
        )
        return entry

    def _readiness(self, entry: dict[str, Any] | None) -> Readiness:
        if entry is None:
            return Readiness(False, "no predictor deployed")
        name = f"{self.served_name} v{entry['release']['version']} (pid {entry['pid']})"
        if not alive(entry["pid"]):
            return Readiness(
                False, f"predictor {name} exited; its log ends: {log_tail(Path(entry['log']))}", failed=True
            )
        status = self.runtime.servers().get(entry["server"])
        if status is None or not status.status.startswith("UP"):
            check = f"{status.status}, {status.check}" if status else "no such server"
            return Readiness(False, f"predictor {name}: HAProxy's health check says {check}")
        try:
            response = self._http.get(f"http://127.0.0.1:{entry['port']}{HEALTH_PATH}")
        except httpx.HTTPError as e:
            return Readiness(False, f"predictor {name} does not answer: {e.__class__.__name__}")
        if response.status_code != 200:
            return Readiness(False, f"predictor {name} is not ready (HTTP {response.status_code})")
        return Readiness(True, f"predictor {name} is ready")

    def _wait_ready(self, entry: dict[str, Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        readiness = self._readiness(entry)
        while not readiness.ready:
            if time.monotonic() > deadline or readiness.failed:
                raise BackendError(f"{readiness.reason} (waited {timeout:.0f}s at most)")
            time.sleep(0.2)
            readiness = self._readiness(entry)

    @staticmethod
    def _running(entry: dict[str, Any] | None, release: Release) -> bool:
        return bool(entry) and entry["release"] == release.as_dict() and alive(entry["pid"])

    # --- the TrafficBackend protocol -------------------------------------------------------------

    def deploy_stable(self, release: Release, timeout: float) -> None:
        state = self.state()
        self._ensure_proxy(state)
        if self._running(state[STABLE], release) and state[CANARY] is None:
            self._route(state, [(state[STABLE], 100)])
            self.runtime.point_last_resort(state[STABLE]["port"])
            return
        entry = self._start_predictor(release, STABLE)
        try:
            self._wait_ready(entry, timeout)
        except BackendError:
            self._retire([entry])
            raise
        old = [state[role] for role in (STABLE, CANARY) if state[role]]
        state[STABLE], state[CANARY] = entry, None
        self._route(state, [(entry, 100), *((o, 0) for o in old if alive(o["pid"]))])
        self.runtime.point_last_resort(entry["port"])
        self._retire(old)

    def deploy_canary(self, stable: Release, canary: Release) -> None:
        state = self.state()
        proxy = state.get(PROXY)
        if not (self._running(state[STABLE], stable) and proxy and proxy.get("pid") and alive(proxy["pid"])):
            log.info("stable %s v%s is not served here: starting it first", self.served_name, stable.version)
            self.deploy_stable(stable, timeout=DRAIN_TIMEOUT_SECONDS)
            state = self.state()
        if self._running(state[CANARY], canary):
            log.info("canary v%s already running (a re-run): reusing it at 0%%", canary.version)
        else:
            if state[CANARY]:
                old, state[CANARY] = state[CANARY], None
                self._route(state, [(state[STABLE], 100), (old, 0)])
                self._retire([old])
            state[CANARY] = self._start_predictor(canary, CANARY)
        self._route(state, [(state[STABLE], 100), (state[CANARY], 0)])

    def canary_readiness(self) -> Readiness:
        return self._readiness(self.state()[CANARY])

    def set_canary_weight(self, percent: int) -> None:
        state = self.state()
        self._route(state, [(state[STABLE], 100 - percent), (state[CANARY], percent)])

    def promote(self) -> None:
        state = self.state()
        canary, stable = state[CANARY], state[STABLE]
        state[STABLE], state[CANARY] = canary, None
        self._route(state, [(canary, 100), (stable, 0)])
        self.runtime.point_last_resort(canary["port"])
        self._retire([stable])

    def rollback(self) -> None:
        state = self.state()
        canary, stable = state[CANARY], state[STABLE]
        if canary is None:
            return
        state[CANARY] = None
        self._route(state, [(stable, 100), (canary, 0)])
        self._retire([canary])

    def targets(self) -> tuple[Target, Target]:
        state = self.state()
        metrics = f"http://127.0.0.1:{state[PROXY]['metrics_port']}/metrics"
        return tuple(  # type: ignore[return-value]
            Target(
                role=role,
                model_name=self.served_name,
                model_version=state[role]["release"]["version"],
                metrics_url=f"http://127.0.0.1:{state[role]['port']}/metrics",
                proxy_metrics_url=metrics,
                proxy_server=f"{BACKEND}/{state[role]['server']}",
                proxy_socket=str(self.runtime.socket_path),
            )
            for role in (CANARY, STABLE)
        )

    def direct_urls(self) -> tuple[str, str] | None:
        state = self.state()
        if not (state[CANARY] and state[STABLE]):
            return None
        return f"http://127.0.0.1:{state[CANARY]['port']}", f"http://127.0.0.1:{state[STABLE]['port']}"

    def start_mirroring(self, mirror: Mirror) -> None:
        """A stable predictor of the same version started with the mirror variables takes over the
        stable's traffic (started, ready, weight swapped, the old one drained and stopped): a
        predictor reads its configuration at start, as a KServe revision would."""
        state = self.state()
        canary = state[CANARY]
        if canary is None:
            raise BackendError("no canary to mirror to")
        env = {
            Env.SHADOW_MIRROR_URL: f"http://127.0.0.1:{canary['port']}",
            Env.SHADOW_MIRROR_VERSION: canary["release"]["version"],
            Env.SHADOW_MIRROR_SAMPLE_RATE: str(mirror.sample_rate),
            Env.SHADOW_MIRROR_QUEUE_SIZE: str(mirror.queue_size),
            Env.SHADOW_DECISION_THRESHOLD: str(mirror.threshold),
        }
        self._replace_stable(state, env)

    def stop_mirroring(self) -> None:
        state = self.state()
        if state[STABLE] and state[STABLE].get("mirroring"):
            self._replace_stable(state, None)

    def _replace_stable(self, state: dict[str, Any], env: dict[str, str] | None) -> None:
        """The stable version again in a new process (with `env`), traffic moved to it without loss."""
        old = state[STABLE]
        release = Release.from_dict(old["release"])
        entry = self._start_predictor(release, STABLE, env)
        try:
            self._wait_ready(entry, DRAIN_TIMEOUT_SECONDS)
        except BackendError:
            self._retire([entry])
            raise
        state[STABLE] = entry
        canary_weight = state[CANARY]["weight"] if state[CANARY] else 0
        self._route(state, [(entry, 100 - canary_weight), (old, 0)])
        self.runtime.point_last_resort(entry["port"])
        self._retire([old])
        log.info(
            "stable v%s %s",
            release.version,
            f"mirroring to {env[Env.SHADOW_MIRROR_URL]}" if env else "no longer mirroring",
        )

    def stop_all(self) -> None:
        """Stop every process of this stack (tests, `make demo` teardown); the ports stay recorded."""
        state = self.state()
        for role in (CANARY, STABLE, PROXY):
            if state.get(role) and state[role].get("pid") and alive(state[role]["pid"]):
                stop(state[role]["pid"])
        self.runtime.socket_path.unlink(missing_ok=True)
        proxy = state.get(PROXY) or {}
        kept = {"port": proxy["port"], "metrics_port": proxy["metrics_port"]} if proxy.get("port") else None
        self._save({PROXY: kept, STABLE: None, CANARY: None})
