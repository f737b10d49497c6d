"""The Airflow UI as a user meets it, in a real browser: headless Chromium (Selenium) against the real
Airflow components (simple auth manager, the repository's dags/), logged in as admin.

1. With the trigger form's defaults untouched, Trigger and Run Backfill are enabled and each creates
   its runs (`airflow api-server` alone: the runs stay queued).
2. The whole path through the UI with `airflow standalone` (scheduler, dag-processor, triggerer, API
   server; LocalExecutor) and a real MLflow server: backfill two past weeks from the Backfill dialog
   (skip tuning) and watch both runs succeed (v1 released at 100 %, v2 promoted by a canary under
   load); trigger the latest week with the form filled in (skip tuning, training window) and watch
   the run succeed (v3 promoted by its canary); the MLflow UI shows the model with its `champion`
   alias.

Screenshots of every step go to one directory, printed at the start (SHIPYARD_UI_SCREENSHOTS keeps
them somewhere chosen); docs/images/ holds copies of the best ones.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_api import AirflowApi, RunState
from airflow_env import (
    SERVING_PYTHON,
    TRAINING_DAG,
    admin_password,
    airflow,
    airflow_component,
    airflow_environment,
    api_environment,
    ingest_history,
    seed_demo_data,
)
from browser import (
    TIMEOUT,
    button,
    choose_backfill,
    chromium,
    log_in,
    open_trigger_dialog,
    param_input,
    scroll_to,
    set_number,
    switch_on,
    tick,
    wait_for,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from support.servers import free_port, mlflow_server, wait_http_ok

from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.window import last_full_interval
from shipyard_spec.contract import Alias, serving_name

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
        trigger = scroll_to(dialog.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]"))
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
        choose_backfill(driver, dialog, f"{first:%Y/%m/%d}", f"{last:%Y/%m/%d}")
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


# 2. The whole path through the UI, under the real scheduler and triggerer.

PIPELINE = "telco_churn"  # dags/pipelines/telco_churn.yaml: its registered model has the same name
WEEK = timedelta(weeks=1)
RUN_TIMEOUT = 900  # seconds for one training run and its rollout on a busy 2-core machine
LOAD_RPS = 60  # at 10 % a 5 s check needs min_requests 20: 40 requests/s at least (make demo sends 60)


@dataclass(frozen=True)
class Stack:
    url: str
    password: str
    mlflow_url: str
    api: AirflowApi
    backend: LocalBackend  # the local rollout's predictors and HAProxy, as the rollout task left them
    logs: Path  # the task logs

    def describe(self, run: dict) -> str:
        """A run's state, its tasks' states and where their logs are: what a failure message needs."""
        tasks = self.api.task_states(TRAINING_DAG, run["dag_run_id"])
        return f"{run['dag_run_id']}: {run['state']}, tasks {tasks}, logs under {self.logs}"


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("SHIPYARD_UI_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    # Printed past pytest's output capture, so that it shows whether the tests pass or fail.
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nAirflow and MLflow UI screenshots: {directory}", flush=True)
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """MLflow and `airflow standalone` (scheduler, dag-processor, triggerer, API server) on free ports,
    over a home seeded as `make demo` seeds it (the Telco data, the 25 weekly snapshots before the
    latest week). The DAG stays paused until the Backfill dialog unpauses it.

    `[scheduler] use_job_schedule = False`: the scheduler runs the triggered and backfilled runs but
    creates no scheduled run, which would otherwise queue the latest week (tuned: minutes) ahead of them.
    """
    home = tmp_path_factory.mktemp("airflow-stack")
    start, end = last_full_interval("0 0 * * 1", "UTC", datetime.now(UTC))
    backend = LocalBackend(
        str(home / "shipyard" / "serving" / PIPELINE), SERVING_PYTHON, served_name=serving_name(PIPELINE)
    )
    with mlflow_server(home / "mlflow") as mlflow_url:
        port = free_port()
        env = api_environment(airflow_environment(home / "airflow", home / "shipyard", mlflow_url), port)
        env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
        airflow(env, "db", "migrate")
        seed_demo_data(env)
        ingest_history(env, start.isoformat(), end.isoformat(), 25)
        airflow(env, "dags", "reserialize")
        url = f"http://localhost:{port}"
        try:
            with airflow_component(env, "standalone", log=home / "standalone.log") as process:
                wait_http_ok(f"{url}/api/v2/monitor/health", timeout=300, process=process)
                password = admin_password(home / "airflow")
                api = AirflowApi(url, "admin", password)
                yield Stack(url, password, mlflow_url, api, backend, home / "airflow" / "logs")
        finally:
            backend.stop_all()


def show_run(driver: WebDriver, stack: Stack, run_id: str, screenshot: Path) -> None:
    """The run's page, once the UI says it succeeded (the state in its header)."""
    driver.get(f"{stack.url}/dags/{TRAINING_DAG}/runs/{urllib.parse.quote(run_id, safe='')}")
    wait_for(
        driver, "//*[@data-testid='header-card']//*[@data-testid='state-badge'][normalize-space()='Success']"
    )
    driver.save_screenshot(str(screenshot))


def mlflow_champion(mlflow_url: str) -> str:
    query = urllib.parse.urlencode({"name": PIPELINE, "alias": Alias.CHAMPION})
    with urllib.request.urlopen(f"{mlflow_url}/api/2.0/mlflow/registered-models/alias?{query}") as response:
        return json.load(response)["model_version"]["version"]


@pytest.mark.timeout(2400)  # three training runs and two canaries, one after the other, on 2 shared cores
def test_backfill_and_trigger_from_the_ui_run_to_a_champion(
    stack: Stack, screenshots: Path, tmp_path: Path
) -> None:
    """Oldest weeks first, as a user fills history: each version's gates compare it with the champion
    on its own test rows (the latest of its window), which an older champion has not trained on."""
    latest_start, latest_end = last_full_interval("0 0 * * 1", "UTC", datetime.now(UTC))
    first, last = latest_start - 3 * WEEK, latest_start - 2 * WEEK
    with chromium(tmp_path / "chromium") as driver:
        log_in(driver, stack.url, "admin", stack.password)

        # Backfill two past weeks with tuning skipped; the dialog unpauses the DAG.
        dialog = open_trigger_dialog(driver, stack.url, TRAINING_DAG)
        choose_backfill(driver, dialog, f"{first:%Y/%m/%d}", f"{last:%Y/%m/%d}")
        # Airflow 3.3's Backfill dialog sends its Run Parameters only with this box ticked; without
        # it every run takes the Params' defaults, whatever the form shows.
        tick(dialog, "Override parameters on existing runs")
        switch_on(dialog, "skip_tuning")
        run_backfill = button(dialog, "Run Backfill")
        scroll_to(dialog.find_element(By.XPATH, ".//*[normalize-space()='Reprocess Behavior']"))
        driver.save_screenshot(str(screenshots / "01-backfill-form.png"))
        run_backfill.click()
        # The first week's version is released at 100 %; from then on the load driver sends the
        # traffic every later canary check needs.
        [released] = stack.api.wait_runs(TRAINING_DAG, 1, RUN_TIMEOUT, run_type="backfill")
        assert released["state"] == RunState.SUCCESS, stack.describe(released)
        examples = Path(stack.backend.state()["stable"]["release"]["model_dir"]) / "input_example.json"
        load = LoadDriver(stack.backend.url, stack.backend.served_name, load_records(examples), LOAD_RPS)
        load.start()
        try:
            runs = stack.api.wait_runs(TRAINING_DAG, 2, RUN_TIMEOUT, run_type="backfill")
            assert [(r["state"], datetime.fromisoformat(r["logical_date"])) for r in runs] == [
                (RunState.SUCCESS, first),
                (RunState.SUCCESS, last),
            ], [stack.describe(r) for r in runs]
            assert [r["conf"].get("skip_tuning") for r in runs] == [True, True]
            show_run(driver, stack, runs[-1]["dag_run_id"], screenshots / "02-backfill-run-succeeded.png")
            assert mlflow_champion(stack.mlflow_url) == "2"  # promoted by its canary

            # Trigger the latest week: tuning skipped, a window of 30 weeks (all 26 the data has:
            # v3 must match v2 on v3's test rows, so it gets at least v2's training data).
            dialog = open_trigger_dialog(driver, stack.url, TRAINING_DAG)
            set_number(param_input(dialog, "Training window (intervals)"), 30)
            switch_on(dialog, "skip_tuning")
            driver.save_screenshot(str(screenshots / "03-trigger-form.png"))
            scroll_to(dialog.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]")).click()
            [run] = stack.api.wait_runs(TRAINING_DAG, 1, RUN_TIMEOUT, run_type="manual")
        finally:
            load.stop()
        assert run["state"] == RunState.SUCCESS, stack.describe(run)
        assert run["conf"] == {
            "window_intervals": 30,
            "skip_tuning": True,
            "force_ingest": False,
            "canary_args": None,
        }
        interval = [datetime.fromisoformat(run[f"data_interval_{edge}"]) for edge in ("start", "end")]
        assert interval == [latest_start, latest_end]  # the week that ended last Monday
        show_run(driver, stack, run["dag_run_id"], screenshots / "04-trigger-run-succeeded.png")
        assert set(load.outcomes) == {"200"}, f"requests lost during the canaries: {load.outcomes}"

        # The MLflow UI: the registered model, its latest version `champion`.
        assert mlflow_champion(stack.mlflow_url) == "3"
        driver.get(f"{stack.mlflow_url}/#/models/{PIPELINE}")
        WebDriverWait(driver, TIMEOUT).until(lambda d: "champion" in d.find_element(By.TAG_NAME, "body").text)
        # MLflow 3.17 opens its assistant panel beside the page: closed, the versions table has the room.
        driver.find_element(
            By.CSS_SELECTOR, "[data-component-id='mlflow.assistant.chat_panel.close']"
        ).click()
        driver.save_screenshot(str(screenshots / "05-mlflow-champion.png"))
