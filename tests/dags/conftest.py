"""Fixtures of the DAG tests: plugins/ on sys.path (as Airflow does), and one migrated Airflow home
per session whose `airflow dags test` runs use the repository's dags/ with the local runner."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.servers import REPO

# Airflow puts plugins_folder on sys.path; scripts/airflow_env.py configures the embedded setup.
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "scripts")]

from airflow_env import airflow, seed_demo_data  # noqa: E402
from airflow_runs import AirflowHome  # noqa: E402

from shipyard.window import last_full_interval  # noqa: E402


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
