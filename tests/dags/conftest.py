"""Fixtures of the DAG tests: plugins/ on sys.path (as Airflow does), and one migrated Airflow home
per session whose `airflow dags test` runs use the repository's dags/ with the local runner."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.servers import REPO

# Airflow puts plugins_folder on sys.path; scripts/airflow_env.py configures the embedded setup.
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]

from airflow_env import AIRFLOW, TRAINING_DAG, airflow, airflow_environment, seed_demo_data  # noqa: E402

from shipyard.window import last_full_interval  # noqa: E402


@dataclass(frozen=True)
class AirflowHome:
    """A migrated SQLite Airflow home; each call says which data, storage and MLflow it runs against."""

    path: Path
    mlflow_uri: str

    def env(self, shipyard_home: Path, storage_root: Path) -> dict[str, str]:
        return airflow_environment(self.path, shipyard_home, self.mlflow_uri, storage_root)

    def dags_test(
        self,
        env: dict[str, str],
        date: datetime | None = None,
        conf: dict | None = None,
        skip: str = "",
    ) -> subprocess.CompletedProcess[str]:
        """`airflow dags test` of the training DAG; `date` is the end of the interval to run."""
        args = [AIRFLOW, "dags", "test", TRAINING_DAG, *([date.isoformat()] if date else [])]
        args += ["--conf", json.dumps(conf or {"skip_tuning": True})]
        if skip:  # tasks matching the regexp are marked success without running
            args += ["--mark-success-pattern", skip]
        return subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=600)

    def task_states(self, run_id: str) -> dict[str, str]:
        with sqlite3.connect(self.path / "airflow.db") as db:
            rows = db.execute(
                "select task_id, state from task_instance where run_id = ?", (run_id,)
            ).fetchall()
        return dict(rows)

    def last_run_id(self) -> str:
        with sqlite3.connect(self.path / "airflow.db") as db:
            [(run_id,)] = db.execute(
                "select run_id from dag_run where dag_id = ? order by id desc limit 1", (TRAINING_DAG,)
            ).fetchall()
        return run_id


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, mlflow_tracking_uri: str) -> AirflowHome:
    home = AirflowHome(tmp_path_factory.mktemp("airflow-home"), mlflow_tracking_uri)
    airflow(home.env(home.path, home.path / "storage"), "db", "migrate")
    return home


@pytest.fixture(scope="session")
def telco_home(tmp_path_factory: pytest.TempPathFactory, airflow_home: AirflowHome) -> Path:
    """SHIPYARD_HOME with the seeded Telco demo database (read by every run; never written)."""
    home = tmp_path_factory.mktemp("telco-home")
    seed_demo_data(airflow_home.env(home, home / "storage"))
    return home


@pytest.fixture(scope="session")
def latest_interval() -> tuple[datetime, datetime]:
    """The last full weekly interval: the demo data ends where it ends."""
    return last_full_interval("0 0 * * 1", "UTC", datetime.now(UTC))
