"""The data window a run owns: its data interval, or the last full interval when it has none.

Scheduled and backfill runs of a `CronDataIntervalTimetable` carry [data_interval_start,
data_interval_end). Asset-triggered runs and some manual runs carry no data interval at all;
they get the last complete interval of the spec's cron before the run was queued (or, for a
timetable with a fixed interval such as the drift DAG's, that interval before it), and the
task log says so. Steps never read the clock: the window is an argument.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    inferred: bool = False  # True: the run had no data interval; this is the last full one


def last_full_interval(cron: str, timezone: str, moment: datetime) -> tuple[datetime, datetime]:
    """The latest [previous fire, fire) of `cron` in `timezone` that ends at or before `moment`."""
    # Cron fires on whole minutes: the latest fire at or before `moment` is the latest at or
    # before its minute.
    local = moment.astimezone(ZoneInfo(timezone)).replace(second=0, microsecond=0)
    end = local if croniter.match(cron, local) else croniter(cron, local).get_prev(datetime)
    start = croniter(cron, end).get_prev(datetime)
    return start.astimezone(UTC), end.astimezone(UTC)


def run_window(
    context: dict[str, Any], cron: str, timezone: str, interval: timedelta | None = None
) -> Window:
    """The window of the running DAG run (the Airflow task context).

    Without a data interval: the `interval` before the run was queued when the timetable has a
    fixed one (a `CronTriggerTimetable(interval=...)`, like the drift DAG's), else the last full
    interval of `cron`.
    """
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start < end:
        return Window(start, end)
    run_after = context["dag_run"].run_after
    if interval is not None:
        start, end, rule = run_after - interval, run_after, f"the {interval}"
    else:
        (start, end), rule = last_full_interval(cron, timezone, run_after), "the last full interval"
    log.info(
        "run %s has no data interval (manual or asset-triggered): using %s [%s, %s) before %s (cron %r)",
        context["run_id"],
        rule,
        start.isoformat(),
        end.isoformat(),
        run_after.isoformat(),
        cron,
    )
    return Window(start, end, inferred=True)
