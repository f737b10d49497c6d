"""The demo seed: real Telco rows in SQLite with deterministic event times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from shipyard_pipeline import demo


def read(path: Path) -> pd.DataFrame:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        return pd.read_sql_table(demo.TABLE, engine)
    finally:
        engine.dispose()


def test_last_monday_is_midnight_utc_at_or_before_now() -> None:
    assert demo.last_monday(datetime(2026, 11, 25, 15, 30, tzinfo=UTC)) == datetime(2026, 11, 23, tzinfo=UTC)
    assert demo.last_monday(datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == datetime(2026, 11, 23, tzinfo=UTC)


def test_seed_spreads_every_row_over_the_26_weeks_before_last_monday(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    frame = read(demo.seed(tmp_path, now=now))
    end = pd.Timestamp("2026-11-23")
    assert len(frame) == 7043
    assert frame["customer_id"].is_unique
    assert frame["event_time"].min() >= end - timedelta(weeks=26)
    assert frame["event_time"].max() < end
    weekly = frame.groupby(frame["event_time"].dt.to_period("W-SUN")).size()
    assert len(weekly) == 26
    assert weekly.min() >= 260  # evenly spread, not clumped


def test_seeding_again_writes_identical_rows(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    first = read(demo.seed(tmp_path / "a", now=now))
    second = read(demo.seed(tmp_path / "b", now=now))
    pd.testing.assert_frame_equal(first, second)
    assert not list((tmp_path / "a" / "data").glob(".*tmp"))  # no temporary file left behind


def test_corrupt_seed_breaks_rows_the_spec_forbids(tmp_path: Path) -> None:
    frame = read(demo.seed(tmp_path, bad=True))
    assert frame["tenure"].isna().sum() > 1000
    assert (frame["monthly_charges"] < 0).any()
    assert "Lifetime" in set(frame["contract"])
