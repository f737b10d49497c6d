"""`make demo`: the training DAG end to end on the embedded default, through Airflow.

Run with the AIRFLOW virtualenv's interpreter. Starts from a clean `.shipyard/` state
(the previous demo's Airflow DB, MLflow store, snapshots and predictors are removed), starts
a real MLflow server (pipeline virtualenv, state under .shipyard/mlflow), migrates the
SQLite Airflow DB under .shipyard/airflow, seeds the Telco demo data, publishes the 25
weekly snapshots before the latest interval (what a backfill of ingest would publish;
scripts/ingest_history.py), then runs `airflow dags test` for the latest full interval:

1. run 1 trains, registers and releases version 1 straight to 100 % (there is no champion
   to compare a canary with, as in Flagger's first deployment);
2. run 2 trains version 2 and rolls it out as a canary (10 → 25 → 50 → 100 %) behind the
   pipeline's HAProxy while a load driver sends 60 requests/s of demo rows, so every analysis
   check has traffic; it is promoted to `champion` when every check passes;
3. with `--canary-fault` (`make demo-canary-fault`), run 3 trains version 3 and gives its
   canary `--fault_error_rate 0.3` (the trigger form's `canary_args`): the first check fails
   and the rollout rolls back; version 2 stays champion and the run fails, as it should;
4. drift (skipped with `--no-drift`): a day of drifted prediction logs for the champion
   (scripts/send_drifted_traffic.py), the drift DAG (`airflow dags test`) finds the drift and
   emits the drift Asset event, then the Airflow components start (API server, scheduler,
   dag-processor, triggerer) and the scheduler queues the asset-triggered training run, which
   trains on the drifted window and rolls the new version out as a canary under the same load.

It prints each version's rollout (verdict of every check, from the decision log in MLflow),
the champion, the MLflow links and the load driver's outcome counts, then stops the load
driver, the local predictors and HAProxy, the Airflow components and MLflow, also when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from airflow_api import FINISHED, AirflowApi, RunState
from airflow_env import (
    AIRFLOW,
    REPO,
    TELCO_SPEC,
    TRAINING_DAG,
    admin_password,
    airflow,
    airflow_component,
    airflow_environment,
    api_environment,
    ingest_history,
    pipeline,
    seed_demo_data,
)
from support.servers import free_port, mlflow_server, wait_http_ok  # the tests' server helpers, in one place

from shipyard.drift_dag import drift_dag_id
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.window import last_full_interval
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias, Tag

HOME = REPO / ".shipyard"
STATE_DIRS = ("airflow", "mlflow", "storage", "serving")  # what one demo leaves behind; data is re-seeded
MLFLOW_PORT = int(os.environ.get("SHIPYARD_MLFLOW_PORT", "5000"))  # fixed, so printed links stay valid
LOAD_RPS = 60
CANARY_FAULT = "--fault_error_rate 0.3"
RETRAIN_TIMEOUT = 900  # seconds for the scheduler to queue and finish the asset-triggered run


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def mlflow_get(url: str, path: str, **query: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}") as response:
        return json.load(response)


def dags_test(env: dict[str, str], label: str, conf: dict[str, str] | None = None) -> int:
    """One `airflow dags test` of the training DAG (the latest full interval); its exit code."""
    say(f"airflow dags test {TRAINING_DAG}: {label}")
    started = time.monotonic()
    run = subprocess.run(
        [AIRFLOW, "dags", "test", TRAINING_DAG, *(["--conf", json.dumps(conf)] if conf else [])],
        env=env,
        check=False,
    )
    say(f"{label}: exit {run.returncode} after {time.monotonic() - started:.0f} s")
    return run.returncode


def start_load(backend: LocalBackend) -> LoadDriver:
    """The steady request stream the canary analysis judges (the stable model's input example rows)."""
    examples = Path(backend.state()["stable"]["release"]["model_dir"]) / "input_example.json"
    say(f"sending {LOAD_RPS} requests/s of {examples} rows to HAProxy at {backend.url}")
    return LoadDriver(backend.url, backend.served_name, load_records(examples), LOAD_RPS).start()


def retrain_on_drift(env: dict[str, str], pipeline_name: str) -> dict:
    """Stage 4: drifted prediction logs → the drift DAG's Asset event → the scheduler's training run.

    Returns the asset-triggered run (REST API fields) once it has finished.
    """
    drift_dag = drift_dag_id(pipeline_name)
    say("drift: a day of drifted prediction logs for the champion (scripts/send_drifted_traffic.py)")
    pipeline(env, str(REPO / "scripts" / "send_drifted_traffic.py"), "--spec", str(TELCO_SPEC))
    # An Asset event queues runs only of DAGs that are unpaused when it is emitted; `airflow dags
    # test` stored the training DAG paused.
    airflow(env, "dags", "unpause", TRAINING_DAG)
    say(f"airflow dags test {drift_dag}: the drift check of the last 24 hours ({TRAINING_DAG} unpaused)")
    if subprocess.run([AIRFLOW, "dags", "test", drift_dag], env=env, check=False).returncode:
        raise SystemExit("the drift check failed: see the task logs above")
    port = free_port()
    stack_env = api_environment(env, port)
    logs = HOME / "airflow"
    say(
        f"starting the Airflow API server on port {port}, then the scheduler, dag-processor and triggerer "
        f"(output in {logs}/<component>.log): the scheduler queues the asset-triggered run of {TRAINING_DAG}"
    )
    started = time.monotonic()
    with contextlib.ExitStack() as components:
        # The API server first: the workers report to its execution API from their first second.
        api_server = components.enter_context(
            airflow_component(stack_env, "api-server", log=logs / "api-server.log")
        )
        wait_http_ok(f"http://localhost:{port}/api/v2/monitor/health", timeout=180, process=api_server)
        for component in ("scheduler", "dag-processor", "triggerer"):
            components.enter_context(airflow_component(stack_env, component, log=logs / f"{component}.log"))
        api = AirflowApi(f"http://localhost:{port}", "admin", admin_password(HOME / "airflow"))
        deadline = time.monotonic() + RETRAIN_TIMEOUT
        announced = False
        while time.monotonic() < deadline:
            retrain = api.dag_runs(TRAINING_DAG, run_type="asset_triggered")
            if retrain and not announced:
                say(
                    f"the scheduler queued {retrain[0]['dag_run_id']} (the drift Asset's event): it trains "
                    "on the drifted window, then rolls the new version out as a canary"
                )
                announced = True
            # Unpausing makes the scheduler catch up the latest weekly interval as well, queued
            # behind the retraining run (max_active_runs=1). Runs 1 and 2 trained on that week as
            # manual runs, which the scheduler does not count: the demo deletes that run. The
            # scheduler may create it again (it finds no automated run of that week) and be
            # writing it while it is deleted, which the API answers 409: the next poll deletes it.
            for queued in api.dag_runs(TRAINING_DAG, run_type="scheduled", state="queued"):
                run_id = queued["dag_run_id"]
                say(f"deleting {run_id}, queued behind it: runs 1 and 2 already trained on that week")
                try:
                    api.delete_dag_run(TRAINING_DAG, run_id)
                except urllib.error.HTTPError as e:
                    if e.code not in (404, 409):
                        raise
                    say(f"{run_id} changed while being deleted (HTTP {e.code}): looked at again next poll")
            if retrain and retrain[0]["state"] in FINISHED:
                run, took = retrain[0], time.monotonic() - started
                say(f"{run['dag_run_id']}: {run['state']} after {took:.0f} s (task logs in {logs}/logs)")
                return run
            time.sleep(2)
    raise SystemExit(f"no asset-triggered run of {TRAINING_DAG} finished in {RETRAIN_TIMEOUT} s: see {logs}")


def decision_log(url: str, artifact_uri: str, version: str) -> dict | None:
    """The rollout's decision log of `version` from the run's artifacts; None for a first release."""
    run_path = artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
    path = f"{run_path}/rollout/v{version}/decision_log.json"
    try:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}") as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def describe_check(check: dict) -> str:
    requests, error_rate, p99 = (check.get(key) for key in ("requests", "error_rate", "p99_ms"))
    measured = (
        f"{requests:.0f} requests, error rate {error_rate:.2%}, p99 {p99:.1f} ms"
        if None not in (requests, error_rate, p99)
        else check["reason"]
    )
    return f"check {check['index']} at {check['weight']:>3}%: {check['verdict'].upper():<12} {measured}"


def summary(url: str, model: str, load: dict[str, Counter[str]]) -> str:
    """Every version's rollout, the champion and where to look: the demo's last screen."""
    aliases: dict[str, list[str]] = {}
    for alias in mlflow_get(url, "registered-models/get", name=model)["registered_model"].get("aliases", []):
        aliases.setdefault(alias["version"], []).append(alias["alias"])
    found = mlflow_get(url, "model-versions/search", filter=f"name='{model}'")["model_versions"]
    lines = []
    for version in sorted(found, key=lambda v: int(v["version"])):
        number, tags = version["version"], {t["key"]: t["value"] for t in version.get("tags", [])}
        run = mlflow_get(url, "runs/get", run_id=version["run_id"])["run"]["info"]
        named = ", ".join(f"@{a}" for a in sorted(aliases.get(number, []))) or "no alias"
        lines.append(f"  {model} v{number} ({named}): {tags.get(Tag.ROLLOUT_STATUS, 'not released')}")
        interval = f"[{tags.get(Tag.INTERVAL_START)}, {tags.get(Tag.INTERVAL_END)})"
        lines.append(f"    interval    {interval}: the run's (its training window ends there)")
        log = decision_log(url, run["artifact_uri"], number)
        if log is None:
            lines.append("    first release: deployed at 100 % (no champion to compare a canary with)")
        else:
            lines += [f"    {describe_check(check)}" for check in log["checks"]]
            lines.append(f"    decision: {log['status']}: {tags.get(Tag.ROLLOUT_REASON) or log['reason']}")
        lines.append(f"    MLflow run  {url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}")
        lines.append(f"    version     {url}/#/models/{model}/versions/{number}")
    champion = mlflow_get(url, "registered-models/alias", name=model, alias=Alias.CHAMPION)["model_version"]
    lines.append(f"  champion: {model} v{champion['version']}, serving behind HAProxy until teardown")
    lines += [f"  load during {phase}: {dict(counts)}" for phase, counts in load.items()]
    return "\n".join(lines)


def reset_state(backend: LocalBackend) -> None:
    backend.stop_all()  # a previous demo's predictors, if one was killed before its teardown
    for name in STATE_DIRS:
        shutil.rmtree(HOME / name, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--canary-fault",
        action="store_true",
        help=f"run 3: a canary with `{CANARY_FAULT}`, rolled back automatically",
    )
    parser.add_argument(
        "--no-drift",
        action="store_true",
        help="stop after the canary: no drifted traffic, drift check and retraining from its Asset event",
    )
    args = parser.parse_args(argv)
    demo_started = time.monotonic()
    spec = load_spec(TELCO_SPEC)
    model = spec.mlflow.registered_model
    start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
    os.environ["SHIPYARD_HOME"] = str(HOME)  # where LocalBackend keeps its state
    backend = LocalBackend.for_pipeline(spec.name)
    say(f"clean state: removing {', '.join(f'.shipyard/{name}' for name in STATE_DIRS)}")
    reset_state(backend)
    say(f"starting MLflow on port {MLFLOW_PORT} (state in {HOME / 'mlflow'})")
    with mlflow_server(HOME / "mlflow", port=MLFLOW_PORT) as url:
        env = airflow_environment(HOME / "airflow", HOME, url)
        say(f"Airflow home {env['AIRFLOW_HOME']}: migrating the SQLite metadata DB")
        airflow(env, "db", "migrate")
        say("seeding the Telco churn demo data")
        seed_demo_data(env)
        say(f"publishing the {spec.training.window_intervals - 1} weekly snapshots before {start.date()}")
        ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        driver, load = None, {}
        try:
            if dags_test(env, f"run 1, interval [{start}, {end}): train and release the first version"):
                raise SystemExit("run 1 failed: see the task logs above")
            driver = start_load(backend)
            if dags_test(env, "run 2: train a new version and roll it out as a canary under load"):
                raise SystemExit("run 2 failed: see the task logs above")
            load["run 2 (canary promoted)"] = Counter(driver.outcomes)
            if args.canary_fault:
                code = dags_test(env, f"run 3: a canary with {CANARY_FAULT}", {"canary_args": CANARY_FAULT})
                load["run 3 (faulty canary)"] = Counter(driver.outcomes) - load["run 2 (canary promoted)"]
                champion = mlflow_get(url, "registered-models/alias", name=model, alias=Alias.CHAMPION)
                if code == 0 or champion["model_version"]["version"] != "2":
                    raise SystemExit("run 3 should have rolled the faulty canary back and kept v2 champion")
                say("run 3 failed as expected: the faulty canary was rolled back")
            if not args.no_drift:
                before = Counter(driver.outcomes)
                retrain = retrain_on_drift(env, spec.name)
                load["retraining on drift (canary)"] = Counter(driver.outcomes) - before
                if retrain["state"] != RunState.SUCCESS:
                    raise SystemExit(f"the retraining run {retrain['dag_run_id']} failed: see its task logs")
            say(f"summary (demo done in {time.monotonic() - demo_started:.0f} s)")
            print(summary(url, model, load))
            print(
                f"  snapshots   {env['SHIPYARD_STORAGE_ROOT']}/{spec.name}/snapshots/\n"
                f"  run outputs {env['SHIPYARD_STORAGE_ROOT']}/{spec.name}/runs/\n"
                "  The load, the predictors and MLflow stop now; `make up` starts MLflow again with the "
                "Airflow UI (the links stay valid)."
            )
        finally:
            if driver is not None:
                driver.stop()
            backend.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
