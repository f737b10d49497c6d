"""Fixtures of the rollout tests: the plugins folder on sys.path (as Airflow does), a small
trained model directory, real predictor stacks, and registered versions in a real MLflow."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import REPO, venv_python

sys.path.insert(0, str(REPO / "plugins"))  # what Airflow does with plugins_folder

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend, free_port

MODEL_NAME = "churn_probe"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Shipyard model directory (small XGBoost on the Telco rows), trained in the pipeline venv."""
    out = tmp_path_factory.mktemp("model")
    subprocess.run(
        [
            venv_python("pipeline"),
            str(REPO / "tests/images/serving/train_telco_model.py"),
            str(out),
            "--n-estimators",
            "10",
        ],
        check=True,
        capture_output=True,
    )
    return out / "model"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LocalBackend]:
    """A local serving stack (splitter + stable predictor v1) shared by a module's tests; stopped after."""
    backend = LocalBackend(str(tmp_path_factory.mktemp("serving")), free_port(), venv_python("serving"))
    try:
        backend.deploy_stable(Release(MODEL_NAME, "1", str(model_dir)), timeout=60)
        yield backend
    finally:
        backend.stop_all()
