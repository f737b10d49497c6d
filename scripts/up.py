"""`make up`: `airflow standalone` + the MLflow UI, the training DAG unpaused. Ctrl-C stops both.

Run with the AIRFLOW virtualenv's interpreter. Uses the state of `make demo` (.shipyard/);
seeds the demo data first when it is missing. The scheduler then runs the latest weekly
interval by itself; trigger and backfill from the UI or the CLI (README, "Running it").
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime

from airflow_env import (
    TELCO_SPEC,
    TRAINING_DAG,
    admin_password,
    airflow,
    airflow_component,
    airflow_environment,
    api_environment,
    ingest_history,
    seed_demo_data,
)
from demo import HOME, MLFLOW_PORT, say
from support.servers import mlflow_server, wait_http_ok

from shipyard.rollout.backends.local import LocalBackend
from shipyard.window import last_full_interval
from shipyard_spec import load_spec

API_PORT = int(os.environ.get("SHIPYARD_AIRFLOW_PORT", "8080"))
API_URL = f"http://localhost:{API_PORT}"


def stop_on_sigterm(signum: int, frame: object) -> None:
    """`kill <pid>` stops the UIs the way Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    spec = load_spec(TELCO_SPEC)
    with mlflow_server(HOME / "mlflow", port=MLFLOW_PORT) as mlflow_url:
        env = api_environment(airflow_environment(HOME / "airflow", HOME, mlflow_url), API_PORT)
        airflow(env, "db", "migrate")
        if not (HOME / "data" / "telco_churn.db").exists():
            say("seeding the demo data")
            seed_demo_data(env)
            start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
            ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        airflow(env, "dags", "reserialize")
        airflow(env, "dags", "unpause", TRAINING_DAG)
        say("starting airflow standalone (scheduler, dag-processor, api-server, triggerer)")
        try:
            log = HOME / "airflow" / "standalone.log"
            with airflow_component(env, "standalone", log=log) as standalone:
                wait_http_ok(f"{API_URL}/api/v2/monitor/health", timeout=180, process=standalone)
                say("ready")
                print(
                    f"  Airflow UI  {API_URL}  user admin, password {admin_password(HOME / 'airflow')}\n"
                    f"  MLflow UI   {mlflow_url}\n"
                    f"  DAG         {TRAINING_DAG} (unpaused; task logs under {env['AIRFLOW_HOME']}/logs)\n"
                    f"  Components  scheduler, dag-processor, api-server, triggerer: output in {log}\n"
                    "  Ctrl-C stops both.",
                    flush=True,
                )
                standalone.wait()
        except KeyboardInterrupt:
            say("stopping")
        finally:
            os.environ["SHIPYARD_HOME"] = env["SHIPYARD_HOME"]  # where the rollout task keeps its state
            LocalBackend.for_pipeline(spec.name).stop_all()  # the predictors the rollout task started
    return 0


if __name__ == "__main__":
    sys.exit(main())
