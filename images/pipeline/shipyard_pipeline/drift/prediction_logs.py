"""Read one window of the predictor's sampled prediction log (see docs/architecture.md).

Layout: `{log_root}/{model_name}/date=<YYYY-MM-DD>/part-<unix_ms>-<pid>.jsonl`, one JSON
record per line: `{"ts", "model_name", "model_version", "inputs": {...}, "score"}` and,
when the caller sent one, `"id"` (needed to join late labels).

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
from datetime import UTC, datetime, timedelta

import fsspec
import pandas as pd

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


def read_window(log_root: str, model_name: str, version: str, start: datetime, end: datetime) -> LogWindow:
    """Rows of `model_name` version `version` with `start <= ts < end`, one column per input."""
    fs, root = fsspec.core.url_to_fs(log_root)
    window = LogWindow(rows=pd.DataFrame())
    records: list[dict[str, object]] = []
    for day in partition_dates(start, end):
        for path in sorted(fs.glob(f"{root}/{model_name}/date={day}/part-*.jsonl")):
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


def write_parts(log_root: str, model_name: str, records: list[dict[str, object]]) -> list[str]:
    """Write records as one part file the way the predictor does (demo traffic, tests).

    Records are grouped by the date of their `ts`; each group is written to a temporary
    name and renamed into place, so a reader never sees half a file.
    """
    fs, root = fsspec.core.url_to_fs(log_root)
    by_day: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_day.setdefault(_utc(str(record["ts"])).date().isoformat(), []).append(record)
    written = []
    for day, group in by_day.items():
        directory = f"{root}/{model_name}/date={day}"
        fs.makedirs(directory, exist_ok=True)
        unix_ms = time.time_ns() // 1_000_000
        while fs.exists(f"{directory}/part-{unix_ms}-{os.getpid()}.jsonl"):
            unix_ms += 1  # two parts within one millisecond
        final = f"{directory}/part-{unix_ms}-{os.getpid()}.jsonl"
        with fs.open(f"{directory}/.{unix_ms}.tmp", "w") as handle:
            handle.writelines(json.dumps(record, default=str) + "\n" for record in group)
        fs.mv(f"{directory}/.{unix_ms}.tmp", final)
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
                        "ts": _utc(record["ts"]),
                        "model_version": str(record["model_version"]),
                        "inputs": dict(record["inputs"]),
                        "score": float(record["score"]),
                        "id": record.get("id"),
                    }
                )
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"line {number}: {e}") from e
    return records


def _utc(text: str) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _to_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(columns=["ts", "id", "score"])
    inputs = pd.DataFrame.from_records([r["inputs"] for r in records])
    meta = pd.DataFrame({key: [r[key] for r in records] for key in ("ts", "id", "score")})
    return pd.concat([inputs.drop(columns=meta.columns, errors="ignore"), meta], axis=1)
