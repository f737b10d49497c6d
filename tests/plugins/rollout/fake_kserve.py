"""EMULATION of a cluster running KServe: an in-memory CustomObjectsApi for InferenceServices.

There is no Kubernetes cluster here, so the KServe backend is tested against this narrow
stand-in of the three CustomObjectsApi calls it makes. On every write the object is merge-
patched (RFC 7386, as the API server does for `application/merge-patch+json`), its
generation bumped, and the status recomputed the way KServe's reconcilers report it:

- Knative mode: a new revision `<name>-predictor-0000N` whenever the predictor spec other than
  `canaryTrafficPercent` changes; with the field set and a rolled-out revision present,
  traffic is [latest ready revision: p %, previous rolled-out revision ("prev"): 100 - p %];
  a revision that is not ready gets no traffic; `latestRolledoutRevision` moves only when the
  latest ready revision has 100 %.
- Standard mode: `status.canaryStatuses[]` per `spec.canary[]` entry, with its traffic only
  when the canary predictor is ready; a `CanaryPredictorReady` condition.

A predictor whose model args contain `--fault_never_ready` never becomes ready (as the real
predictor with that flag). A predictor whose storageUri contains `broken` never becomes ready
either, and `status.modelStatus` reports it as KServe does for a model server that exits at
start-up (BlockedByFailedLoad, FailedToLoad, lastFailureInfo with the container's message).
It is an emulation of status semantics, not of scheduling, pods or networking.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException

NEVER_READY = "--fault_never_ready"
BROKEN = "broken"


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _broken(predictor: dict[str, Any]) -> bool:
    return BROKEN in predictor.get("model", {}).get("storageUri", "")


def _ready(predictor: dict[str, Any]) -> bool:
    return NEVER_READY not in predictor.get("model", {}).get("args", []) and not _broken(predictor)


def _model_status(predictors: list[dict[str, Any]]) -> dict[str, Any]:
    """KServe's modelStatus of the newest predictor: loaded, or failed to load for good."""
    if not _broken(predictors[-1]):
        return {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
        }
    return {
        "transitionStatus": "BlockedByFailedLoad",
        "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
        "lastFailureInfo": {
            "reason": "ModelLoadFailed",
            "exitCode": 1,
            "message": "shipyard_serving.model_dir.ModelDirError: /mnt/models/model.pkl cannot be unpickled",
        },
    }


class FakeKServe:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.revisions: dict[tuple[str, str], list[dict[str, Any]]] = {}  # name, predictor spec, ready
        self.writes: list[tuple[str, dict[str, Any]]] = []  # ("create" | "patch", body)

    def _check(self, group: str, version: str, plural: str) -> None:
        assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self._check(group, version, plural)
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[(namespace, name)])

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self._check(group, version, plural)
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes.append(("create", copy.deepcopy(body)))
        self.objects[key] = {**copy.deepcopy(body), "metadata": {**body["metadata"], "generation": 1}}
        self._reconcile(key)
        return copy.deepcopy(self.objects[key])

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self._check(group, version, plural)
        key = (namespace, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        self.writes.append(("patch", copy.deepcopy(body)))
        current = self.objects[key]
        patched = merge_patch(current, body)
        if patched.get("spec") != current.get("spec"):
            patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self.objects[key] = patched
        self._reconcile(key)
        return copy.deepcopy(patched)

    # --- the emulated reconcilers ---------------------------------------------------------------

    def _reconcile(self, key: tuple[str, str]) -> None:
        isvc = self.objects[key]
        mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Knative")
        previous = isvc.get("status", {})
        status = self._knative(key, isvc, previous) if mode == "Knative" else self._standard(isvc)
        spec = isvc["spec"]
        status["modelStatus"] = _model_status(
            [spec["predictor"], *(c["predictor"] for c in spec.get("canary", []))]
        )
        status["observedGeneration"] = isvc["metadata"]["generation"]
        isvc["status"] = status

    def _knative(
        self, key: tuple[str, str], isvc: dict[str, Any], previous: dict[str, Any]
    ) -> dict[str, Any]:
        predictor = isvc["spec"]["predictor"]
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        revisions = self.revisions.setdefault(key, [])
        if not revisions or revisions[-1]["spec"] != template:
            name = f"{key[1]}-predictor-{len(revisions) + 1:05d}"
            revisions.append({"name": name, "spec": copy.deepcopy(template), "ready": _ready(template)})
        latest = revisions[-1]
        latest_ready = next((r["name"] for r in reversed(revisions) if r["ready"]), None)
        old = previous.get("components", {}).get("predictor", {})
        rolled_out = old.get("latestRolledoutRevision")
        previous_rolled_out = old.get("previousRolledoutRevision")
        percent = predictor.get("canaryTrafficPercent")
        if latest_ready is None:
            traffic = []
        elif percent is None or rolled_out is None or latest_ready == rolled_out:
            traffic = [{"revisionName": latest_ready, "percent": 100, "latestRevision": True}]
        else:
            traffic = [
                {"revisionName": latest_ready, "percent": percent, "latestRevision": True, "tag": "latest"},
                {
                    "revisionName": rolled_out,
                    "percent": 100 - percent,
                    "latestRevision": False,
                    "tag": "prev",
                },
            ]
        if (
            any(t["revisionName"] == latest_ready and t["percent"] == 100 for t in traffic)
            and latest_ready != rolled_out
        ):
            previous_rolled_out, rolled_out = rolled_out, latest_ready
        component = {
            "latestCreatedRevision": latest["name"],
            "latestReadyRevision": latest_ready,
            "latestRolledoutRevision": rolled_out,
            "previousRolledoutRevision": previous_rolled_out,
            "traffic": [t for t in traffic if t["percent"]] or traffic,
        }
        ready = latest_ready is not None
        message = (
            None if latest["ready"] else f"Revision {latest['name']} is not ready: readiness probe failed"
        )
        conditions = [
            {"type": "PredictorReady", "status": str(ready), "message": message},
            {"type": "Ready", "status": str(ready), "message": message},
        ]
        return {
            "components": {"predictor": {k: v for k, v in component.items() if v is not None}},
            "conditions": conditions,
        }

    def _standard(self, isvc: dict[str, Any]) -> dict[str, Any]:
        spec = isvc["spec"]
        stable_ready = _ready(spec["predictor"])
        canaries = [
            {
                "name": entry["predictor"]["name"],
                "ready": _ready(entry["predictor"]),
                "trafficPercent": entry.get("trafficPercent", 0) if _ready(entry["predictor"]) else 0,
            }
            for entry in spec.get("canary", [])
        ]
        conditions = [{"type": "Ready", "status": str(stable_ready)}]
        if canaries:
            conditions.append(
                {"type": "CanaryPredictorReady", "status": str(all(c["ready"] for c in canaries))}
            )
        status: dict[str, Any] = {"conditions": conditions, "components": {"predictor": {}}}
        if canaries:
            status["canaryStatuses"] = canaries
        return status
