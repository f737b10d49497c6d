"""Where the steps run and what they are told: every Shipyard setting of the Airflow side.

One switch picks the runner: environment `SHIPYARD_RUNNER`, else the Airflow Variable
`shipyard_runner`, else `kubernetes` when cluster settings are present (Variable
`shipyard_kubernetes` or the chart's `SHIPYARD_POD_TEMPLATE_DIR`), else `local`. The runner
decides the operator class, so it is read when the DAG file is parsed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from airflow.sdk import Variable
from pydantic import BaseModel, ConfigDict, Field

from shipyard_spec.contract import Env

Runner = Literal["local", "kubernetes"]
RUNNERS: tuple[Runner, ...] = ("local", "kubernetes")
REPO = Path(__file__).resolve().parents[2]


class SettingError(ValueError):
    """A Shipyard setting has a value it cannot take; the message names the setting."""


def _setting(env: str, variable: str) -> str | None:
    """An environment variable, else an Airflow Variable (env wins: it is what the Makefile sets)."""
    return os.environ.get(env) or Variable.get(variable, default=None)


def runner() -> Runner:
    value = _setting(Env.RUNNER, "shipyard_runner")
    if value is None:
        return "kubernetes" if kubernetes_configured() else "local"
    if value not in RUNNERS:
        raise SettingError(f"{Env.RUNNER} / Variable shipyard_runner is {value!r}; expected one of {RUNNERS}")
    return value  # type: ignore[return-value]


# --- local runner: the pipeline virtualenv on this machine -------------------------------------


def shipyard_home() -> Path:
    """`SHIPYARD_HOME` (the Makefile sets it to `<repo>/.shipyard`): demo data, storage, MLflow."""
    return Path(os.environ.get(Env.HOME) or REPO / ".shipyard").resolve()


def storage_root() -> str:
    """`SHIPYARD_STORAGE_ROOT`, else `${SHIPYARD_HOME}/storage`: snapshots and run outputs."""
    return os.environ.get(Env.STORAGE_ROOT) or str(shipyard_home() / "storage")


def pipeline_python() -> str:
    """The pipeline virtualenv's interpreter: `SHIPYARD_PIPELINE_PYTHON`, else `.venv/pipeline`."""
    configured = os.environ.get(Env.PIPELINE_PYTHON)
    python = Path(configured) if configured else REPO / ".venv" / "pipeline" / "bin" / "python"
    if not python.exists():
        raise SettingError(
            f"pipeline interpreter {python} does not exist: set {Env.PIPELINE_PYTHON} or run `make venvs`"
        )
    return str(python)


def local_environment() -> dict[str, str]:
    """The step subprocess's environment: Airflow's own, plus where Shipyard keeps its state.

    MLFLOW_TRACKING_URI is passed through as it is (the Makefile sets it); unset, the step
    falls back to MLflow's default local store, which is what a bare `shipyard-step` does too.
    """
    return {
        **os.environ,
        Env.HOME: str(shipyard_home()),
        Env.STORAGE_ROOT: storage_root(),
        "PYTHONUNBUFFERED": "1",  # lines reach the task log as they are written
    }


# --- kubernetes runner ---------------------------------------------------------------------------


class KubernetesSettings(BaseModel):
    """Step pods: JSON in the Airflow Variable `shipyard_kubernetes` (or `AIRFLOW_VAR_SHIPYARD_KUBERNETES`).

    Credentials never appear here: the pods read them from the Secrets and ConfigMaps named
    in `env_from_secrets` / `env_from_config_maps` (MLFLOW_TRACKING_URI, SHIPYARD_STORAGE_ROOT,
    the source URL's `${VAR}`s, cloud credentials).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Pipeline image; None keeps the pod template's image (the chart pins it there).
    image: str | None = None
    namespace: str | None = None
    kubernetes_conn_id: str = "kubernetes_default"
    service_account: str | None = None
    # The same for the step pods of `engine: spark` pipelines (Spark drivers): the image's Spark
    # variant, and a ServiceAccount allowed to run executor pods (the chart's spark-step.yaml).
    spark_image: str | None = None
    spark_service_account: str | None = None
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str | int]] = []
    # Added to train (or any step) when the spec asks for GPUs.
    gpu_node_selector: dict[str, str] = {}
    gpu_tolerations: list[dict[str, str | int]] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    env_from_secrets: list[str] = []
    env_from_config_maps: list[str] = []
    # Expanded by the step inside the pod, from the environment the ConfigMap provides.
    storage_root: str = f"${{{Env.STORAGE_ROOT}}}"
    # Directory of the chart's pod templates ([spark-]step.yaml, [spark-]gpu-step.yaml); default
    # $SHIPYARD_POD_TEMPLATE_DIR.
    pod_template_dir: str | None = Field(default_factory=lambda: os.environ.get(Env.POD_TEMPLATE_DIR))
    deferrable: bool = False
    startup_timeout_seconds: Annotated[int, Field(ge=1)] = 600


def _kubernetes_json() -> str | None:
    return Variable.get("shipyard_kubernetes", default=None)


def kubernetes_configured() -> bool:
    return bool(_kubernetes_json() or os.environ.get(Env.POD_TEMPLATE_DIR))


def kubernetes_settings(raw: str | None = None) -> KubernetesSettings:
    """Parse the `shipyard_kubernetes` Variable (or `raw`); errors name the Variable and the field."""
    raw = raw if raw is not None else _kubernetes_json()
    try:
        return KubernetesSettings.model_validate(json.loads(raw) if raw else {})
    except ValueError as e:  # malformed JSON or a pydantic ValidationError
        raise SettingError(f"Variable shipyard_kubernetes is invalid: {e}") from e


def step_storage_root(runner: Runner) -> str:
    """The `--storage-root` the steps get: a local path, or what the pod's environment expands."""
    return storage_root() if runner == "local" else kubernetes_settings().storage_root
