"""The Spark engine on Kubernetes against the real API server: a real SparkSession in client mode,
as a Spark step pod would start it, creates its executor pods as the chart's ServiceAccount.

The driver is `spark_engine.session()` in the pipeline virtualenv (pyspark 4.3 with its
Kubernetes backend and fabric8 client), its environment the one the DAG's operator and the chart's
`spark-step.yaml` give the step pod (contract.Env), resolved as the kubelet would resolve it.
The executor pods are the API server's to admit and Spark's to delete; the audit log shows every
call the driver made and checks the chart's Role against them.

EMULATED, as everywhere in tests/k8s: what the kubelet does for the driver pod (its IP in the
status, its downward-API environment, the mounted executor template and ServiceAccount token), and
the in-cluster address of the API server (`kubernetes.default.svc` is 127.0.0.1:<port> here). No
executor starts: there is no kubelet or container runtime, so the session's bounded wait for its
first executor ends the step with StepError, and stopping it must delete the pods Spark created.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import os
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from envtest import RELEASE, Kube
from kubernetes import client
from step_runs import END, START, write_pod_templates
from support.servers import REPO, s3_server, venv_python
from support.specs import spark_pipeline
from test_rbac import call_key, granted, user

from shipyard.dag_factory import build_training_dag
from shipyard_spec import load_spec
from shipyard_spec.contract import Env

LAUNCHER = REPO / "images/pipeline/spark-executor.sh"
LAUNCHER_READS = re.findall(r'"\$(SPARK_[A-Z_]+)"', LAUNCHER.read_text())
DRIVER_SA, EXECUTOR_SA = f"{RELEASE}-spark-driver", f"{RELEASE}-pipeline"
SPARK_VALUES = yaml.safe_load((REPO / "charts/shipyard/ci/spark-values.yaml").read_text())["spark"]
# The session's wait for its first executor here, where none can start (the chart's default: 600 s).
START_TIMEOUT = 20
# A job only executors can run (the driver runs no task in client mode), Python workers included.
JOB = textwrap.dedent(
    """
    from shipyard_pipeline.spark_engine import session
    with session("shipyard-train") as spark:
        rows = spark.range(1000, numPartitions=4)
        doubled = rows.mapInPandas(lambda batches: (batch * 2 for batch in batches), "id long")
        print("sum", doubled.groupBy().sum("id").collect()[0][0])
    """
)
# This pipeline's own executor settings (spec `spark.executors`): they win over the chart's field by
# field (its instances stay the chart's).
SPEC_EXECUTORS = {"cores": 1, "memory": "1g"}
# The step's session, from the pipeline's spec as the step process reads it.
DRIVER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from shipyard_pipeline import engines
    from shipyard_pipeline.context import RunContext
    from shipyard_spec import load_spec
    from shipyard_spec.contract import Step
    week = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
    run = RunContext(load_spec(sys.argv[1]), *week, "spark_on_kubernetes", sys.argv[2])
    with engines.engine(run, Step.TRAIN).session("shipyard-train"):
        pass
    """
)


@pytest.fixture(scope="module")
def namespace(installed: dict) -> str:
    return installed["spark"]


def operator_pod(namespace: str, templates: Path, spec: Path) -> client.V1Pod:
    """The train step's pod as the DAG's PodStepOperator builds it from the chart's templates."""
    settings = {"namespace": namespace}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_RUNNER", "kubernetes")
        patch.setenv("SHIPYARD_POD_TEMPLATE_DIR", str(templates))
        patch.setenv("AIRFLOW_VAR_SHIPYARD_KUBERNETES", json.dumps(settings))
        dag = build_training_dag(load_spec(spec), spec)
    operator = dag.get_task("pipeline.train")
    operator.render_template_fields(
        {
            "data_interval_start": START,
            "data_interval_end": END,
            "run_id": "spark_on_kubernetes",
            "params": {"window_intervals": 26, "skip_tuning": True, "force_ingest": False},
            "dag_run": SimpleNamespace(run_after=END, run_id="spark_on_kubernetes"),
        }
    )
    return operator.build_pod_request_obj(dry_run=True)


def running_driver(kube: Kube, pod: client.V1Pod, namespace: str) -> client.V1Pod:
    """The driver pod in the API server. EMULATED kubelet: the pod is Running and Ready on 127.0.0.1
    (Spark waits for its driver pod to be Ready before it creates executors)."""
    core = client.CoreV1Api(kube.api)
    created = core.create_namespaced_pod(namespace, pod)
    status = {
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    core.patch_namespaced_pod_status(created.metadata.name, namespace, status)
    return core.read_namespaced_pod(created.metadata.name, namespace)


def field(pod: client.V1Pod, path: str) -> str:
    value: Any = client.ApiClient().sanitize_for_serialization(pod)
    for part in path.split("."):
        value = value[part]
    return value


def container_env(container: client.V1Container, pod: client.V1Pod, core: client.CoreV1Api) -> dict[str, str]:
    """Literal values, the downward API's from the pod as the API server stores it, and Secrets' keys."""

    def value(e: client.V1EnvVar) -> str:
        if e.value_from is None:
            return e.value
        if ref := e.value_from.secret_key_ref:
            data = core.read_namespaced_secret(ref.name, pod.metadata.namespace).data
            return base64.b64decode(data[ref.key]).decode()
        return field(pod, e.value_from.field_ref.field_path)

    return {e.name: value(e) for e in container.env}


def driver_environment(kube: Kube, driver: client.V1Pod, account: str, workdir: Path) -> dict[str, str]:
    """The driver container's environment as the kubelet would give it: literal values and the
    downward API from the API server's pod. EMULATED: the volumes (the executor template's ConfigMap,
    the ServiceAccount's token and CA) are files in `workdir`, and the API server's in-cluster
    address is its loopback one, both passed by the contract's names."""
    [container] = [c for c in driver.spec.containers if c.name == "base"]
    env = container_env(container, driver, client.CoreV1Api(kube.api))
    executor_template = client.CoreV1Api(kube.api).read_namespaced_config_map(
        f"{RELEASE}-spark-executor", driver.metadata.namespace
    )
    assert env[Env.SPARK_EXECUTOR_POD_TEMPLATE] == "/opt/shipyard/spark/executor.yaml"
    (workdir / "executor.yaml").write_text(executor_template.data["executor.yaml"])
    (workdir / "token").write_text(kube.service_account_token(driver.metadata.namespace, account))
    return env | {
        Env.SPARK_EXECUTOR_POD_TEMPLATE: str(workdir / "executor.yaml"),
        Env.SPARK_MASTER: f"k8s://{kube.plane.server}",
        Env.SPARK_API_TOKEN_FILE: str(workdir / "token"),
        Env.SPARK_API_CA_FILE: str(kube.plane.pki.ca),
        Env.SPARK_EXECUTOR_START_TIMEOUT: str(START_TIMEOUT),
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "KUBECONFIG": str(workdir / "none"),  # nothing of this machine's: only the pod's token
    }


def executor_pods(kube: Kube, namespace: str) -> list[client.V1Pod]:
    return (
        client.CoreV1Api(kube.api).list_namespaced_pod(namespace, label_selector="spark-role=executor").items
    )


def run_driver(
    env: dict[str, str],
    kube: Kube,
    namespace: str,
    log: Path,
    program: list[str],
    runtime: ContainerRuntime | None = None,
) -> tuple[subprocess.CompletedProcess, dict[str, client.V1Pod]]:
    """Run the session (`program`: Python's arguments) to its end (its output in `log`); the executor
    pods seen while it ran, by name. With a `runtime`, each executor pod starts in it as it appears."""
    seen: dict[str, client.V1Pod] = {}
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(
            [venv_python("pipeline"), *program], env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            while process.poll() is None:
                new = {
                    pod.metadata.name: pod
                    for pod in executor_pods(kube, namespace)
                    if pod.metadata.name not in seen
                }
                seen |= new
                for pod in new.values() if runtime else ():
                    runtime.start(pod)
                if time.monotonic() - started > START_TIMEOUT + 180:
                    # The JVM writes a thread dump to the log on SIGQUIT: where it hung.
                    subprocess.run(["pkill", "-QUIT", "-P", str(process.pid)], check=False)
                    time.sleep(2)
                    raise AssertionError(f"the driver did not end: {log}")
                time.sleep(0.5)
        finally:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, log.read_text()), seen


class ContainerRuntime:
    """EMULATED kubelet and container runtime for executor pods: a pod is Running on 127.0.0.1, its
    container's command (the Spark image's launcher, `images/pipeline/spark-executor.sh`) a process
    of the pipeline virtualenv with the pod's environment as the kubelet resolves it and a temporary
    directory for its emptyDir local dirs."""

    def __init__(self, kube: Kube, workdir: Path) -> None:
        self.core = client.CoreV1Api(kube.api)
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, pod: client.V1Pod) -> None:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        status = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}
        self.core.patch_namespaced_pod_status(name, namespace, status)
        pod = self.core.read_namespaced_pod(name, namespace)
        [container] = pod.spec.containers
        assert container.command == ["shipyard-spark-executor"]
        local = self.workdir / name
        local.mkdir()
        env = container_env(container, pod, self.core) | {
            "PATH": f"{Path(venv_python('pipeline')).parent}:{os.environ['PATH']}",
            "HOME": str(local),
            "SPARK_LOCAL_DIRS": str(local),
            "TMPDIR": str(local),  # the pod's own /tmp
        }
        with (self.workdir / f"{name}.log").open("w") as log:
            self.processes.append(
                subprocess.Popen(
                    [str(LAUNCHER), *container.args], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def run_with_executors(
    env: dict[str, str], kube: Kube, namespace: str, workdir: Path, program: str
) -> tuple[subprocess.CompletedProcess, dict[str, client.V1Pod]]:
    """`run_driver` with each executor pod started as it appears (the EMULATED runtime), all stopped after."""
    runtime = ContainerRuntime(kube, workdir)
    try:
        return run_driver(env, kube, namespace, workdir / "driver.log", ["-c", program], runtime)
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def spark_run(
    kube: Kube, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One Spark session as the chart's driver ServiceAccount, from the operator's pod of a Spark step."""
    workdir = tmp_path_factory.mktemp("spark-driver")
    templates = write_pod_templates(kube, namespace, workdir / "pod-templates")
    spec = spark_pipeline(workdir, SPEC_EXECUTORS)
    pod = operator_pod(namespace, templates, spec)
    driver = running_driver(kube, pod, namespace)
    env = driver_environment(kube, driver, DRIVER_SA, workdir)
    before = len(kube.plane.audit_events())
    done, seen = run_driver(
        env, kube, namespace, workdir / "driver.log", ["-c", DRIVER, str(spec), str(workdir)]
    )
    calls = [
        e for e in kube.plane.audit_events()[before:] if e["user"]["username"] == user(namespace, DRIVER_SA)
    ]
    yield {
        "pod": pod, "driver": driver, "env": env, "spec": spec,
        "done": done, "executors": seen, "calls": calls,
    }  # fmt: skip
    client.CoreV1Api(kube.api).delete_namespaced_pod(driver.metadata.name, namespace)


def test_the_operator_makes_a_spark_step_pod_the_driver(spark_run: dict[str, Any]) -> None:
    pod = spark_run["pod"]
    [container] = [c for c in pod.spec.containers if c.name == "base"]
    assert container.image.endswith("-spark")
    assert pod.spec.service_account_name == DRIVER_SA
    assert pod.spec.automount_service_account_token is True
    env = {e.name: e for e in container.env}
    assert env[Env.SPARK_MASTER].value == "k8s://https://kubernetes.default.svc"
    # The driver's facts as the kubelet resolves them: the stored pod's name, namespace and IP.
    driver, resolved = spark_run["driver"], spark_run["env"]
    assert resolved[Env.SPARK_DRIVER_POD_NAME] == driver.metadata.name
    assert resolved[Env.SPARK_NAMESPACE] == driver.metadata.namespace
    assert resolved[Env.SPARK_DRIVER_HOST] == "127.0.0.1"
    assert resolved[Env.SPARK_EXECUTOR_IMAGE] == container.image


def test_the_driver_creates_executor_pods_it_owns(spark_run: dict[str, Any], namespace: str) -> None:
    driver, executors = spark_run["driver"], spark_run["executors"]
    assert len(executors) == SPARK_VALUES["executors"]["instances"], spark_run["done"].stdout[-3000:]
    image = next(c.image for c in spark_run["pod"].spec.containers if c.name == "base")
    for pod in executors.values():
        assert pod.metadata.labels["spark-role"] == "executor"
        assert pod.metadata.labels["app.kubernetes.io/component"] == "spark-executor"
        [owner] = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("Pod", driver.metadata.name, driver.metadata.uid)
        assert pod.spec.service_account_name == EXECUTOR_SA
        assert pod.spec.automount_service_account_token is False
        [container] = pod.spec.containers
        assert container.image == image
        assert container.command == ["shipyard-spark-executor"]
        assert container.args == ["executor"]
        assert container.security_context.read_only_root_filesystem is True
        assert pod.spec.security_context.run_as_non_root is True
        cores, memory = SPEC_EXECUTORS["cores"], SPEC_EXECUTORS["memory"]  # the spec's, not the chart's
        assert (cores, memory) != (SPARK_VALUES["executors"]["cores"], SPARK_VALUES["executors"]["memory"])
        assert container.resources.requests["cpu"] == str(cores)
        # Spark's memory overhead on top of the heap: max(10 %, 384 MiB).
        heap_mib = int(memory[:-1]) * 1024
        assert container.resources.requests["memory"] == f"{heap_mib + max(heap_mib // 10, 384)}Mi"
        env = {e.name: e.value for e in container.env}
        assert env["SPARK_DRIVER_URL"].startswith("spark://CoarseGrainedScheduler@127.0.0.1:")
        # The image's executor launcher reads only variables Spark sets on the pod.
        assert LAUNCHER_READS
        assert set(LAUNCHER_READS) <= set(env), set(LAUNCHER_READS) - set(env)


def test_no_executor_starts_so_the_step_fails_in_bounded_time_and_deletes_its_executors(
    kube: Kube, spark_run: dict[str, Any], namespace: str
) -> None:
    done = spark_run["done"]
    assert done.returncode == 1
    assert f"no Spark executor registered within {START_TIMEOUT} s" in done.stdout
    assert executor_pods(kube, namespace) == []


def test_the_driver_role_is_exactly_what_spark_calls(
    kube: Kube, spark_run: dict[str, Any], namespace: str
) -> None:
    calls = spark_run["calls"]
    counts = collections.Counter(f"{resource} {verb}" for _, resource, verb in map(call_key, calls))
    print(f"{user(namespace, DRIVER_SA)}: {sum(counts.values())} calls: {dict(sorted(counts.items()))}")
    assert [e for e in calls if e["responseStatus"]["code"] == 403] == []
    # Deleting one executor pod is what Spark does when that executor ends: none runs here.
    assert granted(kube, namespace, DRIVER_SA) - {call_key(e) for e in calls} == {("", "pods", "delete")}


def test_without_the_right_to_create_pods_the_step_fails_with_the_api_servers_answer(
    kube: Kube, spark_run: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    """A driver whose Role lacks pod `create`: each refused executor pod counts as an executor failure,
    and Spark ends the session at its maximum (`spark.executor.maxNumFailures`), within the bound."""
    rbac = client.RbacAuthorizationV1Api(kube.api)
    role = rbac.read_namespaced_role(DRIVER_SA, namespace)
    for rule in role.rules:
        if rule.resources == ["pods"]:
            rule.verbs = [v for v in rule.verbs if v != "create"]
    account = "spark-driver-without-create"
    kube.create_service_accounts(namespace, account)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": account}, "rules": role.rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )
    pod = copy.deepcopy(spark_run["pod"])
    pod.metadata.name += "-refused"
    driver = running_driver(kube, pod, namespace)
    env = driver_environment(kube, driver, account, tmp_path)
    started = time.monotonic()
    done, seen = run_driver(
        env, kube, namespace, tmp_path / "driver.log", ["-c", DRIVER, str(spark_run["spec"]), str(tmp_path)]
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout[-3000:]
    refusal = f'pods is forbidden: User "{user(namespace, account)}" cannot create resource "pods"'
    assert refusal in done.stdout, tmp_path / "driver.log"
    assert seen == {}
    assert elapsed < START_TIMEOUT + 60, elapsed
    print(f"refused driver ended after {elapsed:.1f} s: {tmp_path / 'driver.log'}")


def test_the_driver_template_and_the_executor_pods_pass_the_restricted_standard(
    kube: Kube, spark_run: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    """The executor pods as Spark built them, and `spark-step.yaml`, admitted where `restricted` is enforced
    (a server-side dry run). The operator's driver pod adds the XCom sidecar, which the README covers."""
    restricted = "shipyard-spark-restricted"
    kube.create_namespace(restricted, {"pod-security.kubernetes.io/enforce": "restricted"})
    kube.create_service_accounts(restricted, DRIVER_SA, EXECUTOR_SA)
    core = client.CoreV1Api(kube.api)
    template = yaml.safe_load(
        (write_pod_templates(kube, namespace, tmp_path) / "spark-step.yaml").read_text()
    )
    pods = [
        template,
        *(client.ApiClient().sanitize_for_serialization(p) for p in spark_run["executors"].values()),
    ]
    for index, pod in enumerate(pods):
        labels = pod["metadata"].get("labels", {})
        body = {**pod, "metadata": {"name": f"restricted-{index}", "labels": labels}}
        body.pop("status", None)
        created = core.create_namespaced_pod(restricted, body, dry_run="All")
        assert created.spec.security_context.run_as_non_root is True


def test_executors_that_start_run_the_steps_work_and_go_at_stop(
    kube: Kube, spark_run: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    """With the executor pods run (EMULATED container runtime above), the session gets its executors and
    runs a job on them: the launcher, the driver's address and Python workers as on a cluster."""
    pod = copy.deepcopy(spark_run["pod"])
    pod.metadata.name += "-running"
    driver = running_driver(kube, pod, namespace)
    env = driver_environment(kube, driver, DRIVER_SA, tmp_path) | {Env.SPARK_EXECUTOR_START_TIMEOUT: "180"}
    done, seen = run_with_executors(env, kube, namespace, tmp_path, JOB)
    assert done.returncode == 0, tmp_path / "driver.log"
    assert "sum 999000" in done.stdout
    assert len(seen) == SPARK_VALUES["executors"]["instances"]
    assert executor_pods(kube, namespace) == []


# Written by the driver (s3fs), read by the executors (s3a://, spark_storage.read_parquet): the driver
# runs no task in client mode, so only the executors' tasks scan it. Then the executors write parts for
# the driver (spark_storage.written, as ingest, the split and scoring do) into the run's scratch space
# in the bucket, and the driver reads them all back: each executor pod has its own /tmp here.
READ_THE_BUCKET = textwrap.dedent(
    """
    import pandas as pd
    from shipyard_pipeline import spark_storage, storage
    from shipyard_pipeline.spark_engine import session
    uri, scratch = "{uri}", "{scratch}"
    storage.write_bytes_atomic(uri, pd.DataFrame({{"id": range(1000)}}).to_parquet())
    with session("shipyard-train") as spark:
        rows = spark_storage.read_parquet(spark, uri)
        print("sum", rows.groupBy().sum("id").collect()[0][0])
        doubled = rows.selectExpr("id * 2 AS id").repartition(4)
        with spark_storage.written(doubled, scratch, "doubling the ids") as parts:
            ids = [i for batch in parts.batches() for i in batch.column("id").to_pylist()]
            print("parts", len(parts.paths), "rows", len(ids), "sum", sum(ids), "in", parts.fs.protocol)
    fs, path = storage.filesystem(scratch)
    print("scratch left", fs.find(path))
    """
)


def test_executors_read_the_bucket_with_the_storage_settings_of_their_pods(
    kube: Kube, tmp_path: Path
) -> None:
    """The chart installed with an S3-compatible endpoint and a credentials Secret; the executor pods, run
    with the environment the chart's executor template gives them (Secret keys resolved as the kubelet
    would), read a snapshot-like file from the bucket (moto on loopback) through S3A: the jars the
    driver ships (spark.jars), the endpoint it hands them, and the key pair of their own pods."""
    namespace, bucket, secret = "shipyard-spark-s3", "shipyard-data", "shipyard-s3"
    kube.create_namespace(namespace)
    core = client.CoreV1Api(kube.api)
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata={"name": secret}, string_data=keys, type="Opaque")
    )
    with s3_server(tmp_path / "s3", buckets=(bucket,)) as endpoint:
        storage = {"root": f"s3://{bucket}/spark", "endpoint": endpoint, "existingSecret": secret}
        kube.helm(
            "install", RELEASE, str(REPO / "charts/shipyard"), "--namespace", namespace,
            "--values", str(REPO / "charts/shipyard/ci/spark-values.yaml"),
            f"--set-json=storage={json.dumps(storage | {'region': 'us-east-1'})}",
        )  # fmt: skip
        templates = write_pod_templates(kube, namespace, tmp_path / "pod-templates")
        pod = operator_pod(namespace, templates, spark_pipeline(tmp_path))
        driver = running_driver(kube, pod, namespace)
        env = driver_environment(kube, driver, DRIVER_SA, tmp_path) | {
            Env.SPARK_EXECUTOR_START_TIMEOUT: "180",
            Env.SPARK_JARS: os.environ.get(Env.SPARK_JARS, str(Path.home() / ".cache/shipyard/spark-jars")),
        }
        assert env[Env.S3_ENDPOINT_URL] == endpoint
        scratch = f"{storage['root']}/telco_churn/runs/spark_on_kubernetes/train/scratch"
        program = READ_THE_BUCKET.format(uri=f"{storage['root']}/rows.parquet", scratch=scratch)
        done, seen = run_with_executors(env, kube, namespace, tmp_path, program)
    assert done.returncode == 0, tmp_path / "driver.log"
    assert "sum 499500" in done.stdout
    assert "parts 4 rows 1000 sum 999000 in ('s3', 's3a')" in done.stdout, tmp_path / "driver.log"
    assert "scratch left []" in done.stdout
    assert len(seen) == SPARK_VALUES["executors"]["instances"]
    # Each fetched the driver's jars into its pod's /tmp (the image's working directory is read-only).
    for name in seen:
        assert (tmp_path / name / "hadoop-aws-3.5.0.jar").exists(), name
