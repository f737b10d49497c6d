"""The MLflow connection every tracked step shares: reached through MLFLOW_TRACKING_URI, checked first.

A pod that starts while the tracking server restarts should wait a little, not fail at
once, and not hang for minutes either: `connect()` retries a cheap call with exponential
backoff (SHIPYARD_MLFLOW_CONNECT_ATTEMPTS, default 5: about 15 s) and then fails with the
URI and the last cause. MLflow's own per-request retries are bounded the same way.
"""

from __future__ import annotations

import logging
import os
import time
from importlib.metadata import PackageNotFoundError, version

from shipyard_pipeline.errors import StepError
from shipyard_spec.contract import Env

log = logging.getLogger(__name__)

# MLflow retries each HTTP request 7 times with backoff factor 2 by default (minutes of waiting).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per download floods task logs

import mlflow  # noqa: E402  (after the retry settings above, which mlflow reads at import)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities.model_registry import ModelVersion  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def tracking_uri() -> str:
    uri = os.environ.get(Env.MLFLOW_TRACKING_URI, "")
    if not uri:
        raise StepError(
            f"{Env.MLFLOW_TRACKING_URI} is not set: the step needs the MLflow tracking server's URL"
        )
    return uri.rstrip("/")


def connect() -> MlflowClient:
    """A client for the tracking server, after the server answered (bounded retries with backoff)."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    attempts = int(os.environ.get(Env.MLFLOW_CONNECT_ATTEMPTS, "5"))
    delay = float(os.environ.get(Env.MLFLOW_CONNECT_BACKOFF, "1"))
    attempt = 1
    while True:
        try:
            client.search_experiments(max_results=1)
            return client
        except MlflowException as e:
            if attempt >= attempts:
                cause = " ".join(str(e).split())[:300]
                raise StepError(f"MLflow at {uri} unreachable after {attempts} attempts: {cause}") from e
            log.warning(
                "MLflow at %s not reachable (attempt %d/%d), retrying in %.0fs", uri, attempt, attempts, delay
            )
            time.sleep(delay)
            delay *= 2
            attempt += 1


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it on first use (two steps racing to create it is fine)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def run_url(experiment: str, run_id: str) -> str:
    return f"{tracking_uri()}/#/experiments/{experiment}/runs/{run_id}"


def code_version() -> str:
    """SHIPYARD_CODE_VERSION (set when the image is built, e.g. a git sha), else the package version."""
    explicit = os.environ.get(Env.CODE_VERSION)
    if explicit:
        return explicit
    try:
        return f"shipyard-pipeline=={version('shipyard-pipeline')}"
    except PackageNotFoundError:
        return "unknown"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when the model or the alias does not exist (yet).

    Read from the registered model's alias map: `get_model_version_by_alias` reports a
    missing alias as INVALID_PARAMETER_VALUE, indistinguishable from a real bad request.
    """
    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get(alias)
    return None if version is None else client.get_model_version(name, version)
