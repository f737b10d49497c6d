"""CanaryRolloutOperator: the `rollout` task after `register` in the training DAG.

Thin: `execute` resolves the releases (the new version from register's XCom, the current
champion from the registry), marks the new version `challenger` (status `canary`), checks
that it accepts every request the champion accepts (`compatibility`; an incompatible version
stops there, before any traffic moves), deploys it as a canary at 0 % and defers the analysis
to `CanaryAnalysisTrigger`, handing it the requests to replay against both versions before
any traffic moves (the champion's input example and its newest logged requests, `replay`).
`execute_complete` moves the registry after the traffic: promotion → `champion` (old
champion → `previous`); rollback → the version tagged with the reason and the task failed
without retry (retrying would re-deploy the bad version). A trigger error rolls back too, but
leaves the task to its retries. Then the decision log and the rollout's plot (`plot`: weight,
error rates and p99 per check, thresholds, the decision) go to MLflow (best effort).

Registry failures never leave traffic and aliases disagreeing for good:
- a retry finds a decision that was recorded but not finished (status `promoted` or
  `rolled_back` with `challenger` still on the version) and finishes it, without analysing again;
- a promotion whose status could not be written fails the task (retried): the retry analyses
  the version again from the champion;
- a rollback that could not be recorded fails the task with both causes; the next rollout of the
  model records it (`MlflowRegistry.close_interrupted`).

The first release of a model (no champion yet) has nothing to compare with: it is deployed
at 100 % once ready, as Flagger does for a first deployment.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from shipyard.hooks.mlflow import MlflowError
from shipyard.rollout import plot, replay
from shipyard.rollout.backends import Release, TrafficBackend, backend_for
from shipyard.rollout.compatibility import example_rows, incompatibilities
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.errors import BackendError
from shipyard.rollout.registry import MlflowRegistry
from shipyard.rollout.shadow_stage import ShadowContext
from shipyard.rollout.trigger import CanaryAnalysisTrigger
from shipyard_spec.contract import Alias, RolloutStatus, Tag
from shipyard_spec.model import PipelineSpec

log = logging.getLogger(__name__)

PLOT_NAME = "rollout.png"  # beside decision_log.json in the version's run


def release_of(
    spec: PipelineSpec,
    registry: MlflowRegistry,
    version: str,
    model_dir: str | None = None,
    args: Sequence[str] = (),
) -> Release:
    """A version as the spec's backend deploys it.

    kserve: the URI register recorded in the version tag `shipyard.serving_uri` (never a guess);
    local: `model_dir`, else the directory recorded when the version was first deployed.
    """
    tags = registry.tags(version)
    name = spec.mlflow.registered_model
    if spec.rollout.backend == "kserve":
        storage_uri = tags.get(Tag.SERVING_URI)
        if not storage_uri:
            raise BackendError(
                f"{name} v{version} has no tag {Tag.SERVING_URI}: register records there the URI "
                "KServe loads the model from; a version registered without it cannot be served by KServe"
            )
        return Release(name, version, storage_uri=storage_uri, args=list(args))
    model_dir = model_dir or tags.get(Tag.MODEL_DIR)
    if not model_dir:
        raise BackendError(f"{name} v{version} has no local model directory (tag {Tag.MODEL_DIR})")
    return Release(name, version, model_dir=model_dir, args=list(args))


class CanaryRolloutOperator(BaseOperator):
    """Roll a registered model version out as a canary; promote or roll back by live metrics.

    :param spec: the pipeline spec (its `rollout` policy, registry names and MLflow connection
        `mlflow.conn_id`), as parsed with the DAG.
    :param release: register's XCom result (`version`, `artifact_path`, ...); templated.
    :param canary_args: extra predictor arguments for the canary, a list or one shell-quoted string
        (fault injection in demos and tests); templated.
    """

    template_fields = ("release", "canary_args")

    def __init__(
        self,
        *,
        spec: PipelineSpec | dict[str, Any],
        release: dict[str, Any] | str,
        canary_args: Sequence[str] | str = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 1)  # the deferral race in Airflow 3.3.2 (apache/airflow#67287)
        kwargs.setdefault("retry_delay", timedelta(seconds=30))
        super().__init__(**kwargs)
        self.spec = spec.model_dump(mode="json") if isinstance(spec, PipelineSpec) else spec
        self.release = release
        self.canary_args = canary_args

    # --- helpers ---------------------------------------------------------------------------------

    def _spec(self) -> PipelineSpec:
        return PipelineSpec.model_validate(self.spec)

    def _canary_args(self) -> list[str]:
        return shlex.split(self.canary_args) if isinstance(self.canary_args, str) else list(self.canary_args)

    def _result(self) -> dict[str, Any]:
        release = json.loads(self.release) if isinstance(self.release, str) else self.release
        if not isinstance(release, dict) or "version" not in release:
            raise AirflowException(f"release {self.release!r} is not register's result (no 'version')")
        return release

    # --- execute -------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any] | None:
        spec = self._spec()
        registry = MlflowRegistry.for_spec(spec)
        result = self._result()
        version = str(result["version"])
        backend = backend_for(spec)
        finished = self._finish_recorded_decision(spec, registry, backend, version)
        if finished is not None:
            return finished
        for stale in registry.close_interrupted(version):
            log.warning("recorded the unfinished rollout of v%s as rolled back", stale)
        canary = release_of(spec, registry, version, result.get("artifact_path"), self._canary_args())
        registry.start(version)
        if canary.model_dir:
            registry.set_tag(version, Tag.MODEL_DIR, canary.model_dir)
        champion = registry.alias(Alias.CHAMPION)
        if champion is None or champion == version:
            return self._first_release(spec, registry, backend, canary, champion)
        stable = release_of(spec, registry, champion)
        example = self._check_compatibility(spec, registry, champion, version)
        replay_requests = self._replay_requests(spec, champion, example)
        log.info("canary %s v%s against champion v%s on %s", canary.model_name, version, champion,
                 spec.rollout.backend)  # fmt: skip
        backend.deploy_canary(stable, canary)
        shadow = ShadowContext.for_spec(spec, champion, version)
        self.defer(
            trigger=CanaryAnalysisTrigger(
                policy=spec.rollout.model_dump(mode="json"),
                backend=backend.config(),
                model_name=spec.mlflow.registered_model,
                version=version,
                mlflow_conn_id=spec.mlflow.conn_id,
                replay_requests=replay_requests,
                shadow=shadow.as_dict() if shadow else None,
            ),
            method_name="execute_complete",
        )
        return None

    @staticmethod
    def _check_compatibility(
        spec: PipelineSpec, registry: MlflowRegistry, champion: str, version: str
    ) -> dict[str, Any] | None:
        """The signature gate, before any traffic moves: a version that would reject requests the
        champion accepts is stopped here (unless the spec allows a breaking release). Returns the
        champion's input example."""
        champion_mlmodel, example = registry.model_files(champion)
        challenger_mlmodel, _ = registry.model_files(version)
        problems = incompatibilities(champion_mlmodel, challenger_mlmodel, example)
        if not problems:
            log.info("v%s accepts every request v%s accepts (signatures, v%s's input example)", version,
                     champion, champion)  # fmt: skip
            return example
        reason = f"v{version} would reject requests champion v{champion} accepts: {'; '.join(problems)}"
        if spec.rollout.allow_breaking_schema:
            log.warning("%s; rolling it out anyway (rollout.allow_breaking_schema)", reason)
            return example
        registry.mark_rolled_back(version, reason)
        raise AirflowFailException(
            f"stopped {spec.mlflow.registered_model} v{version} before any traffic moved: {reason}"
        )

    @staticmethod
    def _replay_requests(
        spec: PipelineSpec, champion: str, example: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """What the canary must accept before traffic moves: the champion's input example and the
        newest requests the champion answered (its prediction log). An unreadable log leaves the
        example only, said in the task log."""
        requests = [
            {"request": f"input example row {i}", "inputs": replay.missing_as_none(row)}
            for i, row in enumerate(example_rows(example))
        ]
        limit = spec.rollout.replay_logged_requests
        try:
            logged = replay.sample_logged_requests(spec, limit, version=champion) if limit else []
        except OSError as e:
            log.warning("the prediction log cannot be read (%s): replaying the input example only", e)
            logged = []
        requests += [{"request": f"logged request {i}", "inputs": row} for i, row in enumerate(logged)]
        log.info("%d request(s) to replay against v%s before traffic moves (%d logged)", len(requests),
                 champion, len(logged))  # fmt: skip
        return requests

    def _finish_recorded_decision(
        self, spec: PipelineSpec, registry: MlflowRegistry, backend: TrafficBackend, version: str
    ) -> dict[str, Any] | None:
        """A retry after a decision was recorded but its registry moves were not finished: finish them."""
        if registry.alias(Alias.CHALLENGER) != version:
            return None
        tags = registry.tags(version)
        status = tags.get(Tag.ROLLOUT_STATUS)
        if status == RolloutStatus.PROMOTED:
            log.info("v%s was promoted by an earlier try: finishing the registry moves", version)
            backend.deploy_stable(release_of(spec, registry, version), spec.rollout.progress_deadline_seconds)
            old = registry.promote(version)
            return self._promoted(spec, version, old, "promoted by an earlier try; registry moves finished")
        if status == RolloutStatus.ROLLED_BACK:
            reason = tags.get(Tag.ROLLOUT_REASON, "")
            registry.mark_rolled_back(version, reason)
            raise AirflowFailException(f"rolled back {spec.mlflow.registered_model} v{version}: {reason}")
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
        old = registry.promote(release.version)
        return self._promoted(spec, release.version, old, why)

    @staticmethod
    def _promoted(spec: PipelineSpec, version: str, old: str | None, reason: str) -> dict[str, Any]:
        log.info("champion is now %s v%s (previous: %s)", spec.mlflow.registered_model, version,
                 f"v{old}" if old else "none")  # fmt: skip
        return {"status": PROMOTED, "version": version, "previous": old, "reason": reason}

    # --- execute_complete ------------------------------------------------------------------------

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        spec = self._spec()
        registry = MlflowRegistry.for_spec(spec)
        version = str(self._result()["version"])
        status, reason, checks = event["status"], event["reason"], event.get("checks", [])
        pushed = event.get("metrics_push")
        name = spec.mlflow.registered_model
        if status == PROMOTED:
            try:
                old = registry.promote(version)
            except MlflowError as e:
                raise AirflowException(
                    f"{name} v{version} serves all traffic but the registry did not record the promotion "
                    f"({e}); a retry finishes it"
                ) from e
            self._record(spec, registry, version, status, reason, checks, pushed)
            return self._promoted(spec, version, old, reason)
        if status != ROLLED_BACK:
            reason = f"rollout error: {reason}"
            self._back_to_champion(spec, registry, version, reason)
        try:
            registry.mark_rolled_back(version, reason)
        except MlflowError as e:
            raise AirflowFailException(
                f"rolled back {name} v{version}: {reason}; the registry did not record it ({e}): "
                "the next rollout of the model records it"
            ) from e
        self._record(spec, registry, version, status, reason, checks, pushed)
        if status != ROLLED_BACK:  # the analysis itself failed: let the task's retries run it again
            raise AirflowException(f"canary analysis of v{version} failed ({reason}); the champion serves")
        raise AirflowFailException(f"rolled back {name} v{version}: {reason}")

    @staticmethod
    def _back_to_champion(spec: PipelineSpec, registry: MlflowRegistry, version: str, reason: str) -> None:
        """The trigger failed mid-way: all traffic to the champion before anything else."""
        champion = registry.alias(Alias.CHAMPION)
        if champion is None or champion == version:
            return
        log.warning("%s; sending all traffic back to v%s", reason, champion)
        backend_for(spec).deploy_stable(
            release_of(spec, registry, champion), timeout=spec.rollout.progress_deadline_seconds
        )

    @staticmethod
    def _record(
        spec: PipelineSpec,
        registry: MlflowRegistry,
        version: str,
        status: str,
        reason: str,
        checks: list[dict[str, Any]],
        metrics_push: list[dict[str, Any]] | None = None,
    ) -> None:
        """The checks as run metrics, the decision log and the plot as artifacts: the audit trail,
        best effort. `metrics_push`: the pushes to the Pushgateway per job (failures counted)."""
        decision_log = {"model": spec.mlflow.registered_model, "version": version, "status": status,
                        "reason": reason, "policy": spec.rollout.model_dump(mode="json"), "checks": checks,
                        "metrics_push": metrics_push, "decided_at": time.time()}  # fmt: skip
        try:
            registry.log_checks(version, checks)
            uri = registry.upload_decision_log(version, decision_log)
        except MlflowError as e:
            log.warning("the decision log of v%s is only in this task log: %s\n%s", version, e,
                        json.dumps(decision_log, indent=2))  # fmt: skip
            return
        log.info("decision log of v%s: %s", version, uri or "not uploaded (artifacts not proxied)")
        data = plot.series(checks, spec.rollout, model=spec.mlflow.registered_model, version=version,
                           status=status, reason=reason)  # fmt: skip
        pictures = [(PLOT_NAME, plot.figure(data))] + [
            (picture.name, plot.shadow_figure(picture))
            for picture in plot.shadow_pictures(checks, spec.evaluation.threshold,
                                                model=spec.mlflow.registered_model, version=version)
        ]  # fmt: skip
        for name, figure in pictures:
            try:
                uri = registry.upload_figure(version, figure, name)
            except MlflowError as e:
                log.warning("the plot %s of v%s was not uploaded: %s", name, version, e)
                return
            log.info("plot %s of v%s: %s", name, version, uri or "not uploaded (artifacts not proxied)")
