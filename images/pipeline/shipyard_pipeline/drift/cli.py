"""Arguments of the drift step: the step CLI contract plus `--log-root` (docs/architecture.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient

from shipyard_pipeline.drift.step import Window, run_drift_check
from shipyard_spec import SpecError, load_spec

DEFAULT_RESULT_PATH = "/airflow/xcom/return.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipyard-step drift", description=__doc__)
    parser.add_argument("--spec", required=True, help="pipeline spec YAML")
    parser.add_argument(
        "--interval-start", required=True, type=_utc, help="window start, ISO-8601 (inclusive)"
    )
    parser.add_argument("--interval-end", required=True, type=_utc, help="window end, ISO-8601 (exclusive)")
    parser.add_argument("--run-id", required=True, help="Airflow run id; names the report directory")
    parser.add_argument("--storage-root", required=True, help="local path or fsspec URI")
    parser.add_argument("--result-path", default=DEFAULT_RESULT_PATH, help="where the JSON result goes")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The drift step's own option, beside the common step arguments."""
    parser.add_argument(
        "--log-root", default=None, help="prediction log root (default: {storage-root}/prediction_logs)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the check and write the result; drift is a finding, not a failure (exit 0)."""
    spec = load_spec(args.spec)
    storage_root = str(args.storage_root)
    window = Window(
        spec=spec,
        start=_utc(args.interval_start),
        end=_utc(args.interval_end),
        run_id=args.run_id,
        storage_root=storage_root,
        log_root=args.log_root or f"{storage_root.rstrip('/')}/prediction_logs",
    )
    if window.end <= window.start:
        raise ValueError(f"interval end {window.end} is not after interval start {window.start}")
    result = run_drift_check(window, MlflowClient())
    path = Path(args.result_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (SpecError, ValueError, RuntimeError) as e:
        print(f"drift: {e}", file=sys.stderr)
        return 1


def _utc(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
