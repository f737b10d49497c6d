"""EMULATED: the kubelet's pod status writes, for step pods the real API server accepted.

No container runtime exists here, so no pod runs. This stand-in watches the pods of one
namespace and, for each new one, writes through the `pods/status` subresource what a kubelet
would report: phase Running with every container running, then (after `run_seconds`) phase
Succeeded or Failed with the base container terminated with `exit_code` (the other containers
terminated with 0). Nothing else about the pod is faked: creation, admission, labels, reads,
patches and deletion are the API server's. Logs and exec, which the API server streams from
the kubelet, are not emulated.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeletStandIn:
    def __init__(self, api: client.ApiClient, namespace: str, base_container: str = "base") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.base_container = base_container
        self.exit_code = 0
        self.run_seconds = 0.3
        self.started: list[str] = []  # names of the pods it ran, in order
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def _statuses(self, pod: client.V1Pod, state: Any, base_state: Any, ready: bool) -> list[dict[str, Any]]:
        return [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "state": base_state if c.name == self.base_container else state,
            }
            for c in pod.spec.containers
        ]

    def _write(self, pod: client.V1Pod, phase: str, statuses: list[dict[str, Any]]) -> None:
        body = {"status": {"phase": phase, "startTime": _now(), "containerStatuses": statuses}}
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, body)

    def run_pod(self, pod: client.V1Pod) -> None:
        self.started.append(pod.metadata.name)
        started = _now()
        running = {"running": {"startedAt": started}}
        self._write(pod, "Running", self._statuses(pod, running, running, ready=True))
        time.sleep(self.run_seconds)
        code = self.exit_code

        def terminated(exit_code: int) -> dict[str, Any]:
            reason = "Completed" if exit_code == 0 else "Error"
            return {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": started,
                    "finishedAt": _now(),
                }
            }

        phase = "Succeeded" if code == 0 else "Failed"
        self._write(pod, phase, self._statuses(pod, terminated(0), terminated(code), ready=False))

    def run(self) -> None:
        stream = watch.Watch()
        while not self.stopped.is_set():
            for event in stream.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=1):
                pod = event["object"]
                if (
                    event["type"] == "ADDED"
                    and pod.status.phase == "Pending"
                    and pod.metadata.name not in self.started
                ):
                    try:
                        self.run_pod(pod)
                    except client.ApiException as e:
                        self.errors.append(f"{pod.metadata.name}: {e.status} {e.reason}")


@contextlib.contextmanager
def kubelet_stand_in(api: client.ApiClient, namespace: str) -> Iterator[KubeletStandIn]:
    kubelet = KubeletStandIn(api, namespace)
    thread = threading.Thread(target=kubelet.run, name="kubelet-stand-in", daemon=True)
    thread.start()
    try:
        yield kubelet
    finally:
        kubelet.stopped.set()
        thread.join(timeout=10)
    assert not kubelet.errors, kubelet.errors
