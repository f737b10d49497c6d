"""evaluate(): four verdicts, each threshold, and no-data never counted as a pass."""

from __future__ import annotations

import pytest

from shipyard.rollout.analysis import Sample, Thresholds, Verdict, evaluate
from shipyard.rollout.errors import NoDataError, ProviderError

LIMITS = Thresholds(min_requests=20, max_error_rate=0.01, max_p99_ms=250, max_error_rate_ratio=None)


@pytest.mark.parametrize(
    ("canary", "verdict", "reason"),
    [
        (Sample(100, 0, 12.0), Verdict.PASS, "within thresholds"),
        (Sample(100, 1, 12.0), Verdict.PASS, "within thresholds"),  # exactly 1 %: not above
        (Sample(100, 2, 12.0), Verdict.FAIL, "error rate 2.00% above max_error_rate 1.00%"),
        (Sample(100, 0, 251.0), Verdict.FAIL, "p99 251 ms above max_p99_latency_ms 250 ms"),
        (Sample(19, 0, 12.0), Verdict.INCONCLUSIVE, "19 canary requests, fewer than min_requests 20"),
        (Sample(0, 0, None), Verdict.INCONCLUSIVE, "fewer than min_requests"),
        (Sample(50, 0, None), Verdict.INCONCLUSIVE, "no latency observations"),
        (NoDataError("no data: nothing for v2"), Verdict.INCONCLUSIVE, "nothing for v2"),
        (ProviderError("Prometheus at http://x did not answer"), Verdict.ERROR, "did not answer"),
    ],
)
def test_verdicts(canary, verdict, reason):
    check = evaluate(canary, LIMITS)
    assert check.verdict is verdict
    assert reason in check.reason


def test_too_few_requests_is_inconclusive_even_when_every_request_failed():
    assert evaluate(Sample(5, 5, 10.0), LIMITS).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("stable", "verdict"),
    [
        (Sample(1000, 10, 10.0), Verdict.PASS),  # canary 0.8 % vs stable 1 %: ratio 0.8
        (Sample(1000, 2, 10.0), Verdict.FAIL),  # canary 0.8 % vs stable 0.2 %: ratio 4
        (Sample(1000, 0, 10.0), Verdict.FAIL),  # floored at 1/1000 = 0.1 %: ratio 8
        (Sample(0, 0, None), Verdict.INCONCLUSIVE),
        (NoDataError("no data"), Verdict.INCONCLUSIVE),
    ],
)
def test_ratio_to_the_stable_error_rate(stable, verdict):
    limits = Thresholds(min_requests=20, max_error_rate=0.05, max_p99_ms=250, max_error_rate_ratio=2)
    check = evaluate(Sample(1000, 8, 10.0), limits, stable=stable)
    assert check.verdict is verdict, check.reason


def test_check_record_carries_the_measurements():
    record = evaluate(Sample(200, 4, 99.0), LIMITS, stable=Sample(800, 0, 20.0)).as_dict()
    assert record == {
        "verdict": "fail",
        "reason": "canary error rate 2.00% above max_error_rate 1.00%",
        "requests": 200,
        "error_rate": 0.02,
        "p99_ms": 99.0,
        "stable_error_rate": 0.0,
        "client_error_rate": 0.0,
        "stable_client_error_rate": 0.0,
        "stable_p99_ms": 20.0,  # drawn beside the canary's in the rollout plot
    }


@pytest.mark.parametrize(
    ("stable", "verdict"),
    [
        (Sample(1000, 0, 10.0, client_errors=0), Verdict.FAIL),  # canary 6 % vs 0 %: 6 points more
        (Sample(1000, 0, 10.0, client_errors=20), Verdict.PASS),  # canary 6 % vs 2 %: 4 points more
        (Sample(1000, 0, 10.0, client_errors=100), Verdict.PASS),  # stable refuses more than canary
        (Sample(0, 0, None), Verdict.FAIL),  # nothing to compare with: judged against 0 %
        (NoDataError("no data"), Verdict.FAIL),
    ],
)
def test_client_errors_are_judged_against_the_stable_share(stable, verdict):
    check = evaluate(Sample(100, 0, 10.0, client_errors=6), LIMITS, stable=stable)
    assert check.verdict is verdict, check.reason
    if verdict is Verdict.FAIL:
        assert "client errors (4xx) 6.00% of requests" in check.reason
        assert "above max_client_error_rate_increase 5.00%" in check.reason


def test_a_version_that_refuses_every_request_fails_though_it_has_no_server_error():
    check = evaluate(Sample(50, 0, 3.0, client_errors=50), LIMITS, stable=Sample(200, 0, 3.0))
    assert (check.verdict, check.error_rate, check.client_error_rate) == (Verdict.FAIL, 0.0, 1.0)
