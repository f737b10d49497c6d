"""Where a backend loads a version from (real MLflow): KServe gets exactly the URI register
recorded in the version tag `shipyard.serving_uri`, never a guess; the local backend a directory."""

from __future__ import annotations

import pytest
from mlflow_rest import register_version
from rollout_task import write_spec

from shipyard.rollout.errors import BackendError
from shipyard.rollout.operator import release_of
from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec import load_spec
from shipyard_spec.contract import Tag


@pytest.fixture
def kserve_spec(tmp_path, monkeypatch, mlflow_tracking_uri):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_tracking_uri)
    return load_spec(write_spec(tmp_path, "release_probe", backend="kserve"))


def test_kserve_serves_the_uri_register_recorded(kserve_spec, mlflow_tracking_uri):
    registry = MlflowRegistry.for_spec(kserve_spec)
    version = register_version(mlflow_tracking_uri, "release_probe")
    registry.set_tag(version, Tag.SERVING_URI, "s3://models/release_probe/7f3a/model")
    release = release_of(kserve_spec, registry, version, model_dir="/ignored", args=["--x"])
    assert (release.storage_uri, release.model_dir, release.args) == (
        "s3://models/release_probe/7f3a/model",
        "",
        ["--x"],
    )


def test_a_version_without_a_serving_uri_is_refused_with_the_reason(kserve_spec, mlflow_tracking_uri):
    registry = MlflowRegistry.for_spec(kserve_spec)
    version = register_version(mlflow_tracking_uri, "release_probe")
    with pytest.raises(
        BackendError, match=rf"release_probe v{version} has no tag shipyard.serving_uri: register records"
    ):
        release_of(kserve_spec, registry, version)


def test_local_uses_the_given_directory_else_the_recorded_one(tmp_path, monkeypatch, mlflow_tracking_uri):
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_tracking_uri)
    spec = load_spec(write_spec(tmp_path, "release_local_probe"))
    registry = MlflowRegistry.for_spec(spec)
    version = register_version(mlflow_tracking_uri, "release_local_probe")
    with pytest.raises(BackendError, match="has no local model directory"):
        release_of(spec, registry, version)
    assert release_of(spec, registry, version, model_dir="/models/a").model_dir == "/models/a"
    registry.set_tag(version, Tag.MODEL_DIR, "/models/b")
    assert release_of(spec, registry, version).model_dir == "/models/b"
