"""Read the rows of one data interval from the spec's source (SQL through SQLAlchemy, or files).

The event-time filter [start, end) runs in the database for SQL sources, so a weekly run
reads one week, not the whole table. Event times are UTC; naive values are taken as UTC.
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


def describe(spec: PipelineSpec) -> str:
    """The source without credentials, for logs and manifests."""
    source = spec.source
    if isinstance(source, SqlSource):
        url = sa.engine.make_url(expand_env(source.url)).render_as_string(hide_password=True)
        return f"{url} table={source.table}" if source.table else f"{url} query"
    return ", ".join(source.paths)


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
    url = expand_env(source.url)
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


def _check_table(connection: sa.Connection, table: str, event_time: str | None, url: str) -> None:
    inspector = sa.inspect(connection)
    if not inspector.has_table(table):
        raise StepError(f"table {table!r} does not exist in {describe_url(url)}")
    columns = [column["name"] for column in inspector.get_columns(table)]
    if event_time and event_time not in columns:
        raise CheckFailed(
            f"schema drift: table {table!r} has no column columns.event_time = {event_time!r} "
            f"(columns found: {columns})"
        )


def describe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


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
