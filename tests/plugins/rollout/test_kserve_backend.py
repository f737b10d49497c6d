"""The KServe backend against an EMULATION of the cluster (fake_kserve.FakeKServe: an in-memory
CustomObjectsApi reproducing KServe's status semantics; no cluster runs here), in both modes;
and the InferenceServices it writes, checked against the kserve SDK's models."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from fake_kserve import FakeKServe
from rollout_support import policy
from support.servers import REPO, venv_python

from shipyard.rollout.analysis import Sample
from shipyard.rollout.backends import Release
from shipyard.rollout.backends.kserve import KServeBackend, build_inferenceservice, without_nulls
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK, CanaryController
from shipyard.rollout.errors import BackendError
from shipyard.rollout.providers import Target
from shipyard_spec.model import KServeTarget

NAMESPACE, NAME = "shipyard", "telco-churn"
V1 = Release("telco_churn", "1", storage_uri="s3://models/telco_churn/1/model")
V2 = Release("telco_churn", "2", storage_uri="s3://models/telco_churn/2/model")
NEVER_READY = Release(
    "telco_churn", "3", storage_uri="s3://models/telco_churn/3/model", args=["--fault_never_ready"]
)
BROKEN = Release("telco_churn", "4", storage_uri="s3://models/broken/4/model")


class FixedProvider:
    """Metrics as a cluster's Prometheus would return them: fixed per role (the fake runs no pods)."""

    def __init__(self, canary: Sample) -> None:
        self.canary = canary
        self.asked: list[Target] = []

    def is_online(self) -> bool:
        return True

    def query(self, target: Target, window_seconds: float) -> Sample:
        self.asked.append(target)
        return self.canary if target.role == "canary" else Sample(1000, 0, 10.0)


def backend(fake: FakeKServe, mode: str) -> KServeBackend:
    target = KServeTarget(namespace=NAMESPACE, mode=mode)
    return KServeBackend(target, NAME, "telco_churn", fake, verify_timeout=0.5, poll_seconds=0.01)


def isvc(fake: FakeKServe) -> dict:
    return fake.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", NAMESPACE, "inferenceservices", NAME
    )


def served_model(fake: FakeKServe, mode: str) -> str:
    predictor = isvc(fake)["spec"]["predictor"]
    return predictor["model"]["storageUri"]


def run(backend_: KServeBackend, canary: Sample) -> tuple:
    provider = FixedProvider(canary)
    fast = policy(interval_seconds=0.01, progress_deadline_seconds=0.5)
    return asyncio.run(CanaryController(fast, backend_, provider).run()), provider


@pytest.mark.parametrize("mode", ["knative", "standard"])
class TestBothModes:
    def test_first_deploy_creates_then_a_rerun_patches_without_409(self, mode):
        fake = FakeKServe()
        backend(fake, mode).deploy_stable(V1, timeout=0.5)
        backend(fake, mode).deploy_stable(V1, timeout=0.5)  # a task retry / DAG re-run
        assert [kind for kind, _ in fake.writes] == ["create", "patch"]
        assert served_model(fake, mode) == V1.storage_uri

    def test_good_canary_promoted_and_canary_settings_cleared(self, mode):
        fake = FakeKServe()
        b = backend(fake, mode)
        b.deploy_canary(V1, V2)
        outcome, provider = run(b, Sample(100, 0, 20.0))

        assert outcome.status == PROMOTED, outcome.reason
        spec = isvc(fake)["spec"]
        assert served_model(fake, mode) == V2.storage_uri
        assert "canaryTrafficPercent" not in spec["predictor"]
        assert "canary" not in spec
        assert "canaryStatuses" not in isvc(fake)["status"]
        assert {t.model_version for t in provider.asked if t.role == "canary"} == {"2"}

    def test_bad_canary_rolled_back_and_the_declared_spec_restored(self, mode):
        fake = FakeKServe()
        b = backend(fake, mode)
        b.deploy_canary(V1, V2)
        outcome, _ = run(b, Sample(100, 30, 20.0))

        assert outcome.status == ROLLED_BACK
        current = isvc(fake)
        assert served_model(fake, mode) == V1.storage_uri  # the cluster no longer claims to run v2
        assert "--model_version=1" in current["spec"]["predictor"]["model"]["args"]
        assert "canaryTrafficPercent" not in current["spec"]["predictor"]
        assert "canary" not in current["spec"]
        assert current["metadata"]["annotations"]["shipyard.io/stable-version"] == "1"

    def test_never_ready_canary_rolled_back_at_the_progress_deadline(self, mode):
        fake = FakeKServe()
        b = backend(fake, mode)
        b.deploy_canary(V1, NEVER_READY)
        outcome, _ = run(b, Sample(100, 0, 20.0))

        assert outcome.status == ROLLED_BACK
        assert "not ready within progress_deadline_seconds" in outcome.reason
        assert served_model(fake, mode) == V1.storage_uri

    def test_a_canary_that_fails_to_load_ends_the_wait_at_once_with_the_status_message(self, mode):
        fake = FakeKServe()
        b = backend(fake, mode)
        b.deploy_canary(V1, BROKEN)
        provider = FixedProvider(Sample(100, 0, 20.0))
        patient = policy(interval_seconds=0.01, progress_deadline_seconds=600)
        started = time.monotonic()
        outcome = asyncio.run(CanaryController(patient, b, provider).run())

        assert time.monotonic() - started < 10  # not the 600 s progress deadline
        assert outcome.status == ROLLED_BACK
        assert outcome.reason.startswith(
            f"canary failed to start: InferenceService {NAME}: BlockedByFailedLoad"
        )
        assert "ModelLoadFailed (exit code 1)" in outcome.reason
        assert "ModelDirError" in outcome.reason
        assert served_model(fake, mode) == V1.storage_uri


def test_knative_traffic_moves_step_by_step_and_is_verified_from_status():
    fake = FakeKServe()
    b = backend(fake, "knative")
    b.deploy_canary(V1, V2)
    seen = []
    for weight in (10, 25, 50):
        b.set_canary_weight(weight)
        seen.append(
            {
                t["revisionName"]: t["percent"]
                for t in isvc(fake)["status"]["components"]["predictor"]["traffic"]
            }
        )
    assert seen == [
        {"telco-churn-predictor-00002": 10, "telco-churn-predictor-00001": 90},
        {"telco-churn-predictor-00002": 25, "telco-churn-predictor-00001": 75},
        {"telco-churn-predictor-00002": 50, "telco-churn-predictor-00001": 50},
    ]
    canary, stable = b.targets()
    assert (canary.revision, stable.revision) == (
        "telco-churn-predictor-00002",
        "telco-churn-predictor-00001",
    )


def test_knative_rollback_never_routes_to_the_restored_revision_before_it_is_ready():
    fake = FakeKServe()
    b = backend(fake, "knative")
    b.deploy_canary(V1, V2)
    b.set_canary_weight(50)
    b.rollback()
    patches = [body for kind, body in fake.writes if kind == "patch"]
    # 1) traffic to 0 on the canary first, 2) stable model back at 0 %, 3) the field removed.
    assert patches[-3]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert patches[-2]["spec"]["predictor"] == {
        "model": build_inferenceservice(KServeTarget(), NAME, "telco_churn", V1)["spec"]["predictor"][
            "model"
        ],
        "canaryTrafficPercent": 0,
    }
    assert patches[-1]["spec"]["predictor"]["canaryTrafficPercent"] is None
    status = isvc(fake)["status"]["components"]["predictor"]
    assert status["traffic"] == [
        {"revisionName": "telco-churn-predictor-00003", "percent": 100, "latestRevision": True}
    ]


def test_a_split_that_never_shows_in_the_status_is_a_backend_error():
    fake = FakeKServe()
    b = backend(fake, "standard")
    b.deploy_canary(V1, NEVER_READY)  # a canary that is not ready gets no traffic in the status
    with pytest.raises(BackendError, match=r"canary at 25% not reached within 0\.5s"):
        b.set_canary_weight(25)


def test_generated_inferenceservices_are_valid_kserve_objects():
    """Every shape Shipyard writes, checked field by field against the kserve SDK (serving venv)."""
    objects = [
        without_nulls(
            build_inferenceservice(KServeTarget(mode=mode), NAME, "telco_churn", V1, canary, weight)
        )
        for mode in ("knative", "standard")
        for canary, weight in ((None, 0), (V2, 10), (V2, 100))
    ]
    checked = subprocess.run(
        [venv_python("serving"), str(REPO / "tests/charts/kserve_model_check.py")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(checked.stdout) == []
    assert {o["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] for o in objects} == {
        "Knative",
        "Standard",
    }
