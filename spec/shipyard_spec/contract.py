"""Every name and code that crosses a runtime boundary, defined once.

The Airflow side (plugins/shipyard), the pipeline image (shipyard-step), the serving image
(shipyard-predictor) and the Helm chart all speak through these names: registry aliases and
tags, step names and exit codes, the result file, environment variables, metric names, ports
and the storage layout. Every runtime imports this module; a chart test renders the chart and
checks the names it sets against it. Standard library only, so the DAG processor and the
predictor pay nothing to import it.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum, StrEnum


class Step(StrEnum):
    """The `shipyard-step <step>` sub-commands (one CLI, two runners)."""

    INGEST = "ingest"
    VALIDATE = "validate"
    TRAIN = "train"
    EVALUATE = "evaluate"
    REGISTER = "register"
    DRIFT = "drift"
    SCORE = "score"


class ExitCode(IntEnum):
    """Exit codes of `shipyard-step`. CHECK_FAILED (validation, a gate) is never retried."""

    OK = 0
    ERROR = 1
    CHECK_FAILED = 3


# Where a step writes its result JSON: the KubernetesPodOperator's XCom sidecar reads this path.
POD_RESULT_PATH = "/airflow/xcom/return.json"


class Alias(StrEnum):
    """MLflow registered-model aliases; they move with traffic."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
    PREVIOUS = "previous"


class Tag(StrEnum):
    """MLflow run and model-version tags that another runtime reads."""

    PIPELINE = "shipyard.pipeline"
    AIRFLOW_RUN_ID = "shipyard.airflow_run_id"
    INTERVAL_START = "shipyard.interval_start"
    INTERVAL_END = "shipyard.interval_end"
    MLFLOW_RUN_ID = "shipyard.mlflow_run_id"
    DATASET_FINGERPRINT = "shipyard.dataset_fingerprint"
    CODE_VERSION = "shipyard.code_version"
    GATES = "shipyard.gates"
    GATES_PASSED = "shipyard.gates_passed"
    TEST_ROC_AUC = "shipyard.test_roc_auc"
    BASELINE_ROC_AUC = "shipyard.baseline_roc_auc"
    STEP = "shipyard.step"
    # The directory a serving backend loads the version from (`s3://…/model` on KServe).
    SERVING_URI = "shipyard.serving_uri"
    # Set by the local backend: the model directory a later rollback can start again.
    MODEL_DIR = "shipyard.model_dir"
    ROLLOUT_STATUS = "shipyard.rollout.status"
    ROLLOUT_REASON = "shipyard.rollout.reason"
    ROLLOUT_CONFIRM = "shipyard.rollout.confirm"
    ROLLOUT_ABORT = "shipyard.rollout.abort"
    # The last shadow comparison of a rollout, per mode: "<verdict>: <reason with the figures>".
    SHADOW_REPLAY = "shipyard.shadow.replay"
    SHADOW_LIVE = "shipyard.shadow.live"


class RolloutStatus(StrEnum):
    """Values of the version tag `shipyard.rollout.status`: the rollout's decision, written before
    the aliases move, so a retry after a partial move knows how to finish it."""

    CANARY = "canary"  # under analysis (the Airflow task has not recorded a decision)
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class Env(StrEnum):
    """Environment variables set by the chart or the embedded runtime and read by the code."""

    HOME = "SHIPYARD_HOME"
    RUNNER = "SHIPYARD_RUNNER"
    STORAGE_ROOT = "SHIPYARD_STORAGE_ROOT"
    PREDICTION_LOG_URI = "SHIPYARD_PREDICTION_LOG_URI"
    # The pipeline spec's YAML text as the DAG parsed it, handed to every step (both runners);
    # its sha256 travels as the step argument SPEC_SHA256_OPTION. See `spec_sha256`.
    SPEC_YAML = "SHIPYARD_SPEC_YAML"
    POD_TEMPLATE_DIR = "SHIPYARD_POD_TEMPLATE_DIR"
    MODEL_VERSION = "SHIPYARD_MODEL_VERSION"
    CODE_VERSION = "SHIPYARD_CODE_VERSION"
    PIPELINE_PYTHON = "SHIPYARD_PIPELINE_PYTHON"
    SERVING_PYTHON = "SHIPYARD_SERVING_PYTHON"
    SERVING_PORT = "SHIPYARD_SERVING_PORT"
    MLFLOW_CONNECT_ATTEMPTS = "SHIPYARD_MLFLOW_CONNECT_ATTEMPTS"
    MLFLOW_CONNECT_BACKOFF = "SHIPYARD_MLFLOW_CONNECT_BACKOFF"
    MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
    # S3-compatible object storage endpoint (MinIO, Ceph, moto); credentials come from the
    # standard AWS variables of a Secret or from workload identity, never from values.
    S3_ENDPOINT_URL = "AWS_ENDPOINT_URL_S3"
    # Its region (the chart's storage.region; unset: the client's default).
    S3_REGION = "AWS_DEFAULT_REGION"
    # Largest request body the predictor reads, in bytes (its --max_request_bytes).
    MAX_REQUEST_BYTES = "SHIPYARD_MAX_REQUEST_BYTES"
    # The Prometheus Pushgateway (http://host:9091) the rollout and the batch steps push their
    # figures to (`PushJob`); unset: nothing is pushed.
    PUSHGATEWAY_URL = "SHIPYARD_PUSHGATEWAY_URL"
    # Live shadow: the stable predictor mirrors a copy of its requests to the challenger at this
    # base URL (`http://host:port`), off the request path; unset = no mirroring.
    SHADOW_MIRROR_URL = "SHIPYARD_SHADOW_MIRROR_URL"
    # The challenger's model version (labels the paired log and the shadow metrics).
    SHADOW_MIRROR_VERSION = "SHIPYARD_SHADOW_MIRROR_VERSION"
    # Share of requests mirrored, 0..1 (default 1).
    SHADOW_MIRROR_SAMPLE_RATE = "SHIPYARD_SHADOW_MIRROR_SAMPLE_RATE"
    # Requests waiting to be mirrored; beyond it a copy is dropped and counted (default 256).
    SHADOW_MIRROR_QUEUE_SIZE = "SHIPYARD_SHADOW_MIRROR_QUEUE_SIZE"
    # The decision threshold (`evaluation.threshold`) the mirroring predictor's flip gauge uses.
    SHADOW_DECISION_THRESHOLD = "SHIPYARD_SHADOW_DECISION_THRESHOLD"
    # Spark master of the steps of a pipeline with `engine: spark` (default `local[*]`: the step's
    # own cores; on Kubernetes `k8s://https://…`, the step pod being the driver, docs/architecture.md).
    SPARK_MASTER = "SHIPYARD_SPARK_MASTER"
    # Directory of the JDBC driver jars the Spark session puts on spark.jars (Spark ingest of a SQL
    # source): default ~/.cache/shipyard/spark-jars (`make spark`), /opt/spark-jars in the Spark image.
    SPARK_JARS = "SHIPYARD_SPARK_JARS"
    # On Kubernetes (client mode: the step pod is the driver, docs/architecture.md "Engines"), the
    # Spark confs of the driver and its executor pods, each from one variable (`spark_engine`).
    # The operator sets the pod's own facts (downward API):
    SPARK_NAMESPACE = "SHIPYARD_SPARK_NAMESPACE"  # spark.kubernetes.namespace
    SPARK_DRIVER_HOST = "SHIPYARD_SPARK_DRIVER_HOST"  # spark.driver.host: the pod IP
    # spark.kubernetes.driver.pod.name: executors get an ownerReference to the driver pod.
    SPARK_DRIVER_POD_NAME = "SHIPYARD_SPARK_DRIVER_POD_NAME"
    # A driver outside a pod names its API credentials (in a pod, Spark's client reads the mounted
    # ServiceAccount token and CA itself; tests/k8s passes a real token this way):
    SPARK_API_TOKEN_FILE = "SHIPYARD_SPARK_API_TOKEN_FILE"  # spark.kubernetes.authenticate.oauthTokenFile
    SPARK_API_CA_FILE = "SHIPYARD_SPARK_API_CA_FILE"  # spark.kubernetes.authenticate.caCertFile
    # The chart sets the executors' (values `images.pipelineSpark`, `spark.executors`):
    SPARK_EXECUTOR_IMAGE = "SHIPYARD_SPARK_EXECUTOR_IMAGE"
    SPARK_EXECUTOR_SERVICE_ACCOUNT = "SHIPYARD_SPARK_EXECUTOR_SERVICE_ACCOUNT"
    SPARK_EXECUTOR_POD_TEMPLATE = "SHIPYARD_SPARK_EXECUTOR_POD_TEMPLATE"  # a file in the driver pod
    SPARK_EXECUTOR_INSTANCES = "SHIPYARD_SPARK_EXECUTOR_INSTANCES"
    SPARK_EXECUTOR_CORES = "SHIPYARD_SPARK_EXECUTOR_CORES"
    SPARK_EXECUTOR_MEMORY = "SHIPYARD_SPARK_EXECUTOR_MEMORY"
    # Seconds a Spark session waits for its first executor before the step fails (unset: no wait,
    # as on `local[*]`); executor pods the API server refuses (RBAC, admission) end the step here.
    SPARK_EXECUTOR_START_TIMEOUT = "SHIPYARD_SPARK_EXECUTOR_START_TIMEOUT"


class Metric(StrEnum):
    """Prometheus metric names the predictor exports and the canary analysis reads."""

    REQUESTS = "shipyard_requests_total"
    REQUEST_DURATION = "shipyard_request_duration_seconds"
    # The whole request as the predictor's HTTP server sees it (body read, decoding, queueing
    # in the event loop, the model, encoding), for every answer including 4xx and 5xx;
    # REQUEST_DURATION is the time inside the model only.
    HTTP_REQUEST_DURATION = "shipyard_http_request_duration_seconds"
    # Feature values outside the range the model was trained on (counted, not rejected).
    FEATURE_OUT_OF_RANGE = "shipyard_feature_out_of_range_total"
    PREDICTION_LOG_DROPPED = "shipyard_prediction_log_dropped_total"
    PREDICTION_LOG_WRITE_ERRORS = "shipyard_prediction_log_write_errors_total"
    PREDICTION_LOG_DELETED = "shipyard_prediction_log_deleted_total"
    # Figures of a rollout and of drift checks, for the dashboards (labelled by `model`, and by
    # `version`, `feature` or `statistic` where they say so). Exported by the component that
    # knows them; docs/architecture.md says which and how. `model` is the served name
    # (`serving_name(pipeline)`), the value of the predictor's `model_name` label, so one
    # dashboard variable selects both.
    # {model, version}: traffic share of the version under rollout, 0-100.
    CANARY_WEIGHT = "shipyard_canary_weight_percent"
    # {model, version}: share of shadow-scored requests whose decision flips at the threshold.
    SHADOW_DECISION_FLIP_RATIO = "shipyard_shadow_decision_flip_ratio"
    # {model, version, statistic = mean | p99}: |challenger score - champion score|.
    SHADOW_SCORE_ABS_DIFF = "shipyard_shadow_score_abs_diff"
    # {model, version}: PSI of the challenger's scores against the champion's on the same requests.
    SHADOW_SCORE_PSI = "shipyard_shadow_score_psi"
    # {model, version}: requests scored by both versions.
    SHADOW_REQUESTS = "shipyard_shadow_requests_total"
    # {model, version, feature}: PSI of the live feature values against the reference profile.
    DRIFT_PSI = "shipyard_drift_psi"


class PushJob(StrEnum):
    """The `job` label under which a component pushes its figures to the Pushgateway. The grouping
    key adds `model` (`push_grouping_key`), so each push replaces the job's last push for that model."""

    ROLLOUT = "shipyard_rollout"  # CANARY_WEIGHT, from the rollout (worker and triggerer)
    SHADOW = "shipyard_shadow"  # SHADOW_*, from the shadow comparison of a rollout
    DRIFT = "shipyard_drift"  # DRIFT_PSI, from the drift step


def push_grouping_key(model: str) -> dict[str, str]:
    """The Pushgateway grouping key (besides `job`) of the pushes about a model, by its served name
    (`serving_name(pipeline)`): the same `model` label as the figures pushed."""
    return {MetricLabel.MODEL.value: model}


class MetricLabel(StrEnum):
    """Labels of the figures for the dashboards (`Metric.CANARY_WEIGHT`, `SHADOW_*`, `DRIFT_PSI`),
    pushed, or exported by the mirroring predictor (`SHADOW_*`)."""

    MODEL = "model"
    VERSION = "version"
    FEATURE = "feature"
    STATISTIC = "statistic"
    OUTCOME = "outcome"  # of SHADOW_REQUESTS: a `ShadowOutcome`


class ShadowOutcome(StrEnum):
    """The `outcome` label of `shipyard_shadow_requests_total` (counted by the mirroring predictor)."""

    PAIRED = "paired"  # the challenger answered; the pair is logged
    DROPPED = "dropped"  # the mirror queue was full: the copy was never sent
    FAILED = "failed"  # the challenger refused, failed or did not answer in time


class Outcome(StrEnum):
    """The `outcome` label of `shipyard_requests_total`."""

    SUCCESS = "success"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"


PREDICTOR_PORT = 8080
# Request header of a copy of what clients already sent (the rollout's compatibility replay and
# replay shadow, the live shadow's mirror): the predictor answers it but neither logs nor
# mirrors it, so the prediction log (drift, the next rollout's replays) holds client traffic only.
REPLAY_HEADER = "x-shipyard-replay"

# The spec a step runs is the one the DAG parsed: the Airflow side passes its text in the
# environment (`Env.SPEC_YAML`) and its hash as this `shipyard-step` argument; the step refuses
# text whose hash differs. Linux caps one environment string ("NAME=value") at MAX_ARG_STRLEN,
# 128 KiB (32 pages), so a spec may be at most SPEC_MAX_BYTES of UTF-8 (a spec is a few KB).
SPEC_SHA256_OPTION = "--spec-sha256"
SPEC_MAX_BYTES = 128 * 1024 - len(Env.SPEC_YAML) - 2  # "NAME=" and the terminating NUL


def spec_sha256(text: str) -> str:
    """The hex sha256 of a spec's text (UTF-8): what the DAG hands over and the step checks."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


DEFAULT_POD_TEMPLATE_DIR = "/opt/shipyard/pod-templates"


def serving_name(pipeline: str) -> str:
    """The InferenceService name of a pipeline, which is also the model name the predictor
    serves under, labels its metrics with and logs its predictions under."""
    return pipeline.replace("_", "-")


# Storage layout under the storage root (a local path or an fsspec URI such as s3://bucket/prefix).
SNAPSHOTS_DIR = "snapshots"
RUNS_DIR = "runs"
PREDICTION_LOGS_DIR = "prediction_logs"
# Batch scores: `{root}/{pipeline}/predictions/interval_start=<YYYY-MM-DDTHH:MM:SS>/` (data.parquet +
# _MANIFEST.json, the snapshot layout), one partition per scored interval, replaced by a re-run.
PREDICTIONS_DIR = "predictions"
MODELS_DIR = "models"
# What a serving model directory holds: exactly the files the predictor reads (MLflow sklearn
# flavour: the signature in MLmodel, the pickled Pipeline, the input example for the warm-up).
SERVING_MODEL_FILES = ("MLmodel", "model.pkl", "input_example.json")


def join(base: str, *parts: str) -> str:
    """`base/part/...` for local paths and URIs alike."""
    return "/".join([base.rstrip("/"), *parts])


def default_prediction_log_root(storage_root: str) -> str:
    """Where predictors log and the drift step reads when `SHIPYARD_PREDICTION_LOG_URI` is unset."""
    return join(storage_root, PREDICTION_LOGS_DIR)


def prediction_log_dir(log_root: str, model_name: str) -> str:
    """`{log_root}/{model_name}`, where `model_name` is the served name (`serving_name(pipeline)`):
    the predictor writes here and the drift step reads here."""
    return join(log_root, model_name)


class PredictionRecord(StrEnum):
    """Keys of one prediction-log record, one JSON object per line of a part file."""

    TS = "ts"  # ISO-8601 UTC time of the answer
    MODEL_NAME = "model_name"
    MODEL_VERSION = "model_version"
    INPUTS = "inputs"  # {feature: value} as the client sent it, null for a missing value
    SCORE = "score"  # the probability answered
    ID = "id"  # only when the caller sent row ids (V1 "ids"): joins late labels


class ShadowRecord(StrEnum):
    """Keys of one paired record of the live shadow log: a mirrored row and both answers."""

    TS = "ts"
    REQUEST_ID = "request_id"  # one per mirrored request (generated by the mirroring predictor)
    ROW = "row"  # the row's index in that request
    INPUTS = "inputs"
    CHAMPION_VERSION = "champion_version"
    CHAMPION_SCORE = "champion_score"
    CHALLENGER_VERSION = "challenger_version"
    CHALLENGER_SCORE = "challenger_score"
    ID = "id"  # the client's row id (V1 "ids"), when it sent one: joins late labels


SHADOW_LOGS_DIR = "shadow"


def shadow_log_dir(log_root: str, model_name: str, challenger_version: str) -> str:
    """`{log_root}/{model_name}/shadow/v{challenger_version}`: the paired log of one challenger's live
    shadow, written by the mirroring stable predictor (same part-file rules as the prediction log,
    `date=` partitions below it) and read by the rollout. Outside the `date=*` partitions drift reads."""
    return join(prediction_log_dir(log_root, model_name), SHADOW_LOGS_DIR, f"v{challenger_version}")


# Part files of one model's log: `{prediction_log_dir}/date=<YYYY-MM-DD>/part-<unix_ms>-<pid>.jsonl`,
# the date being the UTC day of the records' `ts`. A writer writes a part under its temporary
# name (which the glob does not match) and renames it when complete, so a reader never sees
# half a file; one writer never reuses a name (a second part in the same millisecond takes the
# next one), and the pid keeps concurrent writers apart.
PREDICTION_LOG_PART_GLOB = "part-*.jsonl"


def prediction_log_partition(log_dir: str, day: str) -> str:
    """`{log_dir}/date={day}` for `day` = `YYYY-MM-DD` (UTC)."""
    return join(log_dir, f"date={day}")


def prediction_log_part_name(unix_ms: int, pid: int) -> str:
    return f"part-{unix_ms}-{pid}.jsonl"


def prediction_log_temporary_name(part_name: str) -> str:
    return f".{part_name}.tmp"


def serving_model_uri(storage_root: str, pipeline: str, version: str) -> str:
    """`{storage_root}/{pipeline}/models/{version}`: where register writes a version's serving
    model directory (`SERVING_MODEL_FILES`) and what it records as tag `Tag.SERVING_URI`. An
    `s3://…` directory on Kubernetes (the KServe storage initializer downloads it to
    /mnt/models), a local directory in the embedded mode (the local predictors' --model_dir)."""
    return join(storage_root, pipeline, MODELS_DIR, str(version))
