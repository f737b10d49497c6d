"""The embedded Airflow environment of `make demo`, `make up`, the DAG tests and the benchmark.

Run with the AIRFLOW virtualenv's interpreter. One place says how Airflow is configured on
a laptop: SQLite metadata DB (absolute path), LocalExecutor, parallelism 4 (2 cores), no
example DAGs, the repository's dags/ and plugins/ folders, the local runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from shipyard_spec.contract import Env, default_prediction_log_root

REPO = Path(__file__).resolve().parents[1]
# The scripts use the Airflow-side package (plugins/) and the server helpers the tests use.
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests")]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
PIPELINE_PYTHON = os.environ.get(Env.PIPELINE_PYTHON) or str(REPO / ".venv/pipeline/bin/python")
SERVING_PYTHON = os.environ.get(Env.SERVING_PYTHON) or str(REPO / ".venv/serving/bin/python")
TRAINING_DAG = "shipyard_train_telco_churn"
TELCO_SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"


def airflow_environment(
    airflow_home: Path, shipyard_home: Path, mlflow_uri: str | None, storage_root: Path | None = None
) -> dict[str, str]:
    """The environment every Airflow command of the embedded setup runs with.

    `mlflow_uri` None: for components that never reach MLflow (the API server alone).
    """
    airflow_home = airflow_home.resolve()
    storage_root = storage_root or shipyard_home / "storage"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        # The scheduler, DAG processor, API server, triggerer and workers all write to the one SQLite
        # file: wait up to 60 s for its lock (sqlite3's default, 5 s, made `airflow backfill create`
        # fail with "database is locked" while the components started on the loaded 2-core machine).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db?timeout=60",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # A worker's calls to the API server's execution API wait for that SQLite lock too: the
        # default 5 s failed task starts with ReadTimeout under load (the task then retried).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        Env.RUNNER: "local",
        Env.HOME: str(shipyard_home.resolve()),
        Env.STORAGE_ROOT: str(storage_root.resolve()),
        # Predictors started by the local rollout log sampled requests where the drift step reads.
        Env.PREDICTION_LOG_URI: default_prediction_log_root(str(storage_root.resolve())),
        Env.PIPELINE_PYTHON: PIPELINE_PYTHON,
        Env.SERVING_PYTHON: SERVING_PYTHON,  # the rollout's local predictors
        # `airflow standalone` starts its components as `airflow ...` found on PATH.
        "PATH": f"{Path(AIRFLOW).parent}:{os.environ.get('PATH', '')}",
        **({Env.MLFLOW_TRACKING_URI: mlflow_uri} if mlflow_uri else {}),
    }


def api_environment(env: dict[str, str], port: int) -> dict[str, str]:
    """`env` with the API server on `port`; workers reach its execution API through the base URL."""
    return {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://localhost:{port}"}


def admin_password(airflow_home: Path) -> str:
    """The `admin` password the simple auth manager generated on first start."""
    passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
    return json.loads(passwords.read_text())["admin"]


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left of it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):  # raised once no member of the group is left
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the leader so it does not linger as a group member
            os.killpg(process.pid, 0)
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def airflow_component(env: dict[str, str], *args: str, log: Path | None = None) -> Iterator[subprocess.Popen]:
    """`airflow <args>` (standalone, api-server, scheduler...) in its own process group, stopped with it.

    `airflow standalone` does not pass a SIGTERM on to the scheduler, API server and workers it
    starts, so the whole group is stopped together.
    """
    output = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [AIRFLOW, *args], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        stop_group(process)
        if log:
            output.close()


def airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `airflow` CLI command; on failure the error carries the command's stderr tail."""
    process = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, check=False)
    if check and process.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} exited with {process.returncode}:\n{process.stderr[-3000:]}"
        )
    return process


def pipeline(env: dict[str, str], *args: str) -> None:
    """Run a command in the pipeline virtualenv (seeding, history); output goes to the terminal."""
    subprocess.run([PIPELINE_PYTHON, *args], env=env, check=True)


def seed_demo_data(env: dict[str, str], corrupt: bool = False) -> None:
    home = env[Env.HOME]
    pipeline(env, "-m", "shipyard_pipeline.demo", "seed", "--home", home, *(["--corrupt"] if corrupt else []))


def ingest_history(env: dict[str, str], interval_start: str, interval_end: str, intervals: int) -> None:
    pipeline(
        env, str(REPO / "scripts" / "ingest_history.py"), "--spec", str(TELCO_SPEC),
        "--storage-root", env[Env.STORAGE_ROOT], "--interval-start", interval_start,
        "--interval-end", interval_end, "--intervals", str(intervals),
    )  # fmt: skip


def main() -> None:
    """Print `export` lines of the `make demo` / `make up` environment, for `airflow` CLI calls by hand."""
    home = REPO / ".shipyard"
    port = os.environ.get("SHIPYARD_MLFLOW_PORT", "5000")
    env = airflow_environment(home / "airflow", home, f"http://127.0.0.1:{port}")
    for name in sorted(
        env.keys() - os.environ.keys() | {k for k in env if k.startswith(("AIRFLOW", "SHIPYARD", "MLFLOW"))}
    ):
        print(f"export {name}={shlex.quote(env[name])}")
    print(f"export PATH={shlex.quote(str(Path(AIRFLOW).parent))}:$PATH")


if __name__ == "__main__":
    main()
