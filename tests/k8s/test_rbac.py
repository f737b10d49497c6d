"""The chart's RBAC, proven by the real API server with real ServiceAccount tokens.

As the chart's airflow-worker ServiceAccount, Shipyard's own code paths run (the KServe backend
in both modes, every step of a canary) and the API server's audit log records each call they
make. The test then checks that every recorded call was allowed and that the Role grants no
InferenceService verb the code never uses. A list of calls the identities must never be able to
make answers 403. The pipeline ServiceAccount (step pods) may call nothing at all.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from backend_support import NEVER_READY, V1, V2, new_backend, run_canary
from envtest import PROBE_AGENT, RELEASE, Kube, forbidden
from kubelet import KubeletStandIn
from kubernetes import client
from step_runs import run_step, write_pod_templates

from shipyard.rollout.analysis import Sample
from shipyard.rollout.backends.kserve import GROUP, PLURAL, VERSION

CODE_PATH_AGENT = "shipyard-code-path"  # user agent of the recorded code paths, as the audit log shows it
WORKER, PIPELINE = f"{RELEASE}-airflow-worker", f"{RELEASE}-pipeline"
BEST_EFFORT_EVENTS = ("", "events", "list")
NEEDS_A_KUBELET = {("", "pods/exec", "create")}


def user(namespace: str, account: str) -> str:
    return f"system:serviceaccount:{namespace}:{account}"


def call_key(event: dict[str, Any]) -> tuple[str, str, str]:
    ref = event.get("objectRef", {})
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, event["verb"]


@pytest.fixture(scope="module")
def worker_calls(
    kube: Kube, worker_connection: str, kserve_status: Any, kubelet: KubeletStandIn, tmp_path_factory: Any
) -> list[dict[str, Any]]:
    """Every API call Shipyard's code makes as the worker: the KServe backend over promotions,
    rollbacks and a never-ready canary in both modes, and a step task that succeeds, fails a
    check, and fails then succeeds on retry."""
    before = len(kube.plane.audit_events())
    for mode in ("knative", "standard"):
        for index, (canary, sample) in enumerate(
            [(V2, Sample(100, 0, 20.0)), (V2, Sample(100, 50, 20.0)), (NEVER_READY, Sample(100, 0, 20.0))]
        ):
            backend = new_backend(worker_connection, mode, f"rbac-{mode}-{index}")
            backend.client.api_client.user_agent = CODE_PATH_AGENT
            backend.deploy_canary(V1, canary)
            run_canary(backend, sample)
            backend.targets()
    templates = write_pod_templates(kube, worker_connection, tmp_path_factory.mktemp("pod-templates"))
    for exit_code, try_number, run_id in (
        (0, 1, "rbac_ok"),
        (3, 1, "rbac_check"),
        (1, 1, "rbac_retry"),
        (0, 2, "rbac_retry"),
    ):
        kubelet.exit_code = exit_code
        with contextlib.suppress(AirflowException):  # the failed tries; their outcome is tested elsewhere
            run_step(worker_connection, templates, try_number, run_id, user_agent=CODE_PATH_AGENT)
    return [e for e in kube.plane.audit_events()[before:] if e.get("userAgent") == CODE_PATH_AGENT]


def granted(kube: Kube, namespace: str, role: str) -> set[tuple[str, str, str]]:
    rules = client.RbacAuthorizationV1Api(kube.api).read_namespaced_role(role, namespace).rules
    return {(g, r, v) for rule in rules for g in rule.api_groups for r in rule.resources for v in rule.verbs}


def test_every_call_the_code_makes_is_allowed_by_the_chart_role(
    kube: Kube, worker_connection: str, worker_calls: list[dict[str, Any]]
) -> None:
    namespace = worker_connection
    assert {e["user"]["username"] for e in worker_calls} == {user(namespace, WORKER)}
    refused = {call_key(e) for e in worker_calls if e["responseStatus"]["code"] == 403}
    # The operator's best-effort copy of pod events into the task log: it logs a warning and goes
    # on; granted only with airflowWorker.rbac.podEvents (README).
    assert refused == {BEST_EFFORT_EVENTS}
    used = {call_key(e) for e in worker_calls} - refused
    assert used <= granted(kube, namespace, WORKER)


def test_the_role_grants_nothing_the_code_does_not_use(
    kube: Kube, worker_connection: str, worker_calls: list[dict[str, Any]]
) -> None:
    used = {call_key(e) for e in worker_calls}
    unused = granted(kube, worker_connection, WORKER) - used
    # The XCom sidecar's exec: the kubelet stand-in does not speak the streaming protocols.
    assert unused == NEEDS_A_KUBELET
    counts = collections.Counter(
        f"{resource} {verb}" for _, resource, verb in (call_key(e) for e in worker_calls)
    )
    print(f"{user(worker_connection, WORKER)}: {sum(counts.values())} calls: {dict(sorted(counts.items()))}")


def probes(namespace: str, other: str) -> dict[str, Callable[[client.ApiClient], Any]]:
    """Calls the airflow-worker identity must never make (each would be a privilege it does not need)."""
    isvc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": "x"}}
    return {
        "list secrets": lambda api: client.CoreV1Api(api).list_namespaced_secret(namespace),
        "read a secret": lambda api: client.CoreV1Api(api).read_namespaced_secret(
            "shipyard-warehouse", namespace
        ),
        "pods of another namespace": lambda api: client.CoreV1Api(api).list_namespaced_pod(other),
        "an InferenceService in another namespace": lambda api: client.CustomObjectsApi(
            api
        ).create_namespaced_custom_object(GROUP, VERSION, other, PLURAL, isvc),
        "delete an InferenceService": lambda api: client.CustomObjectsApi(
            api
        ).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "telco-churn"),
        "replace an InferenceService's status": lambda api: client.CustomObjectsApi(
            api
        ).patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "telco-churn", {}),
        "create a namespace (cluster-scoped write)": lambda api: client.CoreV1Api(api).create_namespace(
            {"metadata": {"name": "escape"}}
        ),
        "bind itself a ClusterRole": lambda api: client.RbacAuthorizationV1Api(
            api
        ).create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "escalate"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "ServiceAccount", "name": WORKER, "namespace": namespace}],
            },
        ),
        "edit its own Role": lambda api: client.RbacAuthorizationV1Api(api).patch_namespaced_role(
            WORKER, namespace, {"rules": []}
        ),
        "a token of the pipeline identity": lambda api: client.CoreV1Api(
            api
        ).create_namespaced_service_account_token(PIPELINE, namespace, {"spec": {"audiences": []}}),
        "change the chart's ConfigMaps": lambda api: client.CoreV1Api(api).patch_namespaced_config_map(
            f"{RELEASE}-pod-templates", namespace, {"data": {}}
        ),
        "ServingRuntimes": lambda api: client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, "v1alpha1", namespace, "servingruntimes"
        ),
    }


PROBES = list(probes("", ""))


@pytest.mark.parametrize("probe", PROBES)
def test_calls_the_worker_must_not_make_answer_403(
    kube: Kube, installed: dict, worker_connection: str, probe: str
) -> None:
    api = kube.service_account_client(worker_connection, WORKER)
    api.user_agent = PROBE_AGENT
    forbidden(lambda: probes(worker_connection, installed["knative"])[probe](api))


def test_the_step_pods_identity_may_call_nothing(kube: Kube, installed: dict) -> None:
    """The pipeline ServiceAccount gets no token mounted; even with one it may read or write nothing."""
    namespace = installed["default"]
    api = kube.service_account_client(namespace, PIPELINE)
    api.user_agent = PROBE_AGENT
    forbidden(lambda: client.CoreV1Api(api).list_namespaced_pod(namespace))
    forbidden(lambda: client.CoreV1Api(api).read_namespaced_config_map(f"{RELEASE}-pod-templates", namespace))
    forbidden(
        lambda: client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    )
