"""Example values for the official Airflow chart must name what the shipyard chart renders.

The key names were checked by hand against the official chart 1.22.0 (`helm template` + `helm lint`);
its schema is not vendored here (third-party text stays out of the repository).
"""

from __future__ import annotations

import json

import yaml
from helm_template_generator import REPO, by_kind_name, render_chart

AIRFLOW_VALUES = yaml.safe_load((REPO / "images" / "airflow" / "airflow-values.yaml").read_text())
# The example installs the shipyard chart as release `shipyard` in namespace `shipyard`, MLflow included.
SHIPYARD = by_kind_name(
    render_chart(
        {
            "mlflow": {
                "enabled": True,
                "database": {"existingSecret": "db"},
                "artifacts": {"destination": "s3://b/m"},
            }
        }
    )
)


def env(name: str) -> str:
    return next(item["value"] for item in AIRFLOW_VALUES["env"] if item["name"] == name)


class TestAirflowChartValues:
    def test_workers_and_triggerer_run_as_the_bound_service_account(self):
        subject = SHIPYARD[("RoleBinding", "shipyard-airflow-worker")]["subjects"][0]
        for component in (AIRFLOW_VALUES["workers"]["celery"], AIRFLOW_VALUES["triggerer"]):
            assert component["serviceAccount"] == {"create": False, "name": subject["name"]}
        assert ("ServiceAccount", subject["name"]) in SHIPYARD

    def test_workers_mount_the_pod_templates_where_the_env_says(self):
        workers = AIRFLOW_VALUES["workers"]["celery"]
        [volume] = workers["extraVolumes"]
        [mount] = workers["extraVolumeMounts"]
        assert ("ConfigMap", volume["configMap"]["name"]) in SHIPYARD
        assert mount["name"] == volume["name"]
        assert mount["mountPath"] == env("SHIPYARD_POD_TEMPLATE_DIR")

    def test_kubernetes_connection_targets_the_release_namespace_in_cluster(self):
        connection = json.loads(env("AIRFLOW_CONN_KUBERNETES_DEFAULT"))
        assert connection == {
            "conn_type": "kubernetes",
            "extra": {"in_cluster": True, "namespace": "shipyard"},
        }

    def test_git_sync_delivers_this_repositorys_dags_folder(self):
        git_sync = AIRFLOW_VALUES["dags"]["gitSync"]
        assert git_sync["enabled"] is True
        assert (REPO / git_sync["subPath"] / "pipelines").is_dir()

    def test_image_and_airflow_version_match_the_lock_file(self):
        locked = next(
            line.split("==")[1]
            for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.startswith("apache-airflow==")
        )
        assert AIRFLOW_VALUES["airflowVersion"] == locked
        dockerfile = (REPO / "images" / "airflow" / "Dockerfile").read_text()
        assert f"FROM apache/airflow:{locked}-python3.12 AS base" in dockerfile

    def test_mlflow_uri_is_the_chart_service(self):
        service = SHIPYARD[("Service", "shipyard-mlflow")]
        port = service["spec"]["ports"][0]["port"]
        assert env("MLFLOW_TRACKING_URI") == f"http://shipyard-mlflow.shipyard.svc.cluster.local:{port}"
