"""A Telco-like table of N rows in a SQLite source like the demo's (benchmark data only).

Rows are the demo's Telco rows (`shipyard_pipeline.demo.telco_rows`) resampled with
replacement, so every column keeps its marginal distribution (and the columns their joint
one: the model still has something to learn and the gates still pass). The two charges get a
±1 % multiplicative jitter so the numeric columns are not 7,043 repeated values. Each row
gets a unique `customer_id` and an event time drawn as traffic arrives: more on weekdays than
at weekends, more by day than by night, over the `weeks` before `end`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from shipyard_pipeline import demo

SEED = 16
# Relative arrival rate by hour of day (UTC) and by weekday (Monday first).
HOURLY = np.array([2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 10, 10, 10, 10, 10, 10, 9, 8, 7, 6, 4, 3], float)
DAILY = np.array([10, 10, 10, 10, 9, 6, 5], float)
JITTERED = ("monthly_charges", "total_charges")
CHUNK_ROWS = 200_000


def event_times(rows: int, end: datetime, weeks: int, rng: np.random.Generator) -> pd.Series:
    """`rows` naive-UTC timestamps in [end - weeks, end), sorted, with daily and weekly cycles."""
    start = pd.Timestamp(end - timedelta(weeks=weeks)).tz_localize(None)
    days = np.arange(weeks * 7)
    day_weight = DAILY[(start.dayofweek + days) % 7]
    day = rng.choice(days, rows, p=day_weight / day_weight.sum())
    hour = rng.choice(24, rows, p=HOURLY / HOURLY.sum())
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, rows)
    return start + pd.to_timedelta(np.sort(seconds), unit="s")


def telco_like(rows: int, end: datetime, weeks: int = demo.WEEKS, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = demo.telco_rows(end, weeks).drop(columns=["customer_id", "event_time"])
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for column in JITTERED:
        frame[column] = (frame[column] * rng.uniform(0.99, 1.01, rows)).round(2)
    frame.insert(0, "customer_id", [f"S{n:09d}" for n in range(rows)])
    frame["event_time"] = event_times(rows, end, weeks, rng)
    return frame


def write_source(path: Path, rows: int, end: datetime, weeks: int = demo.WEEKS) -> Path:
    """Write table `demo.TABLE` of `rows` rows to the SQLite file `path` atomically; reuse an existing one."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = telco_like(rows, end, weeks)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{temporary}")
    try:
        frame.to_sql(
            demo.TABLE,
            engine,
            index=False,
            chunksize=CHUNK_ROWS,
            dtype={"event_time": sa.DateTime()},
        )
    finally:
        engine.dispose()
    temporary.replace(path)
    return path
