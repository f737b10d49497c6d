"""Building the KServe backend as production does, against the envtest API server."""

from __future__ import annotations

import asyncio
from typing import Any

from envtest import CONN_ID

from shipyard.rollout.analysis import Sample
from shipyard.rollout.backends import Release
from shipyard.rollout.backends.kserve import KServeBackend
from shipyard.rollout.controller import CanaryController
from shipyard.rollout.providers import Target
from shipyard_spec.model import KServeTarget, Rollout

V1 = Release("telco_churn", "1", storage_uri="s3://models/telco_churn/1/model")
V2 = Release("telco_churn", "2", storage_uri="s3://models/telco_churn/2/model")
NEVER_READY = Release(
    "telco_churn", "3", storage_uri="s3://models/telco_churn/3/model", args=["--fault_never_ready"]
)
POLICY = {
    "backend": "kserve",
    "steps": [20, 50, 100],
    "interval_seconds": 0.05,
    "checks_per_step": 1,
    "failure_limit": 1,
    "min_requests": 5,
    "max_error_rate": 0.01,
    "max_p99_latency_ms": 250,
    "no_data_deadline_seconds": 3,
    "progress_deadline_seconds": 3,
}


class FixedProvider:
    """Metrics as a cluster's Prometheus would return them: fixed per role (no predictor runs here)."""

    def __init__(self, canary: Sample) -> None:
        self.canary = canary

    def is_online(self) -> bool:
        return True

    def query(self, target: Target, window_seconds: float) -> Sample:
        return self.canary if target.role == "canary" else Sample(1000, 0, 10.0)


def new_backend(namespace: str, mode: str, name: str, config: dict[str, Any] | None = None) -> KServeBackend:
    """A backend as the operator or the triggerer builds it: from the persisted config."""
    target = KServeTarget(namespace=namespace, mode=mode, kubernetes_conn_id=CONN_ID)
    backend = KServeBackend.from_config(target, config or {"name": name, "pipeline": "telco_churn"})
    backend.verify_timeout, backend.poll_seconds = 10, 0.05
    return backend


def run_canary(backend: KServeBackend, canary: Sample) -> Any:
    controller = CanaryController(Rollout.model_validate(POLICY), backend, FixedProvider(canary))
    return asyncio.run(controller.run())
