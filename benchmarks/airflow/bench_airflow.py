"""`make bench-airflow`: DAG parse time per DAG file vs an empty DAG, and the demo DAG run per task.

Parse: each file is parsed by `DagBag.process_file` in a fresh interpreter (Airflow itself
imported first, untimed), so the figure is what a DAG processor pays for the file: its own
imports (shipyard, the spec, the Kubernetes provider for that runner) and building the DAGs.
Median of REPEATS fresh processes. Run: one `airflow dags test` of the training DAG (local
runner, tuning on, as `make demo`) in a throwaway Airflow home against a real MLflow server;
per-task durations from the metadata DB, plus the command's wall time (start-up included).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

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
from support.servers import mlflow_server

from shipyard.window import last_full_interval
from shipyard_spec import load_spec

REPEATS = 3
BASELINES = {
    "empty DAG (1 task)": """
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("empty", schedule=None, start_date=datetime(2026, 1, 1)):
    EmptyOperator(task_id="noop")
""",
    # The same shape written by hand, without a spec: what the factory costs on top.
    "hand-written 5-step DAG": """
from datetime import datetime
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, chain
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("by_hand", schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
         start_date=datetime(2026, 1, 5), params={"window_intervals": Param(26, type="integer")}):
    with TaskGroup("pipeline"):
        chain(*[EmptyOperator(task_id=s) for s in ("ingest", "validate", "train", "evaluate", "register")])
""",
    # What any DAG with one KubernetesPodOperator pays (the provider and the Kubernetes client).
    "empty DAG + 1 KPO": """
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

with DAG("kpo", schedule=None, start_date=datetime(2026, 1, 1)):
    KubernetesPodOperator(task_id="pod", image="busybox")
""",
}
PROBE = """
import json, sys, time
sys.path.insert(0, {plugins!r})
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={warmup!r})  # an empty folder: Airflow's own imports, not timed
started = time.perf_counter()
found = bag.process_file({path!r})
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "dags": len(found), "errors": len(bag.import_errors)}}))
"""


def parse_seconds(path: Path, env: dict[str, str], warmup: Path) -> float:
    samples = []
    for _ in range(REPEATS):
        probe = PROBE.format(plugins=str(REPO / "plugins"), warmup=str(warmup), path=str(path))
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.splitlines()[-1])
        if result["errors"] or not (result["dags"] or path.name == "shipyard_specs.py"):  # checks, no DAG
            raise RuntimeError(f"{path} did not parse: {out.stderr[-2000:]}")
        samples.append(result["seconds"])
    return statistics.median(samples)


def bench_parse(work: Path) -> None:
    warmup = work / "no-dags"
    warmup.mkdir()
    base = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(work), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    rows = []
    for number, (name, source) in enumerate(BASELINES.items()):
        path = work / f"baseline_{number}.py"
        path.write_text(source)
        rows.append((name, "-", parse_seconds(path, base, warmup)))
    for path in sorted((REPO / "dags").glob("*.py")):
        runners = ("local", "kubernetes") if path.name == "shipyard_pipelines.py" else ("local",)
        for runner in runners:
            rows.append((path.name, runner, parse_seconds(path, {**base, "SHIPYARD_RUNNER": runner}, warmup)))
    empty_seconds = rows[0][2]
    print(f"\nDAG file parse time (DagBag.process_file, fresh interpreter, median of {REPEATS})")
    print(f"{'file':<26} {'runner':<11} {'ms':>8} {'x empty':>8}")
    for name, runner, seconds in rows:
        print(f"{name:<26} {runner:<11} {seconds * 1000:8.0f} {seconds / empty_seconds:8.1f}")


def bench_run(work: Path) -> None:
    spec = load_spec(TELCO_SPEC)
    start, end = last_full_interval(spec.schedule.cron, spec.schedule.timezone, datetime.now(UTC))
    with mlflow_server(work / "mlflow") as url:
        env = airflow_environment(work / "airflow", work / "home", url)
        airflow(env, "db", "migrate")
        seed_demo_data(env)
        ingest_history(env, start.isoformat(), end.isoformat(), spec.training.window_intervals - 1)
        started = time.monotonic()
        run = subprocess.run([AIRFLOW, "dags", "test", TRAINING_DAG], env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if run.returncode != 0:
            raise RuntimeError(f"the demo DAG run failed:\n{run.stdout[-3000:]}")
    with sqlite3.connect(work / "airflow" / "airflow.db") as db:
        tasks = db.execute(
            "select task_id, duration from task_instance where dag_id = ? order by start_date",
            (TRAINING_DAG,),
        ).fetchall()
    print(f"\nDemo DAG run, local runner, tuning on (`airflow dags test {TRAINING_DAG}`)")
    print(f"{'task':<22} {'seconds':>8}")
    for task_id, duration in tasks:
        print(f"{task_id:<22} {duration:8.1f}")
    print(f"{'sum of tasks':<22} {sum(d for _, d in tasks):8.1f}")
    print(f"{'command wall time':<22} {wall:8.1f}  (incl. Airflow start-up and DAG sync)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parse-only", action="store_true", help="skip the demo DAG run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-airflow-") as tmp:
        bench_parse(Path(tmp))
        if not args.parse_only:
            bench_run(Path(tmp))


if __name__ == "__main__":
    main()
