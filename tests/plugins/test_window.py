"""The window a run owns: its data interval, or the last full interval of the cron when it has none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from shipyard.window import Window, last_full_interval, run_window

WEEKLY = "0 0 * * 1"


LAST_WEEK = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 11, 15, 30, tzinfo=UTC),  # mid-week: the week that ended last Monday
        datetime(2026, 3, 9, tzinfo=UTC),  # exactly on a fire time: the week ending now is complete
        datetime(2026, 3, 9, 0, 0, 42, tzinfo=UTC),  # seconds after a fire time: the same minute
    ],
)
def test_last_full_interval_of_a_weekly_cron(moment: datetime) -> None:
    assert last_full_interval(WEEKLY, "UTC", moment) == LAST_WEEK


def test_last_full_interval_follows_the_spec_time_zone() -> None:
    # Monday 00:00 in Berlin (winter) is Sunday 23:00 UTC.
    start, end = last_full_interval(WEEKLY, "Europe/Berlin", datetime(2026, 3, 4, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 2, 22, 23, tzinfo=UTC), datetime(2026, 3, 1, 23, tzinfo=UTC))


def test_a_scheduled_run_keeps_its_data_interval() -> None:
    start, end = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
    context = {"data_interval_start": start, "data_interval_end": end, "run_id": "scheduled__x"}
    assert run_window(context, WEEKLY, "UTC") == Window(start, end)


NOW = datetime(2026, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "interval",
    [{}, {"data_interval_start": NOW, "data_interval_end": NOW}],
    ids=["asset-triggered: no interval", "manual: empty interval"],
)
def test_a_run_without_an_interval_takes_the_last_full_one_and_says_so(
    interval: dict, caplog: pytest.LogCaptureFixture
) -> None:
    context = {
        **interval,
        "run_id": "asset_triggered__1",
        "dag_run": SimpleNamespace(run_after=datetime(2026, 3, 11, 9, tzinfo=UTC)),
    }
    with caplog.at_level("INFO", logger="shipyard.window"):
        window = run_window(context, WEEKLY, "UTC")
    assert window == Window(*LAST_WEEK, inferred=True)
    assert "asset_triggered__1 has no data interval" in caplog.text
    assert "last full interval [2026-03-02T00:00:00+00:00, 2026-03-09T00:00:00+00:00)" in caplog.text


def test_a_timetable_with_a_fixed_interval_takes_that_much_before_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The drift DAG: CronTriggerTimetable("0 4 * * *", interval=1 day), a run queued at 09:00.
    run_after = datetime(2026, 3, 11, 9, tzinfo=UTC)
    context = {"run_id": "manual__1", "dag_run": SimpleNamespace(run_after=run_after)}
    with caplog.at_level("INFO", logger="shipyard.window"):
        window = run_window(context, "0 4 * * *", "UTC", interval=timedelta(days=1))
    assert window == Window(datetime(2026, 3, 10, 9, tzinfo=UTC), run_after, inferred=True)
    assert "using the 1 day, 0:00:00 [2026-03-10T09:00:00+00:00, 2026-03-11T09:00:00+00:00)" in caplog.text
