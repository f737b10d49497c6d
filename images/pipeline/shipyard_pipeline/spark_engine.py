"""The Spark engine (spec `engine: spark`): one Spark session per step, on SHIPYARD_SPARK_MASTER.

pyspark is an optional part of the pipeline image (`images/pipeline/requirements-spark.txt`,
`make spark`); `engines` imports this module only for a Spark pipeline. The master defaults to
`local[*]`: the step process is the driver and its cores the executors. On Kubernetes the
step pod is the driver in client mode and the master `k8s://https://<api server>`: executor
pods run the same image (docs/architecture.md, "Engines").
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StructField, StructType

from shipyard_pipeline import snapshot, source, spark_evaluate, spark_score, spark_source
from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.metrics import Scorer, TestScores
from shipyard_pipeline.scoring_model import ScoringModel
from shipyard_pipeline.spark_window import SparkWindow
from shipyard_pipeline.training_window import TrainingWindow
from shipyard_spec.contract import Env
from shipyard_spec.model import FileSource, PipelineSpec

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch

DEFAULT_MASTER = "local[*]"


def jdbc_jars() -> list[str]:
    """The JDBC driver jars of SHIPYARD_SPARK_JARS (default: where `make spark` puts them)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "shipyard", "spark-jars")
    return sorted(str(jar) for jar in Path(os.environ.get(Env.SPARK_JARS, default)).glob("*.jar"))


@contextlib.contextmanager
def session(app_name: str) -> Iterator[SparkSession]:
    """A SparkSession for one step, stopped when the step is done."""
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
        .getOrCreate()
    )
    try:
        yield spark
    finally:
        spark.stop()


class SparkEngine:
    """`engines.Engine` on Spark."""

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
            session("shipyard-ingest") as spark,
            spark_source.read_interval(spark, spec, start, end, order) as chunks,
        ):
            yield chunks

    @contextlib.contextmanager
    def training_data(
        self, spec: PipelineSpec, snapshots: list[snapshot.Snapshot]
    ) -> Iterator[TrainingWindow]:
        with session("shipyard-train") as spark:
            yield SparkWindow(spark, spec, snapshots)

    @contextlib.contextmanager
    def scored(
        self, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
    ) -> Iterator[Iterator[pd.DataFrame]]:
        with (
            session(f"shipyard-score-{model.name}-v{model.version}") as spark,
            spark_score.scored(spark, model, published, keys, batch_rows) as chunks,
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

        empty = spark_score.snapshot_schema(published).empty_table().to_pandas()
        with session(f"shipyard-validate-{spec.name}") as spark:
            rows = spark.read.parquet(spark_score.spark_uri(published.data_uri))
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
        with session(f"shipyard-evaluate-{spec.name}") as spark:
            return spark_evaluate.test_scores(spark, test_uri, scorers, spec)
