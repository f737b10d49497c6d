"""Start real servers (MLflow, an S3-compatible object store, a Pushgateway, PostgreSQL) as subprocesses on
free ports.

Standard library only (and prometheus_client, which every virtualenv locks, inside
`metric_samples`): these helpers are imported by test runs in all three virtualenvs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


POSTGRES_USER = "shipyard"
POSTGRES_DATABASE = "warehouse"


def postgres_bin() -> Path:
    """The newest PostgreSQL server's binaries (Debian package `postgresql`, `make postgresql`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server: run `make postgresql` (apt-get install -y postgresql)")
    return found[-1].parent


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port, its cluster and unix socket in a fresh temporary
    directory; yields the SQLAlchemy URL of its database `warehouse` with the password of its user
    `shipyard` (checked with scram-sha-256 over TCP).

    PostgreSQL refuses to run as root: as root (CI), the cluster belongs to Debian's `postgres` system
    user (created by the package) and initdb/postgres run as that user; otherwise as the current user.
    The directory is not under pytest's tmp_path, which only root may enter.
    """
    bindir = postgres_bin()
    as_user: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="shipyard-postgres-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no 'postgres' user to run PostgreSQL as: run `make postgresql`") from None
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    password = secrets.token_urlsafe(12)
    data = workdir / "data"
    port = free_port()
    log_path = workdir / "postgres.log"
    log = log_path.open("wb")

    def failed(what: str) -> RuntimeError:
        log.flush()
        return RuntimeError(f"PostgreSQL: {what}; its log ends with:\n{log_path.read_text()[-2000:]}")

    def run(*command: object) -> None:
        if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, **as_user).returncode:
            raise failed(f"{Path(str(command[0])).name} failed")

    process = None
    try:
        (workdir / "password").write_text(password)
        os.chmod(workdir / "password", 0o644)  # for the cluster's owner; the directory is private
        os.chmod(workdir, 0o700)
        run(
            bindir / "initdb", "-D", data, "-U", POSTGRES_USER, f"--pwfile={workdir / 'password'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        process = subprocess.Popen(
            [
                bindir / "postgres", "-D", data, "-p", str(port), "-k", workdir,
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, **as_user,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        ready = [bindir / "pg_isready", "-q", "-h", workdir, "-p", str(port)]
        while subprocess.run(ready, cwd=workdir, **as_user).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                raise failed("the server did not start within 60 s")
            time.sleep(0.2)
        run(bindir / "createdb", "-h", workdir, "-p", str(port), "-U", POSTGRES_USER, POSTGRES_DATABASE)
        yield f"postgresql://{POSTGRES_USER}:{password}@127.0.0.1:{port}/{POSTGRES_DATABASE}"
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        shutil.rmtree(workdir)


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
