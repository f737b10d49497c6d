"""The Airflow UI as a user meets it, in a real browser: headless Chromium against the real API server
(simple auth manager, the repository's dags/), logged in as admin.

With the trigger form's defaults untouched, Trigger and Run Backfill are enabled and each creates
its runs. No scheduler runs here, so the runs stay queued: what they do once scheduled is covered by
tests/dags/test_scheduler.py. Screenshots of each dialog are saved in the test's tmp dir.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_env import (
    TRAINING_DAG,
    admin_password,
    airflow,
    airflow_component,
    airflow_environment,
    api_environment,
)
from browser import button, chromium, log_in, open_trigger_dialog, set_datetime
from selenium.webdriver.common.by import By
from support.servers import free_port, wait_http_ok

from shipyard.window import last_full_interval

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class ApiServer:
    url: str
    home: Path
    password: str

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def wait_rows(self, sql: str, *args: object, count: int, timeout: float = 30) -> list[tuple]:
        """The rows of `sql` once there are `count` of them (or whatever there is after `timeout`)."""
        deadline = time.monotonic() + timeout
        rows = self.query(sql, *args)
        while len(rows) < count and time.monotonic() < deadline:
            time.sleep(0.5)
            rows = self.query(sql, *args)
        return rows


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """`airflow api-server` on a free port, over a migrated SQLite home holding the serialized DAGs
    (it never reaches MLflow: the runs it creates stay queued)."""
    home = tmp_path_factory.mktemp("airflow-ui")
    port = free_port()
    env = api_environment(airflow_environment(home, home / "shipyard", mlflow_uri=None), port)
    airflow(env, "db", "migrate")
    airflow(env, "dags", "reserialize")
    url = f"http://localhost:{port}"
    with airflow_component(env, "api-server", log=home / "api-server.log") as process:
        wait_http_ok(f"{url}/api/v2/monitor/health", timeout=180, process=process)
        yield ApiServer(url, home, admin_password(home))


def test_trigger_with_the_defaults_starts_a_run(api_server: ApiServer, tmp_path: Path) -> None:
    with chromium(tmp_path / "chromium") as driver:
        log_in(driver, api_server.url, "admin", api_server.password)
        dialog = open_trigger_dialog(driver, api_server.url, TRAINING_DAG)
        trigger = dialog.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
        driver.save_screenshot(str(tmp_path / "trigger-dialog.png"))
        assert trigger.is_enabled(), "Trigger is disabled with the form's defaults"
        trigger.click()

        [(run_type, conf)] = api_server.wait_rows(
            "select run_type, conf from dag_run where dag_id = ?", TRAINING_DAG, count=1
        )
    assert run_type == "manual"
    assert json.loads(conf) == {
        "window_intervals": 26,
        "skip_tuning": False,
        "force_ingest": False,
        "canary_args": None,
    }


def test_run_backfill_with_the_defaults_creates_one_run_per_week(
    api_server: ApiServer, tmp_path: Path
) -> None:
    _, latest_end = last_full_interval("0 0 * * 1", "UTC", datetime.now(UTC))
    first, last = latest_end - timedelta(weeks=6), latest_end - timedelta(weeks=5)  # two past Mondays
    with chromium(tmp_path / "chromium") as driver:
        log_in(driver, api_server.url, "admin", api_server.password)
        dialog = open_trigger_dialog(driver, api_server.url, TRAINING_DAG)
        dialog.find_element(By.XPATH, ".//label[.//*[normalize-space()='Backfill']]").click()
        for field, day in zip(
            dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]"), (first, last), strict=True
        ):
            set_datetime(driver, field, f"{day:%Y/%m/%d}", "00:00")
            dialog.find_element(By.XPATH, ".//*[normalize-space()='Date Range']").click()  # close the picker
        run_backfill = button(dialog, "Run Backfill")
        driver.save_screenshot(str(tmp_path / "backfill-dialog.png"))
        assert run_backfill.is_enabled(), "Run Backfill is disabled with the form's defaults"
        run_backfill.click()

        runs = api_server.wait_rows(
            "select logical_date from dag_run where dag_id = ? and run_type = 'backfill' "
            "order by logical_date",
            TRAINING_DAG,
            count=2,
        )
    # Each run's logical date is the start of the week it owns: the weeks that start on the two dates.
    assert [datetime.fromisoformat(d).replace(tzinfo=UTC) for (d,) in runs] == [first, last]
