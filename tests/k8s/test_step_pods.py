"""The step pods' lifecycle: the DAG's PodStepOperator (KubernetesPodOperator) against the real API server.

The operator is the one the DAG factory builds for the kubernetes runner, with the chart's
installed pod templates and the chart's airflow-worker ServiceAccount (a real token), so pod
creation, admission, the label-selector reattach lookup, status reads, the "already checked"
patch, the log stream (proxied by the API server to the node's kubelet endpoint) and deletion
are all real API calls under the chart's RBAC. The scheduler's binding and the kubelet (status,
container log) are emulated (kubelet.py); the XCom sidecar's exec is not exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from envtest import Kube
from kubelet import KubeletStandIn
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from step_runs import base_container_process, run_step, write_pod_templates


@pytest.fixture
def templates(kube: Kube, installed: dict, tmp_path: Path) -> Path:
    return write_pod_templates(kube, installed["default"], tmp_path / "pod-templates")


def read_pod(kube: Kube, namespace: str, name: str) -> client.V1Pod | None:
    try:
        return client.CoreV1Api(kube.api).read_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def test_a_step_that_exits_0_succeeds_its_output_reaches_the_task_log_and_its_pod_is_deleted(
    kube: Kube,
    worker_connection: str,
    kubelet: KubeletStandIn,
    templates: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    kubelet.exit_code, kubelet.output = 0, "validate: 7043 rows, 31 expectations, 0 failed\n"
    ti = run_step(worker_connection, templates, 1, "manual__ok")
    assert "[base] validate: 7043 rows, 31 expectations, 0 failed" in capfd.readouterr().out  # the task log
    name = ti.xcom["pod_name"]
    assert kubelet.started[-1] == name
    assert read_pod(kube, worker_connection, name) is None  # an unscheduled or finished pod goes at once


def test_a_failed_check_fails_for_good_and_keeps_the_pod(
    kube: Kube, worker_connection: str, kubelet: KubeletStandIn, templates: Path
) -> None:
    kubelet.exit_code = 3
    with pytest.raises(AirflowFailException, match=r"validate: a check failed, not retrying \(exit 3\)"):
        run_step(worker_connection, templates, 1, "manual__check")
    pod = read_pod(kube, worker_connection, kubelet.started[-1])
    assert pod is not None
    assert pod.status.phase == "Failed"  # kept for `kubectl logs` / `describe`


def test_a_retry_after_a_failure_starts_a_new_pod(
    kube: Kube, worker_connection: str, kubelet: KubeletStandIn, templates: Path
) -> None:
    """The operator labels the failed pod `already_checked` (a patch) so that the retry does not
    reattach to it through its label-selector lookup but runs the step again in a new pod.
    Without `patch` on pods in the chart's Role the retry reattached to the failed pod and failed."""
    kubelet.exit_code = 1
    with pytest.raises(AirflowException) as first:
        run_step(worker_connection, templates, 1, "manual__retry")
    assert not isinstance(first.value, AirflowFailException)  # Airflow retries it
    failed = kubelet.started[-1]
    kubelet.exit_code = 0
    retry = run_step(worker_connection, templates, 2, "manual__retry")
    assert retry.xcom["pod_name"] != failed
    assert kubelet.started[-1] == retry.xcom["pod_name"]
    assert read_pod(kube, worker_connection, failed).metadata.labels["already_checked"] == "True"


TINY_ROWS = "customer_id,churn,event_time,tenure\nC1,1,2026-03-03T10:00:00,5\nC2,0,2026-03-04T11:00:00,12\n"


def test_a_spec_added_after_install_and_edited_after_parsing_runs_in_its_pod_as_the_dag_parsed_it(
    worker_connection: str,
    kubelet: KubeletStandIn,
    templates: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
) -> None:
    """Issue 13: the chart never saw this spec, and the file changed after the DAG parsed it; the pod
    (run from its stored command, arguments and environment only) ingests with the DAG's version."""
    (tmp_path / "rows.csv").write_text(TINY_ROWS)
    spec = {
        "name": "late_pipeline",
        "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": [str(tmp_path / "rows.csv")], "format": "csv"},
        "columns": {"id": "customer_id", "target": "churn", "event_time": "event_time"},
        "features": {"numeric": ["tenure"]},
        "mlflow": {"experiment": "late", "registered_model": "late_pipeline"},
    }
    spec_path = tmp_path / "late_pipeline.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    bucket = tmp_path / "bucket"
    kubelet.run_base = base_container_process(bucket)
    try:
        run_step(
            worker_connection, templates, 1, "manual__late", step="ingest", spec=spec_path,
            edit_after_parse=spec_path.read_text().replace("rows.csv", "gone.csv"),
        )  # fmt: skip
    finally:
        kubelet.run_base = None
    assert "[base]" in capfd.readouterr().out
    result = json.loads((bucket / "return.json").read_text())
    assert (result["rows"], Path(result["data_uri"]).exists()) == (2, True)
    assert str(bucket / "late_pipeline" / "snapshots") in result["data_uri"]
