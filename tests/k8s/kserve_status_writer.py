"""EMULATED: the KServe controller's status writes, beside the real API server.

No KServe controller runs here (nor Knative, nor pods), so a thread watches every
InferenceService and, when its spec generation is not yet observed, writes the status KServe
v0.20 would write (`support.kserve_status.KServeStatus`, which lists the fields and the KServe
source of each) through the `status` subresource with an update carrying the object's
resourceVersion, as a controller does: a write racing a spec change gets 409 and is redone on
the next watch event. Everything else (spec validation by the CRD schema, generations,
resourceVersions, merge-patch semantics, RBAC) is the API server's own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from support.kserve_status import KServeStatus

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class StatusWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.status = KServeStatus()
        self.stopped = threading.Event()
        self.errors: list[str] = []
        # (namespace, name) -> every generation's spec in order, as the watch delivered them
        self.specs: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def reconcile(self, isvc: dict[str, Any]) -> None:
        metadata = isvc["metadata"]
        if (isvc.get("status") or {}).get("observedGeneration") == metadata["generation"]:
            return
        history = self.specs.setdefault((metadata["namespace"], metadata["name"]), [])
        if not history or history[-1]["generation"] < metadata["generation"]:
            history.append({"generation": metadata["generation"], "spec": isvc["spec"]})
        body = {**isvc, "status": self.status.reconcile(isvc)}
        try:
            self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"], body
            )
        except ApiException as e:
            if e.status not in (404, 409):  # deleted meanwhile / spec changed meanwhile: next event
                self.errors.append(f"{metadata['name']}: {e.status} {e.reason}")

    def run(self) -> None:
        """Watch from where the last stream ended, so no generation goes unseen."""
        stream, resource_version = watch.Watch(), None
        while not self.stopped.is_set():
            since = {"resource_version": resource_version} if resource_version else {}
            try:
                for event in stream.stream(
                    self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, timeout_seconds=1, **since
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.reconcile(event["object"])
            except ApiException as e:
                if e.status != 410:  # 410 Gone: the resourceVersion expired, list again
                    raise
                stream.resource_version = None
            resource_version = stream.resource_version


@contextlib.contextmanager
def kserve_status_writer(api: client.ApiClient) -> Iterator[StatusWriter]:
    writer = StatusWriter(api)
    thread = threading.Thread(target=writer.run, name="kserve-status-writer", daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stopped.set()
        thread.join(timeout=10)
    assert not writer.errors, writer.errors
