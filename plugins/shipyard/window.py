"""The data window a run owns: its data interval, or one derived from what queued it.

Scheduled and backfill runs of a `CronDataIntervalTimetable` carry [data_interval_start,
data_interval_end). Asset-triggered runs and some manual runs carry no data interval at all:

- a run queued by an asset event (the drift DAG's) ends its window at the event's time, the
  moment drift was detected, so the drifted days are in the training data; the window is one
  interval of the cron long, so the training window (N intervals) keeps its length;
- any other run takes the interval before it was queued: the timetable's fixed interval (the
  drift DAG's day) or else the last complete interval of the cron.

The task log says which window and why. Steps never read the clock: the window is an argument.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

log = logging.getLogger(__name__)


class WindowSource(StrEnum):
    """Where a run's window comes from."""

    DATA_INTERVAL = "the run's data interval"
    ASSET_EVENT = "the asset event that queued the run"
    FIXED_INTERVAL = "the timetable's interval before the run"
    LAST_FULL_INTERVAL = "the last full interval of the cron"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    source: WindowSource = WindowSource.DATA_INTERVAL


def last_full_interval(cron: str, timezone: str, moment: datetime) -> tuple[datetime, datetime]:
    """The latest [previous fire, fire) of `cron` in `timezone` that ends at or before `moment`."""
    # Cron fires on whole minutes: the latest fire at or before `moment` is the latest at or
    # before its minute.
    local = moment.astimezone(ZoneInfo(timezone)).replace(second=0, microsecond=0)
    end = local if croniter.match(cron, local) else croniter(cron, local).get_prev(datetime)
    start = croniter(cron, end).get_prev(datetime)
    return start.astimezone(UTC), end.astimezone(UTC)


def interval_length(cron: str, timezone: str, moment: datetime) -> timedelta:
    """The length of the cron's last full interval before `moment` (a week, a day; DST included)."""
    start, end = last_full_interval(cron, timezone, moment)
    return end - start


def run_window(
    context: dict[str, Any], cron: str, timezone: str, interval: timedelta | None = None
) -> Window:
    """The window of the running DAG run (the Airflow task context); see the module docstring.

    `interval`: the timetable's fixed data interval (a `CronTriggerTimetable(interval=...)`, like
    the drift DAG's), else None: windows are intervals of `cron`.
    """
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start < end:
        return Window(start, end)
    run_id, dag_run = context["run_id"], context["dag_run"]
    events = sorted(dag_run.consumed_asset_events, key=lambda event: event.timestamp)
    if events:
        latest = events[-1]
        end = latest.timestamp.astimezone(UTC).replace(second=0, microsecond=0)  # cron granularity
        start = end - (interval or interval_length(cron, timezone, end))
        log.info(
            "run %s was queued by %d asset event(s), the latest %s at %s (%s): its window ends at "
            "that detection time, so the data that triggered it is in the training window: "
            "[%s, %s), one interval of cron %r",
            run_id,
            len(events),
            latest.asset.uri,
            latest.timestamp.isoformat(),
            _why(latest),
            start.isoformat(),
            end.isoformat(),
            cron,
        )
        return Window(start, end, WindowSource.ASSET_EVENT)
    run_after = dag_run.run_after
    if interval is not None:
        start, end, source = run_after - interval, run_after, WindowSource.FIXED_INTERVAL
    else:
        (start, end), source = last_full_interval(cron, timezone, run_after), WindowSource.LAST_FULL_INTERVAL
    log.info(
        "run %s has no data interval (manual): using %s [%s, %s) before %s (cron %r)",
        run_id,
        source,
        start.isoformat(),
        end.isoformat(),
        run_after.isoformat(),
        cron,
    )
    return Window(start, end, source)


def _why(event: Any) -> str:
    """What an asset event says about itself: the drift DAG puts `reason` and `reasons` in `extra`."""
    extra = event.extra or {}
    return "; ".join([str(extra.get("reason") or "no reason given"), *map(str, extra.get("reasons") or ())])
