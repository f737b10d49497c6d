"""Ingest's read of a SQL source on Spark: the interval in partitions, through Spark's JDBC reader.

The source URL (SQLAlchemy's, as the spec names it, checked by `source.sql_url` as on pandas)
becomes a JDBC URL without credentials (`sqlite:///path` -> `jdbc:sqlite:path`;
`postgresql://user:pw@host:port/db` -> `jdbc:postgresql://host:port/db`, user, password and URL
query as connection properties, never logged; a PostgreSQL URL must name its host in the
authority: JDBC has no unix sockets); the drivers are the jars `make spark` / the Spark image put
on `spark.jars`. The driver first checks the source through SQLAlchemy (`source.connected`: the
table, the event-time column, the interval's row count), so an unreachable database or a refused
login fails as on pandas, with the same message.

The interval [start, end) is cut into equal event-time sub-ranges, one JDBC `predicates` WHERE
clause each (the clause ingest's pandas read uses, `source.interval_filter`, rendered by the
source's SQLAlchemy dialect), so each partition is one range query in the database. How many:
the rows of the interval (one COUNT on the driver) over `source.chunk_rows`, and at least
Spark's default parallelism: a partition holds about a pandas chunk's rows, and every core reads.

Column types follow what the pandas read gets from the DBAPI driver: integers as 64-bit, floats
and decimals as doubles, the event time as text (ingest converts it to UTC timestamps as on
pandas) and, from SQLite (whose declared types are affinities), dates as text and booleans and
integers of any declared width as 64-bit integers. Each
partition is sorted by the ingest order on its executor and written as Parquet parts; the parts,
in partition order (= event-time order), come back to the step as chunks, which ingest spills,
checks, types and publishes as one snapshot exactly as it does the pandas chunks.

File sources are read by pandas on both engines (`source.read_interval`): Spark's CSV type
inference is not pandas', and the snapshot's types must not depend on the engine.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipyard_pipeline import source, spark_storage
from shipyard_pipeline.errors import StepError
from shipyard_spec.model import PipelineSpec, SqlSource

log = logging.getLogger(__name__)

ROWS_ALIAS = "source_rows"


@dataclass(frozen=True)
class JdbcSource:
    url: str  # no credentials: safe to log
    properties: dict[str, str] = field(repr=False)  # driver class, user, password: never logged
    dialect: sa.Dialect = field(repr=False)
    # SQLite: a declared type is an affinity; dates are text, booleans and integers of any declared
    # width (an unsigned BIGINT is a DECIMAL(20,0) to Spark) are 64-bit integers to the DBAPI driver.
    affinities: bool


def jdbc_source(url: sa.URL) -> JdbcSource:
    """The JDBC form of a SQL source's URL (`source.sql_url`: one of `source.DRIVERS`)."""
    return JDBC_SOURCES[url.get_backend_name()](url)


def _sqlite(url: sa.URL) -> JdbcSource:
    if not url.database or url.database == ":memory:":
        raise StepError(f"engine: spark reads a SQLite source from a file, not {source.describe_url(url)}")
    return JdbcSource(f"jdbc:sqlite:{url.database}", {"driver": "org.sqlite.JDBC"}, url.get_dialect()(), True)


def _postgresql(url: sa.URL) -> JdbcSource:
    # libpq (the pandas read) takes a unix socket directory, or several hosts, as ?host=; JDBC reads one
    # TCP address, on every executor: a URL that is not one would be read from elsewhere, if at all.
    if not url.host or "host" in url.query or "port" in url.query:
        raise StepError(
            f"engine: spark reads PostgreSQL over TCP from the host and port in the URL's authority "
            f"(postgresql://user:password@host:port/database), not {source.describe_url(url)}"
        )
    properties = {"driver": "org.postgresql.Driver"}
    properties |= {"user": url.username} if url.username else {}
    properties |= {"password": url.password} if url.password else {}
    # The query's parameters win, as in SQLAlchemy's connect arguments for psycopg (`?user=`, `?password=`).
    properties |= {
        name: ",".join(value) if isinstance(value, tuple) else value for name, value in url.query.items()
    }
    jdbc_url = f"jdbc:postgresql://{url.host}:{url.port or 5432}/{url.database or ''}"
    return JdbcSource(jdbc_url, properties, url.get_dialect()(), False)


# One translation for each backend `source.DRIVERS` reads (a test checks they match).
JDBC_SOURCES = {"sqlite": _sqlite, "postgresql": _postgresql}


def sub_ranges(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into `parts` adjoining ranges of equal length."""
    bounds = [start + (end - start) * i / parts for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def partitions(rows: int, chunk_rows: int, parallelism: int) -> int:
    """About `chunk_rows` rows a partition, and at least one partition a core."""
    return max(parallelism, math.ceil(rows / chunk_rows), 1)


def custom_schema(declared: T.StructType, event_time: str | None, affinities: bool) -> str:
    """Spark's `customSchema` reading the columns as pandas' read gets them (see the module doc)."""
    as_text: tuple[type[T.DataType], ...] = (T.TimestampType, T.TimestampNTZType, T.DateType)
    types = {}
    for column in declared.fields:
        kind = column.dataType
        if column.name == event_time or (affinities and isinstance(kind, as_text)):
            types[column.name] = "STRING"
        elif isinstance(kind, T.ByteType | T.ShortType | T.IntegerType) or (
            affinities
            and (isinstance(kind, T.BooleanType) or (isinstance(kind, T.DecimalType) and kind.scale == 0))
        ):
            types[column.name] = "BIGINT"
        elif isinstance(kind, T.FloatType | T.DecimalType):
            types[column.name] = "DOUBLE"
    return ", ".join(f"`{name.replace('`', '``')}` {kind}" for name, kind in types.items())


@contextlib.contextmanager
def read_interval(
    spark: SparkSession, spec: PipelineSpec, start: datetime, end: datetime, order: list[str], scratch: str
) -> Iterator[Iterator[pd.DataFrame]]:
    """`source.read_interval` for a SQL source, read by Spark (see the module doc)."""
    sql = spec.source
    assert isinstance(sql, SqlSource)
    event_time = spec.columns.event_time
    url = source.sql_url(sql)
    jdbc = jdbc_source(url)
    selected = source.select_rows(sql)
    with source.connected(sql, event_time) as connection:  # the pandas read's table checks
        counted = selected.where(source.interval_filter(event_time, start, end)) if event_time else selected
        rows = connection.execute(sa.select(sa.func.count()).select_from(counted.subquery())).scalar_one()
    table = f"({compiled(selected, jdbc.dialect)}) AS {ROWS_ALIAS}"
    predicates = None
    if event_time:
        count = partitions(rows, sql.chunk_rows, spark.sparkContext.defaultParallelism)
        ranges = sub_ranges(start, end, count)
        predicates = [compiled(source.interval_filter(event_time, a, b), jdbc.dialect) for a, b in ranges]
    log.info(
        "reading %d rows of %s on Spark: %d partition(s) by %s",
        rows, jdbc.url, len(predicates or [None]), event_time or "none (no event time)",
    )  # fmt: skip
    try:
        declared = spark.read.jdbc(jdbc.url, table, properties=jdbc.properties).schema
        properties = dict(jdbc.properties)
        if schema := custom_schema(declared, event_time, jdbc.affinities):
            properties["customSchema"] = schema
        frame = spark.read.jdbc(jdbc.url, table, predicates=predicates, properties=properties)
        frame = frame.sortWithinPartitions(*(F.col(name).asc_nulls_last() for name in order))
        with spark_storage.written(frame, scratch, f"reading {source.describe_url(url)}") as parts:
            chunks = (batch.to_pandas() for batch in parts.batches(sql.chunk_rows))
            yield (source.with_utc_event_times(spec, chunk) for chunk in chunks)
    except (PySparkException, Py4JJavaError) as e:
        cause = spark_storage.spark_cause(e)
        raise StepError(f"reading {source.describe_url(url)} on Spark failed: {cause}") from e


def compiled(clause: sa.ClauseElement, dialect: sa.Dialect) -> str:
    """SQL text with its values inlined, as the source's database reads it."""
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
