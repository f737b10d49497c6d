"""One try of a step task: the DAG's PodStepOperator run against the envtest API server."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from envtest import CONN_ID, RELEASE, Kube
from kubernetes import client
from support.servers import REPO, venv_python

from shipyard.dag_factory import build_training_dag
from shipyard_spec import load_spec

SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"
START, END = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)


@dataclass
class TaskInstance:
    """The Airflow task instance as the operator sees it (Airflow side, not Kubernetes)."""

    dag_id: str
    task_id: str
    try_number: int
    map_index: int = -1
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def write_pod_templates(kube: Kube, namespace: str, directory: Path) -> Path:
    """The chart's installed pod templates, where the workers would mount them."""
    templates = client.CoreV1Api(kube.api).read_namespaced_config_map(f"{RELEASE}-pod-templates", namespace)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in templates.data.items():
        (directory / name).write_text(text)
    return directory


def run_step(
    namespace: str,
    template_dir: Path,
    try_number: int,
    run_id: str,
    user_agent: str | None = None,
    step: str = "validate",
    spec: Path = SPEC,
    edit_after_parse: str | None = None,
) -> TaskInstance:
    """One try of a training task (validate unless told), with a fresh operator as each Airflow try has.

    `edit_after_parse` is written to the spec file once the DAG has parsed it. The log stream goes
    through the API server to the kubelet stand-in; `do_xcom_push` is off: the XCom sidecar's exec
    is not emulated (kubelet.py).
    """
    settings = {"namespace": namespace, "kubernetes_conn_id": CONN_ID}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_RUNNER", "kubernetes")
        patch.setenv("SHIPYARD_POD_TEMPLATE_DIR", str(template_dir))
        patch.setenv("AIRFLOW_VAR_SHIPYARD_KUBERNETES", json.dumps(settings))
        dag = build_training_dag(load_spec(spec), spec)
    if edit_after_parse is not None:
        spec.write_text(edit_after_parse)
    operator = dag.get_task(f"pipeline.{step}")
    operator.do_xcom_push = False
    operator.poll_interval = 0.2
    if user_agent:
        operator.client.api_client.user_agent = user_agent
    ti = TaskInstance(dag.dag_id, operator.task_id, try_number)
    context = {
        "ti": ti,
        "task_instance": ti,
        "dag": dag,
        "task": operator,
        "run_id": run_id,
        "data_interval_start": START,
        "data_interval_end": END,
        "params": {"window_intervals": 26, "skip_tuning": True, "force_ingest": False},
        "dag_run": SimpleNamespace(run_after=END, run_id=run_id),
    }
    operator.render_template_fields(context)
    operator.execute(context)
    return ti


def base_container_process(storage_root: Path):
    """EMULATED container runtime for `KubeletStandIn.run_base`: the base container's command from the
    pipeline virtualenv, with the pod's arguments and literal environment as the API server stored
    them, nothing else from the worker. The bucket is a local directory (`SHIPYARD_STORAGE_ROOT`)."""

    def run(pod: client.V1Pod) -> tuple[int, str]:
        [container] = [c for c in pod.spec.containers if c.name == "base"]
        env = {e.name: e.value for e in container.env or [] if e.value is not None}
        env |= {"PATH": os.environ["PATH"], "SHIPYARD_STORAGE_ROOT": str(storage_root)}
        [program] = container.command
        executable = str(Path(venv_python("pipeline")).with_name(program))
        args = list(container.args)  # the XCom directory is the sidecar's: the result goes beside the bucket
        args[args.index("--result-path") + 1] = str(storage_root / "return.json")
        done = subprocess.run(
            [executable, *args],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    return run
