"""Copies of the demo table that are awkward to read: for the ingest and validate tests of both engines."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from shipyard_pipeline import demo


def write_awkward_source(url: str, shipyard_home: Path, week_start: datetime) -> str:
    """The demo table stored out of time order, with NULLs in an integer and a text column in the
    first 100 rows from `week_start`, into the database at SQLAlchemy `url` (a SQLite file, a
    PostgreSQL database); returns `url`. A reader in pieces (pandas chunks, Spark partitions) sees
    the integer column only NULL, then only integers, and must still give the one float64 column
    (and the content hash) of a read in one piece."""
    source = sa.create_engine(f"sqlite:///{shipyard_home / demo.DATABASE}")
    rows = pd.read_sql_table(demo.TABLE, source)
    source.dispose()
    in_week = rows.index[(rows["event_time"] >= week_start.replace(tzinfo=None))][:100]
    rows.loc[in_week, ["senior_citizen", "payment_method"]] = None
    target = sa.create_engine(url)
    try:
        rows.sample(frac=1, random_state=3).to_sql(
            demo.TABLE, target, index=False, dtype={"event_time": sa.DateTime()}
        )
    finally:
        target.dispose()
    return url


def charges_as_text(database: Path, column: str) -> Path:
    """The demo table in `database` with `column` (a charge) arriving as text, e.g. `$29.85`, as after
    an upstream export change."""
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        frame = pd.read_sql_table(demo.TABLE, engine)
        frame[column] = frame[column].map(lambda v: f"${v:.2f}")
        frame.to_sql(
            demo.TABLE, engine, if_exists="replace", index=False, dtype={"event_time": sa.DateTime()}
        )
    finally:
        engine.dispose()
    return database
