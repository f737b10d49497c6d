"""`make demo`: the training DAG end to end on the embedded default, through Airflow.

Run with the AIRFLOW virtualenv's interpreter. Starts a real MLflow server (pipeline
virtualenv, state under .shipyard/mlflow), migrates the SQLite Airflow DB under
.shipyard/airflow, seeds the Telco demo data, publishes the 25 weekly snapshots before the
latest interval (what a backfill of ingest would publish; scripts/ingest_history.py), runs
`airflow dags test` for the latest full interval twice, and prints where to look:

1. the first run trains, registers and releases version 1 straight to 100 % (there is no
   champion to compare a canary with, as in Flagger's first deployment);
2. the second run trains a new version and rolls it out as a canary (10 → 25 → 50 → 100 %)
   behind the local splitter while a load driver sends a steady stream of demo rows, so every
   analysis check has traffic; it is promoted to `champion` when every check passes.

Then it stops the load, the local predictors and splitter, and MLflow.
"""

from __future__ import annotations

import json
import os
import signal
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

from shipyard.rollout.backends.local import LocalBackend
from shipyard.window import last_full_interval
from shipyard_spec import load_spec

HOME = REPO / ".shipyard"
MLFLOW_PORT = int(os.environ.get("SHIPYARD_MLFLOW_PORT", "5000"))  # fixed, so printed links stay valid


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def mlflow_get(url: str, path: str, **query: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)


def dags_test(env: dict[str, str], label: str) -> None:
    say(f"airflow dags test {TRAINING_DAG}: {label}")
    started = time.monotonic()
    run = subprocess.run([AIRFLOW, "dags", "test", TRAINING_DAG], env=env, check=False)
    if run.returncode != 0:
        raise SystemExit(f"\nthe DAG run failed (exit {run.returncode}): see the task logs above")
    say(f"{label}: done in {time.monotonic() - started:.0f} s")


def start_load(env: dict[str, str], backend: LocalBackend, model_name: str) -> subprocess.Popen:
    """The steady request stream the canary analysis judges (demo rows from the stable model)."""
    stable = backend.state()["stable"]["release"]
    examples = os.path.join(stable["model_dir"], "input_example.json")
    say(f"sending 60 requests/s of demo rows to the splitter at {backend.url}")
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard.rollout.local.load", "--url", backend.url,
         "--model-name", model_name, "--examples", examples, "--rps", "60"],
        env={**env, "PYTHONPATH": str(REPO / "plugins")},
    )  # fmt: skip


def summary(url: str, spec_name: str, model: str, storage_root: str) -> None:
    champion = mlflow_get(url, "registered-models/alias", name=model, alias="champion")["model_version"]
    run_info = mlflow_get(url, "runs/get", run_id=champion["run_id"])["run"]["info"]
    run_url = f"{url}/#/experiments/{run_info['experiment_id']}/runs/{run_info['run_id']}"
    print(
        f"  champion          {model} version {champion['version']} (serving behind the splitter)\n"
        f"  MLflow run        {run_url}\n"
        f"  decision log      artifact rollout/v{champion['version']}/decision_log.json of that run\n"
        f"  snapshots         {storage_root}/{spec_name}/snapshots/\n"
        f"  run outputs       {storage_root}/{spec_name}/runs/\n"
        "  MLflow and the predictors stop now; `make up` starts MLflow again with the Airflow UI."
    )


def main() -> int:
    spec = load_spec(TELCO_SPEC)
    start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
    say(f"starting MLflow on port {MLFLOW_PORT} (state in {HOME / 'mlflow'})")
    with mlflow_server(HOME / "mlflow", port=MLFLOW_PORT) as url:
        env = airflow_environment(HOME / "airflow", HOME, url)
        os.environ["SHIPYARD_HOME"] = env["SHIPYARD_HOME"]  # where LocalBackend keeps its state
        backend = LocalBackend.for_pipeline(spec.name)
        backend.stop_all()  # a previous demo's predictors, if any
        say(f"Airflow home {env['AIRFLOW_HOME']}: migrating the SQLite metadata DB")
        airflow(env, "db", "migrate")
        say("seeding the Telco churn demo data")
        seed_demo_data(env)
        say(f"publishing the {spec.training.window_intervals - 1} weekly snapshots before {start.date()}")
        ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        load = None
        try:
            dags_test(env, f"run 1, interval [{start}, {end}): train and release the first version")
            load = start_load(env, backend, spec.mlflow.registered_model)
            dags_test(env, "run 2: retrain and roll the new version out as a canary under load")
            summary(url, spec.name, spec.mlflow.registered_model, env["SHIPYARD_STORAGE_ROOT"])
        finally:
            if load is not None:
                load.send_signal(signal.SIGINT)  # prints the final outcome counts
                load.wait(timeout=30)
            backend.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
