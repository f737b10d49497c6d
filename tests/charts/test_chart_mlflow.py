"""The optional minimal MLflow server: off by default, external database and bucket from Secrets."""

from __future__ import annotations

import pytest
from helm_template_generator import HelmError, by_kind_name, render_chart

MLFLOW = {
    "enabled": True,
    "database": {"existingSecret": "mlflow-db"},
    "artifacts": {"destination": "s3://bucket/mlflow", "existingSecret": "mlflow-bucket"},
}


def mlflow_objects(**overrides) -> dict:
    return by_kind_name(render_chart({"mlflow": {**MLFLOW, **overrides}}))


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
        container = mlflow_objects()[("Deployment", "shipyard-mlflow")]["spec"]["template"]["spec"][
            "containers"
        ][0]
        env = {item["name"]: item for item in container["env"]}
        assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == {
            "secretKeyRef": {"name": "mlflow-db", "key": "uri"}
        }
        assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://bucket/mlflow"
        assert container["envFrom"] == [{"secretRef": {"name": "mlflow-bucket"}}]
        assert "mlflow-db" not in " ".join(container["args"])

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
            ({"artifacts": {"destination": ""}}, "mlflow.artifacts.destination is required"),
        ],
    )
    def test_missing_external_store_is_an_error_naming_the_value(self, override, message):
        with pytest.raises(HelmError, match=message):
            render_chart({"mlflow": {**MLFLOW, **override}})
