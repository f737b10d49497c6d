"""The kubernetes runner's pods, rendered without a cluster and validated against the Kubernetes schema.

Each step's operator is rendered from a run context (`render_template_fields`) and turned
into the V1Pod it would create (`build_pod_request_obj(dry_run=True)`); the pod goes through
the strict JSON schema of current Kubernetes versions. The exit-code test hands `cleanup()`
the pod status the API server would report: the narrowest boundary, as no cluster runs here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
import tenacity
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from support.servers import free_port
from support.specs import TELCO, spark_pipeline

from shipyard.dag_factory import build_training_dag
from shipyard.drift_dag import build_drift_dag
from shipyard.step_command import STEPS
from shipyard_spec import load_spec
from shipyard_spec.contract import SPEC_SHA256_OPTION, Env, spec_sha256

KUBERNETES_VERSIONS = ("1.36", "1.37")
SETTINGS = {
    "image": "ghcr.io/shipyard/pipeline:0.1.0",
    "namespace": "shipyard",
    "service_account": "shipyard-pipeline",
    "node_selector": {"workload": "batch"},
    "tolerations": [{"key": "batch", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    "gpu_node_selector": {"nvidia.com/gpu.present": "true"},
    "env_from_secrets": ["shipyard-source-credentials"],
    "env_from_config_maps": ["shipyard-pipeline-env"],
}
UNREACHABLE_CLUSTER = {
    "conn_type": "kubernetes",
    "extra": {
        "kube_config": json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    },
}
START, END = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
# The training steps, then the drift DAG's check: one runner machinery for all of them.
POD_STEPS = (*STEPS, "drift")


def render_pods(spec_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> dict[str, dict]:
    """Every step's pod (the drift DAG's check_drift as "drift") as the API server would receive it."""
    monkeypatch.setenv("SHIPYARD_RUNNER", "kubernetes")
    monkeypatch.setenv("AIRFLOW_VAR_SHIPYARD_KUBERNETES", json.dumps({**SETTINGS, **settings}))
    spec = load_spec(spec_path)
    training, drift = build_training_dag(spec, spec_path), build_drift_dag(spec)
    operators = {step: training.get_task(f"pipeline.{step}") for step in STEPS}
    operators["drift"] = drift.get_task("check_drift")
    context = {
        "data_interval_start": START,
        "data_interval_end": END,
        "run_id": "scheduled__2026-03-02T00:00:00+00:00",
        "params": {"window_intervals": 26, "skip_tuning": True, "force_ingest": False},
        "dag_run": SimpleNamespace(run_after=END, consumed_asset_events=[]),
    }
    pods = {}
    for step, operator in operators.items():
        operator.render_template_fields(context)
        pod = ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)
        pods[step] = pod
    return pods


def base_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


@pytest.fixture(scope="module")
def telco_pods() -> dict[str, dict]:
    with pytest.MonkeyPatch.context() as patch:
        return render_pods(TELCO, patch)


@pytest.mark.parametrize("step", POD_STEPS)
def test_every_step_pod_runs_the_step_cli_with_the_run_window(telco_pods: dict[str, dict], step: str) -> None:
    container = base_container(telco_pods[step])
    assert container["image"] == "ghcr.io/shipyard/pipeline:0.1.0"
    assert container["command"] == ["shipyard-step"]
    assert container["args"][:11] == [
        step,
        "--spec-sha256", spec_sha256(TELCO.read_text()),
        "--interval-start", "2026-03-02T00:00:00+00:00",
        "--interval-end", "2026-03-09T00:00:00+00:00",
        "--run-id", "scheduled__2026-03-02T00:00:00+00:00",
        "--storage-root", "${SHIPYARD_STORAGE_ROOT}",
    ]  # fmt: skip
    assert container["args"][11:13] == ["--result-path", "/airflow/xcom/return.json"]


@pytest.mark.parametrize("step", POD_STEPS)
def test_credentials_come_only_from_secret_and_config_map_references(
    telco_pods: dict[str, dict], step: str
) -> None:
    container = base_container(telco_pods[step])
    assert container["envFrom"] == [
        {"secretRef": {"name": "shipyard-source-credentials"}},
        {"configMapRef": {"name": "shipyard-pipeline-env"}},
    ]
    literal = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert not {name for name in literal if "MLFLOW" in name or "PASSWORD" in name or "SECRET" in name}


@pytest.mark.parametrize("step", POD_STEPS)
def test_identity_placement_and_xcom_sidecar(telco_pods: dict[str, dict], step: str) -> None:
    pod = telco_pods[step]
    assert pod["metadata"]["namespace"] == "shipyard"
    assert pod["metadata"]["labels"]["shipyard/step"] == step
    assert pod["spec"]["serviceAccountName"] == "shipyard-pipeline"
    assert pod["spec"]["nodeSelector"] == {"workload": "batch"}
    assert pod["spec"]["tolerations"] == [SETTINGS["tolerations"][0]]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]
    assert {"name": "xcom", "mountPath": "/airflow/xcom"} in base_container(pod)["volumeMounts"]


def test_resources_follow_the_spec_with_train_getting_more(telco_pods: dict[str, dict]) -> None:
    assert base_container(telco_pods["validate"])["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert base_container(telco_pods["train"])["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi"},
    }


def test_train_only_params_reach_only_the_train_pod(telco_pods: dict[str, dict]) -> None:
    assert base_container(telco_pods["train"])["args"][13:] == ["--window-intervals", "26", "--skip-tuning"]
    assert base_container(telco_pods["ingest"])["args"][13:] == []
    assert base_container(telco_pods["drift"])["args"][13:] == []


def test_the_drift_pod_takes_the_spec_resources_of_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = yaml.safe_load(TELCO.read_text())
    spec["resources"] = {"drift": {"cpu": "250m", "memory": "3Gi", "memory_limit": "6Gi"}}
    path = tmp_path / "telco_churn.yaml"
    path.write_text(yaml.safe_dump(spec))
    pods = render_pods(path, monkeypatch)
    assert base_container(pods["drift"])["resources"] == {
        "requests": {"cpu": "250m", "memory": "3Gi"},
        "limits": {"memory": "6Gi"},
    }
    assert pods["drift"]["metadata"]["labels"]["shipyard/pipeline"] == "telco_churn"
    assert base_container(pods["validate"])["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_a_gpu_step_asks_for_gpus_and_lands_on_gpu_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = yaml.safe_load(TELCO.read_text())
    spec["resources"] = {"train": {"cpu": "4", "memory": "8Gi", "memory_limit": "16Gi", "gpu": 1}}
    path = tmp_path / "telco_churn.yaml"
    path.write_text(yaml.safe_dump(spec))
    pods = render_pods(path, monkeypatch)
    train = pods["train"]
    assert base_container(train)["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "1"}
    assert train["spec"]["nodeSelector"] == {"workload": "batch", "nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in train["spec"][
        "tolerations"
    ]
    assert "nvidia.com/gpu" not in base_container(pods["evaluate"])["resources"]["limits"]


def test_the_chart_pod_template_supplies_what_the_settings_leave_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trimmed copy of the chart's step.yaml (templates/pipeline-pod-templates-configmap.yaml).
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app.kubernetes.io/component": "pipeline-step"}},
        "spec": {
            "serviceAccountName": "shipyard-pipeline",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "base",
                    "image": "registry.example/shipyard-pipeline:1.2.3",
                    "env": [{"name": "SHIPYARD_STORAGE_ROOT", "value": "s3://bucket/shipyard"}],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    (tmp_path / "step.yaml").write_text(yaml.safe_dump(template))
    pods = render_pods(
        TELCO, monkeypatch, image=None, service_account=None, node_selector={}, pod_template_dir=str(tmp_path)
    )
    pod = pods["register"]
    container = base_container(pod)
    assert container["image"] == "registry.example/shipyard-pipeline:1.2.3"
    assert container["args"][0] == "register"
    assert pod["spec"]["serviceAccountName"] == "shipyard-pipeline"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "pipeline-step"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # The template's environment and the spec the operator hands over, side by side.
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "SHIPYARD_STORAGE_ROOT": "s3://bucket/shipyard",
        "SHIPYARD_SPEC_YAML": TELCO.read_text(),
    }


SPARK_SETTINGS = {
    "spark_image": "ghcr.io/shipyard/pipeline:0.1.0-spark",
    "spark_service_account": "shipyard-spark-driver",
}
# The driver's own facts, from the downward API: what Spark's client mode needs to be reached by its
# executors (the pod IP) and to own them (the pod's name), and where to create them.
DOWNWARD_API = {
    Env.SPARK_NAMESPACE: "metadata.namespace",
    Env.SPARK_DRIVER_POD_NAME: "metadata.name",
    Env.SPARK_DRIVER_HOST: "status.podIP",
}


@pytest.mark.parametrize("step", POD_STEPS)
def test_every_step_pod_of_a_spark_pipeline_is_a_spark_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    pod = render_pods(spark_pipeline(tmp_path), monkeypatch, **SPARK_SETTINGS)[step]
    container = base_container(pod)
    assert container["image"] == "ghcr.io/shipyard/pipeline:0.1.0-spark"
    assert pod["spec"]["serviceAccountName"] == "shipyard-spark-driver"
    assert pod["spec"]["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env[Env.SPARK_MASTER]["value"] == "k8s://https://kubernetes.default.svc"
    for name, path in DOWNWARD_API.items():
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": path}}
    assert Env.SPEC_YAML in env  # and the handed-over spec beside them


@pytest.mark.parametrize("step", POD_STEPS)
def test_a_pandas_step_pod_has_nothing_of_spark(telco_pods: dict[str, dict], step: str) -> None:
    pod = telco_pods[step]
    assert base_container(pod)["image"] == "ghcr.io/shipyard/pipeline:0.1.0"
    assert pod["spec"]["serviceAccountName"] == "shipyard-pipeline"
    assert "automountServiceAccountToken" not in pod["spec"]
    assert not [e for e in base_container(pod)["env"] if e["name"].startswith("SHIPYARD_SPARK_")]


def test_a_spark_step_pod_takes_the_charts_spark_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine picks the template (`spark-step.yaml`, `spark-gpu-step.yaml`); the settings leave it be."""
    for name, image in (("step.yaml", "pipeline:1"), ("spark-step.yaml", "pipeline:1-spark")):
        container = {
            "name": "base",
            "image": image,
            "env": [{"name": str(Env.SPARK_EXECUTOR_INSTANCES), "value": "4"}],
        }
        (tmp_path / name).write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [container]}})
        )
    settings = {
        "image": None,
        "service_account": None,
        "node_selector": {},
        "pod_template_dir": str(tmp_path),
    }
    spark = render_pods(spark_pipeline(tmp_path), monkeypatch, **settings)
    assert {base_container(pod)["image"] for pod in spark.values()} == {"pipeline:1-spark"}
    env = {e["name"] for e in base_container(spark["train"])["env"]}
    assert {Env.SPARK_EXECUTOR_INSTANCES, Env.SPARK_DRIVER_HOST, Env.SPEC_YAML} <= env
    pandas = render_pods(TELCO, monkeypatch, **settings)
    assert {base_container(pod)["image"] for pod in pandas.values()} == {"pipeline:1"}


def test_a_spark_pipeline_without_the_charts_spark_template_fails_for_good_saying_which_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart installed without spark.enabled: the task fails once with the fix, not with a parse error."""
    (tmp_path / "step.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {}}))
    with pytest.raises(AirflowFailException, match=r"spark-step\.yaml does not exist.*spark\.enabled=true"):
        render_pods(spark_pipeline(tmp_path), monkeypatch, pod_template_dir=str(tmp_path))


@pytest.mark.parametrize("step", POD_STEPS)
def test_every_step_pod_gets_the_spec_the_dag_parsed_and_no_copy_to_read(
    telco_pods: dict[str, dict], step: str
) -> None:
    """Issue 13: the pod runs the DAG's spec, whatever ConfigMap a cluster may still carry."""
    pod = telco_pods[step]
    container = base_container(pod)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[Env.SPEC_YAML] == TELCO.read_text()
    args = container["args"]
    assert args[args.index(SPEC_SHA256_OPTION) + 1] == spec_sha256(env[Env.SPEC_YAML])
    assert "--spec" not in container["args"]
    assert not [v for v in pod["spec"].get("volumes") or [] if "configMap" in v]


def test_the_handed_over_spec_is_data_not_a_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec whose SQL holds Jinja-like braces reaches the pod byte for byte."""
    text = TELCO.read_text().replace("name: telco_churn", "name: braces", 1)
    text += "# {{ ds }} and {% raw %} stay as written\n"
    spec_path = tmp_path / "braces.yaml"
    spec_path.write_text(text)
    container = base_container(render_pods(spec_path, monkeypatch)["ingest"])
    assert {e["name"]: e.get("value") for e in container["env"]}[Env.SPEC_YAML] == text


def terminated_pod(exit_code: int) -> k8s.V1Pod:
    """The status the API server reports for a step pod whose base container exited."""
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="telco-churn-validate-x1", namespace="shipyard"),
        status=k8s.V1PodStatus(
            phase="Failed",
            container_statuses=[
                k8s.V1ContainerStatus(
                    name="base",
                    image="pipeline",
                    image_id="",
                    ready=False,
                    restart_count=0,
                    state=k8s.V1ContainerState(
                        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code)
                    ),
                )
            ],
        ),
    )


@pytest.fixture
def one_api_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider retries a pod read 5 times with exponential waits (~15 s); once is enough here."""
    from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

    monkeypatch.setattr(PodManager.read_pod.retry, "stop", tenacity.stop_after_attempt(1))


@pytest.mark.usefixtures("one_api_attempt")
@pytest.mark.parametrize(("exit_code", "no_retry"), [(3, True), (1, False), (137, False)])
def test_a_failed_check_fails_for_good_and_other_failures_are_retried(
    monkeypatch: pytest.MonkeyPatch, exit_code: int, no_retry: bool
) -> None:
    monkeypatch.setenv("SHIPYARD_RUNNER", "kubernetes")
    monkeypatch.setenv("AIRFLOW_VAR_SHIPYARD_KUBERNETES", json.dumps(SETTINGS))
    # A kube config whose API server refuses connections: cleanup's best-effort calls (patch the
    # pod's labels, read events) fail fast and are logged, as the provider intends.
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(UNREACHABLE_CLUSTER))
    operator = build_training_dag(load_spec(TELCO), TELCO).get_task("pipeline.validate")
    operator.do_xcom_push = False  # nothing to push: the sidecar of a fabricated pod has no file
    pod = terminated_pod(exit_code)
    with pytest.raises(AirflowException) as raised:
        operator.cleanup(pod=pod, remote_pod=pod)
    assert isinstance(raised.value, AirflowFailException) is no_retry
    if no_retry:
        assert "validate: a check failed, not retrying (exit 3)" in str(raised.value)
