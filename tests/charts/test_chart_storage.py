"""Object storage: one bucket for step pods, predictors and MLflow; credentials never in values."""

from __future__ import annotations

import pytest
import yaml
from helm_template_generator import HelmError, by_kind_name, render_chart

from shipyard_spec.contract import Env, default_prediction_log_root

MINIO = {
    "root": "s3://shipyard-data/prod",
    "endpoint": "http://minio.storage.svc:9000",
    "region": "eu-west-1",
    "existingSecret": "shipyard-s3",
}
KEY_PAIR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def objects(storage: dict, **values) -> dict:
    return by_kind_name(render_chart({"storage": storage, **values}))


def step_container(rendered: dict) -> dict:
    step = yaml.safe_load(rendered[("ConfigMap", "shipyard-pod-templates")]["data"]["step.yaml"])
    return step["spec"]["containers"][0]


def predictor_container(rendered: dict) -> dict:
    return rendered[("ServingRuntime", "shipyard-predictor")]["spec"]["containers"][0]


def env_by_name(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


class TestStorageRoot:
    def test_an_install_without_a_storage_root_is_refused_with_the_value_named(self):
        with pytest.raises(HelmError, match=r"storage\.root is required"):
            render_chart(required=None)

    @pytest.mark.parametrize(
        "root",
        ["/data/shipyard", "gs://bucket/prefix", "s3://Bucket/prefix", "s3://bucket/prefix/", "s3://b"],
    )
    def test_only_an_s3_uri_without_trailing_slash_is_accepted(self, root):
        with pytest.raises(HelmError, match="/storage/root"):
            render_chart({"storage": {"root": root}})

    def test_step_pods_get_the_root_their_storage_root_argument_expands(self):
        # The DAG side passes `--storage-root ${SHIPYARD_STORAGE_ROOT}`; the step expands it in the pod.
        env = env_by_name(step_container(objects({"root": "s3://shipyard-data/prod"})))
        assert env["SHIPYARD_STORAGE_ROOT"]["value"] == "s3://shipyard-data/prod"


class TestCredentials:
    def test_the_access_key_pair_comes_from_the_secret_by_reference(self):
        rendered = objects(MINIO)
        for container in (step_container(rendered), predictor_container(rendered)):
            env = env_by_name(container)
            for key in KEY_PAIR:
                assert env[key] == {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": "shipyard-s3", "key": key}},
                }
            assert "envFrom" not in container

    def test_workload_identity_puts_no_key_anywhere(self):
        rendered = render_chart(
            {
                "storage": {"root": "s3://shipyard-data/prod"},
                "pipeline": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:x"}}},
            }
        )
        text = yaml.safe_dump_all(rendered)
        assert "AWS_ACCESS_KEY_ID" not in text
        assert "secretKeyRef" not in text

    def test_steps_and_predictors_reach_the_same_endpoint_and_region(self):
        rendered = objects(MINIO)
        for container in (step_container(rendered), predictor_container(rendered)):
            env = env_by_name(container)
            assert env["AWS_ENDPOINT_URL_S3"]["value"] == MINIO["endpoint"]
            assert env["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"

    def test_aws_s3_needs_no_endpoint(self):
        env = env_by_name(step_container(objects({"root": "s3://shipyard-data/prod"})))
        assert "AWS_ENDPOINT_URL_S3" not in env

    def test_checkov_skip_for_secret_env_is_explained_only_when_a_secret_is_used(self):
        with_secret = yaml.safe_load(
            objects(MINIO)[("ConfigMap", "shipyard-pod-templates")]["data"]["step.yaml"]
        )
        without = yaml.safe_load(
            objects({"root": "s3://shipyard-data/prod"})[("ConfigMap", "shipyard-pod-templates")]["data"][
                "step.yaml"
            ]
        )
        assert "CKV_K8S_35=" in with_secret["metadata"]["annotations"]["checkov.io/skip-storage-secret-env"]
        assert "checkov.io/skip-storage-secret-env" not in without["metadata"]["annotations"]


class TestKServeStorageInitializer:
    """KServe's storage initializer reads the bucket settings from the predictor's ServiceAccount."""

    def test_the_predictor_account_lists_the_secret_and_carries_the_s3_annotations(self):
        rendered = objects(
            MINIO,
            inferenceServices={
                "enabled": True,
                "pipelines": {"telco_churn": {"storageUri": "s3://shipyard-data/m/1", "modelVersion": 1}},
            },
        )
        account_name = rendered[("InferenceService", "telco-churn")]["spec"]["predictor"][
            "serviceAccountName"
        ]
        account = rendered[("ServiceAccount", account_name)]
        assert account["secrets"] == [{"name": "shipyard-s3"}]
        assert account["metadata"]["annotations"] == {
            "serving.kserve.io/s3-endpoint": "minio.storage.svc:9000",
            "serving.kserve.io/s3-usehttps": "0",
            "serving.kserve.io/s3-region": "eu-west-1",
        }

    def test_https_endpoints_are_marked_https(self):
        storage = {**MINIO, "endpoint": "https://s3.example.com"}
        annotations = objects(storage)[("ServiceAccount", "shipyard-pipeline")]["metadata"]["annotations"]
        assert annotations["serving.kserve.io/s3-endpoint"] == "s3.example.com"
        assert annotations["serving.kserve.io/s3-usehttps"] == "1"

    def test_the_platforms_own_annotations_are_kept_and_win(self):
        annotations = {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/shipyard",
            "serving.kserve.io/s3-region": "us-east-2",
        }
        account = objects(MINIO, pipeline={"serviceAccount": {"annotations": annotations}})[
            ("ServiceAccount", "shipyard-pipeline")
        ]
        assert (
            account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            == annotations["eks.amazonaws.com/role-arn"]
        )
        assert account["metadata"]["annotations"]["serving.kserve.io/s3-region"] == "us-east-2"

    def test_workload_identity_lists_no_secret(self):
        account = objects({"root": "s3://shipyard-data/prod"})[("ServiceAccount", "shipyard-pipeline")]
        assert "secrets" not in account
        assert "annotations" not in account["metadata"]


class TestEnvironmentNamesAreSetOnce:
    @pytest.mark.parametrize(
        ("values", "message"),
        [
            (
                {"pipeline": {"env": [{"name": "SHIPYARD_STORAGE_ROOT", "value": "s3://other-bucket"}]}},
                "pipeline.env sets SHIPYARD_STORAGE_ROOT",
            ),
            (
                {"servingRuntime": {"env": [{"name": "AWS_ENDPOINT_URL_S3", "value": "http://x:9000"}]}},
                "servingRuntime.env sets AWS_ENDPOINT_URL_S3",
            ),
        ],
    )
    def test_a_value_that_repeats_a_chart_variable_is_an_error(self, values, message):
        with pytest.raises(HelmError, match=message):
            render_chart({"storage": MINIO, **values})


class TestPredictionLogs:
    """Predictors write where the drift step reads: one variable, set on both by the chart."""

    @pytest.mark.parametrize(
        ("storage", "expected"),
        [
            ({"root": "s3://shipyard-data/prod"}, default_prediction_log_root("s3://shipyard-data/prod")),
            (
                {"root": "s3://shipyard-data/prod", "predictionLogUri": "s3://shipyard-logs/predictions"},
                "s3://shipyard-logs/predictions",
            ),
        ],
        ids=["default", "explicit"],
    )
    def test_predictors_and_step_pods_get_the_same_log_uri(self, storage, expected):
        rendered = objects(storage)
        for container in (step_container(rendered), predictor_container(rendered)):
            assert env_by_name(container)[Env.PREDICTION_LOG_URI]["value"] == expected


class TestSparkExecutors:
    """Executor pods read the snapshots themselves (s3a://): they reach the bucket as the step pods do."""

    @staticmethod
    def spark_containers(rendered: dict) -> tuple[dict, dict]:
        steps = rendered[("ConfigMap", "shipyard-pod-templates")]["data"]
        driver = next(yaml.safe_load(text) for name, text in steps.items() if name.startswith("spark-"))
        executor = yaml.safe_load(rendered[("ConfigMap", "shipyard-spark-executor")]["data"]["executor.yaml"])
        return driver["spec"]["containers"][0], executor["spec"]["containers"][0]

    def test_executors_get_the_endpoint_region_and_key_pair_of_the_step_pods(self):
        driver, executor = self.spark_containers(objects(MINIO, spark={"enabled": True}))
        names = (Env.S3_ENDPOINT_URL, Env.S3_REGION, *KEY_PAIR)
        for name in names:
            assert env_by_name(executor)[name] == env_by_name(driver)[name]
        assert env_by_name(executor)[KEY_PAIR[1]]["valueFrom"]["secretKeyRef"]["name"] == "shipyard-s3"

    def test_with_workload_identity_executors_run_as_the_pipelines_storage_identity(self):
        annotations = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/shipyard"}
        rendered = objects(
            {"root": "s3://shipyard-data/prod"},
            pipeline={"serviceAccount": {"annotations": annotations}},
            spark={"enabled": True},
        )
        driver, executor = self.spark_containers(rendered)
        account = env_by_name(driver)[Env.SPARK_EXECUTOR_SERVICE_ACCOUNT]["value"]
        assert rendered[("ServiceAccount", account)]["metadata"]["annotations"] == annotations
        assert not [name for name in env_by_name(executor) if name.startswith("AWS_")]
