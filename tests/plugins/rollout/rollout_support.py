"""Helpers of the rollout tests: a short test policy and a canary run under steady load."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.controller import CanaryController, Outcome
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.providers import MetricsProvider, build_provider
from shipyard_spec.model import Rollout

MODEL_NAME = "churn_probe"
RPS = 40
# Short intervals (<= 1 s) so a whole canary takes seconds: 20 % of 40 rps = 8 requests a check.
TEST_POLICY = {
    "steps": [20, 50, 100],
    "interval_seconds": 1.0,
    "checks_per_step": 1,
    "failure_limit": 1,
    "min_requests": 5,
    "max_error_rate": 0.01,
    "max_p99_latency_ms": 250,
    "no_data_deadline_seconds": 3,
    "progress_deadline_seconds": 20,
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


def run_canary(
    backend: LocalBackend,
    model_dir: Path,
    *,
    canary_args: tuple[str, ...] = (),
    rollout: Rollout | None = None,
    provider: MetricsProvider | None = None,
    load: bool = True,
    on_check: Any = None,
) -> CanaryRun:
    """Deploy a new version as canary beside the running stable one, analyse it under load."""
    rollout = rollout or policy()
    stable = Release.from_dict(backend.state()["stable"]["release"])
    canary = Release(MODEL_NAME, str(next(_versions)), str(model_dir), args=list(canary_args))
    driver = LoadDriver(backend.url, MODEL_NAME, load_records(model_dir / "input_example.json"), RPS)
    if load:
        driver.start()
    try:
        backend.deploy_canary(stable, canary)
        controller = CanaryController(
            rollout, backend, provider or build_provider(rollout.metrics), on_check=on_check
        )
        outcome = asyncio.run(controller.run())
    finally:
        requests = driver.stop() if load else Counter()
    return CanaryRun(outcome, requests, canary, stable)


def verdicts(outcome: Outcome) -> list[str]:
    return [check["verdict"] for check in outcome.checks]
