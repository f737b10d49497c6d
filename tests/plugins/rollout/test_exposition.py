"""The Prometheus text parser and histogram_quantile: what the scrape provider computes with."""

from __future__ import annotations

import math

import pytest

from shipyard.rollout import exposition

TEXT = r"""# HELP shipyard_requests_total Prediction requests by outcome
# TYPE shipyard_requests_total counter
shipyard_requests_total{model_name="m",model_version="3",outcome="success"} 7.0
shipyard_requests_total{model_name="m",model_version="3",outcome="server_error"} 2.0
weird{path="a \"quoted\" \\ value\nnext"} 1 1700000000000
shipyard_request_duration_seconds_bucket{le="+Inf",model_name="m",model_version="3"} 9.0
up 1
"""


def test_parse_reads_names_labels_values_and_escapes():
    samples = list(exposition.parse(TEXT))
    assert [s.name for s in samples] == [
        "shipyard_requests_total",
        "shipyard_requests_total",
        "weird",
        "shipyard_request_duration_seconds_bucket",
        "up",
    ]
    assert samples[1].labels == {"model_name": "m", "model_version": "3", "outcome": "server_error"}
    assert samples[2].labels["path"] == 'a "quoted" \\ value\nnext'
    assert samples[3].labels["le"] == "+Inf"
    assert samples[4].value == 1.0


def test_parse_names_a_malformed_line():
    with pytest.raises(ValueError, match="malformed metrics line 'not a metric line!'"):
        list(exposition.parse("ok 1\nnot a metric line!\n"))


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ({0.1: 0, 0.2: 100, math.inf: 100}, 0.199),  # interpolated inside (0.1, 0.2]
        ({0.005: 99, 0.01: 100, math.inf: 100}, 0.005),  # rank 99 lands exactly on the first bucket
        ({0.5: 0, 1.0: 0, math.inf: 10}, 1.0),  # beyond the last finite bound: that bound
        ({0.5: 0, math.inf: 0}, None),  # no observations
    ],
)
def test_histogram_quantile_follows_prometheus(buckets, expected):
    result = exposition.histogram_quantile(0.99, buckets)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
