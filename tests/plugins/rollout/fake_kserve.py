"""EMULATION at unit scope: an in-memory CustomObjectsApi for InferenceServices.

For controller rules that need no API server (failure limit, manual gates); the KServe backend
itself is tested against a real kube-apiserver in tests/k8s. On every write the object is
merge-patched (RFC 7386) and its generation bumped, and the status is what
`support.kserve_status.KServeStatus` says KServe would write. No admission, RBAC,
resourceVersion conflicts or content types: those are the real API server's job.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException
from support.kserve_status import KServeStatus


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


class FakeKServe:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.status = KServeStatus()

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
        metadata = {**body["metadata"], "namespace": namespace, "generation": 1}
        self.objects[key] = {**copy.deepcopy(body), "metadata": metadata}
        self._reconcile(key)
        return copy.deepcopy(self.objects[key])

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self._check(group, version, plural)
        key = (namespace, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        current = self.objects[key]
        patched = merge_patch(current, body)
        if patched.get("spec") != current.get("spec"):
            patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self.objects[key] = patched
        self._reconcile(key)
        return copy.deepcopy(patched)

    def _reconcile(self, key: tuple[str, str]) -> None:
        self.objects[key]["status"] = self.status.reconcile(self.objects[key])
