"""The training DAG run by Airflow (`airflow dags test`, local runner) against a real MLflow server
and the seeded Telco data: a run registers a challenger; backfilled intervals publish disjoint
snapshot partitions and a re-run changes nothing; bad data fails validation and nothing trains."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from airflow_env import ingest_history, seed_demo_data
from airflow_runs import AirflowHome
from demo import mlflow_get

WEEK = timedelta(weeks=1)
SNAPSHOTS = "telco_churn/snapshots"
# Backfill checks the ingest step only: the rest of each run is marked success without running.
ONLY_INGEST = r"pipeline\.(validate|train|evaluate|register)"

pytestmark = pytest.mark.slow


def partition(start: datetime) -> str:
    return f"interval_start={start:%Y-%m-%dT%H:%M:%S}"


def test_a_weekly_run_trains_and_registers_a_challenger(
    airflow_home: AirflowHome, telco_home: Path, latest_interval: tuple[datetime, datetime], tmp_path: Path
) -> None:
    start, end = latest_interval
    env = airflow_home.env(telco_home, tmp_path / "storage")
    ingest_history(env, start.isoformat(), end.isoformat(), 25)

    run = airflow_home.dags_test(env, end)  # the run owning [start, end)

    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    run_id = airflow_home.last_run_id()
    assert set(airflow_home.task_states(run_id).values()) == {"success"}
    uri = airflow_home.mlflow_uri
    version = mlflow_get(uri, "registered-models/alias", name="telco_churn", alias="challenger")[
        "model_version"
    ]
    mlflow_run = mlflow_get(uri, "runs/get", run_id=version["run_id"])["run"]
    tags = {t["key"]: t["value"] for t in mlflow_run["data"]["tags"]}
    assert tags["shipyard.airflow_run_id"] == run_id
    assert (tags["shipyard.interval_start"], tags["shipyard.interval_end"]) == (
        start.isoformat(),
        end.isoformat(),
    )
    run_url = f"{uri}/#/experiments/{mlflow_run['info']['experiment_id']}/runs/{version['run_id']}"
    assert f"MLflow run {version['run_id']}: {run_url}" in log
    assert f"registered telco_churn version {version['version']} as @challenger" in log
    assert "--skip-tuning" in log  # the trigger form's Params reached the train step


def test_backfilled_weeks_publish_disjoint_partitions_and_a_rerun_changes_nothing(
    airflow_home: AirflowHome, telco_home: Path, latest_interval: tuple[datetime, datetime], tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    env = airflow_home.env(telco_home, storage)
    ends = [latest_interval[1] - weeks * WEEK for weeks in (10, 9, 8)]
    for end in ends:
        run = airflow_home.dags_test(env, end, skip=ONLY_INGEST)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    partitions = sorted((storage / SNAPSHOTS).iterdir())
    assert [p.name for p in partitions] == [partition(end - WEEK) for end in ends]
    manifests = [json.loads((p / "_MANIFEST.json").read_text()) for p in partitions]
    windows = [(m["interval_start"], m["interval_end"]) for m in manifests]
    assert windows == [((end - WEEK).isoformat(), end.isoformat()) for end in ends]  # consecutive, disjoint
    assert all(m["rows"] > 0 for m in manifests)

    def state() -> dict[str, tuple[int, str]]:
        return {
            p.name: ((p / "data.parquet").stat().st_mtime_ns, (p / "_MANIFEST.json").read_text())
            for p in partitions
        }

    before = state()
    rerun = airflow_home.dags_test(env, ends[1], skip=ONLY_INGEST)
    assert rerun.returncode == 0
    assert state() == before
    assert "already published" in rerun.stdout + rerun.stderr


def test_data_violating_the_expectations_fails_validation_and_nothing_trains(
    airflow_home: AirflowHome, latest_interval: tuple[datetime, datetime], tmp_path: Path
) -> None:
    corrupt_home = tmp_path / "corrupt-home"
    env = airflow_home.env(corrupt_home, tmp_path / "storage")
    seed_demo_data(env, corrupt=True)

    run = airflow_home.dags_test(env, latest_interval[1])

    log = run.stdout + run.stderr
    assert run.returncode != 0
    run_id = airflow_home.last_run_id()
    states = airflow_home.task_states(run_id)
    assert (states["pipeline.ingest"], states["pipeline.validate"]) == ("success", "failed")
    assert {states[f"pipeline.{s}"] for s in ("train", "evaluate", "register")} == {"upstream_failed"}
    assert not list((tmp_path / "storage").glob("telco_churn/runs/*/train"))
    # The step's one-line cause, in the task log, failing for good on the first try.
    assert "validate: a check failed, not retrying (exit 3): shipyard-step validate: validation of" in log
    assert "expect_column_values_to_be_in_set(contract)" in log  # the failed expectations, listed
    assert f"shipyard: shipyard_train_telco_churn.pipeline.validate failed on try 1 of run {run_id}" in log
