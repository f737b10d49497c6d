"""ServingRuntime, InferenceServices, monitors and the `helm test` pod."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helm_template_generator import HelmError, by_kind_name, get, render_chart

RUNTIME = ["templates/servingruntime.yaml"]
ISVC = ["templates/inferenceservices.yaml"]
TELCO = {"storageUri": "s3://models/telco_churn/3/model", "modelVersion": "3"}


def with_isvc(mode: str = "Knative", **extra) -> dict:
    return {
        "inferenceServices": {"enabled": True, "deploymentMode": mode, "pipelines": {"telco_churn": TELCO}},
        **extra,
    }


class TestServingRuntime:
    def test_serves_v1_and_v2_with_the_kserve_arguments(self):
        runtime = render_chart(show_only=RUNTIME)[0]
        assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
        container = runtime["spec"]["containers"][0]
        assert container["name"] == "kserve-container"
        assert container["args"] == ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"]
        assert container["image"] == "ghcr.io/shipyard/serving:0.1.0"

    def test_announces_its_metrics_endpoint_to_prometheus(self):
        annotations = render_chart(show_only=RUNTIME)[0]["metadata"]["annotations"]
        assert annotations["prometheus.kserve.io/port"] == "8080"
        assert annotations["prometheus.kserve.io/path"] == "/metrics"

    def test_digest_pins_the_image_and_extra_args_follow_the_kserve_ones(self):
        digest = "sha256:" + "a" * 64
        runtime = render_chart(
            {"images": {"serving": {"digest": digest}}, "servingRuntime": {"extraArgs": ["--workers=2"]}},
            show_only=RUNTIME,
        )[0]
        container = runtime["spec"]["containers"][0]
        assert container["image"] == f"ghcr.io/shipyard/serving@{digest}"
        assert container["args"][-1] == "--workers=2"

    def test_is_named_as_the_spec_default_runtime(self):
        # shipyard_spec.model.KServeTarget.runtime defaults to this name.
        assert render_chart(show_only=RUNTIME)[0]["metadata"]["name"] == "shipyard-predictor"

    def test_can_be_disabled(self):
        kinds = {kind for kind, _ in by_kind_name(render_chart({"servingRuntime": {"enabled": False}}))}
        assert "ServingRuntime" not in kinds


class TestInferenceServices:
    def test_absent_by_default(self):
        assert "InferenceService" not in {kind for kind, _ in by_kind_name(render_chart())}

    @pytest.mark.parametrize("mode", ["Knative", "Standard"])
    def test_deployment_mode_is_the_kserve_annotation(self, mode):
        isvc = render_chart(with_isvc(mode), show_only=ISVC)[0]
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode

    def test_one_per_pipeline_named_as_a_dns_label(self):
        values = with_isvc()
        values["inferenceServices"]["pipelines"]["fraud_v2"] = {"storageUri": "gs://m/f/1", "modelVersion": 1}
        names = [obj["metadata"]["name"] for obj in render_chart(values, show_only=ISVC)]
        assert sorted(names) == ["fraud-v2", "telco-churn"]

    def test_predictor_runs_the_shipyard_runtime_with_the_model_version(self):
        isvc = render_chart(with_isvc(), show_only=ISVC)[0]
        model = isvc["spec"]["predictor"]["model"]
        assert model["runtime"] == "shipyard-predictor"
        assert model["modelFormat"] == {"name": "shipyard"}
        assert model["storageUri"] == TELCO["storageUri"]
        assert model["args"] == ["--model_version=3"]
        assert isvc["spec"]["predictor"]["serviceAccountName"] == "shipyard-pipeline"

    def test_helm_leaves_it_to_the_rollout_controller_after_install(self):
        isvc = render_chart(with_isvc(), show_only=ISVC)[0]
        assert isvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]

    def test_a_pipeline_without_storage_uri_is_an_error_naming_it(self):
        values = with_isvc()
        values["inferenceServices"]["pipelines"]["telco_churn"] = {"storageUri": "", "modelVersion": "1"}
        with pytest.raises(HelmError, match="telco_churn"):
            render_chart(values)


class TestMonitors:
    def test_absent_by_default(self):
        kinds = {kind for kind, _ in by_kind_name(render_chart())}
        assert not kinds & {"PodMonitor", "ServiceMonitor"}

    def test_pod_monitor_scrapes_the_pods_the_runtime_labels(self):
        objects = by_kind_name(
            render_chart({"monitoring": {"podMonitor": {"enabled": True, "labels": {"r": "p"}}}})
        )
        monitor = objects[("PodMonitor", "shipyard-predictors")]
        runtime = objects[("ServingRuntime", "shipyard-predictor")]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= runtime["spec"]["labels"].items()
        port = runtime["spec"]["containers"][0]["ports"][0]
        assert monitor["spec"]["podMetricsEndpoints"] == [
            {"port": port["name"], "path": "/metrics", "interval": "30s"}
        ]
        assert monitor["metadata"]["labels"]["r"] == "p"

    def test_service_monitor_scrapes_predictor_services_on_the_container_port(self):
        objects = render_chart(
            {"monitoring": {"serviceMonitor": {"enabled": True}}}, show_only=["templates/servicemonitor.yaml"]
        )
        endpoint = objects[0]["spec"]["endpoints"][0]
        assert (endpoint["targetPort"], endpoint["path"]) == (8080, "/metrics")


class TestHelmTestPod:
    def test_absent_without_inference_services(self):
        assert not [obj for obj in render_chart() if obj["kind"] == "Pod"]

    def test_checks_the_readiness_endpoint_of_each_predictor(self):
        pod = render_chart(with_isvc(), show_only=["templates/tests/test-predictor-ready.yaml"])[0]
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        script = pod["spec"]["containers"][0]["args"][0]
        assert "http://telco-churn-predictor.shipyard.svc.cluster.local/v1/models/telco-churn" in script
        assert 'body.get("ready") is True' in script
        assert get(pod, "spec.restartPolicy") == "Never"

    @pytest.mark.parametrize(("ready", "exit_code"), [(True, 0), (False, 1)])
    def test_the_probe_passes_only_when_the_model_is_ready(self, ready, exit_code):
        # No cluster here: the in-cluster host is replaced by a local server answering like kserve's V1 API.
        pod = render_chart(with_isvc(), show_only=["templates/tests/test-predictor-ready.yaml"])[0]
        script = pod["spec"]["containers"][0]["args"][0]
        body = json.dumps({"name": "telco-churn", "ready": ready}).encode()

        class ModelReady(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/v1/models/telco-churn" else 404)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), ModelReady)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            local = script.replace(
                "http://telco-churn-predictor.shipyard.svc.cluster.local",
                f"http://127.0.0.1:{server.server_port}",
            )
            result = subprocess.run(
                [sys.executable, "-c", local], capture_output=True, timeout=30, check=False
            )
        finally:
            server.shutdown()
            server.server_close()
        assert result.returncode == exit_code, result.stderr
