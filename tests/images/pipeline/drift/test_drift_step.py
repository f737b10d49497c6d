"""The drift step end to end against a real MLflow server and prediction logs on disk."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from support.servers import free_port, metric_samples, pushgateway_server

from shipyard_pipeline.cli import main
from shipyard_pipeline.drift.prediction_logs import write_parts
from shipyard_pipeline.drift.profile import PROFILE_ARTIFACT, ReferenceProfile

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=1)


@pytest.fixture
def client(mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    return MlflowClient(mlflow_tracking_uri)


@pytest.fixture
def model_name() -> str:
    return f"churn_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spec_path(tmp_path: Path, model_name: str) -> Path:
    spec = {
        "name": "churn",
        "schedule": {"start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": ["unused.parquet"]},
        "columns": {"id": "customer_id", "target": "churn"},
        "features": {
            "numeric": ["tenure", "monthly_charges", "senior_citizen"],
            "categorical": ["contract", "internet_service"],
        },
        "mlflow": {"experiment": model_name, "registered_model": model_name},
        "drift": {"key_features": ["tenure", "contract"], "min_rows": 100},
    }
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def champion(
    client: MlflowClient, model_name: str, profile: ReferenceProfile, tmp_path: Path
) -> ModelVersion:
    """A registered version whose run carries the reference profile, behind alias `champion`."""
    run = client.create_run(client.create_experiment(model_name))
    profile_path = tmp_path / PROFILE_ARTIFACT
    profile_path.write_text(json.dumps(profile.to_dict()))
    client.log_artifact(run.info.run_id, str(profile_path))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(model_name, "champion", version.version)
    return version


@pytest.fixture
def run_step(tmp_path: Path, spec_path: Path) -> Callable[[], dict]:
    def run() -> dict:
        result_path = tmp_path / "result.json"
        code = main(
            [
                "drift", "--spec", str(spec_path),
                "--interval-start", START.isoformat(), "--interval-end", END.isoformat(),
                "--run-id", "scheduled__2026-03-03", "--storage-root", str(tmp_path / "storage"),
                "--result-path", str(result_path),
            ]
        )  # fmt: skip
        assert code == 0
        return json.loads(result_path.read_text())

    return run


def log_traffic(
    tmp_path: Path, model_name: str, frame: pd.DataFrame, version: str, make_records: Callable
) -> None:
    """Prediction logs of the spec's pipeline (`churn`), where its predictor writes them."""
    write_parts(
        str(tmp_path / "storage" / "prediction_logs"),
        "churn",
        make_records(frame, START, version, model_name),
    )


def test_no_champion_yet_is_no_trigger(client: MlflowClient, run_step: Callable[[], dict]) -> None:
    result = run_step()
    assert result["status"] == "no_champion"
    assert result["drift_detected"] is False


def test_an_empty_window_says_no_data_and_does_not_trigger(
    champion: ModelVersion, run_step: Callable[[], dict], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shipyard_pipeline.drift")
    result = run_step()
    assert (result["status"], result["drift_detected"]) == ("no_data", False)
    assert "no data" in caplog.text


def test_same_distribution_checks_clean_and_writes_a_report(
    champion: ModelVersion,
    client: MlflowClient,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
) -> None:
    log_traffic(tmp_path, champion.name, make_traffic(400, seed=2), champion.version, make_records)
    result = run_step()
    assert (result["status"], result["drift_detected"], result["reasons"]) == ("checked", False, [])
    report = Path(result["report_uri"]).read_text()
    for feature in ["tenure", "monthly_charges", "senior_citizen", "contract", "internet_service", "score"]:
        assert f"id='{feature}'" in report
    logged = {a.path for a in client.list_artifacts(champion.run_id, result["mlflow_artifact_path"])}
    assert logged == {f"{result['mlflow_artifact_path']}/{name}" for name in ("report.html", "drift.json")}
    tags = client.get_model_version(champion.name, champion.version).tags
    assert tags["drift.detected"] == "false"


def test_shifted_traffic_triggers_with_reasons_and_counts(
    champion: ModelVersion,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
) -> None:
    shifted = make_traffic(400, seed=3, shift=frozenset({"contract"}))
    log_traffic(tmp_path, champion.name, shifted, champion.version, make_records)
    log_traffic(tmp_path, champion.name, make_traffic(50, seed=4), "999", make_records)
    result = run_step()
    assert result["drift_detected"] is True
    assert result["reasons"] == [f"feature contract PSI {result['psi']['contract']:.3f} > 0.2"]
    assert result["counts"]["rows_read"] == 400
    assert result["counts"]["rows_ignored_other_versions"] == 50
    assert set(result["psi"]) == {
        "tenure",
        "monthly_charges",
        "senior_citizen",
        "contract",
        "internet_service",
    }


def test_fewer_rows_than_min_rows_report_but_do_not_trigger(
    champion: ModelVersion,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
) -> None:
    log_traffic(
        tmp_path,
        champion.name,
        make_traffic(40, seed=3, shift=frozenset({"contract"})),
        champion.version,
        make_records,
    )
    result = run_step()
    assert (result["status"], result["drift_detected"]) == ("insufficient_data", False)
    assert Path(result["report_uri"]).exists()


def test_module_entry_point_fails_with_one_line_naming_the_spec(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    process = subprocess.run(
        [
            sys.executable, "-m", "shipyard_pipeline", "drift", "--spec", str(missing),
            "--interval-start", START.isoformat(), "--interval-end", END.isoformat(),
            "--run-id", "r", "--storage-root", str(tmp_path),
        ],
        capture_output=True, text=True, check=False,
        env={**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert process.returncode == 1
    assert str(missing) in process.stderr


def test_the_log_root_comes_from_the_environment_the_chart_sets(
    champion: ModelVersion,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = str(tmp_path / "bucket" / "prediction_logs")
    monkeypatch.setenv("SHIPYARD_PREDICTION_LOG_URI", elsewhere)
    write_parts(elsewhere, "churn", make_records(make_traffic(400, seed=2), START, champion.version, "churn"))
    result = run_step()
    assert (result["log_root"], result["counts"]["rows_read"]) == (elsewhere, 400)


def test_the_psi_per_feature_is_pushed_for_the_dashboards(
    champion: ModelVersion,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shifted = make_traffic(400, seed=3, shift=frozenset({"contract"}))
    log_traffic(tmp_path, champion.name, shifted, champion.version, make_records)
    with pushgateway_server(tmp_path / "pushgateway") as url:
        monkeypatch.setenv("SHIPYARD_PUSHGATEWAY_URL", url)
        result = run_step()
        pushed = metric_samples(url, "shipyard_drift_psi")
    # job and model: the grouping key; instance: the Pushgateway's empty default.
    group = {
        ("job", "shipyard_drift"),
        ("model", "churn"),
        ("version", str(champion.version)),
        ("instance", ""),
    }
    assert pushed == {
        frozenset({*group, ("feature", feature)}): pytest.approx(psi)
        for feature, psi in result["psi"].items()
    }
    assert pushed[frozenset({*group, ("feature", "contract")})] > 0.2  # the shifted one
    assert result["metrics_push"] == {"url": url, "job": "shipyard_drift", "pushed": 1, "failed": 0}


def test_an_unreachable_pushgateway_never_fails_the_check(
    champion: ModelVersion,
    run_step: Callable[[], dict],
    tmp_path: Path,
    make_traffic: Callable[..., pd.DataFrame],
    make_records: Callable,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_traffic(tmp_path, champion.name, make_traffic(400, seed=3, shift=frozenset({"contract"})),
                champion.version, make_records)  # fmt: skip
    nobody = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SHIPYARD_PUSHGATEWAY_URL", nobody)
    caplog.set_level(logging.WARNING)
    result = run_step()  # exit code 0 asserted inside
    assert (result["status"], result["drift_detected"]) == ("checked", True)
    assert Path(result["report_uri"]).exists()
    assert result["metrics_push"] == {"url": nobody, "job": "shipyard_drift", "pushed": 0, "failed": 1}
    assert f"could not push shipyard_drift figures of churn to the Pushgateway at {nobody}" in caplog.text
