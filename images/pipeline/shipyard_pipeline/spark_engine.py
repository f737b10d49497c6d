"""The Spark engine (spec `engine: spark`): one Spark session per step, on SHIPYARD_SPARK_MASTER.

pyspark is an optional part of the pipeline image (`images/pipeline/requirements-spark.txt`,
`make spark`); `engines` imports this module only for a Spark pipeline. The master defaults to
`local[*]`: the step process is the driver and its cores the executors. On Kubernetes the
step pod is the driver in client mode and the master `k8s://https://<api server>`: executor
pods run the same image, configured from the step pod's environment (`CONFS_FROM_ENV`, set by
the operator and the chart; docs/architecture.md, "Engines"). A storage root on object storage
(`s3://`) is read by Hadoop's S3A filesystem (`s3a_confs`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StructField, StructType

from shipyard_pipeline import snapshot, source, spark_evaluate, spark_score, spark_source, spark_storage
from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.metrics import Scorer, TestScores
from shipyard_pipeline.scoring_model import ScoringModel
from shipyard_pipeline.spark_window import SparkWindow
from shipyard_pipeline.training_window import TrainingWindow
from shipyard_spec.contract import Env
from shipyard_spec.model import FileSource, PipelineSpec, Spark, SparkExecutors

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch

DEFAULT_MASTER = "local[*]"
# Spark confs taken from the environment when it sets them: on Kubernetes, the step pod's.
CONFS_FROM_ENV = {
    Env.SPARK_NAMESPACE: "spark.kubernetes.namespace",
    Env.SPARK_DRIVER_HOST: "spark.driver.host",
    Env.SPARK_DRIVER_POD_NAME: "spark.kubernetes.driver.pod.name",
    Env.SPARK_API_TOKEN_FILE: "spark.kubernetes.authenticate.oauthTokenFile",
    Env.SPARK_API_CA_FILE: "spark.kubernetes.authenticate.caCertFile",
    Env.SPARK_EXECUTOR_IMAGE: "spark.kubernetes.executor.container.image",
    Env.SPARK_EXECUTOR_SERVICE_ACCOUNT: "spark.kubernetes.authenticate.executor.serviceAccountName",
    Env.SPARK_EXECUTOR_POD_TEMPLATE: "spark.kubernetes.executor.podTemplateFile",
    Env.SPARK_EXECUTOR_INSTANCES: "spark.executor.instances",
    Env.SPARK_EXECUTOR_CORES: "spark.executor.cores",
    Env.SPARK_EXECUTOR_MEMORY: "spark.executor.memory",
}
# Client mode on Kubernetes (ignored elsewhere): the driver has no Service of its own and its executors
# no PersistentVolumeClaims (their local dirs are emptyDirs), so Spark need not look for or delete
# any: the chart's Role grants neither (least privilege; tests/k8s/test_spark_executors.py).
KUBERNETES_CONFS = {
    "spark.kubernetes.driver.service.deleteOnTermination": "false",
    "spark.kubernetes.driver.ownPersistentVolumeClaim": "false",
    "spark.kubernetes.driver.reusePersistentVolumeClaim": "false",
}
# Hadoop's S3A filesystem (hadoop-aws and the AWS SDK, images/pipeline/spark-jars.txt) finds credentials
# as storage.py's s3fs does: the AWS SDK's default chain, in each JVM's own environment (the chart's
# Secret or the pod's workload identity), on the driver and on every executor.
S3A_CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


def s3a_confs() -> dict[str, str]:
    """Spark confs for `s3a://` from the variables storage.py's s3fs reads (contract.Env).

    The endpoint and region become Hadoop settings, which the driver hands its executors; an endpoint
    (an S3-compatible store: MinIO, Ceph, moto) also means path-style requests. Credentials never enter
    the Spark configuration (its settings are logged and shown): each JVM's SDK reads its environment.
    """
    confs = {"spark.hadoop.fs.s3a.aws.credentials.provider": S3A_CREDENTIALS_PROVIDER}
    if endpoint := os.environ.get(Env.S3_ENDPOINT_URL):
        confs["spark.hadoop.fs.s3a.endpoint"] = endpoint
        confs["spark.hadoop.fs.s3a.path.style.access"] = "true"
    if region := os.environ.get(Env.S3_REGION):
        confs["spark.hadoop.fs.s3a.endpoint.region"] = region
    return confs


def jdbc_jars() -> list[str]:
    """The jars of SHIPYARD_SPARK_JARS (default: where `make spark` puts them): JDBC drivers, S3A."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "shipyard", "spark-jars")
    return sorted(str(jar) for jar in Path(os.environ.get(Env.SPARK_JARS, default)).glob("*.jar"))


def executor_confs(executors: SparkExecutors) -> dict[str, str]:
    """The Spark confs of the spec's executor settings: they win over the chart's (CONFS_FROM_ENV)."""
    settings = {"instances": executors.instances, "cores": executors.cores, "memory": executors.memory}
    return {f"spark.executor.{name}": str(value) for name, value in settings.items() if value is not None}


@contextlib.contextmanager
def session(app_name: str, confs: dict[str, str] | None = None) -> Iterator[SparkSession]:
    """A SparkSession for one step with `confs` over the environment's, stopped when the step is done."""
    # Python workers run the step's own interpreter (the image's virtualenv), not `python3` on PATH:
    # PySpark refuses workers of another Python version, and only this one has the pipeline's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(os.environ.get(Env.SPARK_MASTER, DEFAULT_MASTER))
        .appName(app_name)
        .config("spark.jars", ",".join(jdbc_jars()))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars in the step log
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Snapshots hold pandas' nanosecond timestamps, which Spark reads only as epoch nanoseconds.
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config(map=KUBERNETES_CONFS)
        .config(map=s3a_confs())
        .config(map={conf: os.environ[env] for env, conf in CONFS_FROM_ENV.items() if os.environ.get(env)})
        .config(map=confs or {})
        .getOrCreate()
    )
    try:
        if timeout := os.environ.get(Env.SPARK_EXECUTOR_START_TIMEOUT):
            await_executor(spark, float(timeout))
        yield spark
    finally:
        spark.stop()


def await_executor(spark: SparkSession, timeout: float) -> None:
    """Return once an executor has registered; a StepError after `timeout` seconds.

    Spark waits for executor pods that never start (not schedulable, image not pulled) forever;
    pods the API server refuses (RBAC, admission) count as executor failures, and it stops only
    at its maximum (`spark.executor.maxNumFailures`): this bound holds in every case.
    """
    deadline = time.monotonic() + timeout
    # The driver is one of the block managers; an executor is another.
    while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 2:
        if time.monotonic() > deadline:
            raise StepError(
                f"no Spark executor registered within {timeout:g} s ({Env.SPARK_EXECUTOR_START_TIMEOUT}): "
                "the executor pods were refused or never started; the driver's log above has the API "
                "server's answer (403: the step's ServiceAccount may not create pods; chart values `spark`)"
            )
        time.sleep(0.5)


class SparkEngine:
    """`engines.Engine` on Spark, with one pipeline's Spark settings."""

    def __init__(self, settings: Spark, scratch: str) -> None:
        self.confs = executor_confs(settings.executors)
        self.scratch = scratch  # where executors write what the driver reads (spark_storage.written)

    def session(self, app_name: str) -> contextlib.AbstractContextManager[SparkSession]:
        return session(app_name, self.confs)

    # Reading the source (ingest) and the training window (train).
    @contextlib.contextmanager
    def read_source(
        self, spec: PipelineSpec, start: datetime, end: datetime, order: list[str]
    ) -> Iterator[Iterator[pd.DataFrame]]:
        if isinstance(spec.source, FileSource):  # files: read by pandas (see spark_source)
            yield source.read_interval(spec, start, end, order)
            return
        if not jdbc_jars():
            raise StepError(
                f"no JDBC driver jars in {Env.SPARK_JARS} (run make spark, or use the Spark image)"
            )
        with (
            self.session("shipyard-ingest") as spark,
            spark_source.read_interval(spark, spec, start, end, order, self.scratch) as chunks,
        ):
            yield chunks

    @contextlib.contextmanager
    def training_data(
        self, spec: PipelineSpec, snapshots: list[snapshot.Snapshot]
    ) -> Iterator[TrainingWindow]:
        with self.session("shipyard-train") as spark:
            yield SparkWindow(spark, spec, snapshots, self.scratch)

    @contextlib.contextmanager
    def scored(
        self, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
    ) -> Iterator[Iterator[pd.DataFrame]]:
        with (
            self.session(f"shipyard-score-{model.name}-v{model.version}") as spark,
            spark_score.scored(spark, model, published, keys, batch_rows, self.scratch) as chunks,
        ):
            yield chunks

    # validate and evaluate
    @contextlib.contextmanager
    def validation_batch(
        self, gx_context: AbstractDataContext, spec: PipelineSpec, published: snapshot.Snapshot
    ) -> Iterator[tuple[Batch, FeatureSet]]:
        """The snapshot as a Spark DataFrame through Great Expectations' Spark datasource (which takes
        the active session). TARGET_POSITIVE comes from the same pandas function on each Arrow batch;
        inferred features from the snapshot's Arrow schema (its empty frame's dtypes)."""
        from shipyard_pipeline import expectations  # Great Expectations: for validate only

        empty = spark_storage.parquet_schema(published.data_uri).empty_table().to_pandas()
        with self.session(f"shipyard-validate-{spec.name}") as spark:
            rows = spark_storage.read_parquet(spark, published.data_uri)
            if spec.columns.target in rows.columns:
                schema = StructType(
                    [*rows.schema.fields, StructField(expectations.TARGET_POSITIVE, LongType(), False)]
                )
                rows = rows.mapInPandas(
                    lambda batches: (expectations.with_target_positive(spec, b) for b in batches), schema
                )
            batch = (
                gx_context.data_sources.add_spark("snapshot")
                .add_dataframe_asset(spec.name)
                .add_batch_definition_whole_dataframe("interval")
                .get_batch(batch_parameters={"dataframe": rows})
            )
            yield batch, expectations.suite_features(spec, empty)

    def test_scores(self, test_uri: str, scorers: dict[str, Scorer], spec: PipelineSpec) -> TestScores:
        """Scored on the executors, summarised by Spark (`spark_evaluate`)."""
        with self.session(f"shipyard-evaluate-{spec.name}") as spark:
            return spark_evaluate.test_scores(spark, test_uri, scorers, spec)
