"""Chart-wide properties: lint, inventory, labels, schema coverage, security, real validators, checkov."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_template_generator import (
    CHART,
    REPO,
    REQUIRED_VALUES,
    HelmError,
    by_kind_name,
    helm,
    kserve_model_problems,
    render_chart,
    validate_builtin,
    values_args,
)

SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
SCENARIO_IDS = [path.name.removesuffix("-values.yaml") for path in SCENARIOS]
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# Helm sets `global` when the chart is another chart's dependency; it has no default of its own.
HELM_SET = {"global"}
TOOLS_BIN = REPO / ".venv" / "tools" / "bin"


def render_scenario(path: Path | None, namespace: str = "shipyard") -> list[dict[str, Any]]:
    return render_chart(values_files=[path] if path else None, namespace=namespace)


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod spec an object defines: workloads, Pods, KServe predictors, KPO pod templates."""
    kind = obj["kind"]
    if kind == "Pod":
        return [obj["spec"]]
    if kind == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    if kind == "ServingRuntime":
        return [obj["spec"]]  # no pod-level securityContext field: the containers carry it all
    if kind == "InferenceService":
        predictor = obj["spec"]["predictor"]
        return [{"securityContext": predictor["securityContext"], "containers": [predictor["model"]]}]
    if kind == "ConfigMap" and obj["metadata"]["name"].endswith("-pod-templates"):
        return [yaml.safe_load(text)["spec"] for text in obj["data"].values()]
    return []


class TestLint:
    @pytest.mark.parametrize("values_file", [None, *SCENARIOS], ids=["defaults", *SCENARIO_IDS])
    def test_lint_strict_passes(self, values_file):
        with values_args([REQUIRED_VALUES], [values_file] if values_file else [], []) as args:
            assert (
                "1 chart(s) linted, 0 chart(s) failed" in helm("lint", "--strict", str(CHART), *args).stdout
            )


class TestInventory:
    def test_defaults_render_exactly_these_objects(self):
        assert set(by_kind_name(render_chart())) == {
            ("ServiceAccount", "shipyard-airflow-worker"),
            ("Role", "shipyard-airflow-worker"),
            ("RoleBinding", "shipyard-airflow-worker"),
            ("ServiceAccount", "shipyard-pipeline"),
            ("ConfigMap", "shipyard-pod-templates"),
            ("ServingRuntime", "shipyard-predictor"),
            ("NetworkPolicy", "shipyard-predictor"),
            ("NetworkPolicy", "shipyard-no-ingress"),
        }

    def test_every_scenario_renders_valid_builtin_objects(self):
        # render_chart validates each built-in object for every Kubernetes version it names.
        for path in SCENARIOS:
            assert render_scenario(path), path.name


class TestLabels:
    @pytest.mark.parametrize("values_file", [None, *SCENARIOS], ids=["defaults", *SCENARIO_IDS])
    def test_every_object_carries_the_standard_labels(self, values_file):
        for obj in render_scenario(values_file):
            labels = obj["metadata"]["labels"]
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            assert labels["app.kubernetes.io/name"] == "shipyard", where
            assert labels["app.kubernetes.io/instance"] == "shipyard", where
            assert labels["app.kubernetes.io/part-of"] == "shipyard", where
            assert labels["app.kubernetes.io/managed-by"] == "Helm", where
            assert labels["app.kubernetes.io/version"] == "0.1.0", where
            assert labels["app.kubernetes.io/component"], where
            assert labels["helm.sh/chart"] == "shipyard-0.1.0", where

    def test_common_labels_are_added_everywhere(self):
        for obj in render_chart({"commonLabels": {"team": "ml"}}):
            assert obj["metadata"]["labels"]["team"] == "ml", obj["metadata"]["name"]


class TestCustomNamespace:
    def test_every_object_and_subject_lands_in_the_release_namespace(self):
        objects = render_scenario(CHART / "ci" / "custom-namespace-values.yaml", namespace="ml-prod")
        assert {obj["metadata"]["namespace"] for obj in objects} == {"ml-prod"}
        binding = by_kind_name(objects)[("RoleBinding", "ml-airflow-worker")]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "ml-prod"}
        ]


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every declared property (following $refs to $defs)."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].split("/")[-1]]
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        paths.add(prefix + key)
        paths |= schema_paths(sub, f"{prefix}{key}.")
    return paths


def value_paths(values: dict[str, Any], declared: set[str], prefix: str = "") -> set[str]:
    """Dotted paths in values.yaml, descending only into maps whose keys the schema declares."""
    paths = set()
    for key, value in values.items():
        path = prefix + key
        paths.add(path)
        if isinstance(value, dict) and any(p.startswith(path + ".") for p in declared):
            paths |= value_paths(value, declared, path + ".")
    return paths


def closed_objects(schema: dict[str, Any], where: str = "") -> list[str]:
    """Schema objects with declared properties that still allow undeclared ones."""
    found = []
    if "properties" in schema and schema.get("additionalProperties") is not False:
        found.append(where or "(root)")
    for key, sub in schema.get("properties", {}).items():
        found += closed_objects(sub, f"{where}.{key}")
    for key, sub in schema.get("$defs", {}).items():
        found += closed_objects(sub, f"$defs.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += closed_objects(schema["additionalProperties"], f"{where}.*")
    return found


class TestValuesSchema:
    def test_every_value_is_declared_in_the_schema(self):
        declared = schema_paths(SCHEMA)
        assert value_paths(VALUES, declared) <= declared

    def test_every_declared_property_has_a_default_in_values_yaml(self):
        declared = schema_paths(SCHEMA)
        # Entries of the pipelines map are user-supplied and have no default.
        expected = {p for p in declared - HELM_SET if not p.startswith("inferenceServices.pipelines.")}
        assert expected <= value_paths(VALUES, declared)

    def test_schema_objects_reject_unknown_keys(self):
        assert closed_objects(SCHEMA) == []

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"mlflow": {"enabeld": True}}, "enabeld"),
            ({"inferenceServices": {"deploymentMode": "Serverless"}}, "/inferenceServices/deploymentMode"),
            ({"images": {"serving": {"digest": "latest"}}}, "digest"),
            (
                {"inferenceServices": {"pipelines": {"telco_churn": {"storageUri": "s3://b/m"}}}},
                "modelVersion",
            ),
        ],
    )
    def test_helm_rejects_values_outside_the_schema(self, values, message):
        with pytest.raises(HelmError, match=message):
            render_chart(values)

    @pytest.mark.parametrize("cpu", [0.5, 2, 0, "500m", "0.5", "2Ki", "+1"])
    def test_quantities_are_numbers_or_kubernetes_quantity_strings(self, cpu):
        values = {"servingRuntime": {"resources": {"requests": {"cpu": cpu, "memory": "1.5Gi"}}}}
        runtime = render_chart(values, show_only=["templates/servingruntime.yaml"])[0]
        assert runtime["spec"]["containers"][0]["resources"]["requests"] == {"cpu": cpu, "memory": "1.5Gi"}

    @pytest.mark.parametrize("cpu", [-1, -0.5, "-1", "1.5 Gi", "abc", "1Gb", True])
    def test_negative_or_malformed_quantities_are_rejected(self, cpu):
        values = {"servingRuntime": {"resources": {"requests": {"cpu": cpu}}}}
        with pytest.raises(HelmError, match="/servingRuntime/resources/requests/cpu"):
            render_chart(values)

    def test_more_min_than_max_replicas_is_rejected_with_both_values_named(self):
        values = {"inferenceServices": {"minReplicas": 5, "maxReplicas": 2}}
        message = r"inferenceServices\.minReplicas \(5\) is greater than inferenceServices\.maxReplicas \(2\)"
        with pytest.raises(HelmError, match=message):
            render_chart(values)

    def test_as_many_min_as_max_replicas_is_fine(self):
        assert render_chart({"inferenceServices": {"minReplicas": 2, "maxReplicas": 2}})

    def test_readme_table_lists_every_value(self):
        readme = (CHART / "README.md").read_text()
        rows = set(re.findall(r"^\| `([\w.]+)` \|", readme, re.M))
        sections = {p for p in schema_paths(SCHEMA) for q in schema_paths(SCHEMA) if q.startswith(p + ".")}
        expected = {
            p
            for p in schema_paths(SCHEMA) - sections - HELM_SET
            if not p.startswith("inferenceServices.pipelines.")
        }
        assert expected - rows == set()
        assert rows - expected == set()

    def test_every_value_has_a_comment_line(self):
        """Each key the schema declares is preceded by a `#` line in values.yaml (its documentation)."""
        lines = (CHART / "values.yaml").read_text().splitlines()
        declared = schema_paths(SCHEMA)
        undocumented = []
        stack: list[tuple[int, str]] = []
        for number, line in enumerate(lines):
            stripped = line.lstrip()
            if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
                continue
            indent = len(line) - len(stripped)
            stack = [(i, k) for i, k in stack if i < indent]
            path = ".".join([k for _, k in stack] + [stripped.split(":")[0]])
            stack.append((indent, stripped.split(":")[0]))
            if path in declared and not lines[number - 1].lstrip().startswith("#"):
                undocumented.append(path)
        assert undocumented == []


class TestSecurityContexts:
    @pytest.mark.parametrize("values_file", [None, *SCENARIOS], ids=["defaults", *SCENARIO_IDS])
    def test_every_pod_is_restricted(self, values_file):
        objects = render_scenario(values_file)
        specs = [(obj["metadata"]["name"], spec) for obj in objects for spec in pod_templates(obj)]
        assert specs, "no pod specs rendered"
        for name, spec in specs:
            for container in spec["containers"]:
                # Container-level settings alone satisfy the restricted Pod Security Standard.
                context = container["securityContext"]
                assert context["runAsNonRoot"] is True, name
                assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
                assert context["allowPrivilegeEscalation"] is False, name
                assert context["readOnlyRootFilesystem"] is True, name
                assert context["capabilities"] == {"drop": ["ALL"]}, name

    @pytest.mark.parametrize("values_file", SCENARIOS, ids=SCENARIO_IDS)
    def test_long_running_containers_have_requests_and_memory_limits(self, values_file):
        for obj in render_scenario(values_file):
            if obj["kind"] == "ConfigMap":
                continue  # step pod templates: the operator sets resources from the pipeline spec
            for spec in pod_templates(obj):
                for container in spec["containers"]:
                    assert container["resources"]["requests"], obj["metadata"]["name"]
                    assert container["resources"]["limits"]["memory"], obj["metadata"]["name"]


class TestKServeObjects:
    def test_every_scenario_matches_the_kserve_sdk_models(self):
        objects = [
            obj
            for path in [None, *SCENARIOS]
            for obj in render_chart(values_files=[path] if path else None, validate=False)
            if obj["apiVersion"].startswith("serving.kserve.io/")
        ]
        assert {obj["kind"] for obj in objects} == {"ServingRuntime", "InferenceService"}
        assert kserve_model_problems(objects) == []

    def test_the_sdk_check_reports_unknown_fields_and_wrong_types(self):
        runtime = render_chart(show_only=["templates/servingruntime.yaml"])[0]
        runtime["spec"]["protocolVersion"] = ["v1"]
        runtime["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
        prefix = "ServingRuntime/shipyard-predictor: .spec."
        assert sorted(kserve_model_problems([runtime])) == [
            prefix + "containers[0].ports[0].containerPort: expected int, got str '8080'",
            prefix + "protocolVersion: unknown field of V1alpha1ServingRuntimeSpec",
        ]

    def test_the_kubernetes_check_rejects_unknown_fields(self):
        account = render_chart(show_only=["templates/pipeline-serviceaccount.yaml"])[0]
        account["automountToken"] = False
        with pytest.raises(AssertionError, match="automountToken"):
            validate_builtin(account)


def checkov(directory: Path, *frameworks: str) -> dict[str, Any]:
    """checkov's JSON summary and checks for one directory (offline: no platform calls)."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [str(TOOLS_BIN / "checkov"), "-d", str(directory), "--framework", *frameworks, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    report = json.loads(result.stdout)
    return {item["check_type"]: item for item in (report if isinstance(report, list) else [report])}


class TestCheckov:
    def test_rendered_chart_and_dockerfiles_have_no_failed_checks(self, tmp_path):
        for path in [None, *SCENARIOS]:
            name = path.name.removesuffix(".yaml") if path else "defaults"
            objects = render_chart(values_files=[path] if path else None, validate=False)
            # The KPO pod templates (and Spark's executor template) are strings in a ConfigMap: give
            # checkov each as a Pod of its own.
            templates = [
                yaml.safe_load(text)
                for obj in objects
                if obj["kind"] == "ConfigMap"
                and obj["metadata"]["name"].endswith(("-pod-templates", "-spark-executor"))
                for text in obj["data"].values()
            ]
            for index, pod in enumerate(templates):
                # What the KubernetesPodOperator does with a template: name it and put it in its namespace.
                pod["metadata"].update(name=f"step-template-{index}", namespace="shipyard")
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(objects + templates))
        for image in ("pipeline", "serving", "airflow"):
            (tmp_path / image).mkdir()
            shutil.copy(REPO / "images" / image / "Dockerfile", tmp_path / image / "Dockerfile")

        results = checkov(tmp_path, "kubernetes", "dockerfile")

        for check_type in ("kubernetes", "dockerfile"):
            summary = results[check_type]["summary"]
            failed = [
                f"{c['check_id']} {c['resource']}: {c['check_name']}"
                for c in results[check_type]["results"]["failed_checks"]
            ]
            assert failed == [], (check_type, "\n".join(failed))
            assert summary["passed"] > 100, check_type
        assert skipped_ids(results) == {
            "CKV_K8S_8",
            "CKV_K8S_9",
            "CKV_K8S_10",
            "CKV_K8S_11",
            "CKV_K8S_12",
            "CKV_K8S_13",
            "CKV_K8S_15",
            "CKV_K8S_35",
            "CKV_K8S_38",
            "CKV_K8S_43",
        }
        skipped = results["kubernetes"]["results"]["skipped_checks"]
        unexplained = [c["check_id"] for c in skipped if len(c["check_result"]["suppress_comment"]) < 20]
        assert unexplained == []


def skipped_ids(results: dict[str, Any]) -> set[str]:
    """The check ids skipped anywhere; a new skip must be added here on purpose."""
    return {c["check_id"] for item in results.values() for c in item["results"]["skipped_checks"]}


def notes(values_files: list[Path]) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it (no cluster involved)."""
    with values_args([REQUIRED_VALUES], values_files, []) as args:
        install = ["install", "shipyard", str(CHART), "--namespace", "shipyard", "--dry-run=client", *args]
        return helm(*install).stdout.split("NOTES:", 1)[1]


class TestNotes:
    def test_defaults_tell_how_to_wire_airflow(self):
        text = notes([])
        assert "ServiceAccount shipyard-airflow-worker" in text
        assert "ConfigMap shipyard-pod-templates at /opt/shipyard/pod-templates" in text
        assert "adding or editing a spec needs no helm upgrade" in text
        assert "the rollout controller creates one per pipeline" in text

    @pytest.mark.parametrize(
        ("scenario", "reach"),
        [
            ("knative", "get inferenceservice telco-churn -o jsonpath='{.status.url}'"),
            ("standard", "port-forward svc/telco-churn-predictor 8080:80"),
        ],
    )
    def test_each_endpoint_and_how_to_reach_it(self, scenario, reach):
        text = notes([CHART / "ci" / f"{scenario}-values.yaml"])
        assert "http://telco-churn-predictor.shipyard.svc.cluster.local/v1/models/telco-churn:predict" in text
        assert reach in text
        assert "helm test shipyard -n shipyard" in text

    def test_storage_and_the_secret_annotations_kserve_needs(self):
        text = notes([CHART / "ci" / "mlflow-values.yaml"])
        assert "share s3://shipyard-data/prod through the S3 endpoint https://s3.storage.example.com" in text
        assert (
            "kubectl -n shipyard annotate secret shipyard-s3 "
            "serving.kserve.io/s3-endpoint=s3.storage.example.com serving.kserve.io/s3-usehttps=1\n"
        ) in text

    def test_workload_identity_names_the_account_to_annotate(self):
        text = notes([CHART / "ci" / "knative-values.yaml"])
        assert "Credentials: workload identity of ServiceAccount shipyard-pipeline" in text
        assert "annotate secret" not in text

    def test_mlflow_tracking_uri_when_enabled(self):
        text = notes([CHART / "ci" / "mlflow-values.yaml"])
        assert "MLFLOW_TRACKING_URI=http://shipyard-mlflow.shipyard.svc.cluster.local:5000" in text
