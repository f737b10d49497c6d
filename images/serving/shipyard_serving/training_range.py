"""Numeric values far outside what the model was trained on: counted per feature and logged, never refused.

A model scores 1e308 as confidently as 30; the value is valid JSON and a finite number, so it
is not a client error, but it is worth a trace. The model directory records no min/max (the
MLflow signature has types only; the reference profile is a run artifact, not in the model
directory), so the range is derived from what the fitted Pipeline holds: the numeric
block's StandardScaler learned each feature's training mean and standard deviation, and a
value more than `SIGMAS` standard deviations from the mean is out of range. Six keeps every
row of the Telco data inside (the largest is 2.8 standard deviations) while anything absurd counts.

A pipeline without a fitted StandardScaler on its numeric columns has no range: nothing is
counted, and the predictor says so at load.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from shipyard_serving import metrics
from shipyard_serving.kernels import kernel

log = logging.getLogger(__name__)

SIGMAS = 6.0
LOG_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class TrainingRange:
    """Per numeric feature (in the decoder's column order), the lowest and highest in-range value."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, pipeline: Any, numeric: Sequence[str]) -> TrainingRange | None:
        """From the StandardScaler that transforms exactly the `numeric` columns, or None."""
        preprocess = getattr(pipeline, "named_steps", {}).get("preprocess")
        for _, transformer, columns in getattr(preprocess, "transformers_", []):
            if list(columns) != list(numeric):
                continue
            for step in getattr(transformer, "named_steps", {}).values():
                if isinstance(step, StandardScaler) and getattr(step, "mean_", None) is not None:
                    spread = SIGMAS * step.scale_
                    return cls(tuple(numeric), step.mean_ - spread, step.mean_ + spread)
        return None

    def outside(self, numeric: np.ndarray) -> np.ndarray | None:
        """Per feature, how many of the rows are out of range (missing values are not); None when
        none is, the common case, which costs one compiled call returning a number."""
        if not _count_outside(numeric, self.low, self.high):
            return None
        return ((numeric < self.low) | (numeric > self.high)).sum(axis=0)  # NaN compares false


# Compiled at import for these types (trees.py says why).
@kernel("int64(float64[:, :], float64[::1], float64[::1])")
def _count_outside(numeric, low, high):
    """Out-of-range values in all: one compiled call per request, returning no array (allocating
    and handing one back costs more than the count in a server, where it runs cold; trees.py)."""
    count = 0
    for row in range(numeric.shape[0]):
        for j in range(numeric.shape[1]):
            value = numeric[row, j]
            if value < low[j] or value > high[j]:  # NaN (missing) compares false both ways
                count += 1
    return count


class OutOfRangeMonitor:
    """Counts out-of-range values in `shipyard_feature_out_of_range_total` and logs a summary
    at most once per `LOG_INTERVAL_SECONDS` (the first one at once)."""

    def __init__(self, training: TrainingRange, model_name: str, model_version: str):
        self.training = training
        self.labels = (model_name, model_version)
        for name in training.names:  # every feature exported at 0 from the start
            metrics.OUT_OF_RANGE.labels(*self.labels, name)
        self.pending: Counter[str] = Counter()
        self.last_log = -math.inf

    def observe(self, numeric: np.ndarray) -> None:
        counts = self.training.outside(numeric)
        if counts is None:
            return
        for j in np.flatnonzero(counts):
            name = self.training.names[j]
            metrics.OUT_OF_RANGE.labels(*self.labels, name).inc(int(counts[j]))
            self.pending[name] += int(counts[j])
        now = time.monotonic()
        if now - self.last_log >= LOG_INTERVAL_SECONDS:
            log.warning(
                "values outside the training range (mean ± %g std) in %s version %s, scored anyway: %s",
                SIGMAS,
                *self.labels,
                ", ".join(
                    f"{name} {count} ({self._range(name)})" for name, count in sorted(self.pending.items())
                ),
            )
            self.pending.clear()
            self.last_log = now

    def _range(self, name: str) -> str:
        j = self.training.names.index(name)
        return f"{self.training.low[j]:.4g}..{self.training.high[j]:.4g}"
