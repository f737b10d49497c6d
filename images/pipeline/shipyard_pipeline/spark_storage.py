"""Spark's access to the storage root: what every Spark read and write of it goes through.

The storage root is a local path or an `s3://` URI (storage.py). Spark reads and writes it as
the same objects under `s3a://`, Hadoop's S3A filesystem (hadoop-aws and the AWS SDK modules of
images/pipeline/spark-jars.txt, configured by `spark_engine.s3a_confs`), on the driver and on every
executor. What the executors write for the driver to read (ingest's parts, the split's parts, the
scored rows) goes to the run's scratch space in the storage root (`written`): on Kubernetes every
executor pod has a disk of its own, which the driver cannot read.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from shipyard_pipeline import storage
from shipyard_pipeline.errors import StepError
from shipyard_spec.contract import Env

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Parts:
    """Parquet parts the executors wrote, in Spark's order."""

    fs: AbstractFileSystem
    paths: list[str]

    def batches(self, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        for path in self.paths:
            with self.fs.open(path, "rb") as handle:
                yield from pq.ParquetFile(handle).iter_batches(batch_size=rows)


@contextlib.contextmanager
def written(
    frame: DataFrame, scratch: str, what: str, max_records_per_file: int | None = None
) -> Iterator[Parts]:
    """`frame` written by the executors as Parquet parts in a fresh directory under `scratch` (the step's
    scratch space in the storage root: on Kubernetes each executor pod has a disk of its own, so
    a directory of the step pod would receive nothing), read by the driver, removed afterwards.

    Spark computes `frame` only here, so a failure of anything it does (reading a source or a
    snapshot, a lost executor, a store that refuses the parts) ends the step with a StepError
    `{what} on Spark failed: {cause}`; the log names the scratch directory."""
    uri = storage.join(scratch, f"spark-{uuid.uuid4().hex}")
    writer = frame.write
    if max_records_per_file is not None:
        writer = writer.option("maxRecordsPerFile", max_records_per_file)
    log.info("%s on Spark: the executors write the rows to %s", what, uri)
    try:
        try:
            writer.parquet(spark_uri(uri))
        except (PySparkException, Py4JJavaError) as e:
            raise StepError(f"{what} on Spark failed: {spark_cause(e)}") from e
        fs, path = storage.filesystem(uri)
        yield Parts(fs, sorted(fs.glob(f"{path.rstrip('/')}/part-*.parquet")))
    finally:
        storage.remove(uri)


def parquet_schema(uri: str) -> pa.Schema:
    """The schema of the Parquet file at a storage URI (its footer only)."""
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as handle:
        return pq.read_schema(handle)


def spark_cause(error: PySparkException | Py4JJavaError) -> str:
    """The first line of a Spark error, and the Java exception at the root of it when that line does
    not say it: py4j's is `An error occurred while calling o54.jdbc.`, Spark's JDBC errors say
    `Couldn't connect to the database` without the database's answer (a refused login)."""
    first = str(error).strip().splitlines()[0]
    java = getattr(error, "java_exception", None) or getattr(error, "_origin", None)  # py4j's; pyspark's
    root = None
    while java is not None:
        root, java = java, java.getCause()
    root_text = " ".join(str(root.toString()).split()) if root is not None else ""
    return f"{first} ({root_text})" if root_text and root_text not in first else first
