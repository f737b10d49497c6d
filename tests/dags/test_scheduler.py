"""The training DAG through the real scheduler, as `make up` runs it: `airflow standalone` (scheduler,
dag-processor, api-server, triggerer; LocalExecutor on SQLite) on a free port, a real MLflow server,
the local runner and the seeded demo data.

- a backfill of three past weeks (`airflow backfill create`) runs three real training runs: three
  snapshots published once each, three model versions, the first released, the others canaried;
- the canaries defer: the rollout task is seen `deferred`, its trigger row names the analysis
  trigger, the triggerer process runs it and the task resumes to success;
- the same backfill with `--reprocess-behavior none` creates no run; one through the REST API the UI
  uses (`POST /api/v2/backfills`, reprocessing completed runs) re-runs the latest week idempotently:
  no new snapshot, MLflow run or model version;
- drifted traffic to the served champion → the drift DAG emits the asset event → the training DAG is
  queued by the asset, trains on the window ending at the detection and rolls the new version out.

One stack per module (the whole module: 6 min at load average 3-6, 12.4 min at ~12 on the 2 shared
cores; docs/architecture.md). The spec is the repository's telco_churn.yaml with
test-sized settings (see `fixture_spec`); the DAGs are the real ones, built by the DAG factory from it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_api import AirflowApi
from airflow_env import (
    PIPELINE_PYTHON,
    REPO,
    TELCO_SPEC,
    TRAINING_DAG,
    admin_password,
    airflow,
    airflow_component,
    airflow_environment,
    api_environment,
    ingest_history,
)
from support.servers import free_port, mlflow_server, wait_http_ok
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard_spec.contract import Env

# The first test also pays for the module's stack and backfill (fixture setup counts in its timeout).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

WEEK = timedelta(weeks=1)
DRIFT_DAG = "shipyard_drift_telco_churn"
TRIGGER_CLASS = "shipyard.rollout.trigger.CanaryAnalysisTrigger"
CONF = {"skip_tuning": True}  # the trigger form's Param, as a user would tick it
RUN_TIMEOUT = 1500  # seconds for one backfill (~4 min a run at load average 15-18 on 2 cores)


def retry_on_lock(refused: Callable[[BaseException], bool]) -> Retrying:
    """Five tries, 5 s apart, of a write SQLite refused because another component was writing."""
    return Retrying(
        retry=retry_if_exception(refused), stop=stop_after_attempt(5), wait=wait_fixed(5), reraise=True
    )


def fixture_spec(latest_end: datetime) -> dict[str, Any]:
    """telco_churn.yaml, sized for a test: what changes and why.

    - start_date in the future: the scheduler creates no scheduled run of its own (catchup=False
      would start the latest week as soon as the DAGs are unpaused); backfills, manual and
      asset-triggered runs are unaffected;
    - a 4-week training window and no tuning: each run fits ~1,000 rows in seconds;
    - gates loosened for ~200 test rows (the gates are tested in tests/images/pipeline);
    - a two-step canary (50 %, 100 %) checked every 3 s on 5 requests: a minute, not five.
    """
    spec = yaml.safe_load(TELCO_SPEC.read_text())
    spec["schedule"]["start_date"] = (latest_end + timedelta(weeks=520)).date().isoformat()
    spec["training"]["window_intervals"] = 4
    spec["model"]["tuning"]["enabled"] = False
    spec["gates"] = {"min_roc_auc": 0.7, "max_baseline_shortfall": 0.05, "max_champion_regression": 0.05}
    spec["rollout"].update(
        steps=[50, 100], interval_seconds=3, min_requests=5, no_data_deadline_seconds=90,
        progress_deadline_seconds=240,
    )  # fmt: skip
    return spec


class Observer(threading.Thread):
    """Polls the metadata DB twice a second: the states the rollout tasks went through and the
    trigger rows that existed (both are gone or overwritten by the time a run ends)."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.rollout_states: dict[str, list[str]] = {}  # run id -> distinct states, in order
        self.triggers: set[str] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            # A poll that meets a writer's lock is simply the next poll, half a second later.
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(self.db, timeout=1) as db:
                for run_id, state in db.execute(
                    "select run_id, state from task_instance where task_id = 'rollout' and state is not null"
                ):
                    seen = self.rollout_states.setdefault(run_id, [])
                    if not seen or seen[-1] != state:
                        seen.append(state)
                self.triggers.update(
                    classpath for (classpath,) in db.execute("select classpath from trigger")
                )


class Load(threading.Thread):
    """Steady traffic to the pipeline's HAProxy once the first release serves: the canary analysis
    judges live requests (as in `make demo`)."""

    def __init__(self, backend: LocalBackend) -> None:
        super().__init__(daemon=True)
        self.backend = backend
        self.driver: LoadDriver | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1):
            stable = self.backend.state().get("stable")
            if stable:
                examples = Path(stable["release"]["model_dir"]) / "input_example.json"
                self.driver = LoadDriver(
                    self.backend.url, self.backend.served_name, load_records(examples), 20
                )
                self.driver.start()
                return

    def stop(self) -> None:
        self.stopped.set()
        if self.driver is not None:
            self.driver.stop()


@dataclass
class Stack:
    env: dict[str, str]
    home: Path  # AIRFLOW_HOME
    storage: Path
    mlflow_url: str
    rest: AirflowApi  # the REST API the UI uses, as the signed-in admin
    log: Path  # the output of `airflow standalone`: every component, prefixed with its name
    observer: Observer
    weeks: list[datetime] = field(default_factory=list)  # the backfilled weeks' starts

    def airflow(self, *args: str) -> None:
        """An `airflow` CLI command against the running stack, tried again when SQLite refused its
        write ("database is locked": with every component writing to one file, SQLite refuses a
        read transaction's upgrade to a write at once, without the lock wait, when another
        connection wrote in between). Such a try leaves nothing behind: a trigger's transaction is
        rolled back, and Airflow deletes a backfill whose runs could not be created for a lock
        error (`_cleanup_partial_backfill`, the API's 503)."""
        retry_on_lock(lambda e: "database is locked" in str(e))(airflow, self.env, *args)

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db", timeout=10) as db:
            return db.execute(sql, args).fetchall()

    def wait(self, what: str, done: Callable[[], Any], timeout: float = RUN_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := done():
                return result
            time.sleep(2)
        states = self.query(
            "select run_id, task_id, state from task_instance where state is not null order by run_id"
        )
        tail = self.log.read_text(errors="replace")[-4000:]
        raise TimeoutError(f"{what}: not within {timeout:.0f}s; task states {states}\n{tail}")

    def wait_backfill(self, backfill_id: int) -> None:
        self.wait(
            f"backfill {backfill_id} to complete",
            lambda: self.query("select completed_at from backfill where id = ?", backfill_id)[0][0],
        )

    def latest_backfill(self) -> int:
        return self.query("select max(id) from backfill")[0][0]

    def runs(self, backfill_id: int) -> dict[str, str]:
        """run id -> state of the runs a backfill created or re-ran."""
        rows = self.query(
            "select r.run_id, r.state from backfill_dag_run b join dag_run r on r.id = b.dag_run_id "
            "where b.backfill_id = ? order by b.sort_ordinal",
            backfill_id,
        )
        return dict(rows)

    def task_log(self, run_id: str, task_id: str) -> str:
        logs = sorted((self.home / "logs").glob(f"dag_id=*/run_id={run_id}/task_id={task_id}/attempt=*.log"))
        return "\n".join(path.read_text(errors="replace") for path in logs)

    def mlflow(self, path: str, **query: str) -> dict:
        url = f"{self.mlflow_url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def versions(self) -> list[dict]:
        found = self.mlflow("model-versions/search", filter="name='telco_churn'").get("model_versions", [])
        return sorted(found, key=lambda v: int(v["version"]))

    def champion(self) -> str:
        found = self.mlflow("registered-models/alias", name="telco_churn", alias="champion")
        return found["model_version"]["version"]

    def manifests(self) -> dict[str, tuple[int, str]]:
        """partition -> (data file mtime, manifest text)."""
        return {
            p.parent.name: ((p.parent / "data.parquet").stat().st_mtime_ns, p.read_text())
            for p in sorted((self.storage / "telco_churn" / "snapshots").glob("*/_MANIFEST.json"))
        }


def tags(version: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in version.get("tags", [])}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, telco_home: Path, latest_interval: tuple[datetime, datetime]
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("scheduler")
    airflow_home, shipyard_home, dags = root / "airflow", root / "shipyard", root / "dags"
    shipyard_home.mkdir()
    (shipyard_home / "data").symlink_to(telco_home / "data")  # the seeded source, read only
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__", "pipelines"))
    (dags / "pipelines").mkdir()
    latest_end = latest_interval[1]
    (dags / "pipelines" / "telco_churn.yaml").write_text(yaml.safe_dump(fixture_spec(latest_end)))
    weeks = [latest_end - n * WEEK for n in (3, 2, 1)]
    port = free_port()
    with mlflow_server(root / "mlflow") as mlflow_url, pytest.MonkeyPatch.context() as patch:
        env = api_environment(airflow_environment(airflow_home, shipyard_home, mlflow_url), port)
        env |= {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        }
        for name in (Env.HOME, Env.STORAGE_ROOT, Env.PREDICTION_LOG_URI, Env.SERVING_PYTHON):
            patch.setenv(name, env[name])  # LocalBackend (this process) finds the predictors' state
        airflow_home.mkdir()
        airflow(env, "db", "migrate")
        # The three weeks before the first backfilled one, so every run has its 4-week window.
        ingest_history(env, weeks[0].isoformat(), (weeks[0] + WEEK).isoformat(), 3)
        observer = Observer(airflow_home / "airflow.db")
        backend = LocalBackend.for_pipeline("telco_churn")
        load = Load(backend)
        log = airflow_home / "standalone.log"
        try:
            with airflow_component(env, "standalone", log=log) as standalone:
                api_url = f"http://localhost:{port}"
                wait_http_ok(f"{api_url}/api/v2/monitor/health", timeout=240, process=standalone)
                storage = Path(env[Env.STORAGE_ROOT])
                rest = AirflowApi(api_url, "admin", admin_password(airflow_home))
                stack = Stack(env, airflow_home, storage, mlflow_url, rest, log, observer, weeks)
                stack.wait(  # the DAG processor of the stack parses dags/ (no reserialize beforehand)
                    "the training DAG to be serialized",
                    lambda: stack.query("select 1 from serialized_dag where dag_id = ?", TRAINING_DAG),
                    timeout=300,
                )
                observer.start()
                load.start()
                yield stack
        finally:
            observer.stopped.set()
            load.stop()
            backend.stop_all()


@pytest.fixture(scope="module")
def backfilled(stack: Stack) -> dict[str, Any]:
    """`airflow backfill create` of three past weeks, run to the end by the scheduler."""
    started = time.monotonic()
    stack.airflow(
        "backfill", "create", "--dag-id", TRAINING_DAG,
        "--from-date", stack.weeks[0].isoformat(), "--to-date", stack.weeks[-1].isoformat(),
        "--dag-run-conf", json.dumps(CONF), "--max-active-runs", "1",
    )  # fmt: skip
    backfill_id = stack.latest_backfill()
    stack.wait_backfill(backfill_id)
    elapsed = time.monotonic() - started
    print(f"\nbackfill of 3 weeks through the scheduler: {elapsed:.0f} s")
    return {"id": backfill_id, "runs": stack.runs(backfill_id), "seconds": elapsed}


def test_a_backfill_of_three_weeks_runs_three_training_runs_through_the_scheduler(
    stack: Stack, backfilled: dict[str, Any]
) -> None:
    runs = backfilled["runs"]
    assert list(runs.values()) == ["success"] * 3, runs
    logical = stack.query(
        "select logical_date, conf from dag_run where backfill_id = ? order by logical_date", backfilled["id"]
    )
    assert [datetime.fromisoformat(d).replace(tzinfo=UTC) for d, _ in logical] == stack.weeks
    assert all(json.loads(conf)["skip_tuning"] is True for _, conf in logical)

    # One snapshot per week, published by that week's run, next to the three history weeks.
    manifests = {name: json.loads(text) for name, (_, text) in stack.manifests().items()}
    published = {m["interval_start"]: m["run_id"] for m in manifests.values() if m["run_id"] in runs}
    assert published == {week.isoformat(): run_id for week, run_id in zip(stack.weeks, runs, strict=True)}
    assert len(manifests) == 6

    # Three versions, one per run and week; the last one is the champion.
    versions = stack.versions()
    assert [tags(v)["shipyard.airflow_run_id"] for v in versions] == list(runs)
    assert [tags(v)["shipyard.interval_start"] for v in versions] == [w.isoformat() for w in stack.weeks]
    assert stack.champion() == versions[-1]["version"]
    first_run = next(iter(runs))
    assert "no champion yet: a first release has nothing to compare with" in stack.task_log(
        first_run, "rollout"
    )


def test_the_canary_defers_to_the_real_triggerer_and_resumes(
    stack: Stack, backfilled: dict[str, Any]
) -> None:
    _, *canaried = backfilled["runs"]  # the first run is a first release: nothing to defer
    for run_id in canaried:
        states = stack.observer.rollout_states[run_id]
        assert "deferred" in states, (run_id, states)
        assert states[-1] == "success", (run_id, states)
        log = stack.task_log(run_id, "rollout")
        assert "canary telco_churn v" in log  # execute(): deployed at 0 %, then deferred
        assert "champion is now telco_churn v" in log  # execute_complete(): resumed after the event
        # What the triggerer process wrote while the task was paused: its runner starting the
        # trigger, then the analysis itself (Airflow keeps it next to the attempt's log).
        [trigger_log] = stack.home.glob(
            f"logs/dag_id=*/run_id={run_id}/task_id=rollout/attempt=*.log.trigger.*.log"
        )
        events = [json.loads(line) for line in trigger_log.read_text().splitlines() if line.startswith("{")]
        assert events[0]["filename"] == "triggerer_job_runner.py", events[0]
        assert events[0]["event"].endswith("starting")
        assert any(
            e.get("logger") == "shipyard.rollout.controller" and "promoted" in e["event"] for e in events
        )
    assert TRIGGER_CLASS in stack.observer.triggers  # the trigger row the scheduler handed over


def test_backfilling_again_creates_nothing_and_reprocessing_completed_runs_is_idempotent(
    stack: Stack, backfilled: dict[str, Any]
) -> None:
    runs_before = stack.query("select count(*) from dag_run")
    versions_before = stack.versions()
    manifests_before = stack.manifests()

    stack.airflow(
        "backfill", "create", "--dag-id", TRAINING_DAG, "--reprocess-behavior", "none",
        "--from-date", stack.weeks[0].isoformat(), "--to-date", stack.weeks[-1].isoformat(),
        "--dag-run-conf", json.dumps(CONF),
    )  # fmt: skip
    backfill_id = stack.latest_backfill()
    stack.wait_backfill(backfill_id)
    assert stack.query("select count(*) from dag_run") == runs_before
    reasons = stack.query("select exception_reason from backfill_dag_run where backfill_id = ?", backfill_id)
    assert reasons == [("already exists",)] * 3

    # The UI's Backfill dialog: the REST API, as the signed-in admin, reprocessing the latest week.
    latest = stack.weeks[-1].isoformat()
    body = {
        "dag_id": TRAINING_DAG, "from_date": latest, "to_date": latest, "reprocess_behavior": "completed",
        "dag_run_conf": CONF, "max_active_runs": 1, "run_backwards": False,
    }  # fmt: skip
    backfill_id = stack.rest.create_backfill(body)["id"]
    stack.wait(
        "the REST backfill to re-run the latest week", lambda: stack.runs(backfill_id).get(
            list(backfilled["runs"])[-1]
        ) == "success" and stack.query("select completed_at from backfill where id = ?", backfill_id)[0][0]
    )  # fmt: skip

    rerun = list(backfilled["runs"])[-1]
    assert stack.runs(backfill_id) == {rerun: "success"}  # the same run, re-run
    assert stack.query("select count(*) from dag_run") == runs_before
    assert stack.manifests() == manifests_before  # no snapshot written again
    assert "already published" in stack.task_log(rerun, "pipeline.ingest")
    assert "already trained on these snapshots" in stack.task_log(rerun, "pipeline.train")
    versions = stack.versions()
    assert [v["version"] for v in versions] == [v["version"] for v in versions_before]
    assert stack.champion() == versions[-1]["version"]


def test_drifted_traffic_retrains_and_rolls_out_through_the_asset_schedule(
    stack: Stack, backfilled: dict[str, Any]
) -> None:
    champion = stack.champion()
    subprocess.run(
        [PIPELINE_PYTHON, str(REPO / "scripts" / "send_drifted_traffic.py"), "--spec", str(TELCO_SPEC)],
        env=stack.env, check=True, timeout=300,
    )  # fmt: skip
    stack.airflow("dags", "trigger", DRIFT_DAG)
    [(drift_run,)] = stack.wait(
        "the drift run", lambda: stack.query("select run_id from dag_run where dag_id = ?", DRIFT_DAG)
    )
    stack.wait(
        "the drift run to succeed",
        lambda: stack.query("select state from dag_run where run_id = ?", drift_run) == [("success",)],
    )
    [(extra, detected_at)] = stack.query(
        "select e.extra, e.timestamp from asset_event e join asset a on a.id = e.asset_id "
        "where a.uri = 'shipyard://telco_churn/drift'"
    )
    event = json.loads(extra)
    assert event["reason"] == "drift"
    assert any("tenure" in reason or "contract" in reason for reason in event["reasons"]), event

    [(retrain,)] = stack.wait(
        "the asset-triggered training run",
        lambda: stack.query(
            "select run_id from dag_run where dag_id = ? and run_type = 'asset_triggered'", TRAINING_DAG
        ),
    )
    stack.wait(
        "the retraining run to succeed",
        lambda: stack.query("select state from dag_run where run_id = ?", retrain) == [("success",)],
    )
    new = stack.versions()[-1]
    end = datetime.fromisoformat(detected_at).replace(tzinfo=UTC, second=0, microsecond=0)
    assert tags(new)["shipyard.airflow_run_id"] == retrain
    assert tags(new)["shipyard.interval_end"] == end.isoformat()  # the window ends at the detection
    assert new["version"] != champion
    assert stack.champion() == new["version"]  # rolled out by canary and promoted
    assert "deferred" in stack.observer.rollout_states[retrain]
    assert "queued by 1 asset event(s)" in stack.task_log(retrain, "pipeline.ingest")
    # The window is in the UI too, not only in the task log: the Rendered Template of every step.
    ingest = stack.rest.task_instance(TRAINING_DAG, retrain, "pipeline.ingest")
    rendered = json.dumps(ingest["rendered_fields"]["arguments"])  # a list, or its text
    assert re.search(rf"--interval-end\W+{re.escape(end.isoformat())}", rendered), rendered
