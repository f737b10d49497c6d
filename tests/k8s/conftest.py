"""One real Kubernetes API server (etcd + kube-apiserver) for the whole session, with the KServe CRDs.

`make test-k8s` builds the binaries (`make envtest-bin`) and sets SHIPYARD_ENVTEST_DIR.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from control_plane import control_plane, envtest_dir
from envtest import (
    CHART,
    CONN_ID,
    MONITORING_KINDS,
    PROBE_AGENT,
    RELEASE,
    VALUE_SETS,
    Kube,
    external_service_accounts,
    monitoring_crd,
    readme_namespace_commands,
    values_args,
    values_of,
)
from kserve_status_writer import StatusWriter, kserve_status_writer
from kubelet import KubeletStandIn, kubelet_stand_in
from support.servers import REPO

sys.path.insert(0, str(REPO / "plugins"))  # what Airflow does with plugins_folder

_started: dict[str, float] = {}
_calls: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A real API server for the session, KServe's CRDs applied server-side (too large for client-side)."""
    binaries = envtest_dir()
    workdir = tmp_path_factory.mktemp("envtest")
    with control_plane(binaries, workdir) as plane:
        _started["control plane ready"] = plane.startup_seconds
        kube = Kube(plane, workdir)
        started = time.monotonic()
        crds = sorted((binaries / "kserve-crds").glob("*.yaml"))
        kube.apply("\n---\n".join(path.read_text() for path in crds))
        kube.apply([monitoring_crd(kind) for kind in MONITORING_KINDS])
        names = [
            doc["metadata"]["name"]
            for path in crds
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        kube.wait_established([*names, *(f"{k.lower()}s.monitoring.coreos.com" for k in MONITORING_KINDS)])
        _started["CRDs applied and established"] = time.monotonic() - started
        yield kube
        _calls.extend(plane.audit_events())


@pytest.fixture(scope="session")
def kserve_status(kube: Kube) -> Iterator[StatusWriter]:
    """EMULATED KServe controller status writes for every InferenceService (see kserve_status_writer)."""
    with kserve_status_writer(kube.api) as writer:
        yield writer


@pytest.fixture(scope="session")
def installed(kube: Kube) -> dict[str, str]:
    """`helm install` of each value set into its own namespace, prepared with the README's commands."""
    namespaces = {}
    for name, path in VALUE_SETS.items():
        namespace = f"shipyard-{name}"
        for command in readme_namespace_commands():
            assert command[0] == "kubectl", command
            kube.kubectl(*[namespace if arg == "shipyard" else arg for arg in command[1:]])
        # EMULATED: the namespace's `default` ServiceAccount (kube-controller-manager creates it).
        kube.create_service_accounts(namespace, "default", *external_service_accounts(values_of(path)))
        kube.helm("install", RELEASE, str(CHART), "--namespace", namespace, *values_args(name))
        namespaces[name] = namespace
    return namespaces


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the control plane took to start, and the API calls each ServiceAccount made."""
    if not _started:
        return
    terminalreporter.section("kube-apiserver (envtest)")
    for what, seconds in _started.items():
        terminalreporter.write_line(f"{what}: {seconds:.1f} s")
    per_user: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for event in _calls:
        refused = event.get("responseStatus", {}).get("code") == 403
        probe = event.get("userAgent") == PROBE_AGENT
        per_user[event["user"]["username"]][
            ("probe " if probe else "") + ("403" if refused else "allowed")
        ] += 1
    for user, counts in sorted(per_user.items()):
        terminalreporter.write_line(
            f"{user}: {counts['allowed'] + counts['403']} API calls of Shipyard's code, {counts['allowed']} "
            f"allowed by the chart's RBAC, {counts['403']} refused; {counts['probe 403']} forbidden-call "
            f"probes answered 403, {counts['probe allowed']} were allowed"
        )


@pytest.fixture(scope="session")
def worker_connection(kube: Kube, installed: dict) -> Iterator[str]:
    """An Airflow connection of the chart's airflow-worker ServiceAccount (a real bound token)."""
    namespace = installed["default"]
    kubeconfig = kube.service_account_kubeconfig(namespace, f"{RELEASE}-airflow-worker")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}",
            json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(kubeconfig)}}),
        )
        yield namespace


@pytest.fixture(scope="session")
def kubelet(kube: Kube, installed: dict) -> Iterator[KubeletStandIn]:
    """EMULATED scheduler binding, kubelet status and logs for the default install's pods (kubelet.py)."""
    with kubelet_stand_in(kube.api, installed["default"], kube.plane.pki) as stand_in:
        yield stand_in
