"""Batch scoring on Spark: the snapshot scored by the version's Pipeline on the executors.

Spark reads the snapshot; `mapInPandas` hands each Arrow batch of a partition to
`ScoringModel.scored_rows` (the same function, Pipeline and input conversion as the pandas
engine, pickled with the model to the executors: the model holds only plain values); the
executors write the scored rows as Parquet parts. Every transformation is narrow (no
shuffle), so the parts, in partition order, hold the rows in snapshot order. The driver then
streams the parts into the interval's partition (`score._publish`), the key columns cast back
to the snapshot's own Arrow types, so both engines publish the same rows, types and content hash.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from shipyard_pipeline import snapshot, storage
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.scoring_model import Column, ScoringModel
from shipyard_pipeline.spark_source import spark_cause
from shipyard_spec.contract import Env


def spark_uri(uri: str) -> str:
    """What Spark reads for a storage URI: a local path, or for `s3://` the same object as `s3a://`, Hadoop's
    S3A filesystem (hadoop-aws, spark-jars.txt; configured by `spark_engine.s3a_confs`)."""
    fs, path = storage.filesystem(uri)
    return path if isinstance(fs, LocalFileSystem) else uri.replace("s3://", "s3a://", 1)


def read_parquet(spark: SparkSession, uri: str) -> DataFrame:
    """The Parquet file at a storage URI as a DataFrame: every Spark read of the storage root (snapshots,
    the test split). Spark lists the file and reads its footer here, so a store it cannot read (no
    credentials, no such bucket, no S3A jars) ends the step with a StepError naming the file and the cause."""
    try:
        return spark.read.parquet(spark_uri(uri))
    except (PySparkException, Py4JJavaError) as e:
        cause = spark_cause(e)
        if "No FileSystem for scheme" in cause:
            cause += (
                f" (the S3A jars of images/pipeline/spark-jars.txt are not in {Env.SPARK_JARS}: make spark)"
            )
        raise StepError(f"Spark cannot read {uri}: {cause}") from e


def snapshot_schema(published: snapshot.Snapshot) -> pa.Schema:
    fs, path = storage.filesystem(published.data_uri)
    with fs.open(path, "rb") as handle:
        return pq.read_schema(handle)


@contextlib.contextmanager
def scored(
    spark: SparkSession, model: ScoringModel, published: snapshot.Snapshot, keys: list[str], batch_rows: int
) -> Iterator[Iterator[pd.DataFrame]]:
    rows = read_parquet(spark, published.data_uri)
    schema = StructType(
        [
            *(rows.schema[name] for name in keys),
            StructField(Column.SCORE.value, FloatType(), False),
            StructField(Column.MODEL_VERSION.value, StringType(), False),
            StructField(Column.MLFLOW_RUN_ID.value, StringType(), False),
        ]
    )
    key_types = {name: snapshot_schema(published).field(name).type for name in keys}
    with tempfile.TemporaryDirectory(prefix="shipyard-spark-score-") as out:
        scored_rows = rows.mapInPandas(functools.partial(model.scored_rows, keys), schema)
        scored_rows.write.option("maxRecordsPerFile", batch_rows).parquet(f"{out}/scored")
        yield _read_parts(sorted(Path(out, "scored").glob("part-*.parquet")), key_types, batch_rows)


def _read_parts(
    parts: list[Path], key_types: dict[str, pa.DataType], batch_rows: int
) -> Iterator[pd.DataFrame]:
    """The parts in order, `batch_rows` rows at a time, key columns with the snapshot's types (its
    timestamps come back from Spark as epoch nanoseconds)."""
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch])
            for name, key_type in key_types.items():
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, table.column(name).cast(key_type))
            yield table.to_pandas()
