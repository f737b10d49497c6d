"""Sampled prediction log for drift monitoring, written off the request path.

Format and layout are a contract with the drift step (`shipyard_spec.contract`:
`prediction_log_dir`, `PredictionRecord`, the part-file naming rule): JSON Lines micro-batches
under `{log_root}/{model_name}/date=<YYYY-MM-DD>/part-<unix_ms>-<pid>.jsonl`, one record per
sampled row, each file written under a temporary name (which the reader's `part-*.jsonl`
glob does not match) and renamed when complete. `log_root` is a local path or an fsspec URI
(`s3://bucket/prefix` with s3fs); the predictor reads it from `SHIPYARD_PREDICTION_LOG_URI`.

The request path only samples rows and puts them on a bounded queue; a daemon thread
batches and writes. A full queue (storage slower than traffic) drops records and counts
them in `shipyard_prediction_log_dropped_total` — a request never waits for storage.

Bounded on disk too: the writer applies a `Retention` (age and total size of the model's log
directory, oldest parts deleted first) at most once per `retention_check_seconds`. The
command-line defaults (__main__) are safe for a laptop: 10 % of rows sampled, 512 MiB and
14 days per model; logging every request at ~1,000 req/s grew the log by 617 MB in 2.5
minutes (issue 12).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fsspec
import numpy as np
from prometheus_client import Counter

from shipyard_serving.requests import Batch
from shipyard_spec.contract import (
    PREDICTION_LOG_PART_GLOB,
    Metric,
    PredictionRecord,
    join,
    prediction_log_dir,
    prediction_log_part_name,
    prediction_log_partition,
    prediction_log_temporary_name,
)

log = logging.getLogger(__name__)

DROPPED = Counter(
    Metric.PREDICTION_LOG_DROPPED, "Sampled prediction records dropped (queue full)", ["model_name"]
)
DELETED = Counter(
    Metric.PREDICTION_LOG_DELETED, "Prediction log parts deleted by the retention", ["model_name"]
)
WRITE_ERRORS = Counter(
    Metric.PREDICTION_LOG_WRITE_ERRORS, "Prediction log parts that failed to write", ["model_name"]
)


@dataclass(frozen=True)
class Retention:
    """How much of one model's prediction log is kept: parts older than `max_age_days` (by their
    `date=` partition) are deleted, then the oldest parts until the rest fits in `max_bytes`."""

    max_bytes: int
    max_age_days: int

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_age_days <= 0:
            raise ValueError(f"prediction log retention must be positive: {self}")

    def apply(self, log_dir: str, today: date) -> list[str]:
        """Delete what falls outside the retention under `log_dir` (fsspec URI); returns what was deleted."""
        fs, root = fsspec.core.url_to_fs(log_dir)
        parts = sorted(  # (day, part name) order is oldest first: names start with their unix ms
            (path.split("/")[-2].removeprefix("date="), path.rsplit("/", 1)[-1], path, info["size"])
            for path, info in fs.glob(
                join(prediction_log_partition(root, "*"), PREDICTION_LOG_PART_GLOB), detail=True
            ).items()
        )
        oldest_kept = (today - timedelta(days=self.max_age_days - 1)).isoformat()
        total = sum(size for *_, size in parts)
        doomed = []
        for day, _, path, size in parts:
            if day >= oldest_kept and total <= self.max_bytes:
                break
            doomed.append(path)
            total -= size
        for path in doomed:
            try:
                fs.rm(path)
            except FileNotFoundError:
                continue  # another worker or replica applying the same retention deleted it first
        return doomed


class PredictionLog:
    """Samples rows and hands them to a background writer; one writer thread per process."""

    def __init__(
        self,
        log_root: str,
        model_name: str,
        model_version: str,
        sample_rate: float,
        retention: Retention,
        flush_seconds: float = 10.0,
        retention_check_seconds: float = 60.0,
        max_records_per_part: int = 5000,
        max_queued: int = 50_000,
    ):
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"prediction log sample rate {sample_rate} is outside [0, 1]")
        self.log_dir = prediction_log_dir(log_root, model_name)
        self.model_name = model_name
        self.model_version = model_version
        self.sample_rate = sample_rate
        self.flush_seconds = flush_seconds
        self.retention = retention
        self.retention_check_seconds = retention_check_seconds
        self.max_records_per_part = max_records_per_part
        self.max_queued = max_queued
        self._started_in: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Workers receive the model pickled: send the settings, each worker starts its own thread."""
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state["_started_in"] = None
        return state

    def record(self, batch: Batch, scores: np.ndarray) -> None:
        """Queue the sampled rows of one answered request (on the request path: cheap, never blocks)."""
        if self.sample_rate <= 0.0:
            return
        chosen = (
            range(len(scores))
            if self.sample_rate >= 1.0
            else [i for i in range(len(scores)) if random.random() < self.sample_rate]
        )
        if not chosen:
            return
        if self._started_in != os.getpid():
            self._start()
        ts = datetime.now(UTC).isoformat()
        for i in chosen:
            record = {
                PredictionRecord.TS: ts,
                PredictionRecord.MODEL_NAME: self.model_name,
                PredictionRecord.MODEL_VERSION: self.model_version,
                PredictionRecord.INPUTS: batch.row(i),
                PredictionRecord.SCORE: float(scores[i]),
            }
            if batch.ids is not None:
                record[PredictionRecord.ID] = batch.ids[i]
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                DROPPED.labels(self.model_name).inc()

    def close(self) -> None:
        """Write what is queued and stop the writer (model unload, process exit)."""
        if self._started_in == os.getpid():
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started_in = None

    def _start(self) -> None:
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=self.max_queued)
        self._writer = PartWriter(self.log_dir)
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._started_in = os.getpid()
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        next_retention = time.monotonic()
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                if item is None:
                    stop = True
                else:
                    pending.append(item)
            except queue.Empty:
                pass
            if stop or len(pending) >= self.max_records_per_part or time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_seconds
            if time.monotonic() >= next_retention:
                self._apply_retention()
                next_retention = time.monotonic() + self.retention_check_seconds

    def _flush(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_day[record[PredictionRecord.TS][:10]].append(record)
        for day, group in by_day.items():
            try:
                self._writer.write(day, group)
            except OSError as e:
                WRITE_ERRORS.labels(self.model_name).inc()
                log.error(
                    "prediction log: %d records for %s on %s lost: %s", len(group), self.model_name, day, e
                )

    def _apply_retention(self) -> None:
        try:
            deleted = self.retention.apply(self.log_dir, datetime.now(UTC).date())
        except OSError as e:
            log.error("prediction log: retention of %s not applied: %s", self.log_dir, e)
            return
        if deleted:
            DELETED.labels(self.model_name).inc(len(deleted))
            log.info(
                "prediction log: %d part(s) of %s deleted by %s", len(deleted), self.log_dir, self.retention
            )


class PartWriter:
    """Writes part files of one model's log directory, atomically, never reusing a name."""

    def __init__(self, log_dir: str):
        self.fs, self.root = fsspec.core.url_to_fs(log_dir)
        self.last_ms = 0

    def write(self, day: str, records: list[dict[str, Any]]) -> str:
        """One part file under the `day` partition (temporary name, then rename); returns its path."""
        directory = prediction_log_partition(self.root, day)
        self.fs.makedirs(directory, exist_ok=True)
        self.last_ms = max(time.time_ns() // 1_000_000, self.last_ms + 1)
        name = prediction_log_part_name(self.last_ms, os.getpid())
        temporary = join(directory, prediction_log_temporary_name(name))
        with self.fs.open(temporary, "w") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
        self.fs.mv(temporary, join(directory, name))
        return join(directory, name)
