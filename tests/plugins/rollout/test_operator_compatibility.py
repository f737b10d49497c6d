"""The signature compatibility gate in the rollout task (real MLflow, real predictors, local
backend): a challenger trained without one of the champion's features is stopped before any
traffic moves, with the field named; `rollout.allow_breaking_schema` lets it through."""

from __future__ import annotations

import subprocess

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from mlflow_rest import register_version
from rollout_task import operator, rollout, write_spec
from support.servers import REPO, venv_python

from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec import load_spec
from shipyard_spec.contract import Alias, RolloutStatus, Tag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir_without_contract(tmp_path_factory):
    """The same training, from a spec without the `contract` feature."""
    out = tmp_path_factory.mktemp("model-without-contract")
    subprocess.run(
        [venv_python("pipeline"), str(REPO / "tests/images/serving/train_telco_model.py"), str(out),
         "--n-estimators", "10", "--drop", "contract"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out / "model"


@pytest.fixture
def backend(tmp_path, monkeypatch, mlflow_tracking_uri, request):
    """The local stack of this test's pipeline (one registered model per test), stopped afterwards."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_SERVING_PYTHON", venv_python("serving"))
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_tracking_uri)
    backend = LocalBackend.for_pipeline(request.param)
    yield backend
    backend.stop_all()


@pytest.mark.parametrize("backend", ["schema_probe"], indirect=True)
def test_a_challenger_missing_a_feature_is_stopped_before_traffic_moves(
    backend, tmp_path, model_dir, model_dir_without_contract, mlflow_tracking_uri
):
    spec_path = write_spec(tmp_path, "schema_probe")
    registry = MlflowRegistry.for_spec(load_spec(spec_path))
    v1 = register_version(mlflow_tracking_uri, load_spec(spec_path).name, model_dir)
    v2 = register_version(mlflow_tracking_uri, load_spec(spec_path).name, model_dir_without_contract)
    rollout(spec_path, v1, model_dir)

    with pytest.raises(AirflowFailException) as failed:
        operator(spec_path, v2, model_dir_without_contract).execute(context={})

    message = str(failed.value)
    assert (
        f"stopped schema_probe v{v2} before any traffic moved: v{v2} would reject requests champion v{v1}"
        in message
    )
    assert "inputs the champion accepts and the challenger rejects: contract" in message
    assert "the champion's input example is rejected (5 rows): row 0: unknown input 'contract'" in message
    state = backend.state()
    assert (state["stable"]["release"]["version"], state["canary"]) == (v1, None)  # no canary started
    assert list(backend.routes().values()) == [100]
    aliases = registry.aliases()
    assert (aliases.get(Alias.CHAMPION), aliases.get(Alias.CHALLENGER)) == (v1, None)
    tags = registry.tags(v2)
    assert tags[Tag.ROLLOUT_STATUS] == RolloutStatus.ROLLED_BACK
    assert "rejects: contract" in tags[Tag.ROLLOUT_REASON]


@pytest.mark.parametrize("backend", ["schema_allowed_probe"], indirect=True)
def test_allow_breaking_schema_lets_it_go_to_the_canary(
    backend, tmp_path, model_dir, model_dir_without_contract, mlflow_tracking_uri
):
    spec_path = write_spec(tmp_path, "schema_allowed_probe", allow_breaking_schema=True)
    v1 = register_version(mlflow_tracking_uri, load_spec(spec_path).name, model_dir)
    v2 = register_version(mlflow_tracking_uri, load_spec(spec_path).name, model_dir_without_contract)
    rollout(spec_path, v1, model_dir)

    with pytest.raises(TaskDeferred):  # the canary is deployed at 0 % and analysed
        operator(spec_path, v2, model_dir_without_contract).execute(context={})
    assert backend.state()["canary"]["release"]["version"] == v2
