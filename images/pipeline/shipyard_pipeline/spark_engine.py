"""The Spark engine (spec `engine: spark`): one Spark session per step, on SHIPYARD_SPARK_MASTER.

pyspark is an optional part of the pipeline image (`images/pipeline/requirements-spark.txt`,
`make spark`); `engines` imports this module only for a Spark pipeline. The master defaults to
`local[*]`: the step process is the driver and its cores the executors. On Kubernetes the
step pod is the driver in client mode and the master `k8s://https://<api server>`: executor
pods run the same image, configured from the step pod's environment (`CONFS_FROM_ENV`, set by
the operator and the chart; docs/architecture.md, "Engines").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import SparkSession

from shipyard_pipeline import snapshot, spark_fit, spark_score
from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.fitting import Data, Fit
from shipyard_pipeline.scoring_model import ScoringModel
from shipyard_spec.contract import Env
from shipyard_spec.model import ModelConfig

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


@contextlib.contextmanager
def session(app_name: str) -> Iterator[SparkSession]:
    """A SparkSession for one step, stopped when the step is done."""
    # Python workers run the step's own interpreter (the image's virtualenv), not `python3` on PATH:
    # PySpark refuses workers of another Python version, and only this one has the pipeline's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(os.environ.get(Env.SPARK_MASTER, DEFAULT_MASTER))
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Snapshots hold pandas' nanosecond timestamps, which Spark reads only as epoch nanoseconds.
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config(map=KUBERNETES_CONFS)
        .config(map={conf: os.environ[env] for env, conf in CONFS_FROM_ENV.items() if os.environ.get(env)})
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
    """`engines.Engine` on Spark."""

    def fit(self, features: FeatureSet, config: ModelConfig, data: Data, tune: bool, seed: int) -> Fit:
        if tune:  # the spec refuses tuning with engine spark; a caller asking for it is a bug
            raise StepError("tuning runs on the pandas engine only (spec model.tuning with engine: spark)")
        with session("shipyard-train") as spark:
            return spark_fit.fit_model(spark, features, config, data, seed)

    @contextlib.contextmanager
    def scored(
        self, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
    ) -> Iterator[Iterator[pd.DataFrame]]:
        with (
            session(f"shipyard-score-{model.name}-v{model.version}") as spark,
            spark_score.scored(spark, model, published, keys, batch_rows) as chunks,
        ):
            yield chunks
