"""The chart speaks the contract: every name, path and port it sets is the one shipyard_spec.contract defines.

The chart is rendered with the defaults, every ci/ values file and one values set that turns every
feature on; each container's environment, mounts, arguments and ports are read back and checked
against the contract module the three runtimes import.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_template_generator import CHART, REPO, HelmError, by_kind_name, render_chart

from shipyard_spec import contract
from shipyard_spec.contract import Env, Metric

SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
EVERYTHING = {
    "storage": {
        "root": "s3://shipyard-data/prod",
        "endpoint": "http://minio.storage.svc:9000",
        "region": "eu-west-1",
        "existingSecret": "shipyard-s3",
    },
    "pipeline": {"gpu": {"enabled": True}},
    "inferenceServices": {
        "enabled": True,
        "pipelines": {"telco_churn": {"storageUri": "s3://shipyard-data/m/1", "modelVersion": 1}},
    },
    "monitoring": {
        "podMonitor": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
    },
    "dashboards": {"enabled": True},
    "mlflow": {"enabled": True, "database": {"existingSecret": "mlflow-db"}},
    "spark": {"enabled": True},
}
RENDERS = [
    pytest.param([], {}, id="defaults"),
    *(pytest.param([path], {}, id=path.name.removesuffix("-values.yaml")) for path in SCENARIOS),
    pytest.param([], EVERYTHING, id="everything"),
]
# Variables the chart sets that belong to other programs (the AWS SDKs, the MLflow server).
THIRD_PARTY_ENV = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_S3_ENDPOINT_URL",
}
CONTRACT_ENV = {member.value for member in Env}
SHIPYARD_NAME = re.compile(r"\bSHIPYARD_[A-Z0-9_]+\b")


@functools.cache
def _render(files: tuple[Path, ...], values_json: str) -> list[dict[str, Any]]:
    return render_chart(json.loads(values_json), values_files=list(files))


def rendered(values_files: list[Path], values: dict[str, Any]) -> list[dict[str, Any]]:
    """One render per scenario for all the checks below (copies: a check may not change another's input)."""
    return copy.deepcopy(_render(tuple(values_files), json.dumps(values, sort_keys=True)))


def containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, container) for every container the objects define, step pod templates included."""
    return [found for obj in objects for found in object_containers(obj)]


def object_containers(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    specs: list[dict[str, Any]] = []
    if kind == "Pod":
        specs = [obj["spec"]]
    elif kind == "Deployment":
        specs = [obj["spec"]["template"]["spec"]]
    elif kind == "ServingRuntime":
        specs = [obj["spec"]]
    elif kind == "InferenceService":
        specs = [{"containers": [obj["spec"]["predictor"]["model"]]}]
    elif kind == "ConfigMap" and name.endswith(("-pod-templates", "-spark-executor")):
        specs = [yaml.safe_load(text)["spec"] for text in obj["data"].values()]
    return [(f"{kind}/{name}", c) for spec in specs for c in spec.get("containers", [])]


def step_templates(objects: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """The step pod templates whose file name starts with `prefix` (`spark-`: the Spark engine's)."""
    [config_map] = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-pod-templates")
    ]
    return [yaml.safe_load(text) for name, text in config_map["data"].items() if name.startswith(prefix)]


# What the chart tells a Spark step (the driver) about its executors; the operator adds the driver's facts.
SPARK_EXECUTOR_ENV = {
    Env.SPARK_EXECUTOR_IMAGE,
    Env.SPARK_EXECUTOR_SERVICE_ACCOUNT,
    Env.SPARK_EXECUTOR_POD_TEMPLATE,
    Env.SPARK_EXECUTOR_INSTANCES,
    Env.SPARK_EXECUTOR_CORES,
    Env.SPARK_EXECUTOR_MEMORY,
    Env.SPARK_EXECUTOR_START_TIMEOUT,
}


def env_values(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def values_of(values_files: list[Path], values: dict[str, Any]) -> dict[str, Any]:
    """The merged storage values of a render (enough for the defaults the contract derives from them)."""
    merged: dict[str, Any] = {"root": "s3://shipyard-data/prod", "predictionLogUri": ""}
    for path in values_files:
        merged.update(yaml.safe_load(path.read_text()).get("storage", {}))
    merged.update(values.get("storage", {}))
    return merged


@pytest.mark.parametrize(("values_files", "values"), RENDERS)
class TestEveryRender:
    def test_every_shipyard_variable_is_a_contract_name_and_set_once(self, values_files, values):
        objects = rendered(values_files, values)
        checked = 0
        for where, container in containers(objects):
            names = [item["name"] for item in container.get("env", [])]
            assert len(names) == len(set(names)), (where, names)
            unknown = {n for n in names if n.startswith("SHIPYARD_") and n not in CONTRACT_ENV}
            assert unknown == set(), f"{where} sets {unknown}, which no runtime reads (contract.Env)"
            foreign = set(names) - CONTRACT_ENV - THIRD_PARTY_ENV
            assert foreign == set(), f"{where} sets {foreign}: add it to contract.Env or explain it here"
            checked += len(names)
        assert checked

    def test_step_pods_read_storage_and_prediction_logs_where_the_contract_says_and_no_spec_copy(
        self, values_files, values
    ):
        objects = rendered(values_files, values)
        storage = values_of(values_files, values)
        for template in step_templates(objects):
            [container] = template["spec"]["containers"]
            env = env_values(container)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            # The operator hands each step the spec the DAG parsed; a pod never gets a copy of its own.
            # The one ConfigMap a (Spark) step pod mounts is its executors' pod template.
            assert Env.SPEC_YAML not in env
            config_maps = [v["configMap"]["name"] for v in template["spec"]["volumes"] if "configMap" in v]
            assert [name for name in config_maps if not name.endswith("-spark-executor")] == []
            assert env[Env.STORAGE_ROOT] == storage["root"]
            assert env[Env.PREDICTION_LOG_URI] == (
                storage["predictionLogUri"] or contract.default_prediction_log_root(storage["root"])
            )
            # The operator adds the XCom volume at the result file's directory; nothing may cover it.
            xcom = posixpath.dirname(contract.POD_RESULT_PATH)
            assert not [path for path in mounts if xcom == path or xcom.startswith(path.rstrip("/") + "/")]

    def test_predictors_serve_log_and_are_scraped_on_the_contract_port(self, values_files, values):
        objects = rendered(values_files, values)
        storage = values_of(values_files, values)
        for obj in objects:
            if obj["kind"] == "ServingRuntime":
                [container] = obj["spec"]["containers"]
                assert f"--http_port={contract.PREDICTOR_PORT}" in container["args"]
                # KServe substitutes the InferenceService name: the serving name of the pipeline.
                assert "--model_name={{.Name}}" in container["args"]
                assert [p["containerPort"] for p in container["ports"]] == [contract.PREDICTOR_PORT]
                assert obj["metadata"]["annotations"]["prometheus.kserve.io/port"] == str(
                    contract.PREDICTOR_PORT
                )
                assert env_values(container)[Env.PREDICTION_LOG_URI] == (
                    storage["predictionLogUri"] or contract.default_prediction_log_root(storage["root"])
                )
            if obj["kind"] == "ServiceMonitor":
                assert {e["targetPort"] for e in obj["spec"]["endpoints"]} == {contract.PREDICTOR_PORT}

    def test_the_s3_endpoint_is_the_variable_the_steps_and_predictor_read(self, values_files, values):
        objects = rendered(values_files, values)
        endpoint = values_of(values_files, values).get("endpoint")
        for where, container in containers(objects):
            env = env_values(container)
            if where.startswith(("ConfigMap/", "ServingRuntime/")) and endpoint:
                assert env[Env.S3_ENDPOINT_URL] == endpoint, where

    def test_spark_executors_reach_storage_by_the_step_pods_names_and_values(self, values_files, values):
        """Executors read s3a:// with the endpoint, region (spark_engine.s3a_confs) and credentials the
        driver has: the storage variables of the Spark step pods, the same in the executor pod template."""
        objects = by_kind_name(rendered(values_files, values))
        storage = {Env.S3_ENDPOINT_URL, Env.S3_REGION, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        for template in step_templates(list(objects.values()), prefix="spark-"):
            [driver] = template["spec"]["containers"]
            [(_, executor)] = [
                found
                for (kind, name), obj in objects.items()
                if kind == "ConfigMap" and name.endswith("-spark-executor")
                for found in object_containers(obj)
            ]
            expected = [item for item in driver["env"] if item["name"] in storage]
            assert [item for item in executor["env"] if item["name"] in storage] == expected

    def test_spark_step_pods_tell_the_driver_its_executors_by_the_contract_names(self, values_files, values):
        objects = by_kind_name(rendered(values_files, values))
        templates = step_templates(list(objects.values()), prefix="spark-")
        enabled = any(kind == "ConfigMap" and name.endswith("-spark-executor") for kind, name in objects)
        assert bool(templates) == enabled
        for template in templates:
            [container] = template["spec"]["containers"]
            env = env_values(container)
            assert set(env) >= SPARK_EXECUTOR_ENV
            [executor_template] = [
                obj
                for (kind, name), obj in objects.items()
                if kind == "ConfigMap" and name.endswith("-spark-executor")
            ]
            [mount] = [m for m in container["volumeMounts"] if m["name"] == "spark-executor-template"]
            assert env[Env.SPARK_EXECUTOR_POD_TEMPLATE] == posixpath.join(
                mount["mountPath"], *executor_template["data"]
            )
            assert env[Env.SPARK_EXECUTOR_IMAGE] == container["image"]
        for template in step_templates(list(objects.values())):
            if template not in templates:  # pandas step pods: nothing of Spark
                [container] = template["spec"]["containers"]
                assert not [n for n in env_values(container) if n.startswith("SHIPYARD_SPARK_")]


class TestDefaults:
    def test_the_pod_template_directory_is_the_contract_default(self):
        airflow = yaml.safe_load((REPO / "images" / "airflow" / "airflow-values.yaml").read_text())
        env = {item["name"]: item["value"] for item in airflow["env"]}
        assert env[Env.POD_TEMPLATE_DIR] == contract.DEFAULT_POD_TEMPLATE_DIR
        [mount] = airflow["workers"]["celery"]["extraVolumeMounts"]
        assert mount["mountPath"] == contract.DEFAULT_POD_TEMPLATE_DIR


class TestServingName:
    @pytest.mark.parametrize("pipeline", ["telco_churn", "fraud_v2", "a", "x" * 45, "credit__card_2024"])
    def test_inferenceservice_name_is_the_contract_serving_name(self, pipeline):
        values = {
            "inferenceServices": {
                "enabled": True,
                "pipelines": {pipeline: {"storageUri": "s3://shipyard-data/m/1", "modelVersion": 1}},
            }
        }
        objects = by_kind_name(render_chart(values))
        name = contract.serving_name(pipeline)
        assert ("InferenceService", name) in objects
        probe = objects[("Pod", f"shipyard-test-{name}")]["spec"]["containers"][0]["args"][0]
        assert f"/v1/models/{name}" in probe

    @pytest.mark.parametrize("pipeline", ["Telco_churn", "x" * 46, "churn_", "_churn", "9lives"])
    def test_a_pipeline_whose_serving_name_is_no_dns_label_is_refused(self, pipeline):
        values = {
            "inferenceServices": {"pipelines": {pipeline: {"storageUri": "s3://b/m", "modelVersion": 1}}}
        }
        with pytest.raises(HelmError, match=f"'{pipeline}' does not match pattern"):
            render_chart(values)


class TestDocumentedNames:
    """Names in the chart's documentation are names the code reads (SHIPYARD_PREDICTION_LOG_ROOT was not)."""

    DOCUMENTS = [
        CHART / "values.yaml",
        CHART / "README.md",
        CHART / "templates" / "NOTES.txt",
        REPO / "images" / "airflow" / "airflow-values.yaml",
    ]

    @pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
    def test_every_shipyard_variable_named_is_a_contract_name(self, document):
        named = set(SHIPYARD_NAME.findall(document.read_text()))
        assert named - CONTRACT_ENV == set()

    @pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
    def test_every_metric_named_is_a_contract_metric(self, document):
        named = set(re.findall(r"\bshipyard_[a-z_]+_(?:total|seconds)\b", document.read_text()))
        assert named - {member.value for member in Metric} == set()


def _dashboards_module():
    """tools/dashboards.py, the generator of the shipped dashboard."""
    spec = importlib.util.spec_from_file_location("shipyard_dashboards", REPO / "tools" / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


DASHBOARDS = _dashboards_module()
SHIPPED_DASHBOARD = json.loads(DASHBOARDS.DASHBOARD.read_text())
# A metric selector: a name followed by `{` (every panel selects by model) or `[`.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def panel_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


class TestDashboards:
    """The dashboard speaks the contract: generated from `Metric`, shipped as generated."""

    def test_the_shipped_json_is_what_the_generator_builds(self):
        assert DASHBOARDS.DASHBOARD.read_text() == DASHBOARDS.render(), "stale: run make dashboards"

    def test_every_metric_in_every_panel_is_a_contract_metric(self):
        metrics = {member.value for member in Metric}
        expressions = panel_expressions(SHIPPED_DASHBOARD)
        selected: set[str] = set()
        for title, expr in expressions:
            names = set(SELECTOR.findall(expr))
            assert names, (title, expr)
            for name in names:
                base = next(
                    (name.removesuffix(s) for s in HISTOGRAM_SERIES if name.removesuffix(s) in metrics), name
                )
                assert base in metrics, f"panel {title!r} selects {name}, which is not a contract.Metric"
                selected.add(base)
        # The figures the issue asks for are all on the dashboard.
        assert {
            Metric.REQUESTS, Metric.HTTP_REQUEST_DURATION, Metric.CANARY_WEIGHT, Metric.DRIFT_PSI,
            Metric.SHADOW_DECISION_FLIP_RATIO, Metric.SHADOW_SCORE_ABS_DIFF, Metric.SHADOW_SCORE_PSI,
            Metric.SHADOW_REQUESTS,
        } <= selected  # fmt: skip

    def test_4xx_and_5xx_are_apart_and_latency_is_per_version(self):
        exprs = dict(panel_expressions(SHIPPED_DASHBOARD))
        assert f'outcome="{contract.Outcome.SERVER_ERROR}"' in exprs["Server errors (5xx) per version"]
        assert f'outcome="{contract.Outcome.CLIENT_ERROR}"' in exprs["Client errors (4xx) per version"]
        for title, quantile in (("p50 latency per version", "0.5"), ("p99 latency per version", "0.99")):
            assert exprs[title].startswith(
                f"histogram_quantile({quantile}, sum by (model_name, model_version, le)"
            )

    def test_panel_ids_are_unique_and_panels_fit_the_grid(self):
        panels = SHIPPED_DASHBOARD["panels"]
        assert len({p["id"] for p in panels}) == len(panels)
        assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)

    def test_off_by_default(self):
        assert not [o for o in rendered([], {}) if o["metadata"]["name"].endswith("-dashboards")]

    def test_the_configmap_carries_the_sidecar_label_and_the_json(self):
        objects = by_kind_name(
            rendered([], {"dashboards": {"enabled": True, "annotations": {"grafana_folder": "ML"}}})
        )
        config_map = objects[("ConfigMap", "shipyard-dashboards")]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML"}
        assert json.loads(config_map["data"]["shipyard.json"]) == SHIPPED_DASHBOARD

    def test_the_sidecar_label_is_configurable(self):
        values = {"dashboards": {"enabled": True, "label": "example.com/dashboard", "labelValue": "ml"}}
        labels = by_kind_name(rendered([], values))[("ConfigMap", "shipyard-dashboards")]["metadata"][
            "labels"
        ]
        assert labels["example.com/dashboard"] == "ml"
        assert "grafana_dashboard" not in labels

    def test_step_pods_push_to_the_pushgateway_of_the_values(self):
        for values, expected in ((EVERYTHING, EVERYTHING["monitoring"]["pushgateway"]["url"]), ({}, None)):
            for template in step_templates(rendered([], values)):
                [container] = template["spec"]["containers"]
                assert env_values(container).get(Env.PUSHGATEWAY_URL) == expected
