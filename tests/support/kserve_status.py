"""EMULATION of what the KServe controller (v0.20) writes into an InferenceService's status.

No KServe controller, Knative or pod runs here, so the status KServe would report is computed
from the object's spec and its previous status. Only these fields are written, each as KServe
v0.20.0 writes it (source in the `github.com/kserve/kserve` Go module):

- `status.observedGeneration` = `metadata.generation` once reconciled
  (`InferenceServiceStatus.PropagateStatus`, pkg/apis/serving/v1beta1/inference_service_status.go).
- Knative mode, `status.components.predictor` (`PropagateStatus`, from the Knative Service status):
  `latestCreatedRevision` (a new `<name>-predictor-0000N` whenever the predictor spec other
  than `canaryTrafficPercent` changes), `latestReadyRevision`, `traffic[]` (with the field set
  and a rolled-out revision present: latest ready revision p % tagged `latest`, previous
  rolled-out revision 100 - p % tagged `prev`; a revision that is not ready gets none),
  `latestRolledoutRevision` / `previousRolledoutRevision` (moved only when the latest ready
  revision has 100 %); conditions `PredictorReady` and `Ready`.
- Standard mode (pkg/controller/v1beta1/inferenceservice/components/predictor.go):
  `status.canaryStatuses[]` = one `{name, ready, trafficPercent}` per `spec.canary[]` entry,
  `ready` being its Deployment's `availableReplicas > 0` and `trafficPercent` the declared one;
  condition `CanaryPredictorReady` (reason `AllCanariesReady` / `CanariesNotReady`) while
  there are canaries; `Ready` from the stable predictor.

Readiness stands for the predictor pods becoming ready: a predictor whose model args contain
`--fault_never_ready` never does (as the real predictor with that flag). Standard library only.
"""

from __future__ import annotations

import copy
from typing import Any

NEVER_READY = "--fault_never_ready"


def predictor_ready(predictor: dict[str, Any]) -> bool:
    return NEVER_READY not in predictor.get("model", {}).get("args", [])


def _condition(kind: str, ready: bool, message: str | None = None, reason: str | None = None) -> dict:
    condition = {"type": kind, "status": str(ready)}
    if message:
        condition["message"] = message
    if reason:
        condition["reason"] = reason
    return condition


class KServeStatus:
    """The status KServe would write for each InferenceService; remembers Knative revisions."""

    def __init__(self) -> None:
        # (namespace, name) -> revisions in creation order: {"name", "spec", "ready"}
        self.revisions: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def reconcile(self, isvc: dict[str, Any]) -> dict[str, Any]:
        """The new `status` of `isvc` (its spec, metadata and previous status as stored)."""
        metadata = isvc["metadata"]
        mode = metadata.get("annotations", {}).get("serving.kserve.io/deploymentMode", "Knative")
        key = (metadata.get("namespace", ""), metadata["name"])
        previous = isvc.get("status") or {}
        status = self._knative(key, isvc, previous) if mode == "Knative" else self._standard(isvc)
        status["observedGeneration"] = metadata.get("generation", 1)
        return status

    def _knative(
        self, key: tuple[str, str], isvc: dict[str, Any], previous: dict[str, Any]
    ) -> dict[str, Any]:
        predictor = isvc["spec"]["predictor"]
        template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
        revisions = self.revisions.setdefault(key, [])
        if not revisions or revisions[-1]["spec"] != template:
            name = f"{key[1]}-predictor-{len(revisions) + 1:05d}"
            revisions.append(
                {"name": name, "spec": copy.deepcopy(template), "ready": predictor_ready(template)}
            )
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
        return {
            "components": {"predictor": {k: v for k, v in component.items() if v is not None}},
            "conditions": [_condition("PredictorReady", ready, message), _condition("Ready", ready, message)],
        }

    @staticmethod
    def _standard(isvc: dict[str, Any]) -> dict[str, Any]:
        spec = isvc["spec"]
        canaries = [
            {
                "name": entry["predictor"]["name"],
                "ready": predictor_ready(entry["predictor"]),
                "trafficPercent": entry.get("trafficPercent", 0),
            }
            for entry in spec.get("canary") or []
        ]
        conditions = [_condition("Ready", predictor_ready(spec["predictor"]))]
        status: dict[str, Any] = {"components": {"predictor": {}}}
        if canaries:
            all_ready = all(c["ready"] for c in canaries)
            reason = "AllCanariesReady" if all_ready else "CanariesNotReady"
            conditions.append(_condition("CanaryPredictorReady", all_ready, reason=reason))
            status["canaryStatuses"] = canaries
        status["conditions"] = conditions
        return status
