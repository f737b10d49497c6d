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
   and the rollout rolls back; version 2 stays champion and the run fails, as it should.

It prints each version's rollout (verdict of every check, from the decision log in MLflow),
the champion, the MLflow links and the load driver's outcome counts, then stops the load
driver, the local predictors and HAProxy, and MLflow, also when a step fails.
"""

from __future__ import annotations

import argparse
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
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.registry import CHAMPION, REASON_TAG, STATUS_TAG
from shipyard.window import last_full_interval
from shipyard_spec import load_spec

HOME = REPO / ".shipyard"
STATE_DIRS = ("airflow", "mlflow", "storage", "serving")  # what one demo leaves behind; data is re-seeded
MLFLOW_PORT = int(os.environ.get("SHIPYARD_MLFLOW_PORT", "5000"))  # fixed, so printed links stay valid
LOAD_RPS = 60
CANARY_FAULT = "--fault_error_rate 0.3"


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
        lines.append(f"  {model} v{number} ({named}): {tags.get(STATUS_TAG, 'not released')}")
        log = decision_log(url, run["artifact_uri"], number)
        if log is None:
            lines.append("    first release: deployed at 100 % (no champion to compare a canary with)")
        else:
            lines += [f"    {describe_check(check)}" for check in log["checks"]]
            lines.append(f"    decision: {log['status']}: {tags.get(REASON_TAG) or log['reason']}")
        lines.append(f"    MLflow run  {url}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}")
        lines.append(f"    version     {url}/#/models/{model}/versions/{number}")
    champion = mlflow_get(url, "registered-models/alias", name=model, alias=CHAMPION)["model_version"]
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
                champion = mlflow_get(url, "registered-models/alias", name=model, alias=CHAMPION)
                if code == 0 or champion["model_version"]["version"] != "2":
                    raise SystemExit("run 3 should have rolled the faulty canary back and kept v2 champion")
                say("run 3 failed as expected: the faulty canary was rolled back")
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
