"""kserve/ is generated from the chart (one source of truth) and builds with the real kubectl kustomize."""

from __future__ import annotations

import subprocess
import sys

import yaml
from helm_template_generator import HELM, REPO, kserve_model_problems

GENERATOR = REPO / "tools" / "render_kserve_manifests.py"
KUBECTL = REPO / ".venv" / "tools" / "bin" / "kubectl"


class TestKServeManifests:
    def test_committed_manifests_equal_a_fresh_render_of_the_chart(self):
        result = subprocess.run(
            [sys.executable, str(GENERATOR), "--helm", HELM, "--check"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def test_kustomize_builds_them_into_one_namespace_and_kserve_accepts_them(self):
        built = subprocess.run(
            [str(KUBECTL), "kustomize", str(REPO / "kserve")], capture_output=True, text=True, check=True
        ).stdout
        objects = [doc for doc in yaml.safe_load_all(built) if doc]
        assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects) == [
            ("InferenceService", "telco-churn"),
            ("ServingRuntime", "shipyard-predictor"),
        ]
        assert {obj["metadata"]["namespace"] for obj in objects} == {"shipyard"}
        assert kserve_model_problems(objects) == []

    def test_helm_bookkeeping_is_not_shipped_to_kubectl_users(self):
        generated = [path for path in (REPO / "kserve").glob("*.yaml") if path.name != "chart-values.yaml"]
        assert len(generated) == 3
        for path in generated:
            text = path.read_text()
            assert "helm.sh/" not in text, path.name
            assert "managed-by" not in text, path.name
