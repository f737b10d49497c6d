"""The training window in Spark (engine spark): read, deduplicated and split by Spark, not the driver.

`dataset.load` and `dataset.split`'s semantics, on Spark DataFrames:

- Read: each snapshot of the window (`dataset.window_snapshots` chose them, quarantined ones left
  out) is read by Spark, tagged with its place in the window and each row's place in the file.
  Columns are typed as pandas' concat of the snapshots types them (`window_schema`).
- Deduplicated: a row found in several snapshots is kept once, keyed by id and event time, the
  copy of the latest snapshot (the last in file order within one), as `drop_duplicates(keep="last")`.
- Split: rows ordered by (event time, id) (`time` policy; the key is unique after deduplication,
  so the order is total and the same as pandas' stable sort), or in the order of pandas'
  `sample(frac=1, random_state=seed)` (`random` policy: the permutation numpy draws for that many
  rows and that seed, broadcast to the executors); each row's position in that order, computed
  from the sorted partitions' sizes, cut at `dataset.split_points`. The parts are row for row
  those of the pandas path.

The driver holds, as pandas frames, only the test part (train's reference profile, as evaluate
scores it) and bounded samples (`model_artifact.bounded_sample`'s rows, picked by Spark) for the
MLflow signature and dataset records. Writing the split streams each part from the executors'
Parquet parts into one file, a batch at a time.
"""

from __future__ import annotations

import functools
import logging
import tempfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shipyard_pipeline import dataset, snapshot, spark_fit, spark_storage, storage
from shipyard_pipeline.errors import StepError
from shipyard_pipeline.fitting import Fit
from shipyard_pipeline.model_artifact import SAMPLE_ROWS
from shipyard_pipeline.spark_storage import read_parquet
from shipyard_pipeline.training_window import PARTS
from shipyard_spec.model import ModelConfig, PipelineSpec

log = logging.getLogger(__name__)

SNAPSHOT = "_shipyard_snapshot"  # the snapshot's place in the window
ROW = "_shipyard_row"  # the row's place in its snapshot
ORDINAL = "_shipyard_ordinal"  # monotonically_increasing_id: partition << 33 | row in partition
POSITION = "_shipyard_position"  # the row's position in split order
PART = "_shipyard_part"
PARTITION_BITS = 33
PARTITION_ROWS = 100_000  # rows a shuffle partition of the window holds (at least one partition a core)


def window_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """The Arrow types of the snapshots' concatenation (pandas' `concat`): a column typed alike in
    every snapshot keeps its type; numbers typed differently, or integers missing from a snapshot,
    become doubles; other mixes have no one Arrow type and are refused."""
    names = list(dict.fromkeys(name for schema in schemas for name in schema.names))
    fields = []
    for name in names:
        types = {schema.field(name).type for schema in schemas if name in schema.names}
        everywhere = all(name in schema.names for schema in schemas)
        numeric = all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types)
        if len(types) == 1 and (everywhere or not pa.types.is_integer(next(iter(types)))):
            kind = next(iter(types))
            if not everywhere and pa.types.is_boolean(kind):
                raise StepError(
                    f"schema drift in the training window: column {name!r} is missing from a snapshot"
                )
        elif numeric:
            kind = pa.float64()
        else:
            raise StepError(
                f"schema drift in the training window: column {name!r} has types {sorted(map(str, types))} "
                "in different snapshots (re-ingest them with --force)"
            )
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


class SparkWindow:
    """`training_window.TrainingWindow` in Spark (see the module doc)."""

    def __init__(
        self, spark: SparkSession, spec: PipelineSpec, snapshots: list[snapshot.Snapshot], scratch: str
    ) -> None:
        self._spark, self._spec, self._scratch = spark, spec, scratch
        window_rows = sum(s.manifest["rows"] for s in snapshots)
        shuffle_partitions = max(spark.sparkContext.defaultParallelism, -(-window_rows // PARTITION_ROWS))
        spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        self._schema = window_schema([spark_storage.parquet_schema(s.data_uri) for s in snapshots])
        self.features = dataset.resolve_features(spec, self._schema.empty_table().to_pandas())
        ordered = self._ordered(self._deduplicated(self._read(snapshots))).persist()
        position, total = self._positions(ordered)
        validation_start, test_start = dataset.split_points(spec, total)
        placed = F.col(POSITION)
        part = F.when(placed < validation_start, PARTS[0]).when(placed < test_start, PARTS[1])
        self._starts = dict(zip(PARTS, (0, validation_start, test_start), strict=True))

        def labels(target: pd.Series) -> pd.Series:  # on the executors
            return pd.Series(dataset.target_vector(spec, target), dtype="float64")

        self._rows = (
            ordered.withColumn(POSITION, position)
            .drop(ORDINAL)
            .withColumn(PART, part.otherwise(PARTS[2]))
            .withColumn(spark_fit.LABEL, F.pandas_udf(labels, "double")(F.col(spec.columns.target)))
            .persist()
        )
        found = {
            r[PART]: r
            for r in self._rows.groupBy(PART)
            .agg(F.count(F.lit(1)).alias("rows"), F.collect_set(spark_fit.LABEL).alias("labels"))
            .collect()
        }
        ordered.unpersist()
        self._counts = {name: found[name]["rows"] if name in found else 0 for name in PARTS}
        for name in PARTS:
            classes = {int(v) for v in found[name]["labels"]} if name in found else set()
            dataset.check_classes(name, self._counts[name], classes)
        self._written: dict[str, str] = {}

    def _read(self, snapshots: list[snapshot.Snapshot]) -> DataFrame:
        frames = [read_parquet(self._spark, s.data_uri) for s in snapshots]
        spark_types = {f.name: f.dataType for frame in frames for f in frame.schema.fields}
        typed = []
        for place, frame in enumerate(frames):
            columns = []
            for field in self._schema:
                if field.name not in frame.columns:
                    column = F.lit(None).cast(
                        "double" if pa.types.is_floating(field.type) else spark_types[field.name]
                    )
                elif pa.types.is_floating(field.type):
                    column = F.col(field.name).cast("double")
                else:
                    column = F.col(field.name)
                columns.append(column.alias(field.name))
            typed.append(
                frame.select(
                    *columns, F.lit(place).alias(SNAPSHOT), F.monotonically_increasing_id().alias(ROW)
                )
            )
        return functools.reduce(DataFrame.unionByName, typed)

    def _deduplicated(self, rows: DataFrame) -> DataFrame:
        key = [c for c in (self._spec.columns.id, self._spec.columns.event_time) if c]
        latest = Window.partitionBy(*key).orderBy(F.col(SNAPSHOT).desc(), F.col(ROW).desc())
        return rows.withColumn("_copy", F.row_number().over(latest)).where(F.col("_copy") == 1).drop("_copy")

    def _ordered(self, rows: DataFrame) -> DataFrame:
        """`rows` sorted in split order (time policy) or in window order (random), with ORDINAL."""
        columns = self._spec.columns
        timed = dataset.applied_split_policy(self._spec) == "time"
        order = [c for c in (columns.event_time, columns.id) if c] if timed else [SNAPSHOT, ROW]
        ordered = rows.orderBy(*(F.col(c).asc_nulls_last() for c in order))
        return ordered.withColumn(ORDINAL, F.monotonically_increasing_id())

    def _positions(self, ordered: DataFrame) -> tuple[Column, int]:
        """Each row's position in split order, from the sizes of the (persisted) ordered partitions;
        and the number of rows."""
        partition = F.shiftright(F.col(ORDINAL), PARTITION_BITS)
        sizes = sorted((r["p"], r["count"]) for r in ordered.groupBy(partition.alias("p")).count().collect())
        offsets = np.cumsum([0, *(count for _, count in sizes)])
        total = int(offsets[-1])
        starts = zip((p for p, _ in sizes), offsets, strict=False)
        offset = F.create_map(*(F.lit(int(v)) for p, o in starts for v in (p, o)))
        place = offset[partition] + F.col(ORDINAL).bitwiseAND(F.lit((1 << PARTITION_BITS) - 1))
        if dataset.applied_split_policy(self._spec) == "time":
            return place, total
        # pandas' sample(frac=1, random_state=seed): the row at window position permutation[j] goes to j.
        permutation = np.random.RandomState(self._spec.split.seed).permutation(total)
        inverse = np.empty(total, dtype=np.int64)
        inverse[permutation] = np.arange(total)
        shared = self._spark.sparkContext.broadcast(inverse)

        def shuffled(positions: pd.Series) -> pd.Series:  # on the executors
            return pd.Series(shared.value[positions.to_numpy()])

        return F.pandas_udf(shuffled, "long")(place), total

    @property
    def rows(self) -> dict[str, int]:
        return dict(self._counts)

    def _part(self, name: str) -> DataFrame:
        return self._rows.where(F.col(PART) == name)

    def fit(self, config: ModelConfig, tune: bool, seed: int) -> Fit:
        if tune:  # the spec refuses tuning with engine spark; a caller asking for it is a bug
            raise StepError("tuning runs on the pandas engine only (spec model.tuning with engine: spark)")
        return spark_fit.fit_model(
            self._spark, self.features, config, self._part(PARTS[0]), self._part(PARTS[1]), seed
        )

    def write_split(self, uris: dict[str, str]) -> None:
        for name in PARTS:
            rows = self._part(name).orderBy(POSITION).select(*self._schema.names)
            with (
                spark_storage.written(rows, self._scratch, f"writing the {name} split") as parts,
                tempfile.TemporaryDirectory(prefix="shipyard-spark-split-") as out,
            ):
                local = f"{out}/{name}.parquet"
                with pq.ParquetWriter(local, self._schema) as writer:
                    for batch in parts.batches():
                        writer.write_table(self._typed(pa.Table.from_batches([batch])))
                storage.upload_file(local, uris[name])
            self._written[name] = uris[name]

    def part(self, name: str) -> pd.DataFrame:
        """The part as `write_split` wrote it (call that first)."""
        fs, path = storage.filesystem(self._written[name])
        with fs.open(path, "rb") as handle:
            return pd.read_parquet(handle)

    def sample(self, name: str) -> pd.DataFrame:
        rows = self._part(name)
        if self._counts[name] <= SAMPLE_ROWS:  # the whole part, as bounded_sample gives it
            return self._typed(rows.orderBy(POSITION).select(*self._schema.names).toArrow()).to_pandas()
        start = self._starts[name]

        def present(column: str) -> Column:
            value = F.col(column)
            floating = pa.types.is_floating(self._schema.field(column).type)
            return value.isNotNull() & ~F.isnan(value) if floating else value.isNotNull()

        firsts = rows.agg(
            *(F.min(F.when(present(c), F.col(POSITION))).alias(c) for c in self._schema.names)
        ).first()
        chosen = {int(v) for v in firsts if v is not None}
        picked = rows.where((F.col(POSITION) < start + SAMPLE_ROWS) | F.col(POSITION).isin(sorted(chosen)))
        table = picked.orderBy(POSITION).select(*self._schema.names).toArrow()
        return self._typed(table).to_pandas()

    def _typed(self, table: pa.Table) -> pa.Table:
        """A table Spark wrote or collected, in the snapshots' Arrow types (event times come back from
        Spark as epoch nanoseconds)."""
        return pa.Table.from_arrays(
            [table.column(f.name).cast(f.type) for f in self._schema], schema=self._schema
        )
