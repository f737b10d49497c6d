"""Registered versions in the real MLflow test server, created over REST as the register step
would, and read back through the registry as the rollout tests compare them."""

from __future__ import annotations

from pathlib import Path

import httpx

from shipyard.rollout.registry import MlflowRegistry
from shipyard_spec.contract import Alias, Tag

TIMEOUT = 60  # the test server is slow when the machine is busy


def call(url: str, endpoint: str, body: dict) -> dict:
    response = httpx.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def forget_model(url: str, name: str) -> None:
    """Delete registered model `name` and its versions, so a test starts with no champion whatever
    the session's earlier tests registered under the same name (the server is shared)."""
    response = httpx.request(
        "DELETE", f"{url}/api/2.0/mlflow/registered-models/delete", json={"name": name}, timeout=TIMEOUT
    )
    if response.status_code != 404:  # RESOURCE_DOES_NOT_EXIST: nothing to forget
        response.raise_for_status()


def register_version(url: str, name: str, model_dir: Path | None = None) -> str:
    """A new version of `name` backed by a new run (whose artifacts the server proxies); the files
    of `model_dir`, when given, uploaded as the run's `model` directory, the version's source."""
    found = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}, timeout=TIMEOUT
    )
    if found.status_code == 200:
        experiment = found.json()["experiment"]["experiment_id"]
    else:
        experiment = call(url, "experiments/create", {"name": name})["experiment_id"]
    run = call(url, "runs/create", {"experiment_id": experiment})["run"]["info"]
    for path in sorted(model_dir.iterdir()) if model_dir else []:
        where = f"{run['artifact_uri'].removeprefix('mlflow-artifacts:/')}/model/{path.name}"
        upload = httpx.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{where}", content=path.read_bytes(),
                           timeout=TIMEOUT)  # fmt: skip
        upload.raise_for_status()
    if (
        httpx.get(
            f"{url}/api/2.0/mlflow/registered-models/get", params={"name": name}, timeout=TIMEOUT
        ).status_code
        != 200
    ):
        call(url, "registered-models/create", {"name": name})
    created = call(
        url,
        "model-versions/create",
        {"name": name, "source": f"{run['artifact_uri']}/model", "run_id": run["run_id"]},
    )
    return str(created["model_version"]["version"])


def registry_state(registry: MlflowRegistry, version: str) -> tuple:
    """(@champion, @previous, @challenger, `version`'s rollout status)."""
    aliases = registry.aliases()
    return (
        aliases.get(Alias.CHAMPION),
        aliases.get(Alias.PREVIOUS),
        aliases.get(Alias.CHALLENGER),
        registry.tags(version).get(Tag.ROLLOUT_STATUS),
    )
