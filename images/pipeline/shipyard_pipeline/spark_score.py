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
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from shipyard_pipeline import snapshot
from shipyard_pipeline.scoring_model import Column, ScoringModel
from shipyard_pipeline.spark_storage import parquet_schema, read_parquet, written


@contextlib.contextmanager
def scored(
    spark: SparkSession,
    model: ScoringModel,
    published: snapshot.Snapshot,
    keys: list[str],
    batch_rows: int,
    scratch: str,
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
    snapshot_schema = parquet_schema(published.data_uri)
    key_types = {name: snapshot_schema.field(name).type for name in keys}
    scored_rows = rows.mapInPandas(functools.partial(model.scored_rows, keys), schema)
    what = f"scoring {published.data_uri}"
    with written(scored_rows, scratch, what, max_records_per_file=batch_rows) as parts:
        yield (_typed_keys(batch, key_types) for batch in parts.batches(batch_rows))


def _typed_keys(batch: pa.RecordBatch, key_types: dict[str, pa.DataType]) -> pd.DataFrame:
    """Key columns with the snapshot's types (its timestamps come back from Spark as epoch nanoseconds)."""
    table = pa.Table.from_batches([batch])
    for name, key_type in key_types.items():
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(key_type))
    return table.to_pandas()
