"""Publish the snapshots of the N intervals before a run's interval, in one process.

Run in the PIPELINE virtualenv. A weekly pipeline trains on the last 26 snapshots; a fresh
install has none, and 25 Airflow runs only to ingest would take minutes. This publishes what
a backfill of the ingest task would have published (same code: `shipyard_pipeline.ingest.run`,
run id `history__<interval start>`), so `make demo` and the end-to-end test can run the DAG
once for the latest interval. Intervals already published are left alone.

    .venv/pipeline/bin/python scripts/ingest_history.py --spec dags/pipelines/telco_churn.yaml \
        --storage-root .shipyard/storage --interval-start 2026-11-16T00:00:00+00:00 \
        --interval-end 2026-11-23T00:00:00+00:00 --intervals 25
"""

from __future__ import annotations

import argparse
import logging

from shipyard_pipeline import ingest
from shipyard_pipeline.context import RunContext, to_utc
from shipyard_spec import load_spec


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--storage-root", required=True)
    parser.add_argument("--interval-start", required=True, type=to_utc, help="the run's interval start")
    parser.add_argument("--interval-end", required=True, type=to_utc, help="the run's interval end")
    parser.add_argument("--intervals", required=True, type=int, help="how many intervals before it")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    length = args.interval_end - args.interval_start
    published = 0
    for back in range(args.intervals, 0, -1):
        start = args.interval_start - back * length
        context = RunContext(spec, start, start + length, f"history__{start.isoformat()}", args.storage_root)
        published += not ingest.run(context)["skipped"]
    print(f"history: {args.intervals} interval(s) before {args.interval_start.isoformat()}, {published} new")


if __name__ == "__main__":
    main()
