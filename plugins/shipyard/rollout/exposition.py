"""Parsing the Prometheus text exposition format (what a `/metrics` endpoint returns).

Only what the scrape provider needs: samples as (name, labels, value). Comments, HELP and
TYPE lines are skipped; timestamps are ignored. Label values may contain escaped quotes,
backslashes and newlines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


def _parse_labels(text: str, line: str) -> dict[str, str]:
    labels, position = {}, 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            raise ValueError(f"malformed labels in metrics line {line!r}")
        labels[match[1]] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m[0]], match[2])
        position = match.end()
    return labels


def parse(text: str) -> Iterator[MetricSample]:
    """Every sample of an exposition text; raises ValueError naming a malformed line."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"malformed metrics line {line!r}")
        try:
            number = float(match["value"])  # float() reads "+Inf", "-Inf" and "NaN" as Prometheus writes them
        except ValueError as e:
            raise ValueError(f"malformed metrics line {line!r}: value {match['value']!r}") from e
        yield MetricSample(match["name"], _parse_labels(match["labels"] or "", line), number)


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float | None:
    """The quantile of a histogram given its cumulative bucket counts by upper bound `le`.

    Prometheus' `histogram_quantile` rule: linear interpolation inside the bucket that holds
    the rank; a rank in the +Inf bucket returns the highest finite bound. None when the
    histogram holds no observations.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = quantile * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
