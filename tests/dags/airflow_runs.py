"""`airflow dags test` of the training DAG in a migrated SQLite Airflow home (tests/dags/conftest.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from airflow_env import AIRFLOW, TRAINING_DAG, airflow_environment


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
        """`airflow dags test` of the training DAG; `date` is the end of the interval to run.

        Tasks matching the regexp `skip` are marked success without running; so is `rollout`,
        always: these runs stop at register, and tests/plugins/rollout covers the canary.
        """
        args = [AIRFLOW, "dags", "test", TRAINING_DAG, *([date.isoformat()] if date else [])]
        args += ["--conf", json.dumps(conf or {"skip_tuning": True})]
        args += ["--mark-success-pattern", "|".join(filter(None, [skip, "^rollout$"]))]
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
