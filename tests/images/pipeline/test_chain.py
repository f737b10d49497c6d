"""End to end over the Telco demo data: ingest → validate → train → evaluate → register.

The steps run as `shipyard-step` subprocesses against the session's real MLflow server, as
the local Airflow runtime runs them. The 25 earlier weeks of the training window are
ingested first by `demo ingest-history` (the ingest step in one process, as `make demo` may).
"""

from __future__ import annotations

import json
import os
import pickle
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from step_process import run_cli

from shipyard_pipeline import demo
from shipyard_pipeline.drift.profile import PROFILE_ARTIFACT, ReferenceProfile
from shipyard_spec import load_spec
from shipyard_spec.contract import ExitCode

STEPS = ["ingest", "validate", "train", "evaluate", "register"]
MIN_TEST_ROC_AUC = 0.83  # what this data allows (docs/architecture.md); the demo split gives ~0.856


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
    shipyard_home: Path,
    telco_spec: Path,
    mlflow_tracking_uri: str,
    last_week: tuple[datetime, datetime],
) -> dict[str, Any]:
    start, end = last_week
    storage_root = tmp_path_factory.mktemp("chain-storage")
    history = load_spec(telco_spec).training.window_intervals - 1
    assert len(demo.ingest_history(telco_spec, str(storage_root), history, end=end)) == history
    run_id = f"scheduled__{end.isoformat()}"
    common = [
        "--spec", str(telco_spec), "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
        "--run-id", run_id, "--storage-root", str(storage_root),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_tracking_uri, "SHIPYARD_HOME": str(shipyard_home)}
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    result_dir = tmp_path_factory.mktemp("chain-results")
    for step in STEPS:
        results[step], seconds[step] = run_cli(step, common, result_dir, env)
    # A re-run of the whole run (a cleared run, a backfill reprocessing completed runs).
    results["train_again"], seconds["train (again)"] = run_cli("train", common, result_dir, env)
    results["register_again"], seconds["register (again)"] = run_cli("register", common, result_dir, env)
    print("\nstep wall times on the demo data (subprocess, incl. interpreter start):")
    for step, elapsed in seconds.items():
        print(f"  {step:<18} {elapsed:6.1f} s")
    return {"results": results, "storage_root": storage_root, "run_id": run_id, "common": common}


def test_chain_ends_with_a_challenger_version(chain: dict[str, Any], mlflow_tracking_uri: str) -> None:
    registered = chain["results"]["register"]
    client = MlflowClient(mlflow_tracking_uri)
    version = client.get_model_version_by_alias("telco_churn", "challenger")
    assert version.version == registered["version"]
    assert version.run_id == chain["results"]["train"]["mlflow_run_id"]
    assert version.tags["shipyard.airflow_run_id"] == chain["run_id"]
    assert version.tags["shipyard.dataset_fingerprint"] == chain["results"]["train"]["dataset_fingerprint"]
    assert json.loads(version.tags["shipyard.gates"]) == {
        "min_roc_auc": True,
        "baseline": True,
        "champion": True,
    }


def test_telco_model_beats_the_floor_and_matches_the_logistic_baseline(chain: dict[str, Any]) -> None:
    evaluated = chain["results"]["evaluate"]
    auc, baseline = evaluated["metrics"]["roc_auc"], evaluated["baseline_roc_auc"]
    print(
        f"\nTelco test ROC AUC: XGBoost pipeline {auc:.4f} vs logistic baseline {baseline:.4f} (same split)"
    )
    assert auc >= MIN_TEST_ROC_AUC
    assert auc >= baseline - 0.02
    assert evaluated["passed"]


def test_a_rerun_of_train_and_register_gives_the_same_run_and_version(
    chain: dict[str, Any], mlflow_tracking_uri: str
) -> None:
    """Train again for the same Airflow run on the same snapshots: no second MLflow run, no second version."""
    assert chain["results"]["train_again"] == chain["results"]["train"]
    first, again = chain["results"]["register"], chain["results"]["register_again"]
    assert first["version"] == again["version"]
    client = MlflowClient(mlflow_tracking_uri)
    runs = client.search_runs(
        [chain["results"]["train"]["mlflow_experiment_id"]],
        f"tags.`shipyard.airflow_run_id` = '{chain['run_id']}' and tags.`shipyard.step` = 'train'",
    )
    assert len(runs) == 1
    versions = client.search_model_versions("name='telco_churn'")
    assert [v.version for v in versions if v.tags.get("shipyard.airflow_run_id") == chain["run_id"]] == [
        first["version"]
    ]


def test_artifact_path_is_a_servable_local_model_directory(chain: dict[str, Any]) -> None:
    model_dir = Path(chain["results"]["register"]["artifact_path"])
    assert {"MLmodel", "model.pkl", "input_example.json"} <= {p.name for p in model_dir.iterdir()}
    with (model_dir / "model.pkl").open("rb") as handle:
        pipeline = pickle.load(handle)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    example = json.loads((model_dir / "input_example.json").read_text())
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    scores = pipeline.predict_proba(frame)[:, 1]
    assert ((scores > 0) & (scores < 1)).all()


def test_train_run_carries_tags_plots_model_card_and_reference_profile(
    chain: dict[str, Any], mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    trained = chain["results"]["train"]
    client = MlflowClient(mlflow_tracking_uri)
    run = client.get_run(trained["mlflow_run_id"])
    assert run.data.tags["shipyard.airflow_run_id"] == chain["run_id"]
    assert {"shipyard.interval_start", "shipyard.interval_end"} <= set(run.data.tags)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(
        chain["results"]["evaluate"]["metrics"]["roc_auc"]
    )
    evaluation = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"roc.png", "precision_recall.png", "calibration.png", "confusion_matrix.png"} <= evaluation
    assert {"feature_importance.png", "model_card.md"} <= evaluation
    assert trained["mlflow_run_url"] == (
        f"{mlflow_tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    path = download_artifacts(
        run_id=run.info.run_id,
        artifact_path=PROFILE_ARTIFACT,
        dst_path=str(tmp_path),
        tracking_uri=mlflow_tracking_uri,
    )
    profile = ReferenceProfile.from_dict(json.loads(Path(path).read_text()))
    assert set(profile.features) == {*trained["features"]["numeric"], *trained["features"]["categorical"]}
    assert profile.rows == trained["rows"]["test"]
    assert profile.roc_auc == pytest.approx(chain["results"]["evaluate"]["metrics"]["roc_auc"])


def test_a_weaker_challenger_fails_the_champion_gate_and_is_not_registered(
    chain: dict[str, Any], mlflow_tracking_uri: str, make_runner, spec_variant, monkeypatch, last_week
) -> None:
    client = MlflowClient(mlflow_tracking_uri)
    client.set_registered_model_alias("telco_churn", "champion", chain["results"]["register"]["version"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    weak = spec_variant(
        model={
            "params": {"n_estimators": 2, "max_depth": 1},
            "early_stopping_rounds": None,
            "tuning": {"enabled": False},
        },
        gates={"min_roc_auc": 0.5, "max_baseline_shortfall": 1.0, "max_champion_regression": 0.01},
    )
    runner = make_runner(weak)
    runner.storage_root = chain["storage_root"]
    assert runner("train").code == 0
    outcome = runner("evaluate")
    assert outcome.code == ExitCode.CHECK_FAILED
    assert "champion v" in outcome.stderr
    refused = runner("register")
    assert refused.code == ExitCode.CHECK_FAILED
    assert "did not pass evaluation" in refused.stderr
    assert (
        client.get_model_version_by_alias("telco_churn", "challenger").version
        == chain["results"]["register"]["version"]
    )
