"""register: make the evaluated model a registered version with alias `challenger`.

Idempotent: the version is looked up by the train run's id first, so a retry or a re-run
finds the version it created before instead of adding a second one. Refuses a model whose
evaluation did not pass (exit 3).

`artifact_path` in the result is a local directory holding the model files (MLmodel,
model.pkl), for the local rollout's predictor: the server's artifact store itself when the
step can see it (SHIPYARD_MLFLOW_ARTIFACTS_DESTINATION = the server's
`--artifacts-destination`, as in the embedded setup), else a copy downloaded to
`{root}/{pipeline}/models/{version}/`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shipyard_pipeline import storage, tracking
from shipyard_pipeline.context import RunContext
from shipyard_pipeline.errors import CheckFailed, StepError

log = logging.getLogger(__name__)

PROXIED_SCHEME = "mlflow-artifacts:/"
READY_TIMEOUT_SECONDS = 120


def find_version(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered from this train run, if any."""
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def ensure_registered_model(client: MlflowClient, name: str, description: str) -> None:
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def wait_ready(client: MlflowClient, version: ModelVersion) -> ModelVersion:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while version.status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise StepError(f"{version.name} v{version.version} still pending after {READY_TIMEOUT_SECONDS}s")
        time.sleep(1)
        version = client.get_model_version(version.name, version.version)
    if version.status != "READY":
        raise StepError(f"{version.name} v{version.version} registration ended in status {version.status}")
    return version


def local_model_dir(context: RunContext, download_uri: str, version: str) -> str:
    """A local directory with the model files (see the module docstring)."""
    destination = os.environ.get("SHIPYARD_MLFLOW_ARTIFACTS_DESTINATION")
    if destination and download_uri.startswith(PROXIED_SCHEME):
        candidate = Path(destination) / download_uri[len(PROXIED_SCHEME) :].lstrip("/")
        if (candidate / "MLmodel").exists():
            return str(candidate.resolve())
        log.warning("%s has no MLmodel: downloading the model instead", candidate)
    from mlflow.artifacts import download_artifacts

    target = storage.join(context.pipeline_root, "models", version)
    fs, path = storage.filesystem(target)
    if fs.exists(f"{path}/MLmodel"):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifacts(artifact_uri=download_uri, dst_path=tmp)
        fs.makedirs(path, exist_ok=True)
        fs.put(f"{local.rstrip('/')}/", path, recursive=True)
    return target


def run(context: RunContext) -> dict[str, Any]:
    spec = context.spec
    client = tracking.connect()
    trained = context.read_step_result("train")
    evaluated = context.read_step_result("evaluate")
    if not evaluated.get("passed"):
        failed = [name for name, gate in evaluated.get("gates", {}).items() if not gate["passed"]]
        raise CheckFailed(
            f"{trained['model_uri']} did not pass evaluation (failed gates: {failed}): not registering"
        )
    name = spec.mlflow.registered_model
    run_id = trained["mlflow_run_id"]

    version = find_version(client, name, run_id)
    if version is None:
        ensure_registered_model(client, name, spec.description)
        version = client.create_model_version(
            name, source=trained["model_uri"], run_id=run_id, model_id=trained["model_id"]
        )
        log.info("registered %s v%s from run %s", name, version.version, run_id)
    else:
        log.info("run %s is already registered as %s v%s: reusing it", run_id, name, version.version)
    version = wait_ready(client, version)

    tags = {
        **context.tags(),
        "shipyard.mlflow_run_id": run_id,
        "shipyard.dataset_fingerprint": trained["dataset_fingerprint"],
        "shipyard.gates": json.dumps({g: v["passed"] for g, v in evaluated["gates"].items()}),
        "shipyard.test_roc_auc": f"{evaluated['metrics']['roc_auc']:.4f}",
        "shipyard.baseline_roc_auc": f"{evaluated['baseline_roc_auc']:.4f}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, tracking.CHALLENGER_ALIAS, version.version)
    download_uri = client.get_model_version_download_uri(name, version.version)
    artifact_path = local_model_dir(context, download_uri, version.version)
    alias = tracking.CHALLENGER_ALIAS
    log.info("%s v%s is now @%s; model files at %s", name, version.version, alias, artifact_path)
    return {
        "registered_model": name,
        "version": version.version,
        "alias": tracking.CHALLENGER_ALIAS,
        "model_uri": f"models:/{name}/{version.version}",
        "download_uri": download_uri,
        "artifact_path": artifact_path,
        "mlflow_run_id": run_id,
        "mlflow_run_url": trained["mlflow_run_url"],
        "test_roc_auc": evaluated["metrics"]["roc_auc"],
    }
