"""Reading the predictors' JSON Lines logs on the Airflow side, newest first.

One reader for every log laid out as the contract says (`shipyard_spec.contract`: part files
`part-*.jsonl` under `date=<YYYY-MM-DD>` partitions, renamed into place when complete, so a
half-written file is never matched; part names start with their unix milliseconds): the
prediction log the compatibility replay and the replay shadow sample, and the live shadow's
paired log. A part that does not parse is skipped and logged (a disk that filled up), never
fatal; a log that cannot be listed raises OSError for the caller to judge. Standard library
and fsspec (imported when called).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shipyard_spec.contract import PREDICTION_LOG_PART_GLOB, join, prediction_log_partition

log = logging.getLogger(__name__)


def _parts_newest_first(log_dir: str, since: datetime | None) -> tuple[Any, list[str]]:
    """The filesystem of `log_dir` and its part files from `since`'s day on, newest first."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(log_dir)
        paths = fs.glob(join(prediction_log_partition(root, "*"), PREDICTION_LOG_PART_GLOB))
    except (ImportError, ValueError) as e:  # an unknown protocol, a malformed URI
        raise OSError(f"cannot list the log {log_dir}: {e}") from e
    if since is not None:
        first_day = f"date={since.date().isoformat()}"
        paths = [p for p in paths if p.rsplit("/", 2)[-2] >= first_day]
    return fs, sorted(paths, key=lambda p: (p.rsplit("/", 2)[-2], p.rsplit("/", 1)[-1]), reverse=True)


def _records(fs: Any, path: str) -> list[dict[str, Any]] | None:
    """The records of one part file; None (logged) when it does not parse."""
    try:
        with fs.open(path, "r") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    except (ValueError, UnicodeDecodeError, OSError) as e:
        log.warning("skipping the log part %s that cannot be read: %s", path, e)
        return None
    return [record for record in records if isinstance(record, dict)]


def newest_records(
    log_dir: str, ts_field: str, since: datetime | None = None, max_parts: int | None = None
) -> Iterator[dict[str, Any]]:
    """The records under `log_dir`, newest part first, only those whose `ts_field` (ISO 8601 UTC)
    is at or after `since` when given; at most `max_parts` parts opened. Stop iterating to stop
    reading. Logs how many parts were read and skipped when done."""
    fs, parts = _parts_newest_first(log_dir, since)
    since_text = since.isoformat() if since is not None else ""
    read = skipped = 0
    try:
        for path in parts[:max_parts]:
            read += 1
            records = _records(fs, path)
            if records is None:
                skipped += 1
                continue
            yield from (r for r in records if str(r.get(ts_field, "")) >= since_text)
    finally:
        log.info("%s: %d of %d part(s) read, %d skipped", log_dir, read, len(parts), skipped)
