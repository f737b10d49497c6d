"""Start real servers (MLflow, an S3-compatible object store, a Pushgateway) as subprocesses on free ports.

Standard library only (and prometheus_client, which every virtualenv locks, inside
`metric_samples`): these helpers are imported by test runs in all three virtualenvs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def venv_python(runtime: str) -> str:
    """The interpreter of one runtime's virtualenv (pipeline, serving, airflow)."""
    override = os.environ.get(f"SHIPYARD_{runtime.upper()}_PYTHON")
    if override:
        return override
    candidate = REPO / ".venv" / runtime / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early if the process that should serve it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {process.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate a server and wait for it; kill it if it does not stop within `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """`stop_process` for a server started with `start_new_session=True`, children included."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def mlflow_server(
    workdir: Path, port: int | None = None, artifacts_destination: str | None = None, env: dict | None = None
) -> Iterator[str]:
    """A real `mlflow server` (SQLite store, `--serve-artifacts`); yields its URL.

    Configured the way charts/shipyard/templates/mlflow.yaml configures it: the backend store
    and the artifact destination in MLFLOW_BACKEND_STORE_URI / MLFLOW_ARTIFACTS_DESTINATION,
    the object store's endpoint and credentials in `env`. The destination defaults to a local
    directory (the embedded mode). MLflow's background job executor (a job runner and seven
    huey consumers per server, for features Shipyard does not use) is off, and the server runs
    in its own process group so that stopping it stops all of its children, even mid-start.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (workdir / "mlflow-server.log").open("wb")
    process = subprocess.Popen(
        [
            venv_python("pipeline"), "-m", "mlflow", "server", "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            **(env or {}),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{workdir.resolve()}/mlflow.db",
            "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination or str((workdir / "artifacts").resolve()),
        },
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", timeout=240, process=process)  # slow to start on a busy 2-core machine
        yield url
    finally:
        stop_process_group(process)
        log.close()


def moto_server_binary() -> str:
    """moto's standalone S3-compatible server (`moto[server]`, tools virtualenv)."""
    return os.environ.get("SHIPYARD_MOTO_SERVER") or str(REPO / ".venv" / "tools" / "bin" / "moto_server")


@contextlib.contextmanager
def s3_server(workdir: Path, buckets: tuple[str, ...] = ()) -> Iterator[str]:
    """A real S3-compatible server on loopback (moto's standalone server), with `buckets`
    created; yields its endpoint URL (what AWS_ENDPOINT_URL_S3 is set to)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "moto-server.log").open("wb")
    process = subprocess.Popen(
        [moto_server_binary(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/moto-api/", timeout=60, process=process)
        for bucket in buckets:  # CreateBucket: PUT /<bucket> (moto checks no signature by default)
            urllib.request.urlopen(
                urllib.request.Request(f"{url}/{bucket}", method="PUT"), timeout=10
            ).close()
        yield url
    finally:
        stop_process(process)
        log.close()


@contextlib.contextmanager
def pushgateway_server(workdir: Path) -> Iterator[str]:
    """A real Prometheus Pushgateway (Debian package `prometheus-pushgateway`, `make pushgateway`)
    on a free loopback port, state in memory only; yields its URL."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        raise RuntimeError(
            "no Pushgateway installed: run `make pushgateway` (apt-get install prometheus-pushgateway)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "pushgateway.log").open("wb")
    process = subprocess.Popen(
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: shared between
        # runs. An empty persistence file keeps the state in memory only.
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/-/ready", timeout=30, process=process)
        yield url
    finally:
        stop_process(process)
        log.close()


def metric_samples(url: str, name: str) -> dict[frozenset, float]:
    """The samples of metric `name` at `{url}/metrics` (a predictor, the Pushgateway):
    {frozenset of (label, value): value} (prometheus_client's parser, which every test
    virtualenv has)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }
