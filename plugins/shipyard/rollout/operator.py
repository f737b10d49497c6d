"""CanaryRolloutOperator: the `rollout` task after `register` in the training DAG.

Thin: `execute` resolves the releases (the new version from register's XCom, the current
champion from the registry), marks the new version `challenger`, deploys it as a canary at
0 % and defers the analysis to `CanaryAnalysisTrigger`. `execute_complete` records the
decision log in MLflow, then moves the registry with the traffic: promotion → `champion`
(old champion → `previous`); rollback → the version tagged with the reason and the task
failed without retry (retrying would re-deploy the bad version). A trigger error rolls back
too, but leaves the task to its retries.

The first release of a model (no champion yet) has nothing to compare with: it is deployed
at 100 % once ready, as Flagger does for a first deployment.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from shipyard.rollout.backends import Release, TrafficBackend, backend_for
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.errors import BackendError
from shipyard.rollout.registry import CHALLENGER, CHAMPION, MODEL_DIR_TAG, MlflowRegistry, RegistryError
from shipyard.rollout.trigger import CanaryAnalysisTrigger
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)


def release_of(
    spec: PipelineSpec,
    registry: MlflowRegistry,
    version: str,
    model_dir: str | None,
    args: Sequence[str] = (),
) -> Release:
    """A version as the spec's backend deploys it: a local model dir, or a storage URI for KServe."""
    storage_uri = ""
    if spec.rollout.backend == "kserve":
        prefix = spec.rollout.kserve.storage_uri_prefix
        storage_uri = f"{prefix.rstrip('/')}/{version}/model" if prefix else registry.download_uri(version)
        if storage_uri.startswith("mlflow-artifacts:"):
            raise BackendError(
                f"{spec.mlflow.registered_model} v{version} is stored at {storage_uri}, which KServe cannot "
                "read: set rollout.kserve.storage_uri_prefix or serve MLflow artifacts from object storage"
            )
    elif not model_dir:
        raise BackendError(
            f"{spec.mlflow.registered_model} v{version} has no local model directory (tag {MODEL_DIR_TAG})"
        )
    return Release(spec.mlflow.registered_model, version, model_dir or "", storage_uri, list(args))


class CanaryRolloutOperator(BaseOperator):
    """Roll a registered model version out as a canary; promote or roll back by live metrics.

    :param spec: the pipeline spec (its `rollout` policy and registry names), as parsed with the DAG.
    :param release: register's XCom result (`version`, `artifact_path`, ...); templated.
    :param canary_args: extra predictor arguments for the canary, a list or one shell-quoted string
        (fault injection in demos and tests); templated.
    :param mlflow_tracking_uri: default: the `MLFLOW_TRACKING_URI` environment variable.
    """

    template_fields = ("release", "canary_args")

    def __init__(
        self,
        *,
        spec: PipelineSpec | dict[str, Any],
        release: dict[str, Any] | str,
        canary_args: Sequence[str] | str = (),
        mlflow_tracking_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)  # the deferral race in Airflow 3.3.2 (apache/airflow#67287)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        super().__init__(**kwargs)
        self.spec = spec.model_dump(mode="json") if isinstance(spec, PipelineSpec) else spec
        self.release = release
        self.canary_args = canary_args
        self.mlflow_tracking_uri = mlflow_tracking_uri

    # --- helpers ---------------------------------------------------------------------------------

    def _spec(self) -> PipelineSpec:
        return PipelineSpec.model_validate(self.spec)

    def _canary_args(self) -> list[str]:
        return shlex.split(self.canary_args) if isinstance(self.canary_args, str) else list(self.canary_args)

    def _registry(self, spec: PipelineSpec) -> MlflowRegistry:
        uri = self.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise AirflowException("no MLflow tracking URI: set MLFLOW_TRACKING_URI or mlflow_tracking_uri")
        return MlflowRegistry(uri, spec.mlflow.registered_model)

    def _result(self) -> dict[str, Any]:
        release = json.loads(self.release) if isinstance(self.release, str) else self.release
        if not isinstance(release, dict) or "version" not in release:
            raise AirflowException(f"release {self.release!r} is not register's result (no 'version')")
        return release

    # --- execute -------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any] | None:
        spec = self._spec()
        registry = self._registry(spec)
        result = self._result()
        version = str(result["version"])
        canary = release_of(spec, registry, version, result.get("artifact_path"), self._canary_args())
        backend = backend_for(spec)
        registry.set_alias(CHALLENGER, version)
        if canary.model_dir:
            registry.set_tag(version, MODEL_DIR_TAG, canary.model_dir)
        champion = registry.alias(CHAMPION)
        if champion is None or champion == version:
            return self._first_release(spec, registry, backend, canary, champion)
        stable = release_of(spec, registry, champion, registry.tags(champion).get(MODEL_DIR_TAG))
        log.info(
            "canary %s v%s against champion v%s on %s",
            canary.model_name,
            version,
            champion,
            spec.rollout.backend,
        )
        backend.deploy_canary(stable, canary)
        policy = spec.rollout
        self.defer(
            trigger=CanaryAnalysisTrigger(
                policy=policy.model_dump(mode="json"),
                backend=backend.config(),
                model_name=spec.mlflow.registered_model,
                version=version,
                tracking_uri=registry.url,
            ),
            method_name="execute_complete",
        )
        return None

    def _first_release(
        self,
        spec: PipelineSpec,
        registry: MlflowRegistry,
        backend: TrafficBackend,
        release: Release,
        champion: str | None,
    ) -> dict[str, Any]:
        why = (
            "already the champion (a re-run)"
            if champion
            else "no champion yet: a first release has nothing to compare with"
        )
        log.info("%s v%s: %s; deploying it at 100%%", release.model_name, release.version, why)
        try:
            backend.deploy_stable(release, timeout=spec.rollout.progress_deadline_seconds)
        except BackendError as e:
            registry.mark_rolled_back(release.version, str(e))
            raise AirflowFailException(f"{release.model_name} v{release.version} did not start: {e}") from e
        registry.promote(release.version)
        log.info("champion is now %s v%s", release.model_name, release.version)
        return {"status": PROMOTED, "version": release.version, "previous": None, "reason": why}

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        spec = self._spec()
        registry = self._registry(spec)
        version = str(self._result()["version"])
        status, reason, checks = event["status"], event["reason"], event.get("checks", [])
        decision_log = {"model": spec.mlflow.registered_model, "version": version, "status": status,
                        "reason": reason, "policy": spec.rollout.model_dump(mode="json"), "checks": checks,
                        "decided_at": time.time()}  # fmt: skip
        try:
            registry.log_checks(version, checks)
            uri = registry.upload_decision_log(version, decision_log)
            log.info("decision log of v%s: %s", version, uri or "not uploaded (artifacts not proxied)")
        except RegistryError as e:
            log.warning("could not record the decision log in MLflow: %s", e)
        if status == PROMOTED:
            old = registry.promote(version)
            log.info(
                "promoted: champion is now %s v%s (previous: v%s)", spec.mlflow.registered_model, version, old
            )
            return {"status": status, "version": version, "previous": old, "reason": reason}
        if status == ROLLED_BACK:
            registry.mark_rolled_back(version, reason)
            raise AirflowFailException(f"rolled back {spec.mlflow.registered_model} v{version}: {reason}")
        # The trigger itself failed: make sure no traffic stays on the canary, then let retries decide.
        backend = backend_for(spec)
        stable = registry.alias(CHAMPION)
        if stable is not None:
            backend.deploy_stable(
                release_of(spec, registry, stable, registry.tags(stable).get(MODEL_DIR_TAG)),
                timeout=spec.rollout.progress_deadline_seconds,
            )
        registry.mark_rolled_back(version, f"rollout error: {reason}")
        raise AirflowException(
            f"canary analysis of v{version} failed ({reason}); traffic is back on v{stable}"
        )
