"""The optional minimal MLflow server: off by default, database URL in a Secret, artifacts in the bucket."""

from __future__ import annotations

import pytest
import yaml
from helm_template_generator import HelmError, by_kind_name, render_chart

MLFLOW = {"enabled": True, "database": {"existingSecret": "mlflow-db"}}
STORAGE = {"root": "s3://shipyard-data/prod", "endpoint": "http://minio:9000", "existingSecret": "s3-keys"}


def mlflow_objects(storage: dict | None = None, **overrides) -> dict:
    return by_kind_name(render_chart({"storage": storage or STORAGE, "mlflow": {**MLFLOW, **overrides}}))


def mlflow_container(objects: dict) -> dict:
    return objects[("Deployment", "shipyard-mlflow")]["spec"]["template"]["spec"]["containers"][0]


class TestMlflow:
    def test_absent_by_default(self):
        names = {name for _, name in by_kind_name(render_chart())}
        assert not {name for name in names if "mlflow" in name}

    def test_renders_account_service_deployment_and_policy(self):
        assert {key for key in mlflow_objects() if "mlflow" in key[1]} == {
            ("ServiceAccount", "shipyard-mlflow"),
            ("Service", "shipyard-mlflow"),
            ("Deployment", "shipyard-mlflow"),
            ("NetworkPolicy", "shipyard-mlflow"),
        }

    def test_database_url_and_bucket_credentials_come_from_secrets(self):
        container = mlflow_container(mlflow_objects())
        env = {item["name"]: item for item in container["env"]}
        assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == {
            "secretKeyRef": {"name": "mlflow-db", "key": "uri"}
        }
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key]["valueFrom"] == {"secretKeyRef": {"name": "s3-keys", "key": key}}
        assert "envFrom" not in container
        assert "mlflow-db" not in " ".join(container["args"])

    def test_serves_artifacts_from_the_storage_bucket_through_its_endpoint(self):
        container = mlflow_container(mlflow_objects())
        assert "--serve-artifacts" in container["args"]
        assert "--artifacts-destination=s3://shipyard-data/prod/mlflow-artifacts" in container["args"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        # MLflow's own variable and the AWS SDK's service-specific one.
        assert env["MLFLOW_S3_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"

    def test_workload_identity_puts_no_key_in_the_pod(self):
        objects = mlflow_objects(storage={"root": "s3://shipyard-data/prod"})
        env = {item["name"] for item in mlflow_container(objects)["env"]}
        assert env == {"MLFLOW_BACKEND_STORE_URI"}

    def test_an_explicit_destination_wins(self):
        container = mlflow_container(mlflow_objects(artifacts={"destination": "s3://other-bucket/mlflow"}))
        assert "--artifacts-destination=s3://other-bucket/mlflow" in container["args"]

    def test_step_pods_track_to_it(self):
        objects = mlflow_objects()
        step = yaml.safe_load(objects[("ConfigMap", "shipyard-pod-templates")]["data"]["step.yaml"])
        env = {item["name"]: item.get("value") for item in step["spec"]["containers"][0]["env"]}
        port = objects[("Service", "shipyard-mlflow")]["spec"]["ports"][0]["port"]
        assert env["MLFLOW_TRACKING_URI"] == f"http://shipyard-mlflow.shipyard.svc.cluster.local:{port}"

    def test_accepts_the_in_cluster_host_names_of_its_service(self):
        container = mlflow_objects()[("Deployment", "shipyard-mlflow")]["spec"]["template"]["spec"][
            "containers"
        ][0]
        [allowed] = [arg for arg in container["args"] if arg.startswith("--allowed-hosts=")]
        assert "shipyard-mlflow.shipyard.svc.cluster.local:*" in allowed.split("=", 1)[1].split(",")

    def test_service_routes_to_the_server_port(self):
        objects = mlflow_objects(port=5005)
        service = objects[("Service", "shipyard-mlflow")]
        deployment = objects[("Deployment", "shipyard-mlflow")]
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 5005, "targetPort": "http", "protocol": "TCP"}
        ]
        ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert ports == [{"name": "http", "containerPort": 5005, "protocol": "TCP"}]
        assert (
            service["spec"]["selector"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ({"database": {"existingSecret": ""}}, "mlflow.database.existingSecret is required"),
            ({"artifacts": {"destination": "gs://bucket/mlflow"}}, "/mlflow/artifacts/destination"),
        ],
    )
    def test_missing_or_unreachable_store_is_an_error_naming_the_value(self, override, message):
        with pytest.raises(HelmError, match=message):
            render_chart({"mlflow": {**MLFLOW, **override}})
