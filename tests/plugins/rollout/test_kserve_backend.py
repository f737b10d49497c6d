"""The InferenceServices the KServe backend writes, checked field by field against the kserve SDK's
models (serving venv). The backend's behaviour against a real API server is tested in tests/k8s."""

from __future__ import annotations

import json
import subprocess

from support.servers import REPO, venv_python

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.kserve import build_inferenceservice, without_nulls
from shipyard_spec.model import KServeTarget

NAME = "telco-churn"
V1 = Release("telco_churn", "1", storage_uri="s3://models/telco_churn/1/model")
V2 = Release("telco_churn", "2", storage_uri="s3://models/telco_churn/2/model")


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
