"""The scrape provider against a real HTTP /metrics endpoint whose counters the test moves, and
the histogram quantile it computes with."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from http_stub import http_server, text_handler
from support.servers import free_port

from shipyard.rollout.analysis import Sample
from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard.rollout.providers import Target
from shipyard.rollout.providers.scrape import ScrapeProvider, histogram_quantile


def exposition(success: int, errors: int, fast: int, slow: int, refused: int = 0) -> str:
    """Counters of version 2 as the predictor writes them (and a version 1 series to ignore)."""
    labels = 'model_name="m",model_version="2"'
    return "\n".join(
        [
            "# TYPE shipyard_requests_total counter",
            f'shipyard_requests_total{{{labels},outcome="success"}} {success}',
            f'shipyard_requests_total{{{labels},outcome="server_error"}} {errors}',
            f'shipyard_requests_total{{{labels},outcome="client_error"}} {refused}',
            'shipyard_requests_total{model_name="m",model_version="1",outcome="server_error"} 999',
            f'shipyard_request_duration_seconds_bucket{{le="0.01",{labels}}} {fast}',
            f'shipyard_request_duration_seconds_bucket{{le="0.5",{labels}}} {fast + slow}',
            f'shipyard_request_duration_seconds_bucket{{le="+Inf",{labels}}} {fast + slow}',
        ]
    )


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[str]]]:
    """A /metrics server; yields (URL, a one-item list holding the text it serves)."""
    body = [exposition(0, 0, 0, 0)]
    with http_server(text_handler(body)) as url:
        yield f"{url}/metrics", body


def test_first_scrape_is_a_baseline_then_deltas_and_resets(endpoint):
    url, body = endpoint
    provider, target = ScrapeProvider(timeout=1), Target("canary", "m", "2", metrics_url=url)
    with pytest.raises(NoDataError, match="baseline"):
        provider.query(target, 1)

    body[0] = exposition(success=90, errors=10, fast=100, slow=0)
    assert provider.query(target, 1) == Sample(requests=100, server_errors=10, p99_ms=pytest.approx(9.9))

    body[0] = exposition(success=100, errors=20, fast=100, slow=25, refused=5)  # 25 more, all slow
    sample = provider.query(target, 1)
    assert (sample.requests, sample.server_errors, sample.client_errors) == (25, 10, 5)
    assert sample.p99_ms == pytest.approx(10 + 490 * 0.99)

    body[0] = exposition(success=3, errors=1, fast=4, slow=0)  # the process restarted
    assert provider.query(target, 1) == Sample(requests=4, server_errors=1, p99_ms=pytest.approx(9.9))


def test_missing_series_is_no_data_and_unreachable_is_an_error(endpoint):
    url, _ = endpoint
    provider = ScrapeProvider(timeout=0.5)
    with pytest.raises(NoDataError, match="exports no series for version 7"):
        provider.query(Target("canary", "m", "7", metrics_url=url), 1)
    with pytest.raises(ProviderError, match="cannot scrape canary metrics") as raised:
        provider.query(Target("canary", "m", "2", metrics_url=f"http://127.0.0.1:{free_port()}/metrics"), 1)
    assert not isinstance(raised.value, NoDataError)
    with pytest.raises(ProviderError, match=r"needs metrics\.provider 'prometheus'"):
        provider.query(Target("canary", "m", "2"), 1)


def test_malformed_metrics_are_a_provider_error_naming_the_endpoint(endpoint):
    url, body = endpoint
    body[0] = "not a metric line!"
    with pytest.raises(ProviderError, match=f"unreadable metrics at {url}"):
        ScrapeProvider(timeout=1).query(Target("canary", "m", "2", metrics_url=url), 1)


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
    result = histogram_quantile(0.99, buckets)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
