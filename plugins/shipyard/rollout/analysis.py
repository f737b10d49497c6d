"""Judging one canary check: measurements in, one of four verdicts out.

Pure: no I/O, no clock. Querying lives in `providers`; this module only decides. The four
outcomes follow Argo Rollouts and Flagger: a check passes, fails, is inconclusive (too few
requests, no data yet: wait) or is an error (the provider could not be asked). Only `PASS`
moves a canary forward; inconclusive and error count against the no-data deadline instead.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.rollout.errors import NoDataError, ProviderError
from shipyard_spec.model import Rollout


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Sample:
    """What one version served in one check window."""

    requests: float
    server_errors: float
    p99_ms: float | None  # None: no latency observations in the window
    client_errors: float = 0.0  # 4xx: requests the version refused

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def client_error_rate(self) -> float:
        return self.client_errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Thresholds:
    """The limits of one check, taken from the spec's rollout policy."""

    min_requests: int
    max_error_rate: float
    max_p99_ms: float
    max_error_rate_ratio: float | None = None
    max_client_error_rate_increase: float = 0.05

    @classmethod
    def from_policy(cls, policy: Rollout) -> Thresholds:
        return cls(
            min_requests=policy.min_requests,
            max_error_rate=policy.max_error_rate,
            max_p99_ms=policy.max_p99_latency_ms,
            max_error_rate_ratio=policy.max_error_rate_ratio,
            max_client_error_rate_increase=policy.max_client_error_rate_increase,
        )


@dataclass(frozen=True)
class Check:
    """One judged check: the audit-trail record (task log, MLflow decision log)."""

    verdict: Verdict
    reason: str
    requests: float | None = None
    error_rate: float | None = None
    p99_ms: float | None = None
    stable_error_rate: float | None = None
    client_error_rate: float | None = None
    stable_client_error_rate: float | None = None
    stable_p99_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}


def evaluate(
    canary: Sample | ProviderError,
    thresholds: Thresholds,
    *,
    stable: Sample | ProviderError | None = None,
) -> Check:
    """The verdict of one check.

    `canary` is the provider's error when it could not be asked (error verdict) or had no
    series yet (`NoDataError`: inconclusive). The ratio to the stable version's error rate is
    judged only when the policy sets one; the stable rate is floored at one error's worth
    (1 / stable requests) so a spotless stable version does not turn any canary error into
    an infinite ratio.
    """
    if isinstance(canary, ProviderError):
        verdict = Verdict.INCONCLUSIVE if isinstance(canary, NoDataError) else Verdict.ERROR
        return Check(verdict, str(canary))
    if isinstance(stable, ProviderError):
        stable = None
    measured = {
        "requests": canary.requests,
        "error_rate": canary.error_rate,
        "p99_ms": canary.p99_ms,
        "stable_error_rate": stable.error_rate if stable else None,
        "client_error_rate": canary.client_error_rate,
        "stable_client_error_rate": stable.client_error_rate if stable else None,
        "stable_p99_ms": stable.p99_ms if stable else None,
    }
    if canary.requests < thresholds.min_requests:
        return Check(
            Verdict.INCONCLUSIVE,
            f"{canary.requests:.0f} canary requests, fewer than min_requests {thresholds.min_requests}",
            **measured,
        )
    if canary.error_rate > thresholds.max_error_rate:
        return Check(
            Verdict.FAIL,
            f"canary error rate {canary.error_rate:.2%} above max_error_rate {thresholds.max_error_rate:.2%}",
            **measured,
        )
    stable_share = stable.client_error_rate if stable and stable.requests else 0.0
    increase = canary.client_error_rate - stable_share
    if increase > thresholds.max_client_error_rate_increase:
        return Check(
            Verdict.FAIL,
            f"canary client errors (4xx) {canary.client_error_rate:.2%} of requests vs stable "
            f"{stable_share:.2%}: {increase:.2%} more, above max_client_error_rate_increase "
            f"{thresholds.max_client_error_rate_increase:.2%}",
            **measured,
        )
    if canary.p99_ms is None:
        return Check(Verdict.INCONCLUSIVE, "no latency observations for the canary", **measured)
    if canary.p99_ms > thresholds.max_p99_ms:
        return Check(
            Verdict.FAIL,
            f"canary p99 {canary.p99_ms:.0f} ms above max_p99_latency_ms {thresholds.max_p99_ms:.0f} ms",
            **measured,
        )
    ratio_limit = thresholds.max_error_rate_ratio
    if ratio_limit is not None and canary.server_errors:
        if stable is None or not stable.requests:
            return Check(
                Verdict.INCONCLUSIVE, "no stable traffic to compare the canary error rate with", **measured
            )
        floor = max(stable.error_rate, 1 / stable.requests)
        if canary.error_rate > ratio_limit * floor:
            return Check(
                Verdict.FAIL,
                f"canary error rate {canary.error_rate:.2%} is {canary.error_rate / floor:.1f}x the stable "
                f"rate {stable.error_rate:.2%}, above max_error_rate_ratio {ratio_limit}",
                **measured,
            )
    return Check(Verdict.PASS, "within thresholds", **measured)
