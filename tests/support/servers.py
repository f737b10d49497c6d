"""Start real servers (MLflow, and others later) as subprocesses on free ports.

Standard library only: these helpers are imported by test runs in all three virtualenvs.
"""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def mlflow_server(workdir: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` (SQLite store, local artifact destination); yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (workdir / "mlflow-server.log").open("wb")
    process = subprocess.Popen(
        [
            venv_python("pipeline"), "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{workdir.resolve()}/mlflow.db",
            "--artifacts-destination", str((workdir / "artifacts").resolve()),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", timeout=240, process=process)  # slow on a busy 2-core machine
        yield url
    finally:
        stop_process(process)
        log.close()
