"""The local backend (embedded default): predictor processes behind the local traffic splitter.

Stable and canary run as `python -m shipyard_serving` in the serving virtualenv
(`SHIPYARD_SERVING_PYTHON`), each on its own port; the splitter
(`shipyard.rollout.local.splitter`) owns the public port and forwards by weight. Processes
are started in their own session so they outlive the Airflow task that started them (the
analysis continues in the triggerer); what runs where is kept in `state.json` in the state
directory, so a backend rebuilt from `config()` in another process finds them again.

A backend is retired only after its weight is 0 and its in-flight requests reached 0, so no
request is lost by a switch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from shipyard.rollout.backends import Readiness, Release
from shipyard.rollout.errors import BackendError
from shipyard.rollout.providers import Target

log = logging.getLogger(__name__)

PLUGINS_DIR = Path(__file__).resolve().parents[3]  # holds the `shipyard` package
SPLITTER_MODULE = "shipyard.rollout.local.splitter"
STOP_GRACE_SECONDS = 10
DRAIN_TIMEOUT_SECONDS = 60
STABLE, CANARY = "stable", "canary"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """SIGTERM the process group of `pid`, SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.1)
    raise BackendError(f"process {pid} survived SIGKILL")


class LocalBackend:
    def __init__(self, state_dir: str, port: int, serving_python: str, host: str = "127.0.0.1") -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.serving_python = serving_python
        self.host = host
        self._http = httpx.Client(timeout=5)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LocalBackend:
        return cls(
            config["state_dir"],
            int(config["port"]),
            config["serving_python"],
            config.get("host", "127.0.0.1"),
        )

    @classmethod
    def for_pipeline(cls, pipeline: str, port: int | None = None) -> LocalBackend:
        """The embedded default: state under ${SHIPYARD_HOME}/serving/<pipeline>, splitter port from
        SHIPYARD_SERVING_PORT (8780)."""
        from shipyard.settings import shipyard_home

        return cls(
            str(shipyard_home() / "serving" / pipeline),
            port or int(os.environ.get("SHIPYARD_SERVING_PORT", "8780")),
            os.environ.get("SHIPYARD_SERVING_PYTHON", sys.executable),
        )

    def config(self) -> dict[str, Any]:
        return {
            "kind": "local",
            "state_dir": str(self.state_dir),
            "port": self.port,
            "serving_python": self.serving_python,
            "host": self.host,
        }

    @property
    def url(self) -> str:
        """Where clients send predictions: the splitter."""
        return f"http://{self.host}:{self.port}"

    # --- state -------------------------------------------------------------------------------

    @property
    def _state_path(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict[str, Any]:
        """{"splitter": {pid}, "stable": {pid, port, release}, "canary": {...} | None}."""
        if not self._state_path.exists():
            return {"splitter": None, STABLE: None, CANARY: None}
        return json.loads(self._state_path.read_text())

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    def _spawn(self, command: list[str], log_name: str, env: dict[str, str] | None = None) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / log_name).open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        return process.pid

    # --- splitter ----------------------------------------------------------------------------

    def routes(self) -> list[dict[str, Any]]:
        try:
            response = self._http.get(f"{self.url}/-/routes")
            response.raise_for_status()
        except httpx.HTTPError as e:
            raise BackendError(f"local splitter at {self.url} did not answer: {e}") from e
        return response.json()["routes"]

    @staticmethod
    def _route_name(entry: dict[str, Any]) -> str:
        return f"v{entry['release']['version']}-pid{entry['pid']}"

    def _route(self, weighted: list[tuple[dict[str, Any], int]]) -> None:
        """Replace the splitter's table with these (predictor, weight) pairs and verify it."""
        table = [
            {"name": self._route_name(entry), "url": f"http://127.0.0.1:{entry['port']}", "weight": weight}
            for entry, weight in weighted
        ]
        response = self._http.put(f"{self.url}/-/routes", json={"routes": table})
        if response.status_code != 200:
            raise BackendError(f"local splitter refused routes {table}: {response.text}")
        expected = {route["name"]: route["weight"] for route in table}
        actual = {route["name"]: route["weight"] for route in response.json()["routes"]}
        if actual != expected:
            raise BackendError(f"local splitter reports weights {actual}, expected {expected}")
        log.info("traffic: %s", ", ".join(f"{name} {weight}%" for name, weight in expected.items()))

    def _retire(self, entries: list[dict[str, Any]], keep: dict[str, Any]) -> None:
        """Stop predictors that have weight 0: drain each, stop it, then drop it from the table."""
        for entry in entries:
            self._drain(self._route_name(entry))
            stop(entry["pid"])
            log.info("stopped %s", self._route_name(entry))
        self._route([(keep, 100)])

    def _ensure_splitter(self, state: dict[str, Any]) -> None:
        splitter = state.get("splitter")
        if splitter and alive(splitter["pid"]):
            return
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS_DIR), os.environ.get("PYTHONPATH")])),
        }
        pid = self._spawn(
            [sys.executable, "-m", SPLITTER_MODULE, "--host", self.host, "--port", str(self.port)],
            "splitter.log",
            env,
        )
        state["splitter"] = {"pid": pid}
        self._save(state)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(BackendError):
                self.routes()
                log.info("local splitter (pid %d) listening at %s", pid, self.url)
                return
            if not alive(pid):
                break
            time.sleep(0.1)
        raise BackendError(
            f"local splitter did not start on port {self.port}: see {self.state_dir}/splitter.log"
        )

    def _drain(self, role: str) -> None:
        """Wait until the splitter has no request in flight to `role` (its weight already 0)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            in_flight = {r["name"]: r["in_flight"] for r in self.routes()}.get(role, 0)
            if not in_flight:
                return
            time.sleep(0.05)
        raise BackendError(f"{role} still has requests in flight after {DRAIN_TIMEOUT_SECONDS}s")

    # --- predictors --------------------------------------------------------------------------

    def _start_predictor(self, release: Release, role: str) -> dict[str, Any]:
        port = free_port()
        command = [
            self.serving_python, "-m", "shipyard_serving",
            "--model_name", release.model_name, "--model_dir", release.model_dir,
            "--http_port", str(port), "--model_version", release.version, *release.args,
        ]  # fmt: skip
        pid = self._spawn(command, f"predictor-{release.model_name}-v{release.version}.log")
        log.info(
            "started %s predictor %s v%s (pid %d, port %d)",
            role,
            release.model_name,
            release.version,
            pid,
            port,
        )
        return {"pid": pid, "port": port, "release": release.as_dict()}

    def _readiness(self, entry: dict[str, Any] | None) -> Readiness:
        if entry is None:
            return Readiness(False, "no predictor deployed")
        release = Release.from_dict(entry["release"])
        name = f"{release.model_name} v{release.version} (pid {entry['pid']})"
        if not alive(entry["pid"]):
            return Readiness(False, f"predictor {name} is not running")
        try:
            response = self._http.get(f"http://127.0.0.1:{entry['port']}/v1/models/{release.model_name}")
        except httpx.HTTPError as e:
            return Readiness(False, f"predictor {name} does not answer yet: {e.__class__.__name__}")
        if response.status_code != 200 or not response.json().get("ready"):
            return Readiness(False, f"predictor {name} is not ready (HTTP {response.status_code})")
        return Readiness(True, f"predictor {name} is ready")

    def _wait_ready(self, entry: dict[str, Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        readiness = self._readiness(entry)
        while not readiness.ready:
            if time.monotonic() > deadline or not alive(entry["pid"]):
                raise BackendError(f"{readiness.reason} after {timeout:.0f}s")
            time.sleep(0.2)
            readiness = self._readiness(entry)

    def _running(self, entry: dict[str, Any] | None, release: Release) -> bool:
        return bool(entry) and entry["release"] == release.as_dict() and alive(entry["pid"])

    # --- the TrafficBackend protocol -------------------------------------------------------------

    def deploy_stable(self, release: Release, timeout: float) -> None:
        state = self.state()
        self._ensure_splitter(state)
        if self._running(state[STABLE], release) and state[CANARY] is None:
            self._route([(state[STABLE], 100)])
            return
        entry = self._start_predictor(release, STABLE)
        try:
            self._wait_ready(entry, timeout)
        except BackendError:
            stop(entry["pid"])
            raise
        old = [state[role] for role in (STABLE, CANARY) if state[role] and alive(state[role]["pid"])]
        self._route([(entry, 100), *((o, 0) for o in old)])
        state[STABLE], state[CANARY] = entry, None
        self._save(state)
        self._retire(old, keep=entry)

    def deploy_canary(self, stable: Release, canary: Release) -> None:
        state = self.state()
        if not (
            self._running(state[STABLE], stable) and state.get("splitter") and alive(state["splitter"]["pid"])
        ):
            log.info(
                "stable %s v%s is not running here: starting it first", stable.model_name, stable.version
            )
            self.deploy_stable(stable, timeout=DRAIN_TIMEOUT_SECONDS)
            state = self.state()
        if self._running(state[CANARY], canary):
            log.info("canary v%s already running (a re-run): reusing it at 0%%", canary.version)
        else:
            if state[CANARY]:
                self._route([(state[STABLE], 100), (state[CANARY], 0)])
                self._retire([state[CANARY]], keep=state[STABLE])
            state[CANARY] = self._start_predictor(canary, CANARY)
            self._save(state)
        self._route([(state[STABLE], 100), (state[CANARY], 0)])

    def canary_readiness(self) -> Readiness:
        return self._readiness(self.state()[CANARY])

    def set_canary_weight(self, percent: int) -> None:
        state = self.state()
        self._route([(state[STABLE], 100 - percent), (state[CANARY], percent)])

    def promote(self) -> None:
        state = self.state()
        canary, stable = state[CANARY], state[STABLE]
        self._route([(canary, 100), (stable, 0)])
        state[STABLE], state[CANARY] = canary, None
        self._save(state)
        self._retire([stable], keep=canary)

    def rollback(self) -> None:
        state = self.state()
        canary, stable = state[CANARY], state[STABLE]
        if canary is None:
            return
        self._route([(stable, 100), (canary, 0)])
        state[CANARY] = None
        self._save(state)
        self._retire([canary] if alive(canary["pid"]) else [], keep=stable)

    def targets(self) -> tuple[Target, Target]:
        state = self.state()
        return tuple(  # type: ignore[return-value]
            Target(
                role=role,
                model_name=state[role]["release"]["model_name"],
                model_version=state[role]["release"]["version"],
                metrics_url=f"http://127.0.0.1:{state[role]['port']}/metrics",
            )
            for role in (CANARY, STABLE)
        )

    def stop_all(self) -> None:
        """Stop every process of this stack (tests, `make demo` teardown)."""
        state = self.state()
        for role in (CANARY, STABLE, "splitter"):
            if state.get(role) and alive(state[role]["pid"]):
                stop(state[role]["pid"])
        self._save({"splitter": None, STABLE: None, CANARY: None})
