"""Live shadow: the stable predictor mirrors a copy of its requests to the challenger.

HAProxy 2.6 (the embedded front door) cannot mirror, and KServe has no mirroring of its own,
so the stable predictor does it: one mechanism for both backends. Configured by environment
(`contract.Env.SHADOW_MIRROR_*`, set by the rollout's backend when it starts the stable
predictor for a live shadow); unset = off.

Never on the client's path: `submit()` (called after the answer is computed) only samples
and puts the request's batch and scores on a bounded queue; a full queue drops the copy and
counts it. A daemon thread sends the copies to the challenger (V1 `:predict`, its own HTTP
client and timeout): the copies that arrive within `LINGER_SECONDS` of the first (at most
`MAX_COPIES_PER_CALL` copies, `MAX_ROWS_PER_CALL` rows) go in one call, because the call, not
the rows, is what a copy costs the stable process (measured: one call per copy doubled its CPU
per request). It pairs the two answers row by row under a generated request id per copy, writes
the pairs as part files under `contract.shadow_log_dir` (the rollout compares them) and keeps
the figures of the last `WINDOW_PAIRS` pairs as gauges. The challenger's answers are
discarded otherwise; its failures are counted, never seen by a client.

Exported (names from the contract, labels `model` = the served name, `version` = the
challenger's version):
    shipyard_shadow_requests_total{model, version, outcome}   paired | dropped | failed
    shipyard_shadow_decision_flip_ratio{model, version}
    shipyard_shadow_score_abs_diff{model, version, statistic}  mean | p99
    shipyard_shadow_score_psi{model, version}
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from prometheus_client import Counter, Gauge

from shipyard_serving.metrics import FAMILY_REGISTRY
from shipyard_serving.prediction_log import PartWriter
from shipyard_serving.requests import Batch
from shipyard_spec.contract import (
    REPLAY_HEADER,
    Env,
    Metric,
    MetricLabel,
    ShadowOutcome,
    ShadowRecord,
    shadow_log_dir,
)
from shipyard_spec.shadow import Pair, compare

log = logging.getLogger(__name__)

LABELS = [MetricLabel.MODEL, MetricLabel.VERSION]
WINDOW_PAIRS = 2000
FLUSH_SECONDS = 2.0
LINGER_SECONDS = 0.1
MAX_COPIES_PER_CALL = 64
MAX_ROWS_PER_CALL = 500  # below the predictor's default --max_batch_size (1000)
DEFAULT_QUEUE_SIZE = 256
DEFAULT_TIMEOUT_SECONDS = 5.0

REQUESTS = Counter(
    Metric.SHADOW_REQUESTS,
    "Requests mirrored to the challenger, by outcome",
    [*LABELS, MetricLabel.OUTCOME],
    registry=FAMILY_REGISTRY,
)
FLIP_RATIO = Gauge(
    Metric.SHADOW_DECISION_FLIP_RATIO,
    "Share of mirrored rows whose decision differs between champion and challenger (last pairs)",
    LABELS,
    multiprocess_mode="max",
    registry=FAMILY_REGISTRY,
)
ABS_DIFF = Gauge(
    Metric.SHADOW_SCORE_ABS_DIFF,
    "|challenger score - champion score| of mirrored rows (last pairs), by statistic",
    [*LABELS, MetricLabel.STATISTIC],
    multiprocess_mode="max",
    registry=FAMILY_REGISTRY,
)
PSI = Gauge(
    Metric.SHADOW_SCORE_PSI,
    "PSI of the challenger's scores against the champion's on mirrored rows (last pairs)",
    LABELS,
    multiprocess_mode="max",
    registry=FAMILY_REGISTRY,
)


@dataclass(frozen=True)
class MirrorSettings:
    url: str  # the challenger's base URL
    challenger_version: str
    sample_rate: float = 1.0
    queue_size: int = DEFAULT_QUEUE_SIZE
    threshold: float = 0.5
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> MirrorSettings | None:
        env = os.environ if environ is None else environ
        url = env.get(Env.SHADOW_MIRROR_URL)
        if not url:
            return None
        settings = cls(
            url=url,
            challenger_version=env.get(Env.SHADOW_MIRROR_VERSION, "unknown"),
            sample_rate=float(env.get(Env.SHADOW_MIRROR_SAMPLE_RATE, "1")),
            queue_size=int(env.get(Env.SHADOW_MIRROR_QUEUE_SIZE, str(DEFAULT_QUEUE_SIZE))),
            threshold=float(env.get(Env.SHADOW_DECISION_THRESHOLD, "0.5")),
        )
        if not 0.0 < settings.sample_rate <= 1.0 or settings.queue_size < 1:
            raise ValueError(f"invalid mirror settings from the environment: {settings}")
        return settings


class ShadowMirror:
    """Copies answered requests to the challenger off the request path; one sender thread per process."""

    def __init__(self, settings: MirrorSettings, model_name: str, model_version: str, log_root: str | None):
        self.settings = settings
        self.model_name = model_name
        self.model_version = model_version
        self.log_root = log_root
        self._started_in: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Workers receive the model pickled: each worker starts its own thread."""
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state["_started_in"] = None
        return state

    def _counter(self, outcome: ShadowOutcome) -> Counter:
        return REQUESTS.labels(self.model_name, self.settings.challenger_version, outcome)

    def submit(self, batch: Batch, scores: np.ndarray) -> None:
        """Queue a copy of one answered request (request path: a coin flip and a put_nowait)."""
        if self.settings.sample_rate < 1.0 and random.random() >= self.settings.sample_rate:
            return
        if self._started_in != os.getpid():
            self._start()
        try:
            self._queue.put_nowait((batch, scores))
        except queue.Full:
            self._counter(ShadowOutcome.DROPPED).inc()

    def close(self) -> None:
        if self._started_in == os.getpid():
            self._queue.put(None)
            self._thread.join(timeout=self.settings.timeout_seconds + 5)
            self._started_in = None

    def _start(self) -> None:
        for outcome in ShadowOutcome:  # every outcome exported from 0
            self._counter(outcome)
        self._queue: queue.Queue[tuple[Batch, np.ndarray] | None] = queue.Queue(
            maxsize=self.settings.queue_size
        )
        self._writer = (
            PartWriter(shadow_log_dir(self.log_root, self.model_name, self.settings.challenger_version))
            if self.log_root
            else None
        )
        self._window: collections.deque[Pair] = collections.deque(maxlen=WINDOW_PAIRS)
        self._thread = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
        self._started_in = os.getpid()
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        url = f"{self.settings.url.rstrip('/')}/v1/models/{self.model_name}:predict"
        pending: list[dict[str, Any]] = []
        deadline = time.monotonic() + FLUSH_SECONDS
        stop = False
        with httpx.Client(timeout=self.settings.timeout_seconds, headers={REPLAY_HEADER: "1"}) as client:
            while not stop:
                copies, stop = self._next_copies(deadline)
                if copies:
                    pending.extend(self._pair(client, url, copies))
                if stop or time.monotonic() >= deadline:
                    self._flush(pending)
                    pending = []
                    deadline = time.monotonic() + FLUSH_SECONDS

    def _next_copies(self, deadline: float) -> tuple[list[tuple[Batch, np.ndarray]], bool]:
        """The copies for one call (the first waited for until `deadline`, the rest lingered for),
        and whether the mirror was closed."""
        copies: list[tuple[Batch, np.ndarray]] = []
        wait_until = deadline
        rows = 0
        while len(copies) < MAX_COPIES_PER_CALL and rows < MAX_ROWS_PER_CALL:
            try:
                item = self._queue.get(timeout=max(0.0, wait_until - time.monotonic()))
            except queue.Empty:
                return copies, False
            if item is None:
                return copies, True
            copies.append(item)
            rows += item[0].rows
            wait_until = min(deadline, time.monotonic() + LINGER_SECONDS) if len(copies) == 1 else wait_until
        return copies, False

    def _pair(
        self, client: httpx.Client, url: str, copies: list[tuple[Batch, np.ndarray]]
    ) -> list[dict[str, Any]]:
        """Send copies in one call; the paired records of their rows ([] when it was not answered)."""
        rows = [[batch.row(i) for i in range(batch.rows)] for batch, _ in copies]
        instances = [row for request in rows for row in request]
        try:
            response = client.post(url, json={"instances": instances})
            response.raise_for_status()
            predictions = [float(p) for p in response.json()["predictions"]]
            if len(predictions) != len(instances):
                raise ValueError(f"{len(predictions)} predictions for {len(instances)} rows")
            challenger = iter(predictions)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            self._counter(ShadowOutcome.FAILED).inc(len(copies))
            log.debug("mirrored requests not answered by the challenger: %s", e)
            return []
        self._counter(ShadowOutcome.PAIRED).inc(len(copies))
        ts = datetime.now(UTC).isoformat()
        records = []
        for (batch, scores), request_rows in zip(copies, rows, strict=True):
            request_id = uuid.uuid4().hex
            for i, (row, ours) in enumerate(zip(request_rows, scores.tolist(), strict=True)):
                theirs = next(challenger)
                self._window.append(Pair(ours, theirs))
                record = {
                    ShadowRecord.TS: ts,
                    ShadowRecord.REQUEST_ID: request_id,
                    ShadowRecord.ROW: i,
                    ShadowRecord.INPUTS: row,
                    ShadowRecord.CHAMPION_VERSION: self.model_version,
                    ShadowRecord.CHAMPION_SCORE: ours,
                    ShadowRecord.CHALLENGER_VERSION: self.settings.challenger_version,
                    ShadowRecord.CHALLENGER_SCORE: theirs,
                }
                if batch.ids is not None:
                    record[ShadowRecord.ID] = batch.ids[i]
                records.append(record)
        return records

    def _flush(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        figures = compare(list(self._window), self.settings.threshold)
        labels = (self.model_name, self.settings.challenger_version)
        FLIP_RATIO.labels(*labels).set(figures.decision_flip_ratio)
        ABS_DIFF.labels(*labels, "mean").set(figures.mean_abs_diff)
        ABS_DIFF.labels(*labels, "p99").set(figures.p99_abs_diff)
        PSI.labels(*labels).set(figures.score_psi)
        if self._writer is None:
            return
        day = records[0][ShadowRecord.TS][:10]
        try:
            self._writer.write(day, records)
        except OSError as e:
            log.error("shadow log: %d pairs lost: %s", len(records), e)
