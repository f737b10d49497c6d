"""The drift DAG: its shape without a database, and — against a real Airflow metadata DB, a
real MLflow server and the real drift step — that drift emits the asset event which queues
the training DAG, while a clean window emits nothing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from support.servers import REPO, venv_python

AIRFLOW = str(Path(sys.executable).parent / "airflow")
PIPELINE = "drift_probe"
SPEC = {
    "name": PIPELINE,
    "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
    "source": {"kind": "files", "paths": ["unused.parquet"]},
    "columns": {"id": "customer_id", "target": "churn"},
    "features": {
        "numeric": ["tenure", "monthly_charges", "senior_citizen"],
        "categorical": ["contract", "internet_service"],
    },
    "mlflow": {"experiment": PIPELINE, "registered_model": PIPELINE},
    "drift": {"cron": "0 4 * * *", "key_features": ["tenure", "contract"]},
}
# The DAG that consumes the drift asset, as the training DAG's schedule declares it. A
# stand-in until the DAG factory's training DAG (weekly OR drift asset) is in dags/.
TRAINING_STANDIN = '''
"""Stand-in training DAG (airflow): weekly OR the pipeline's drift asset."""
from datetime import datetime, UTC
from airflow.sdk import DAG, AssetOrTimeSchedule, CronDataIntervalTimetable
from airflow.providers.standard.operators.empty import EmptyOperator
from shipyard.drift_dag import drift_asset

with DAG(
    "shipyard_train_drift_probe",
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"), assets=[drift_asset("drift_probe")]
    ),
    start_date=datetime(2026, 1, 5, tzinfo=UTC),
):
    EmptyOperator(task_id="ingest")
'''


def test_drift_dag_shape_and_outlet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "plugins"))  # what Airflow does with plugins_folder
    from airflow.dag_processing.dagbag import DagBag

    from shipyard.drift_dag import drift_asset

    bag = DagBag(dag_folder=str(REPO / "dags" / "shipyard_drift.py"))
    assert bag.import_errors == {}
    dag = bag.dags["shipyard_drift_telco_churn"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "check_drift",
        "drift_detected",
        "emit_drift_event",
    ]
    assert dag.get_task("emit_drift_event").outlets == [drift_asset("telco_churn")]
    assert (dag.timetable.expression, dag.timetable.interval) == ("0 4 * * *", timedelta(days=1))


RUN_AFTER = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)
SCHEDULED = {"data_interval_start": datetime(2026, 3, 10, 4, tzinfo=UTC), "data_interval_end": RUN_AFTER}


@pytest.mark.parametrize(
    ("interval", "window"),
    [
        (SCHEDULED, ("2026-03-10T04:00:00+00:00", "2026-03-11T09:30:00+00:00")),
        ({}, ("2026-03-10T09:30:00+00:00", "2026-03-11T09:30:00+00:00")),  # the day before run_after
    ],
    ids=["data interval", "no data interval"],
)
def test_check_drift_runs_the_drift_step_cli_on_the_run_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: dict, window: tuple[str, str]
) -> None:
    """The local runner of the training steps, with the common step arguments and the settings' storage."""
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    monkeypatch.setenv("SHIPYARD_RUNNER", "local")
    monkeypatch.setenv("SHIPYARD_STORAGE_ROOT", str(tmp_path / "storage"))
    from shipyard.drift_dag import build_drift_dag
    from shipyard.operators.local import LocalStepOperator
    from shipyard_spec import load_spec
    from shipyard_spec.contract import spec_sha256

    spec_path = REPO / "dags" / "pipelines" / "telco_churn.yaml"
    operator = build_drift_dag(load_spec(spec_path)).get_task("check_drift")
    assert isinstance(operator, LocalStepOperator)
    context = {
        **interval,
        "run_id": "manual__1",
        "params": {},
        "dag_run": SimpleNamespace(run_after=RUN_AFTER, consumed_asset_events=[]),
    }
    operator.render_template_fields(context)
    assert operator.arguments == [
        "drift",
        "--spec-sha256", spec_sha256(spec_path.read_text()),
        "--interval-start", window[0],
        "--interval-end", window[1],
        "--run-id", "manual__1",
        "--storage-root", str(tmp_path / "storage"),
    ]  # fmt: skip


@dataclass
class AirflowEnv:
    home: Path
    env: dict[str, str]

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        process = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, check=False)
        assert process.returncode == 0, f"airflow {' '.join(args)} failed:\n{process.stderr[-3000:]}"
        return process

    def seed(self, start: datetime, shift: str = "") -> None:
        subprocess.run(
            [
                venv_python("pipeline"), str(Path(__file__).parent / "drift_seed.py"),
                "--model-name", PIPELINE, "--log-root", str(self.home / "storage" / "prediction_logs"),
                "--start", start.isoformat(), "--shift", shift,
            ],
            env=self.env, check=True,
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory, mlflow_tracking_uri: str) -> AirflowEnv:
    """A migrated SQLite Airflow home whose dags folder holds the drift DAG and a consumer."""
    home = tmp_path_factory.mktemp("airflow")
    dags = home / "dags"
    (dags / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "shipyard_drift.py", dags)
    (dags / "pipelines" / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(SPEC))
    (dags / "training_standin.py").write_text(TRAINING_STANDIN)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "SHIPYARD_STORAGE_ROOT": str(home / "storage"),
        "SHIPYARD_PIPELINE_PYTHON": venv_python("pipeline"),
    }
    environment = AirflowEnv(home, env)
    environment.airflow("db", "migrate")
    environment.airflow("dags", "reserialize")
    return environment


def asset_events(env: AirflowEnv) -> list[dict]:
    rows = env.query(
        "select e.extra from asset_event e join asset a on a.id = e.asset_id "
        f"where a.uri = 'shipyard://{PIPELINE}/drift'"
    )
    return [json.loads(extra) for (extra,) in rows]


@pytest.mark.slow
def test_clean_window_emits_nothing_and_drift_queues_a_training_run(airflow_env: AirflowEnv) -> None:
    clean_day = datetime(2026, 3, 3, tzinfo=UTC)
    airflow_env.seed(clean_day - timedelta(hours=20))
    airflow_env.airflow("dags", "test", f"shipyard_drift_{PIPELINE}", clean_day.isoformat())
    assert asset_events(airflow_env) == []
    assert airflow_env.query("select target_dag_id from asset_dag_run_queue") == []

    drift_day = datetime(2026, 3, 4, tzinfo=UTC)
    airflow_env.seed(drift_day - timedelta(hours=20), shift="contract")
    run = airflow_env.airflow("dags", "test", f"shipyard_drift_{PIPELINE}", drift_day.isoformat())

    [event] = asset_events(airflow_env)
    assert event["reason"] == "drift"
    assert event["reasons"][0].startswith("feature contract PSI")
    assert event["interval_end"] == drift_day.isoformat()
    assert Path(event["report_uri"]).exists()
    queued = airflow_env.query("select target_dag_id from asset_dag_run_queue")
    assert queued == [("shipyard_train_drift_probe",)]
    assert "feature contract PSI" in run.stdout + run.stderr  # the step's verdict is in the task log
