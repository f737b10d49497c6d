"""Fixtures of the rollout tests: the plugins folder on sys.path (as Airflow does), small
trained model directories (a good one, one trained without a feature, a broken one), real
predictor stacks behind a real HAProxy, and registered versions in a real MLflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import REPO, venv_python

sys.path.insert(0, str(REPO / "plugins"))  # what Airflow does with plugins_folder

from mlflow_rest import forget_model
from rollout_support import LOCAL_SERVING, MODEL_NAME
from rollout_task import PIPELINE, write_spec

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend
from shipyard_spec.contract import serving_name

HERE = Path(__file__).resolve().parent


def train(out: Path, *without: str) -> Path:
    """A real Shipyard model directory (small XGBoost on the Telco rows), trained in the pipeline
    venv, optionally without some features."""
    script = HERE / "train_without.py" if without else REPO / "tests/images/serving/train_telco_model.py"
    subprocess.run(
        [
            venv_python("pipeline"),
            str(script),
            *(f"--without={f}" for f in without),
            str(out),
            "--n-estimators",
            "10",
        ],
        check=True,
        capture_output=True,
    )
    return out / "model"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def narrow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained from a spec without `monthly_charges`: its signature refuses what clients send."""
    return train(tmp_path_factory.mktemp("narrow-model"), "monthly_charges")


@pytest.fixture(scope="session")
def broken_model_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A model directory whose model.pkl is not a pickle: the predictor exits at start-up."""
    broken = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.pkl").write_bytes(b"not a pickle")
    return broken


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LocalBackend]:
    """A local serving stack (HAProxy + stable predictor v1) shared by a module's tests; stopped after."""
    backend = LocalBackend(
        str(tmp_path_factory.mktemp("serving")),
        venv_python("serving"),
        served_name=serving_name(MODEL_NAME),
        settings=LOCAL_SERVING,
    )
    try:
        backend.deploy_stable(Release(MODEL_NAME, "1", str(model_dir)), timeout=60)
        yield backend
    finally:
        backend.stop_all()


@pytest.fixture
def pipeline(tmp_path, monkeypatch, mlflow_tracking_uri) -> Path:
    """A spec with the test policy, the embedded environment, and a local stack stopped afterwards."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_SERVING_PYTHON", venv_python("serving"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)  # no connection: the steps' variable
    forget_model(mlflow_tracking_uri, PIPELINE)
    try:
        yield write_spec(tmp_path)
    finally:
        LocalBackend.for_pipeline(PIPELINE).stop_all()
