"""The step pod templates and the NetworkPolicies."""

from __future__ import annotations

import pytest
import yaml
from helm_template_generator import REPO, HelmError, by_kind_name, render_chart, validate_builtin

TEMPLATES = ["templates/pipeline-pod-templates-configmap.yaml"]
POLICIES = ["templates/networkpolicies.yaml"]
GPU = {
    "enabled": True,
    "runtimeClassName": "nvidia",
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def pod_template(values: dict | None = None, key: str = "step.yaml") -> dict:
    config_map = render_chart(values, show_only=TEMPLATES)[0]
    return yaml.safe_load(config_map["data"][key])


class TestNoSpecCopy:
    def test_no_object_carries_a_pipeline_spec(self):
        """Issue 13: the spec reaches a step pod from the DAG (SHIPYARD_SPEC_YAML), never from the chart."""
        names = {path.name for path in (REPO / "dags" / "pipelines").glob("*.yaml")}
        for obj in render_chart():
            assert not names & set(obj.get("data") or {}), (obj["kind"], obj["metadata"]["name"])
        assert [v["name"] for v in pod_template()["spec"]["volumes"]] == ["tmp"]

    def test_values_of_the_removed_spec_config_map_are_refused(self):
        with pytest.raises(HelmError, match="pipelineSpecs"):
            render_chart({"pipelineSpecs": {"enabled": True}})


class TestStepPodTemplates:
    @pytest.mark.parametrize("key", ["step.yaml", "gpu-step.yaml"])
    def test_templates_are_valid_pods(self, key):
        template = pod_template({"pipeline": {"gpu": GPU}}, key)
        template["metadata"]["name"] = "step"
        validate_builtin(template)

    def test_step_pods_run_as_the_pipeline_account(self):
        spec = pod_template()["spec"]
        assert spec["serviceAccountName"] == "shipyard-pipeline"
        assert spec["automountServiceAccountToken"] is False
        container = spec["containers"][0]
        # The operator merges its container into the template's container named "base".
        assert container["name"] == "base"
        assert container["image"] == "ghcr.io/shipyard/pipeline:0.1.0"

    def test_env_and_secrets_reach_every_step(self):
        env = [{"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"}]
        container = pod_template({"pipeline": {"env": env, "envFromSecrets": ["warehouse"]}})["spec"][
            "containers"
        ][0]
        assert env[0] in container["env"]
        assert container["envFrom"] == [{"secretRef": {"name": "warehouse"}}]

    def test_gpu_template_only_when_enabled(self):
        assert set(render_chart(show_only=TEMPLATES)[0]["data"]) == {"step.yaml"}

    def test_gpu_template_schedules_on_gpu_nodes_and_cpu_template_does_not(self):
        values = {"pipeline": {"nodeSelector": {"pool": "cpu"}, "gpu": GPU}}
        gpu = pod_template(values, "gpu-step.yaml")["spec"]
        cpu = pod_template(values)["spec"]
        assert (gpu["runtimeClassName"], gpu["nodeSelector"], gpu["tolerations"]) == (
            "nvidia",
            GPU["nodeSelector"],
            GPU["tolerations"],
        )
        assert cpu["nodeSelector"] == {"pool": "cpu"}
        assert "tolerations" not in cpu
        assert "runtimeClassName" not in cpu


class TestNetworkPolicies:
    def test_predictor_policy_selects_the_pods_the_runtime_labels(self):
        objects = by_kind_name(render_chart())
        policy = objects[("NetworkPolicy", "shipyard-predictor")]
        runtime_labels = objects[("ServingRuntime", "shipyard-predictor")]["spec"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= runtime_labels.items()
        peers = policy["spec"]["ingress"][0]["from"]
        assert peers[0] == {"podSelector": {}}
        assert {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}}
        } in peers

    def test_step_pods_accept_no_ingress(self):
        policy = by_kind_name(render_chart(show_only=POLICIES))[("NetworkPolicy", "shipyard-no-ingress")]
        labels = pod_template()["metadata"]["labels"]
        selector = policy["spec"]["podSelector"]
        assert selector["matchLabels"].items() <= labels.items()
        [expression] = selector["matchExpressions"]
        assert labels[expression["key"]] in expression["values"]
        assert policy["spec"]["ingress"] == []
        assert policy["spec"]["policyTypes"] == ["Ingress"]

    def test_can_be_disabled(self):
        kinds = {kind for kind, _ in by_kind_name(render_chart({"networkPolicy": {"enabled": False}}))}
        assert "NetworkPolicy" not in kinds
