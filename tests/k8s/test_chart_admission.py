"""The chart installed by the real helm into the real API server: every object admitted.

For the default values and each `charts/shipyard/ci/*.yaml`: `helm install` (server-side apply,
helm v4's default) into a namespace set up with the README's own commands, then `helm upgrade
--dry-run=server` of a new render (the API server runs admission on every object and stores
nothing). Pods built from the chart's templates are then created as a cluster would receive them
(nothing runs them: no kubelet here), so Pod Security, ServiceAccount and RuntimeClass
admission judge them for real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from charts.helm_template_generator import CHART, render_chart
from envtest import CONN_ID, README, RELEASE, VALUE_SETS, Kube, values_args, values_of
from kubernetes import client
from kubernetes.client.exceptions import ApiException

RESTRICTED = "shipyard-restricted"
SIDECAR = "airflow-xcom-sidecar"
START, END = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
OPERATOR_CONTEXT = {
    "data_interval_start": START,
    "data_interval_end": END,
    "run_id": "scheduled__2026-03-02T00:00:00+00:00",
    "params": {"window_intervals": 26, "skip_tuning": True, "force_ingest": False},
    "dag_run": SimpleNamespace(run_after=END),
}
NVIDIA = "nvidia"  # the RuntimeClass the GPU values name; the GPU operator creates it on a real cluster


def fullname(values: str) -> str:
    return values_of(VALUE_SETS[values]).get("fullnameOverride") or RELEASE


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_object_of_the_chart_is_admitted_and_stored(kube: Kube, installed: dict, values: str) -> None:
    namespace = installed[values]
    path = VALUE_SETS[values]
    rendered = render_chart(values_files=[path] if path else None, namespace=namespace, validate=False)
    assert rendered
    for obj in rendered:
        if "helm.sh/hook" in obj["metadata"].get("annotations", {}):
            continue  # `helm test` pods are created by `helm test`, not by the install
        got = kube.kubectl(
            "get",
            obj["kind"],
            obj["metadata"]["name"],
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
        )
        stored = json.loads(got.stdout)
        assert stored["metadata"].get("labels") == obj["metadata"].get("labels"), obj["kind"]
        managers = {m["manager"] for m in stored["metadata"]["managedFields"]}
        assert "helm" in managers, f"{obj['kind']} {obj['metadata']['name']} not written by helm: {managers}"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_an_upgrade_render_is_admitted_by_a_server_side_dry_run(
    kube: Kube, installed: dict, values: str
) -> None:
    namespace = installed[values]
    result = kube.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", namespace, *values_args(values),
        "--set", "images.pipeline.tag=0.2.0", "--set", "images.serving.tag=0.2.0", "--dry-run=server",
    )  # fmt: skip
    assert "pipeline:0.2.0" in result.stdout  # the new render went to the API server ...
    templates = client.CoreV1Api(kube.api).read_namespaced_config_map(
        f"{fullname(values)}-pod-templates", namespace
    )
    assert ":0.2.0" not in templates.data["step.yaml"]  # ... which stored nothing


def test_the_namespaces_carry_the_pod_security_levels_the_readme_promises(
    kube: Kube, installed: dict
) -> None:
    labels = client.CoreV1Api(kube.api).read_namespace(installed["default"]).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


# --- pods built from the chart's templates -------------------------------------------------------


@pytest.fixture(scope="module")
def restricted_namespace(kube: Kube, installed: dict) -> str:
    """A namespace enforcing `restricted`, with the ServiceAccounts the chart's pods name."""
    kube.create_namespace(RESTRICTED, {"pod-security.kubernetes.io/enforce": "restricted"})
    kube.create_service_accounts(RESTRICTED, "shipyard-pipeline", "shipyard-mlflow")
    client.NodeV1Api(kube.api).create_runtime_class(
        client.V1RuntimeClass(metadata=client.V1ObjectMeta(name=NVIDIA), handler=NVIDIA)
    )
    return RESTRICTED


def pod_templates(kube: Kube, namespace: str, values: str) -> dict[str, dict[str, Any]]:
    """step.yaml (and gpu-step.yaml) as installed: the KubernetesPodOperator's pod_template_file."""
    data = (
        client.CoreV1Api(kube.api)
        .read_namespaced_config_map(f"{fullname(values)}-pod-templates", namespace)
        .data
    )
    return {name: yaml.safe_load(text) for name, text in data.items()}


def create_pod(kube: Kube, namespace: str, pod: dict[str, Any], name: str) -> dict[str, Any]:
    """Create the pod (a server-side dry run: admission runs in full, nothing is stored)."""
    body = {**pod, "metadata": {**pod.get("metadata", {}), "name": name, "namespace": namespace}}
    return client.CoreV1Api(kube.api).create_namespaced_pod(namespace, body, dry_run="All").to_dict()


@pytest.mark.parametrize("template", ["step.yaml", "gpu-step.yaml"])
def test_step_pod_templates_pass_the_restricted_standard(
    kube: Kube, installed: dict, restricted_namespace: str, template: str
) -> None:
    pod = pod_templates(kube, installed["gpu-training"], "gpu-training")[template]
    created = create_pod(kube, restricted_namespace, pod, "step")
    volumes = {v["name"] for v in created["spec"]["volumes"]}
    assert not any(v.startswith("kube-api-access") for v in volumes)  # "No Kubernetes API token"
    if template == "gpu-step.yaml":
        assert created["spec"]["runtime_class_name"] == NVIDIA


def test_chart_pods_of_other_templates_pass_the_restricted_standard(
    kube: Kube, restricted_namespace: str
) -> None:
    files = [VALUE_SETS["mlflow"], VALUE_SETS["knative"]]
    objects = render_chart(values_files=files, namespace=restricted_namespace, validate=False)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    test_pod = next(o for o in objects if o["kind"] == "Pod")
    create_pod(kube, restricted_namespace, deployment["spec"]["template"], "mlflow")
    create_pod(kube, restricted_namespace, test_pod, "helm-test")


def operator_pod(
    namespace: str, template_dir: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The pod the DAG's PodStepOperator submits with the chart's pod templates (XCom sidecar included)."""
    from kubernetes.client import ApiClient

    from shipyard.dag_factory import build_training_dag
    from shipyard_spec import load_spec

    spec_path = Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "telco_churn.yaml"
    monkeypatch.setenv("SHIPYARD_RUNNER", "kubernetes")
    monkeypatch.setenv("SHIPYARD_POD_TEMPLATE_DIR", str(template_dir))
    settings = {"namespace": namespace, "kubernetes_conn_id": CONN_ID}
    monkeypatch.setenv("AIRFLOW_VAR_SHIPYARD_KUBERNETES", json.dumps(settings))
    operator = build_training_dag(load_spec(spec_path), spec_path).get_task(f"pipeline.{step}")
    operator.render_template_fields(OPERATOR_CONTEXT)
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj())


@pytest.fixture
def step_pod(
    kube: Kube, installed: dict, worker_connection: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The train step's pod as the operator builds it from the installed pod templates."""
    for name, template in pod_templates(kube, installed["default"], "default").items():
        (tmp_path / name).write_text(yaml.safe_dump(template))
    return operator_pod(installed["default"], tmp_path, "train", monkeypatch)


def test_the_operators_step_pod_is_admitted_under_baseline_and_warned_about_its_xcom_sidecar(
    kube: Kube, installed: dict, step_pod: dict
) -> None:
    namespace = installed["default"]
    _, status, headers = client.CoreV1Api(kube.api).create_namespaced_pod_with_http_info(
        namespace, step_pod, dry_run="All"
    )
    assert status == 201
    warning = headers.get("Warning", "").replace('\\"', '"')  # a quoted-string header value
    assert 'would violate PodSecurity "restricted:latest"' in warning
    assert f'container "{SIDECAR}"' in warning
    assert 'container "base"' not in warning  # the step container itself is restricted


def test_under_restricted_the_xcom_sidecar_is_what_is_rejected_as_the_readme_explains(
    kube: Kube, restricted_namespace: str, step_pod: dict
) -> None:
    with pytest.raises(ApiException) as rejected:
        create_pod(kube, restricted_namespace, step_pod, "train")
    assert rejected.value.status == 403
    message = json.loads(rejected.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert f'container "{SIDECAR}"' in message
    assert 'container "base"' not in message
    assert "XCom sidecar does not set a container security context" in README.read_text()
