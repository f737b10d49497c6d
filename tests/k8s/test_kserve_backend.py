"""The KServe backend against the real API server, as the chart's airflow-worker ServiceAccount.

The backend is built as in production (`KServeBackend.from_config`: KubernetesHook, an Airflow
connection, here with a real bound token of the chart's ServiceAccount), so every call goes
through authentication, the chart's RBAC, the InferenceService CRD's schema, merge-patch
semantics and generations of a real kube-apiserver. Only KServe's status writes are emulated
(kserve_status_writer). Both deployment modes: create, patch, a crash at each step and a re-run
from the persisted config, a concurrent writer, promotion and rollback.
"""

from __future__ import annotations

from typing import Any

import pytest
from backend_support import NEVER_READY, V1, V2, new_backend, run_canary
from envtest import Kube
from kubernetes import client

from shipyard.rollout.analysis import Sample
from shipyard.rollout.backends.kserve import GROUP, PLURAL, VERSION, build_inferenceservice, without_nulls
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.errors import BackendError

_names = iter(range(1, 1000))


def stored(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(kube.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )


@pytest.fixture(params=["knative", "standard"])
def mode(request: pytest.FixtureRequest, kserve_status: Any) -> str:
    return request.param


@pytest.fixture
def name(mode: str) -> str:
    return f"churn-{mode}-{next(_names)}"


def test_first_deploy_creates_and_a_rerun_patches_without_409(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_stable(V1, timeout=10)
    first = stored(kube, worker_connection, name)
    declared = without_nulls(build_inferenceservice(backend.target, name, "telco_churn", V1))
    assert first["spec"] == declared["spec"]  # nothing pruned: every field exists in KServe 0.20's CRD
    new_backend(worker_connection, mode, name).deploy_stable(V1, timeout=10)  # a task retry / DAG re-run
    again = stored(kube, worker_connection, name)
    assert again["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri
    assert again["metadata"]["generation"] == first["metadata"]["generation"]  # the same spec: a no-op
    assert again["metadata"]["uid"] == first["metadata"]["uid"]


def test_good_canary_promoted_and_the_canary_fields_removed_by_the_merge_patch(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_canary(V1, V2)
    outcome = run_canary(backend, Sample(100, 0, 20.0))

    assert outcome.status == PROMOTED, outcome.reason
    isvc = stored(kube, worker_connection, name)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == V2.storage_uri
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]  # a null in a merge patch deletes
    assert "canary" not in isvc["spec"]
    assert "canaryStatuses" not in isvc["status"]
    assert isvc["metadata"]["annotations"]["shipyard.io/stable-version"] == "2"
    assert "shipyard.io/canary-version" not in isvc["metadata"]["annotations"]


def test_bad_canary_rolled_back_and_the_declared_spec_restored(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_canary(V1, V2)
    outcome = run_canary(backend, Sample(100, 30, 20.0))

    assert outcome.status == ROLLED_BACK
    isvc = stored(kube, worker_connection, name)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri
    assert "--model_version=1" in isvc["spec"]["predictor"]["model"]["args"]
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert "canary" not in isvc["spec"]
    assert isvc["metadata"]["annotations"]["shipyard.io/stable-version"] == "1"


def test_never_ready_canary_rolled_back_at_the_progress_deadline(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_canary(V1, NEVER_READY)
    outcome = run_canary(backend, Sample(100, 0, 20.0))

    assert outcome.status == ROLLED_BACK
    assert "not ready within progress_deadline_seconds" in outcome.reason
    assert stored(kube, worker_connection, name)["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri


def test_a_crash_at_each_step_and_a_rerun_from_the_persisted_config_converge(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    """Each step is done once, the worker 'dies', and a new backend from config() does it again."""
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_canary(V1, V2)
    config = backend.config()
    rerun = new_backend(worker_connection, mode, name, config)
    rerun.deploy_canary(V1, V2)
    generation = stored(kube, worker_connection, name)["metadata"]["generation"]

    rerun.set_canary_weight(50)
    config = rerun.config()
    again = new_backend(worker_connection, mode, name, config)
    again.set_canary_weight(50)
    assert (
        stored(kube, worker_connection, name)["metadata"]["generation"] == generation + 1
    )  # one real change

    again.rollback()
    new_backend(worker_connection, mode, name, again.config()).rollback()  # nothing left to roll back
    isvc = stored(kube, worker_connection, name)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri
    assert "canary" not in isvc["spec"]
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]


def test_a_concurrent_writers_fields_survive_every_backend_write(
    kube: Kube, worker_connection: str, mode: str, name: str
) -> None:
    """Another writer (the chart, an operator with kubectl) moves resourceVersion between the
    backend's writes; the backend's merge patches carry no resourceVersion and touch only its fields."""
    backend = new_backend(worker_connection, mode, name)
    backend.deploy_stable(V1, timeout=10)
    admin = client.CustomObjectsApi(kube.api)
    theirs = {
        "metadata": {"labels": {"team": "risk"}},
        "spec": {"predictor": {"minReplicas": 2, "maxReplicas": 4}},
    }
    admin.patch_namespaced_custom_object(GROUP, VERSION, worker_connection, PLURAL, name, theirs)
    backend.deploy_canary(V1, V2)
    admin.patch_namespaced_custom_object(
        GROUP, VERSION, worker_connection, PLURAL, name, {"metadata": {"annotations": {"owner": "ml"}}}
    )
    backend.set_canary_weight(20)
    backend.promote()

    isvc = stored(kube, worker_connection, name)
    assert isvc["metadata"]["labels"]["team"] == "risk"
    assert isvc["metadata"]["annotations"]["owner"] == "ml"
    assert (isvc["spec"]["predictor"]["minReplicas"], isvc["spec"]["predictor"]["maxReplicas"]) == (2, 4)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == V2.storage_uri


def test_knative_traffic_moves_step_by_step_as_the_status_reports(
    kube: Kube, worker_connection: str, kserve_status: Any
) -> None:
    name = f"churn-traffic-{next(_names)}"
    backend = new_backend(worker_connection, "knative", name)
    backend.deploy_canary(V1, V2)
    seen = []
    for weight in (10, 50):
        backend.set_canary_weight(weight)
        traffic = stored(kube, worker_connection, name)["status"]["components"]["predictor"]["traffic"]
        seen.append({t["revisionName"]: t["percent"] for t in traffic})
    assert seen == [
        {f"{name}-predictor-00002": 10, f"{name}-predictor-00001": 90},
        {f"{name}-predictor-00002": 50, f"{name}-predictor-00001": 50},
    ]


def test_a_spec_the_crd_rejects_is_a_backend_error_naming_the_object(
    worker_connection: str, kserve_status: Any
) -> None:
    """The CRD's schema is enforced by the API server: a bad write is a 4xx the backend reports."""
    backend = new_backend(worker_connection, "standard", "Not_A_DNS_Name")
    with pytest.raises(
        BackendError, match=r"writing InferenceService .*/Not_A_DNS_Name: 422 .*metadata.name"
    ):
        backend.deploy_stable(V1, timeout=1)


def test_knative_rollback_never_routes_to_the_restored_revision_before_it_is_ready(
    kube: Kube, worker_connection: str, kserve_status: Any
) -> None:
    """The spec generations the API server stored, in order, as a watch delivered them."""
    name = f"churn-rollback-{next(_names)}"
    backend = new_backend(worker_connection, "knative", name)
    backend.deploy_canary(V1, V2)
    backend.set_canary_weight(50)
    backend.rollback()
    predictors = [s["spec"]["predictor"] for s in kserve_status.specs[(worker_connection, name)]]
    model = [(p["model"]["storageUri"], p.get("canaryTrafficPercent")) for p in predictors]
    # stable; canary at 0 then 50 %; 1) traffic back to 0 on the canary; 2) the stable model
    # again, still at 0 % (a new revision that gets no traffic until ready); 3) the field removed.
    assert model == [
        (V1.storage_uri, None),
        (V2.storage_uri, 0),
        (V2.storage_uri, 50),
        (V2.storage_uri, 0),
        (V1.storage_uri, 0),
        (V1.storage_uri, None),
    ]
    traffic = stored(kube, worker_connection, name)["status"]["components"]["predictor"]["traffic"]
    assert traffic == [{"revisionName": f"{name}-predictor-00003", "percent": 100, "latestRevision": True}]


def test_a_split_that_never_shows_in_the_status_is_a_backend_error(
    worker_connection: str, kserve_status: Any
) -> None:
    backend = new_backend(worker_connection, "standard", f"churn-split-{next(_names)}")
    backend.deploy_canary(V1, NEVER_READY)  # KServe reports the canary not ready: its split never holds
    backend.verify_timeout = 1
    with pytest.raises(BackendError, match=r"canary at 25% not reached within 1s"):
        backend.set_canary_weight(25)
