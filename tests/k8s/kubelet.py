"""EMULATED: a node for step pods the real API server accepted: scheduler binding, kubelet status, logs.

No container runtime exists here, so no pod runs. This stand-in registers one Node whose
kubelet endpoint is a loopback HTTPS server of its own, and watches the pods of one namespace.
For each new pod it does what the scheduler and the kubelet would, and nothing more:
- binds it to the node (`pods/binding`, the scheduler's call);
- writes through `pods/status` phase Running with every container running, then (after
  `run_seconds`) Succeeded or Failed with the base container terminated with `exit_code`
  (the other containers with 0);
- answers the API server's `GET /containerLogs/<ns>/<pod>/<container>` (what `kubectl logs` and
  the operator's log streaming become) with `output`, one RFC 3339 timestamp per line when asked,
  holding a `follow` request open until the container has terminated, as the kubelet does;
- optionally (`run_base`) runs the base container's process itself, as a local process given the
  pod as the API server stored it (its command, arguments and literal environment), whose exit
  code and output become the container's: the stand-in for the container runtime.
Creation, admission, labels, reads, patches, deletion and the log proxying are the API server's
own. Exec (the XCom sidecar's `cat`), which the API server upgrades to a streaming protocol
towards the kubelet, is not emulated.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from control_plane import Pki
from kubernetes import client, watch

NODE = "envtest-node"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeletStandIn:
    def __init__(self, api: client.ApiClient, namespace: str, base_container: str = "base") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.base_container = base_container
        self.exit_code = 0
        self.output = ""  # what the base container prints
        self.run_seconds = 0.3
        # When set: (exit code, output) of the base container, from running it (see the docstring).
        self.run_base: Callable[[client.V1Pod], tuple[int, str]] | None = None
        self.started: list[str] = []  # names of the pods it ran, in order
        self.logs: dict[tuple[str, str], str] = {}  # (pod, container) -> output
        self.finished: dict[str, threading.Event] = {}  # pod -> its containers have terminated
        self.stopped = threading.Event()
        self.errors: list[str] = []

    # --- the kubelet's HTTPS endpoint ------------------------------------------------------------

    def container_log(self, pod: str, container: str, follow: bool, timestamps: bool) -> str:
        if follow and pod in self.finished:
            self.finished[pod].wait(timeout=30)
        text = self.logs.get((pod, container), "")
        if timestamps:
            text = "".join(f"{_now()} {line}\n" for line in text.splitlines())
        return text

    def handler(self) -> type[BaseHTTPRequestHandler]:
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404, "only /containerLogs/<ns>/<pod>/<container> is emulated")
                    return
                query = urllib.parse.parse_qs(url.query)
                body = kubelet.container_log(
                    parts[2], parts[3], query.get("follow") == ["true"], query.get("timestamps") == ["true"]
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the API server's audit log records the requests

        return Handler

    def register_node(self, port: int) -> None:
        """The Node object a kubelet registers: its address and kubelet port on the loopback."""
        self.core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=NODE)))
        status = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
        self.core.patch_node_status(NODE, {"status": status})

    # --- pods ---------------------------------------------------------------------------------------

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
        name = pod.metadata.name
        self.started.append(name)
        self.finished[name] = threading.Event()
        self.logs[(name, self.base_container)] = self.output
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name), target=client.V1ObjectReference(kind="Node", name=NODE)
        )
        # The generated client cannot read the Status this call answers with: keep the raw response.
        self.core.create_namespaced_pod_binding(name, self.namespace, binding, _preload_content=False)
        started = _now()
        running = {"running": {"startedAt": started}}
        self._write(pod, "Running", self._statuses(pod, running, running, ready=True))
        time.sleep(self.run_seconds)
        code = self.exit_code
        if self.run_base is not None:
            code, self.logs[(name, self.base_container)] = self.run_base(pod)

        def terminated(exit_code: int) -> dict[str, Any]:
            reason = "Completed" if exit_code == 0 else "Error"
            state = {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": _now()}
            return {"terminated": state}

        phase = "Succeeded" if code == 0 else "Failed"
        self._write(pod, phase, self._statuses(pod, terminated(0), terminated(code), ready=False))
        self.finished[name].set()

    def run(self) -> None:
        stream = watch.Watch()
        while not self.stopped.is_set():
            for event in stream.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=1):
                pod = event["object"]
                new = event["type"] == "ADDED" and pod.status.phase == "Pending"
                if new and pod.metadata.name not in self.started:
                    try:
                        self.run_pod(pod)
                    except client.ApiException as e:
                        self.errors.append(f"{pod.metadata.name}: {e.status} {e.reason}")


@contextlib.contextmanager
def kubelet_stand_in(api: client.ApiClient, namespace: str, pki: Pki) -> Iterator[KubeletStandIn]:
    kubelet = KubeletStandIn(api, namespace)
    server = ThreadingHTTPServer(("127.0.0.1", 0), kubelet.handler())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.serving_cert, pki.serving_key)  # its SAN is 127.0.0.1
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threads = [
        threading.Thread(target=server.serve_forever, name="kubelet-endpoint", daemon=True),
        threading.Thread(target=kubelet.run, name="kubelet-stand-in", daemon=True),
    ]
    kubelet.register_node(server.server_port)
    for thread in threads:
        thread.start()
    try:
        yield kubelet
    finally:
        kubelet.stopped.set()
        for event in kubelet.finished.values():
            event.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(timeout=10)
    assert not kubelet.errors, kubelet.errors
