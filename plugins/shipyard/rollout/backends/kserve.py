"""The KServe backend (production): one InferenceService, driven through the Kubernetes API.

KServe splits traffic but automates neither promotion nor rollback (kserve#3085); this
backend does both, in either deployment mode, each a strategy object in `MODES`:

- **Knative** (`spec.predictor.canaryTrafficPercent`): the canary is the latest revision.
  Promotion removes the field. Rollback first sets it to 0 (all traffic to the previous
  rolled-out revision at once), then points the predictor back at the stable model and,
  once that revision is ready, removes the field: the declared spec never keeps naming the
  bad version, and no request reaches it while the restored revision starts.
- **Standard** (`spec.canary[]` with `trafficPercent`, KServe >= 0.20): promotion moves the
  canary predictor into `spec.predictor` and deletes the entry; rollback deletes the entry.

Writes are JSON merge patches of only the fields Shipyard owns (the chart owns the rest),
created when absent: a re-run patches instead of failing with 409. Every traffic move is
verified from the status (`status.components.predictor.traffic` in Knative mode,
`status.canaryStatuses` in Standard mode) before the controller goes on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

from shipyard.rollout.backends import Mirror, Readiness, Release
from shipyard.rollout.errors import BackendError
from shipyard.rollout.providers import Target
from shipyard_spec.model import KServeTarget

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
DEPLOYMENT_MODE = {"knative": "Knative", "standard": "Standard"}
VERIFY_TIMEOUT_SECONDS = 120
POLL_SECONDS = 1.0
# The predictor container's name (KServe's constants.InferenceServiceContainerName). KServe 0.20's
# CRD requires `name` in spec.canary[].predictor.model (a container type there), so it is always set.
MODEL_CONTAINER = "kserve-container"


class CustomObjects(Protocol):
    """The three CustomObjectsApi methods this backend uses (KubernetesHook().custom_object_client)."""

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any: ...

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: Any
    ) -> Any: ...

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> Any: ...


class InferenceServiceWriter(Protocol):
    """What a mode's rollback steps may do with the backend: its public moves, nothing private."""

    target: KServeTarget
    stable: Release | None

    def set_canary_weight(self, percent: int) -> None: ...

    def apply(self, body: dict[str, Any]) -> None: ...

    def wait_for(self, what: str, condition: Any, timeout: float | None = None) -> dict[str, Any]: ...


def predictor_name(release: Release) -> str:
    return f"v{release.version}"


def model_spec(target: KServeTarget, release: Release) -> dict[str, Any]:
    """The predictor's model: the ServingRuntime, where the model is, and its version label."""
    if not release.storage_uri:
        raise BackendError(f"{release.model_name} v{release.version} has no storage URI for KServe")
    return {
        "name": MODEL_CONTAINER,
        "modelFormat": {"name": "shipyard"},
        "runtime": target.runtime,
        "storageUri": release.storage_uri,
        "args": [f"--model_version={release.version}", *release.args],
    }


def build_inferenceservice(
    target: KServeTarget,
    name: str,
    pipeline: str,
    stable: Release,
    canary: Release | None = None,
    weight: int = 0,
) -> dict[str, Any]:
    """The InferenceService Shipyard declares: `stable` serving, `canary` (if any) at `weight` %.

    Only Shipyard's fields: applied as a merge patch, everything else (resources, security
    context from the chart) is left as it is on the cluster.
    """
    metadata = {
        "name": name,
        "namespace": target.namespace,
        "labels": {"shipyard.io/pipeline": pipeline},
        "annotations": {
            "serving.kserve.io/deploymentMode": DEPLOYMENT_MODE[target.mode],
            "shipyard.io/stable-version": stable.version,
            "shipyard.io/canary-version": canary.version if canary else None,
        },
    }
    spec = MODES[target.mode].spec(target, stable, canary, weight)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec,
    }


# `status.modelStatus` says a model can never load: the wait for readiness ends at once.
TERMINAL_TRANSITIONS = {"BlockedByFailedLoad", "InvalidSpec"}
FAILED_TO_LOAD = "FailedToLoad"


def terminal_failure(isvc: dict[str, Any]) -> str | None:
    """The cause, when the InferenceService's model status reports a terminal failure; else None.

    Read once the latest spec (the canary's) is observed, so the status is the canary's:
    `transitionStatus` BlockedByFailedLoad / InvalidSpec or `targetModelState` FailedToLoad,
    with `lastFailureInfo` (reason, message, exit code) as the cause.
    """
    model = isvc.get("status", {}).get("modelStatus") or {}
    transition = model.get("transitionStatus")
    target_state = (model.get("states") or {}).get("targetModelState")
    if transition not in TERMINAL_TRANSITIONS and target_state != FAILED_TO_LOAD:
        return None
    info = model.get("lastFailureInfo") or {}
    exit_code = f" (exit code {info['exitCode']})" if info.get("exitCode") is not None else ""
    return (
        f"{transition if transition in TERMINAL_TRANSITIONS else target_state}: "
        f"{info.get('reason', 'no reason given')}{exit_code}: "
        f"{info.get('message', 'no message')}"
    )


def api_message(error: Any) -> str:
    """The API server's own explanation of a refused request (field paths for a 422), else the reason."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def without_nulls(value: Any) -> Any:
    """A merge patch minus its deletions (`None`): the body of a create."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _predictor_status(isvc: dict[str, Any]) -> dict[str, Any]:
    return isvc.get("status", {}).get("components", {}).get("predictor", {})


def _observed(isvc: dict[str, Any]) -> bool:
    status = isvc.get("status", {})
    return status.get("observedGeneration", -1) >= isvc.get("metadata", {}).get("generation", 0)


def _ready(isvc: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in isvc.get("status", {}).get("conditions", [])
    )


class KnativeMode:
    """`spec.predictor.canaryTrafficPercent`; the canary is the latest created revision and the
    split is read from `status.components.predictor.traffic`."""

    @staticmethod
    def spec(target: KServeTarget, stable: Release, canary: Release | None, weight: int) -> dict[str, Any]:
        serving = canary or stable
        return {
            "predictor": {
                "model": model_spec(target, serving),
                "canaryTrafficPercent": weight if canary else None,
            }
        }

    @staticmethod
    def traffic(isvc: dict[str, Any]) -> dict[str, int]:
        """Percent by revision name."""
        split: dict[str, int] = {}
        for entry in _predictor_status(isvc).get("traffic", []):
            name = entry["revisionName"]
            split[name] = split.get(name, 0) + int(entry.get("percent") or 0)
        return split

    @staticmethod
    def canary_revision(isvc: dict[str, Any]) -> str | None:
        """The latest created revision, once it differs from the rolled-out one."""
        predictor = _predictor_status(isvc)
        latest = predictor.get("latestCreatedRevision")
        return latest if latest and latest != predictor.get("latestRolledoutRevision") else None

    def canary_at(self, isvc: dict[str, Any], canary: Release | None, percent: int) -> bool:
        revision = self.canary_revision(isvc)
        return revision is not None and self.traffic(isvc).get(revision, 0) == percent

    def serves_only_stable(self, isvc: dict[str, Any]) -> bool:
        predictor = _predictor_status(isvc)
        rolled_out = predictor.get("latestRolledoutRevision")
        return rolled_out == predictor.get("latestCreatedRevision") and self.traffic(isvc) == {
            rolled_out: 100
        }

    def canary_readiness(self, isvc: dict[str, Any], canary: Release | None) -> Readiness:
        revision = self.canary_revision(isvc)
        if revision is not None and revision == _predictor_status(isvc).get("latestReadyRevision"):
            return Readiness(True, f"revision {revision} is ready")
        messages = [
            c.get("message") for c in isvc.get("status", {}).get("conditions", []) if c.get("message")
        ]
        return Readiness(
            False, f"canary revision {revision} is not ready: {'; '.join(messages) or 'no message'}"
        )

    def restore_stable(self, backend: InferenceServiceWriter) -> None:
        """Before the canary leaves the spec: all traffic to the previous rolled-out revision at
        once, then the stable model as a new revision at 0 % until it is ready, so the declared
        spec never keeps naming the bad version and no request reaches a revision still starting."""
        if backend.stable is None:
            raise BackendError("no stable release to restore")
        backend.set_canary_weight(0)
        backend.apply(
            {
                "spec": {
                    "predictor": {
                        "model": model_spec(backend.target, backend.stable),
                        "canaryTrafficPercent": 0,
                    }
                }
            }
        )
        backend.wait_for("the restored stable revision ready", _restored_ready)

    def revisions(
        self, isvc: dict[str, Any], name: str, stable: Release | None, canary: Release | None
    ) -> tuple[str, str]:
        """(canary, stable) revision names, as the metric presets label them."""
        return self.canary_revision(isvc) or "", _predictor_status(isvc).get("latestRolledoutRevision", "")


class StandardMode:
    """`spec.canary[]` with `trafficPercent` (KServe >= 0.20), read from `status.canaryStatuses`."""

    @staticmethod
    def spec(target: KServeTarget, stable: Release, canary: Release | None, weight: int) -> dict[str, Any]:
        return {
            "predictor": {"name": predictor_name(stable), "model": model_spec(target, stable)},
            "canary": [
                {
                    "predictor": {"name": predictor_name(canary), "model": model_spec(target, canary)},
                    "trafficPercent": weight,
                }
            ]
            if canary
            else None,
        }

    @staticmethod
    def canary_status(isvc: dict[str, Any], canary: Release | None) -> dict[str, Any] | None:
        """This canary's entry in status.canaryStatuses."""
        wanted = predictor_name(canary) if canary else None
        return next(
            (s for s in isvc.get("status", {}).get("canaryStatuses", []) if s.get("name") == wanted), None
        )

    def canary_at(self, isvc: dict[str, Any], canary: Release | None, percent: int) -> bool:
        status = self.canary_status(isvc, canary)
        return status is not None and bool(status.get("ready")) and status.get("trafficPercent") == percent

    @staticmethod
    def serves_only_stable(isvc: dict[str, Any]) -> bool:
        return not isvc.get("status", {}).get("canaryStatuses")

    def canary_readiness(self, isvc: dict[str, Any], canary: Release | None) -> Readiness:
        status = self.canary_status(isvc, canary)
        ready = bool(status and status.get("ready"))
        return Readiness(ready, f"canary predictor {predictor_name(canary)} ready: {ready}")

    @staticmethod
    def restore_stable(backend: InferenceServiceWriter) -> None:
        """Nothing before the canary entry is deleted: the stable predictor kept serving."""

    @staticmethod
    def revisions(
        isvc: dict[str, Any], name: str, stable: Release | None, canary: Release | None
    ) -> tuple[str, str]:
        return (
            f"{name}-{predictor_name(canary)}" if canary else "",
            f"{name}-{predictor_name(stable)}" if stable else "",
        )


def _restored_ready(isvc: dict[str, Any]) -> bool:
    predictor = _predictor_status(isvc)
    return _observed(isvc) and predictor.get("latestReadyRevision") == predictor.get("latestCreatedRevision")


# One strategy per `rollout.kserve.mode`: everything that differs between the two modes.
MODES: dict[str, KnativeMode | StandardMode] = {"knative": KnativeMode(), "standard": StandardMode()}


class KServeBackend:
    def __init__(
        self,
        target: KServeTarget,
        name: str,
        pipeline: str,
        client: CustomObjects,
        stable: Release | None = None,
        canary: Release | None = None,
        verify_timeout: float = VERIFY_TIMEOUT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.target = target
        self.name = name
        self.pipeline = pipeline
        self.client = client
        self.stable = stable
        self.canary = canary
        self.verify_timeout = verify_timeout
        self.poll_seconds = poll_seconds

    @classmethod
    def from_config(cls, target: KServeTarget, config: dict[str, Any]) -> KServeBackend:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        client = KubernetesHook(conn_id=target.kubernetes_conn_id).custom_object_client
        return cls(
            target,
            config["name"],
            config["pipeline"],
            client,
            stable=Release.from_dict(config["stable"]) if config.get("stable") else None,
            canary=Release.from_dict(config["canary"]) if config.get("canary") else None,
        )

    def config(self) -> dict[str, Any]:
        return {
            "kind": "kserve",
            "name": self.name,
            "pipeline": self.pipeline,
            "stable": self.stable.as_dict() if self.stable else None,
            "canary": self.canary.as_dict() if self.canary else None,
        }

    # --- Kubernetes API ------------------------------------------------------------------------

    def get(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.client.get_namespaced_custom_object(
                GROUP, VERSION, self.target.namespace, PLURAL, self.name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise BackendError(
                f"reading InferenceService {self.target.namespace}/{self.name}: {e.status} {api_message(e)}"
            ) from e

    def apply(self, body: dict[str, Any]) -> None:
        """Create the InferenceService, or merge-patch it when it exists (no 409 on a re-run)."""
        from kubernetes.client.exceptions import ApiException

        where = f"InferenceService {self.target.namespace}/{self.name}"
        try:
            if self.get() is None:
                self.client.create_namespaced_custom_object(
                    GROUP, VERSION, self.target.namespace, PLURAL, without_nulls(body)
                )
                log.info("created %s", where)
            else:
                self.client.patch_namespaced_custom_object(
                    GROUP, VERSION, self.target.namespace, PLURAL, self.name, body
                )
        except ApiException as e:
            raise BackendError(f"writing {where}: {e.status} {api_message(e)}") from e

    def _declare(self, canary: Release | None, weight: int = 0) -> None:
        if self.stable is None:
            raise BackendError(f"InferenceService {self.name}: no stable release to declare")
        self.apply(build_inferenceservice(self.target, self.name, self.pipeline, self.stable, canary, weight))

    def wait_for(self, what: str, condition: Any, timeout: float | None = None) -> dict[str, Any]:
        """Poll the status until `condition(isvc)` holds; BackendError after the timeout."""
        timeout = timeout or self.verify_timeout
        deadline = time.monotonic() + timeout
        while True:
            isvc = self.get() or {}
            if condition(isvc):
                return isvc
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"InferenceService {self.name}: {what} not reached within {timeout:g}s; "
                    f"status {isvc.get('status')}"
                )
            time.sleep(self.poll_seconds)

    @property
    def mode(self) -> KnativeMode | StandardMode:
        return MODES[self.target.mode]

    def _canary_weight_is(self, percent: int) -> Any:
        def reached(isvc: dict[str, Any]) -> bool:
            return _observed(isvc) and self.mode.canary_at(isvc, self.canary, percent)

        return reached

    # --- the TrafficBackend protocol -------------------------------------------------------------

    def deploy_stable(self, release: Release, timeout: float) -> None:
        self.stable, self.canary = release, None
        self._declare(None)
        self.wait_for(f"v{release.version} serving 100%", self._serves_only_stable, timeout)

    def _serves_only_stable(self, isvc: dict[str, Any]) -> bool:
        return _observed(isvc) and _ready(isvc) and self.mode.serves_only_stable(isvc)

    def deploy_canary(self, stable: Release, canary: Release) -> None:
        if self.get() is None:
            log.info(
                "InferenceService %s does not exist: deploying stable v%s first", self.name, stable.version
            )
            self.deploy_stable(stable, self.verify_timeout)
        self.stable, self.canary = stable, canary
        self._declare(canary, 0)

    def canary_readiness(self) -> Readiness:
        isvc = self.get()
        if isvc is None:
            return Readiness(False, f"InferenceService {self.name} does not exist")
        if not _observed(isvc):
            return Readiness(False, f"InferenceService {self.name}: the latest spec is not reconciled yet")
        failure = terminal_failure(isvc)
        if failure is not None:
            return Readiness(False, f"InferenceService {self.name}: {failure}", failed=True)
        return self.mode.canary_readiness(isvc, self.canary)

    def set_canary_weight(self, percent: int) -> None:
        self._declare(self.canary, percent)
        self.wait_for(f"canary at {percent}%", self._canary_weight_is(percent))

    def promote(self) -> None:
        if self.canary is None:
            raise BackendError(f"InferenceService {self.name}: no canary to promote")
        self.stable, self.canary = self.canary, None
        self._declare(None)
        self.wait_for(f"v{self.stable.version} serving 100%", self._serves_only_stable)

    def rollback(self) -> None:
        if self.canary is None:
            return
        self.mode.restore_stable(self)
        self.canary = None
        self._declare(None)
        self.wait_for(f"v{self.stable.version} serving 100%", self._serves_only_stable)

    def targets(self) -> tuple[Target, Target]:
        isvc = self.get() or {}
        canary_rev, stable_rev = self.mode.revisions(isvc, self.name, self.stable, self.canary)
        return (
            Target(
                "canary",
                self.name,
                self.canary.version if self.canary else "",
                self.target.namespace,
                canary_rev,
            ),
            Target(
                "stable",
                self.name,
                self.stable.version if self.stable else "",
                self.target.namespace,
                stable_rev,
            ),
        )

    def direct_urls(self) -> tuple[str, str] | None:
        """The two versions' in-cluster Services, past the split: Knative names one Service after
        each revision, KServe's Standard mode one after each predictor (`<isvc>-v<N>`, as
        `revisions` names them). Reachable from the triggerer when the chart's predictor
        NetworkPolicy admits it (same namespace, or `networkPolicy.predictorIngressFrom`). Not
        checked against a running KServe controller (none runs here)."""
        canary_rev, stable_rev = self.mode.revisions(self.get() or {}, self.name, self.stable, self.canary)
        if not (canary_rev and stable_rev):
            return None
        namespace = self.target.namespace
        return tuple(f"http://{rev}.{namespace}.svc.cluster.local" for rev in (canary_rev, stable_rev))  # type: ignore[return-value]

    def start_mirroring(self, mirror: Mirror) -> None:
        """Refused (the spec schema already refuses `shadow.live_seconds` with this backend): the
        stable predictor reads its mirror variables at start, and while a canary is declared a new
        stable revision cannot be made without replacing the canary. Gateway API `RequestMirror` on
        the Standard mode's HTTPRoute would be the mechanism; see docs/architecture.md."""
        raise BackendError(
            "live shadow (mirroring) is not available on the kserve backend; use the replay shadow"
        )

    def stop_mirroring(self) -> None:
        """Nothing mirrors on this backend."""
