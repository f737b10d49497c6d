"""Read the rows of one data interval from the spec's source (SQL through SQLAlchemy, or files).

The event-time filter [start, end) runs in the database for SQL sources, so a weekly run
reads one week, not the whole table. Event times are UTC; naive values are taken as UTC.

A SQL source's URL is a SQLAlchemy URL of a driver the pipeline image has (`DRIVERS`): a SQLite
file, or a PostgreSQL database through psycopg 3 (`postgresql://`, SQLAlchemy 2.1's default for
it, or `postgresql+psycopg://`). Credentials come in the URL, usually as `${VAR}` expanded from
the step's environment (a Secret on Kubernetes); whatever is logged, raised or written to a
manifest names the source by `describe_url`, without them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from shipyard_pipeline import storage
from shipyard_pipeline.context import expand_env, to_utc
from shipyard_pipeline.errors import CheckFailed, StepError
from shipyard_spec.model import FileSource, PipelineSpec, SqlSource

# SQLAlchemy backend -> the one DBAPI driver of it in the pipeline lock (both engines read these URLs).
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}
URL_FORMS = "sqlite:///path, postgresql://user:password@host:port/database (or postgresql+psycopg://)"


def describe(spec: PipelineSpec) -> str:
    """The source without credentials, for logs and manifests."""
    source = spec.source
    if isinstance(source, SqlSource):
        url = describe_url(sql_url(source))
        return f"{url} table={source.table}" if source.table else f"{url} query"
    return ", ".join(source.paths)


def sql_url(source: SqlSource) -> sa.URL:
    """The source's URL, `${VAR}` expanded, checked to name a driver the pipeline image has."""
    try:
        url = sa.engine.make_url(expand_env(source.url))
    except sa.exc.ArgumentError as e:  # the message does not repeat the URL
        raise StepError(f"source.url is not a SQLAlchemy URL ({e}); the forms read: {URL_FORMS}") from e
    backend = url.get_backend_name()  # before the driver's name, which loads the dialect
    if backend not in DRIVERS or url.get_driver_name() != DRIVERS[backend]:
        raise StepError(
            f"source.url {describe_url(url)}: no driver for {url.drivername} in the pipeline image; "
            f"the forms read: {URL_FORMS}"
        )
    return url


def read_interval(
    spec: PipelineSpec, start: datetime, end: datetime, order: list[str]
) -> Iterator[pd.DataFrame]:
    """Rows with event time in [start, end) (every row when the spec has no event-time column),
    sorted by the `order` columns, in chunks. A SQL source sorts in the database and is read
    `source.chunk_rows` rows at a time; files are read and sorted whole (one chunk). A chunk's
    dtypes are pandas' inference on that chunk alone (see `chunks.Spill`)."""
    if isinstance(spec.source, SqlSource):
        chunks = _read_sql(spec.source, spec.columns.event_time, start, end, order)
    else:
        frame = _read_files(spec.source)
        if spec.columns.event_time:
            frame = _require_column(frame, spec.columns.event_time, describe(spec))
            times = pd.to_datetime(frame[spec.columns.event_time], utc=True)
            frame = frame[(times >= to_utc(start)) & (times < to_utc(end))]
        chunks = iter([frame])
    for chunk in chunks:
        chunk = with_utc_event_times(spec, chunk)
        if isinstance(spec.source, FileSource):
            chunk = chunk.sort_values(order, kind="stable") if order else chunk
        yield chunk.reset_index(drop=True)


def with_utc_event_times(spec: PipelineSpec, chunk: pd.DataFrame) -> pd.DataFrame:
    """`chunk` with its event times (text or timestamps, as the source holds them) as UTC timestamps."""
    if spec.columns.event_time:
        chunk = _require_column(chunk, spec.columns.event_time, describe(spec))
        chunk[spec.columns.event_time] = pd.to_datetime(chunk[spec.columns.event_time], utc=True)
    return chunk


def _require_column(frame: pd.DataFrame, column: str, where: str) -> pd.DataFrame:
    if column not in frame.columns:
        raise StepError(
            f"columns.event_time = {column!r} is missing from {where} (columns found: {list(frame.columns)})"
        )
    return frame


def _read_sql(
    source: SqlSource, event_time: str | None, start: datetime, end: datetime, order: list[str]
) -> Iterator[pd.DataFrame]:
    with connected(source, event_time) as connection:
        query = select_rows(source)
        if event_time:
            query = query.where(interval_filter(event_time, start, end))
        query = query.order_by(*(sa.column(name) for name in order))
        streaming = connection.execution_options(stream_results=True, max_row_buffer=source.chunk_rows)
        yield from pd.read_sql_query(query, streaming, chunksize=source.chunk_rows)


@contextlib.contextmanager
def connected(source: SqlSource, event_time: str | None) -> Iterator[sa.Connection]:
    """A connection to the source, its table checked (it exists, it has the event-time column); a
    database error is a StepError naming the source without credentials."""
    url = sql_url(source)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if source.table is not None:
                _check_table(connection, source.table, event_time, url)
            yield connection
    except sa.exc.SQLAlchemyError as e:
        cause = str(e).splitlines()[0]
        raise StepError(f"reading {describe_url(url)} failed: {cause}") from e
    finally:
        engine.dispose()


def select_rows(source: SqlSource) -> sa.Select:
    """Every row of the source's table or query."""
    rows = (
        sa.table(source.table) if source.table else sa.text(source.query).columns().subquery("source_query")
    )
    return sa.select(sa.text("*")).select_from(rows)


def interval_filter(event_time: str, start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    """Event time in [start, end), bound as naive UTC: the type most SQL stores use for event times."""
    column = sa.column(event_time, sa.DateTime())
    return sa.and_(column >= to_utc(start).replace(tzinfo=None), column < to_utc(end).replace(tzinfo=None))


def _check_table(connection: sa.Connection, table: str, event_time: str | None, url: sa.URL) -> None:
    inspector = sa.inspect(connection)
    if not inspector.has_table(table):
        raise StepError(f"table {table!r} does not exist in {describe_url(url)}")
    columns = [column["name"] for column in inspector.get_columns(table)]
    if event_time and event_time not in columns:
        raise CheckFailed(
            f"schema drift: table {table!r} has no column columns.event_time = {event_time!r} "
            f"(columns found: {columns})"
        )


def describe_url(url: sa.URL) -> str:
    """`url` without its password: `***` in the URL, a query parameter (libpq reads `?password=`) left out."""
    return url.difference_update_query(["password"]).render_as_string(hide_password=True)


def _read_files(source: FileSource) -> pd.DataFrame:
    frames = []
    for pattern in source.paths:
        fs, path = storage.filesystem(expand_env(pattern))
        matches = sorted(fs.glob(path)) if any(c in path for c in "*?[") else [path]
        found = [match for match in matches if fs.exists(match)]
        if not found:
            raise StepError(f"source file {pattern!r} does not exist")
        for match in found:
            with fs.open(match, "rb") as handle:
                frames.append(pd.read_parquet(handle) if source.format == "parquet" else pd.read_csv(handle))
    return pd.concat(frames, ignore_index=True)
