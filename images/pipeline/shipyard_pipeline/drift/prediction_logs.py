"""Read one window of the predictor's sampled prediction log (see docs/architecture.md).

Layout: `{log_root}/{model_name}/date=<YYYY-MM-DD>/part-<unix_ms>-<pid>.jsonl`, one JSON
record per line: `{"ts", "model_name", "model_version", "inputs": {...}, "score"}` and,
when the caller sent one, `"id"` (needed to join late labels). `model_name` is the served
name of the pipeline (`contract.serving_name`: `telco_churn` is served as `telco-churn`), so
the directory is `contract.prediction_log_dir(log_root, contract.serving_name(pipeline))`.

A window is rarely clean: the champion changed mid-day (rows of other versions are counted
and left out), a disk filled up (a file that does not parse is skipped and counted, never
fatal for the rest of the window). The predictor renames files into place when complete,
so a half-written file is not matched by `part-*.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import fsspec
import pandas as pd

from shipyard_pipeline import storage
from shipyard_pipeline.context import to_utc
from shipyard_spec.contract import prediction_log_dir, serving_name

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("ts", "model_version", "inputs", "score")


@dataclass
class LogWindow:
    """The champion's rows of one window, and what was left out of it."""

    rows: pd.DataFrame
    files_read: int = 0
    other_versions: Counter[str] = field(default_factory=Counter)
    corrupt_files: list[str] = field(default_factory=list)

    @property
    def rows_other_versions(self) -> int:
        return sum(self.other_versions.values())

    def counts(self) -> dict[str, object]:
        return {
            "files_read": self.files_read,
            "rows_read": len(self.rows),
            "rows_ignored_other_versions": self.rows_other_versions,
            "other_versions": dict(self.other_versions),
            "corrupt_files_skipped": len(self.corrupt_files),
        }


def partition_dates(start: datetime, end: datetime) -> list[str]:
    """The `date=` partitions that can hold rows with start <= ts < end (UTC)."""
    last = (end - timedelta(microseconds=1)).date()
    day, dates = start.date(), []
    while day <= last:
        dates.append(day.isoformat())
        day += timedelta(days=1)
    return dates


def log_dir(log_root: str, pipeline: str) -> str:
    """Where the predictor serving `pipeline` logs: the contract's rule, in one place here."""
    return prediction_log_dir(log_root, serving_name(pipeline))


def read_window(log_root: str, pipeline: str, version: str, start: datetime, end: datetime) -> LogWindow:
    """Rows of `pipeline`'s served model at `version` with `start <= ts < end`, one column per input."""
    fs, root = storage.filesystem(log_dir(log_root, pipeline))
    window = LogWindow(rows=pd.DataFrame())
    records: list[dict[str, object]] = []
    for day in partition_dates(start, end):
        for path in sorted(fs.glob(f"{root}/date={day}/part-*.jsonl")):
            try:
                parsed = _parse_file(fs, path)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                log.warning("skipping corrupt prediction log %s: %s", path, e)
                window.corrupt_files.append(path)
                continue
            window.files_read += 1
            for record in parsed:
                if not start <= record["ts"] < end:
                    continue
                if record["model_version"] != version:
                    window.other_versions[record["model_version"]] += 1
                    continue
                records.append(record)
    window.rows = _to_frame(records)
    return window


def write_parts(log_root: str, pipeline: str, records: list[dict[str, object]]) -> list[str]:
    """Write records as part files the way the predictor does (demo traffic, tests): one per
    date of their `ts`, published atomically (`storage.write_text`), so a reader never sees
    half a file. Returns the URIs written."""
    by_day: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_day.setdefault(to_utc(str(record["ts"])).date().isoformat(), []).append(record)
    written = []
    for day, group in by_day.items():
        directory = storage.join(log_dir(log_root, pipeline), f"date={day}")
        unix_ms = time.time_ns() // 1_000_000
        while storage.exists(storage.join(directory, f"part-{unix_ms}-{os.getpid()}.jsonl")):
            unix_ms += 1  # two parts within one millisecond
        final = storage.join(directory, f"part-{unix_ms}-{os.getpid()}.jsonl")
        storage.write_text(final, "".join(json.dumps(record, default=str) + "\n" for record in group))
        written.append(final)
    return written


def _parse_file(fs: fsspec.AbstractFileSystem, path: str) -> list[dict[str, object]]:
    records = []
    with fs.open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                missing = [key for key in REQUIRED_KEYS if key not in record]
                if missing:
                    raise KeyError(f"keys {missing} missing")
                records.append(
                    {
                        "ts": to_utc(record["ts"]),
                        "model_version": str(record["model_version"]),
                        "inputs": dict(record["inputs"]),
                        "score": float(record["score"]),
                        "id": record.get("id"),
                    }
                )
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"line {number}: {e}") from e
    return records


def _to_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(columns=["ts", "id", "score"])
    inputs = pd.DataFrame.from_records([r["inputs"] for r in records])
    meta = pd.DataFrame({key: [r[key] for r in records] for key in ("ts", "id", "score")})
    return pd.concat([inputs.drop(columns=meta.columns, errors="ignore"), meta], axis=1)
