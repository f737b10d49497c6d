"""The trigger that runs the canary analysis in the triggerer: no worker slot held for the canary.

`serialize()` returns JSON-safe kwargs only (the policy as a dict, the backend's `config()`,
names); `run()` rebuilds the backend and provider from them, runs the controller to the end
(promotion or rollback) and yields exactly one event. It never raises: an unexpected error
becomes a `status: error` event, and the operator then rolls back. The canary weight and the
shadow comparison's figures go to the Pushgateway of the triggerer's `SHIPYARD_PUSHGATEWAY_URL`
as they change (`dashboard_push`); the event carries what was pushed per job (`metrics_push`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from shipyard.hooks.mlflow import MlflowHook
from shipyard.rollout.backends import build_backend
from shipyard.rollout.controller import CanaryController
from shipyard.rollout.dashboard_push import RolloutFigures
from shipyard.rollout.providers import build_provider
from shipyard.rollout.registry import MlflowRegistry
from shipyard.rollout.shadow_stage import ShadowContext, ShadowStage
from shipyard_spec.contract import Env
from shipyard_spec.model import Rollout

log = logging.getLogger(__name__)

ERROR = "error"


class CanaryAnalysisTrigger(BaseTrigger):
    def __init__(
        self,
        policy: dict[str, Any],
        backend: dict[str, Any],
        model_name: str,
        version: str,
        mlflow_conn_id: str | None = None,
        replay_requests: list[dict[str, Any]] | None = None,
        shadow: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.shadow = shadow
        self.policy = policy
        self.backend = backend
        self.model_name = model_name
        self.version = version
        self.mlflow_conn_id = mlflow_conn_id
        self.replay_requests = replay_requests or []

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "policy": self.policy,
                "backend": self.backend,
                "model_name": self.model_name,
                "version": self.version,
                "mlflow_conn_id": self.mlflow_conn_id,
                "replay_requests": self.replay_requests,
                "shadow": self.shadow,
            },
        )

    def build_controller(self, figures: RolloutFigures | None = None) -> CanaryController:
        policy = Rollout.model_validate(self.policy)
        gate = None
        if self.mlflow_conn_id:
            registry = MlflowRegistry(MlflowHook(self.mlflow_conn_id), self.model_name)
            gate = partial(registry.gate, self.version)
        backend = build_backend(policy, self.backend)
        shadow = ShadowStage(ShadowContext(**self.shadow), backend) if self.shadow else None
        return CanaryController(
            policy,
            backend,
            build_provider(policy.metrics),
            gate=gate,
            replay_requests=self.replay_requests,
            on_weight=figures.weight if figures else None,
            on_shadow=figures.shadow if figures else None,
            shadow=shadow,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        figures = RolloutFigures(os.environ.get(Env.PUSHGATEWAY_URL))
        try:
            outcome = await self.build_controller(figures).run()
        except Exception as e:  # the event carries it; the operator rolls back and fails the task
            log.exception("canary analysis of %s v%s failed", self.model_name, self.version)
            yield TriggerEvent(
                {
                    "status": ERROR,
                    "reason": f"{type(e).__name__}: {e}",
                    "checks": [],
                    "metrics_push": figures.status(),
                }
            )
            return
        yield TriggerEvent({**outcome.as_dict(), "metrics_push": figures.status()})
