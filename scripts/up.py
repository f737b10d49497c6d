"""`make up`: `airflow standalone` + the MLflow UI, the training DAG unpaused. Ctrl-C stops both.

Run with the AIRFLOW virtualenv's interpreter. Uses the state of `make demo` (.shipyard/);
seeds the demo data first when it is missing. The scheduler then runs the latest weekly
interval by itself; trigger and backfill from the UI or the CLI (README, "Running it").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from airflow_env import (
    AIRFLOW,
    TELCO_SPEC,
    TRAINING_DAG,
    airflow,
    airflow_environment,
    ingest_history,
    seed_demo_data,
)
from demo import HOME, MLFLOW_PORT, say
from support.servers import mlflow_server, wait_http_ok

from shipyard.rollout.backends.local import LocalBackend
from shipyard.window import last_full_interval
from shipyard_spec import load_spec

API_URL = "http://localhost:8080"


def stop_on_sigterm(signum: int, frame: object) -> None:
    """`kill <pid>` stops the UIs the way Ctrl-C does."""
    raise KeyboardInterrupt


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group, SIGKILL to whatever is left of it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):  # raised once no member of the group is left
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap standalone itself so it does not linger as a group member
            os.killpg(process.pid, 0)
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    spec = load_spec(TELCO_SPEC)
    with mlflow_server(HOME / "mlflow", port=MLFLOW_PORT) as mlflow_url:
        env = airflow_environment(HOME / "airflow", HOME, mlflow_url)
        airflow(env, "db", "migrate")
        if not (HOME / "data" / "telco_churn.db").exists():
            say("seeding the demo data")
            seed_demo_data(env)
            start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
            ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        airflow(env, "dags", "reserialize")
        airflow(env, "dags", "unpause", TRAINING_DAG)
        say("starting airflow standalone (scheduler, dag-processor, api-server, triggerer)")
        # Its own process group: `airflow standalone` does not pass a SIGTERM on to the scheduler,
        # API server and workers it starts, so they are stopped together, as a group.
        standalone = subprocess.Popen(
            [AIRFLOW, "standalone"], env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_http_ok(f"{API_URL}/api/v2/monitor/health", timeout=180, process=standalone)
            passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
            password = json.loads(passwords.read_text())["admin"]
            say("ready")
            print(
                f"  Airflow UI  {API_URL}  user admin, password {password}\n"
                f"  MLflow UI   {mlflow_url}\n"
                f"  DAG         {TRAINING_DAG} (unpaused; logs under {env['AIRFLOW_HOME']}/logs)\n"
                "  Ctrl-C stops both.",
                flush=True,
            )
            standalone.wait()
        except KeyboardInterrupt:
            say("stopping")
        finally:
            stop_group(standalone)
            os.environ["SHIPYARD_HOME"] = env["SHIPYARD_HOME"]  # where the rollout task keeps its state
            LocalBackend.for_pipeline(spec.name).stop_all()  # the predictors the rollout task started
    return 0


if __name__ == "__main__":
    sys.exit(main())
