"""`make demo`: the training DAG end to end on the embedded default, through Airflow.

Run with the AIRFLOW virtualenv's interpreter. Starts a real MLflow server (pipeline
virtualenv, state under .shipyard/mlflow), migrates the SQLite Airflow DB under
.shipyard/airflow, seeds the Telco demo data, publishes the 25 weekly snapshots before the
latest interval (what a backfill of ingest would publish; scripts/ingest_history.py), runs
`airflow dags test` for the latest full interval, prints where to look and stops MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from airflow_env import (
    AIRFLOW,
    REPO,
    TELCO_SPEC,
    TRAINING_DAG,
    airflow,
    airflow_environment,
    ingest_history,
    seed_demo_data,
)
from support.servers import mlflow_server  # the MLflow command line the tests use, in one place

from shipyard.window import last_full_interval
from shipyard_spec import load_spec

HOME = REPO / ".shipyard"
MLFLOW_PORT = int(os.environ.get("SHIPYARD_MLFLOW_PORT", "5000"))  # fixed, so printed links stay valid


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def mlflow_get(url: str, path: str, **query: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)


def main() -> int:
    spec = load_spec(TELCO_SPEC)
    start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
    say(f"starting MLflow on port {MLFLOW_PORT} (state in {HOME / 'mlflow'})")
    with mlflow_server(HOME / "mlflow", port=MLFLOW_PORT) as url:
        env = airflow_environment(HOME / "airflow", HOME, url)
        say(f"Airflow home {env['AIRFLOW_HOME']}: migrating the SQLite metadata DB")
        airflow(env, "db", "migrate")
        say("seeding the Telco churn demo data")
        seed_demo_data(env)
        say(f"publishing the {spec.training.window_intervals - 1} weekly snapshots before {start.date()}")
        ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        say(f"airflow dags test {TRAINING_DAG}: the latest full interval [{start}, {end})")
        started = time.monotonic()
        run = subprocess.run([AIRFLOW, "dags", "test", TRAINING_DAG], env=env, check=False)
        if run.returncode != 0:
            print(f"\nthe DAG run failed (exit {run.returncode}): see the task logs above", file=sys.stderr)
            return run.returncode
        version = mlflow_get(
            url, "registered-models/alias", name=spec.mlflow.registered_model, alias="challenger"
        )
        model_version = version["model_version"]
        run_info = mlflow_get(url, "runs/get", run_id=model_version["run_id"])["run"]["info"]
        run_url = f"{url}/#/experiments/{run_info['experiment_id']}/runs/{run_info['run_id']}"
        say(f"done in {time.monotonic() - started:.0f} s")
        print(
            f"  registered model  {spec.mlflow.registered_model} version {model_version['version']} "
            "(alias challenger)\n"
            f"  MLflow run        {run_url}\n"
            f"  snapshots         {env['SHIPYARD_STORAGE_ROOT']}/{spec.name}/snapshots/\n"
            f"  run outputs       {env['SHIPYARD_STORAGE_ROOT']}/{spec.name}/runs/\n"
            "  MLflow stops now; `make up` starts it again with the Airflow UI (links above stay valid)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
