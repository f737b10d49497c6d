"""register: make the evaluated model a registered version with alias `challenger`.

Idempotent: the version is looked up by the train run's id first, so a retry or a re-run
finds the version it created before instead of adding a second one. Refuses a model whose
evaluation did not pass (exit 3).

The serving model directory: register copies exactly the files the predictor reads
(`contract.SERVING_MODEL_FILES`) from the version's MLflow source, whatever its scheme
(`mlflow-artifacts:/` through a `--serve-artifacts` server, `s3://`, a local path), to
`contract.serving_model_uri(storage_root, pipeline, version)` and records that URI on the
version as tag `shipyard.serving_uri` and as `serving_uri` in its result. One rule for both
serving backends: an `s3://…` directory the KServe storage initializer downloads on
Kubernetes, a local directory the local predictors load in the embedded mode.
"""

from __future__ import annotations

import json
import logging
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
from shipyard_spec.contract import SERVING_MODEL_FILES, Alias, Step, Tag, serving_model_uri

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 120
# MLmodel goes last: a directory holding it is complete (a retry redoes an interrupted copy).
_COPY_ORDER = sorted(SERVING_MODEL_FILES, key=lambda name: name == "MLmodel")


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


def publish_serving_dir(source_uri: str, target: str) -> str:
    """Copy the serving files of the model at `source_uri` (any MLflow artifact URI) to `target`.

    Nothing is copied when `target` already holds MLmodel (a retry of a finished copy).
    """
    if storage.exists(storage.join(target, "MLmodel")):
        log.info("serving model directory %s is already complete", target)
        return target
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_artifacts(artifact_uri=source_uri, dst_path=tmp))
        missing = [name for name in SERVING_MODEL_FILES if not (local / name).is_file()]
        if missing:
            raise StepError(f"the model at {source_uri} lacks {missing}: the predictor cannot load it")
        for name in _COPY_ORDER:
            storage.upload_file(str(local / name), storage.join(target, name))
    log.info("serving model directory written: %s (%s)", target, ", ".join(SERVING_MODEL_FILES))
    return target


def run(context: RunContext) -> dict[str, Any]:
    spec = context.spec
    client = tracking.connect()
    trained = context.read_step_result(Step.TRAIN)
    evaluated = context.read_step_result(Step.EVALUATE)
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

    download_uri = client.get_model_version_download_uri(name, version.version)
    serving_uri = publish_serving_dir(
        download_uri, serving_model_uri(context.storage_root_uri, spec.name, version.version)
    )
    tags = {
        **context.tags(),
        Tag.MLFLOW_RUN_ID: run_id,
        Tag.DATASET_FINGERPRINT: trained["dataset_fingerprint"],
        Tag.GATES: json.dumps({g: v["passed"] for g, v in evaluated["gates"].items()}),
        Tag.TEST_ROC_AUC: f"{evaluated['metrics']['roc_auc']:.4f}",
        Tag.BASELINE_ROC_AUC: f"{evaluated['baseline_roc_auc']:.4f}",
        Tag.SERVING_URI: serving_uri,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, Alias.CHALLENGER, version.version)
    log.info(
        "%s v%s is now @%s; serving model directory %s", name, version.version, Alias.CHALLENGER, serving_uri
    )
    return {
        "registered_model": name,
        "version": version.version,
        "alias": Alias.CHALLENGER,
        "model_uri": f"models:/{name}/{version.version}",
        "download_uri": download_uri,
        "serving_uri": serving_uri,
        # The local rollout backend reads this key (a local directory in the embedded mode);
        # it is `serving_uri` until the rollout reads the version's tag instead.
        "artifact_path": serving_uri,
        "mlflow_run_id": run_id,
        "mlflow_run_url": trained["mlflow_run_url"],
        "test_roc_auc": evaluated["metrics"]["roc_auc"],
    }
