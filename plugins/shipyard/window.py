"""The data window a run owns: its data interval, or the last full interval when it has none.

Scheduled and backfill runs of a `CronDataIntervalTimetable` carry [data_interval_start,
data_interval_end). Asset-triggered runs and some manual runs carry no data interval at all;
they get the last complete interval of the spec's cron before the run was queued, and the
task log says so. Steps never read the clock: the window is an argument.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
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


def run_window(context: dict[str, Any], cron: str, timezone: str) -> Window:
    """The window of the running DAG run (the Airflow task context)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start < end:
        return Window(start, end)
    run_after = context["dag_run"].run_after
    start, end = last_full_interval(cron, timezone, run_after)
    log.info(
        "run %s has no data interval (manual or asset-triggered): using the last full interval "
        "[%s, %s) of %r before %s",
        context["run_id"],
        start.isoformat(),
        end.isoformat(),
        cron,
        run_after.isoformat(),
    )
    return Window(start, end, inferred=True)
