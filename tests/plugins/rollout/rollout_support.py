"""Helpers of the rollout tests: a short test policy and a canary run under steady load."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.controller import CanaryController, Outcome
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.providers import MetricsProvider, build_provider
from shipyard_spec.model import LocalServing, Rollout

MODEL_NAME = "churn_probe"
RPS = 40
# HAProxy in the tests: checks every 0.5 s, a hung predictor given up on after 2 s.
LOCAL_SERVING = LocalServing(health_check_interval_seconds=0.5, server_timeout_seconds=2)
# Short intervals (<= 1 s) so a whole canary takes seconds: 20 % of 40 rps = 8 requests a check.
TEST_POLICY = {
    "steps": [20, 50, 100],
    "interval_seconds": 1.0,
    "checks_per_step": 1,
    "failure_limit": 1,
    "min_requests": 5,
    "max_error_rate": 0.01,
    "max_p99_latency_ms": 250,
    "no_data_deadline_seconds": 8,  # a canary starved of CPU on a loaded 2-core machine answers late
    "progress_deadline_seconds": 60,  # predictors take 5-25 s to start on a busy 2-core machine
    "local": LOCAL_SERVING.model_dump(),
}
_versions = itertools.count(2)


def policy(**overrides: Any) -> Rollout:
    return Rollout.model_validate({**TEST_POLICY, **overrides})


@dataclass
class CanaryRun:
    outcome: Outcome
    requests: Counter[str]
    canary: Release
    stable: Release
    seconds: float  # from the canary's deployment to the decision, traffic back included


def run_canary(
    backend: LocalBackend,
    model_dir: Path,
    *,
    canary_args: tuple[str, ...] = (),
    rollout: Rollout | None = None,
    provider: MetricsProvider | None = None,
    load: bool = True,
    on_check: Any = None,
    on_weight: Any = None,
    examples: Path | None = None,
    before_analysis: Callable[[], None] | None = None,
    replay_requests: list[dict[str, Any]] | None = None,
) -> CanaryRun:
    """Deploy a new version as canary beside the running stable one, analyse it under load
    (rows of `examples`, default the canary model's input example)."""
    rollout = rollout or policy()
    stable = Release.from_dict(backend.state()["stable"]["release"])
    canary = Release(MODEL_NAME, str(next(_versions)), str(model_dir), args=list(canary_args))
    records = load_records(examples or model_dir / "input_example.json")
    driver = LoadDriver(backend.url, backend.served_name, records, RPS)
    if load:
        driver.start()
    started = time.monotonic()
    try:
        backend.deploy_canary(stable, canary)
        if before_analysis is not None:
            before_analysis()
        controller = CanaryController(
            rollout,
            backend,
            provider or build_provider(rollout.metrics),
            on_check=on_check,
            replay_requests=replay_requests,
            on_weight=on_weight,
        )
        outcome = asyncio.run(controller.run())
        seconds = time.monotonic() - started
    finally:
        requests = driver.stop() if load else Counter()
    return CanaryRun(outcome, requests, canary, stable, seconds)


def verdicts(outcome: Outcome) -> list[str]:
    return [check["verdict"] for check in outcome.checks]
