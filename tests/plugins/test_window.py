"""The window a run owns: its data interval, or the last full interval of the cron when it has none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.api.datamodels._generated import AssetEventDagRunReference, AssetReferenceAssetEventDagRun

from shipyard.window import Window, WindowSource, last_full_interval, run_window

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
    ids=["no interval", "empty interval"],
)
def test_a_manual_run_without_an_interval_takes_the_last_full_one_and_says_so(
    interval: dict, caplog: pytest.LogCaptureFixture
) -> None:
    context = {
        **interval,
        "run_id": "manual__1",
        "dag_run": SimpleNamespace(run_after=datetime(2026, 3, 11, 9, tzinfo=UTC), consumed_asset_events=[]),
    }
    with caplog.at_level("INFO", logger="shipyard.window"):
        window = run_window(context, WEEKLY, "UTC")
    assert window == Window(*LAST_WEEK, WindowSource.LAST_FULL_INTERVAL)
    assert "manual__1 has no data interval" in caplog.text
    assert (
        "last full interval of the cron [2026-03-02T00:00:00+00:00, 2026-03-09T00:00:00+00:00)" in caplog.text
    )


def drift_event(timestamp: datetime) -> AssetEventDagRunReference:
    """An asset event as the task context carries it (`dag_run.consumed_asset_events`)."""
    return AssetEventDagRunReference(
        asset=AssetReferenceAssetEventDagRun(
            name="telco_churn_drift", uri="shipyard://telco_churn/drift", extra={}
        ),
        extra={"reason": "drift", "reasons": ["feature contract PSI 0.91 > 0.2"]},
        source_task_id="emit_drift_event",
        source_dag_id="shipyard_drift_telco_churn",
        source_run_id="scheduled__1",
        source_map_index=-1,
        source_aliases=[],
        timestamp=timestamp,
    )


def test_a_drift_triggered_run_trains_up_to_the_detection_time_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Drift found on Wednesday 04:05:37, two days after the last weekly run's window ended: the
    # last full interval (LAST_WEEK) would leave the drifted Monday-Wednesday out of training.
    detected = datetime(2026, 3, 11, 4, 5, 37, tzinfo=UTC)
    context = {
        "run_id": "asset_triggered__1",
        "dag_run": SimpleNamespace(
            run_after=detected + timedelta(seconds=3),
            consumed_asset_events=[drift_event(detected - timedelta(days=1)), drift_event(detected)],
        ),
    }
    with caplog.at_level("INFO", logger="shipyard.window"):
        window = run_window(context, WEEKLY, "UTC")
    end = datetime(2026, 3, 11, 4, 5, tzinfo=UTC)  # the latest event, to the minute
    assert window == Window(end - timedelta(weeks=1), end, WindowSource.ASSET_EVENT)
    assert window.end > LAST_WEEK[1]
    assert (
        "asset_triggered__1 was queued by 2 asset event(s), the latest shipyard://telco_churn/drift at "
        "2026-03-11T04:05:37+00:00 (drift; feature contract PSI 0.91 > 0.2)"
    ) in caplog.text
    assert "[2026-03-04T04:05:00+00:00, 2026-03-11T04:05:00+00:00)" in caplog.text


def test_a_timetable_with_a_fixed_interval_takes_that_much_before_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The drift DAG: CronTriggerTimetable("0 4 * * *", interval=1 day), a run queued at 09:00.
    run_after = datetime(2026, 3, 11, 9, tzinfo=UTC)
    context = {
        "run_id": "manual__1",
        "dag_run": SimpleNamespace(run_after=run_after, consumed_asset_events=[]),
    }
    with caplog.at_level("INFO", logger="shipyard.window"):
        window = run_window(context, "0 4 * * *", "UTC", interval=timedelta(days=1))
    assert window == Window(datetime(2026, 3, 10, 9, tzinfo=UTC), run_after, WindowSource.FIXED_INTERVAL)
    assert "interval before the run [2026-03-10T09:00:00+00:00, 2026-03-11T09:00:00+00:00)" in caplog.text
