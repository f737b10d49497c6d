"""Controller rules that need no processes: failure limit, manual confirmation and abort.
Runs on the KServe backend over the emulated cluster (fake_kserve) with scripted metrics."""

from __future__ import annotations

import asyncio

from fake_kserve import FakeKServe
from rollout_support import policy

from shipyard.rollout.analysis import Sample
from shipyard.rollout.backends import Release
from shipyard.rollout.backends.kserve import KServeBackend
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK, CanaryController
from shipyard.rollout.providers import Target
from shipyard.rollout.registry import GateState
from shipyard_spec.model import KServeTarget

GOOD, BAD = Sample(100, 0, 10.0), Sample(100, 50, 10.0)


class ScriptedProvider:
    """Returns the next canary sample of a script per check (stable always healthy)."""

    def __init__(self, script: list[Sample]) -> None:
        self.script = iter(script)

    def is_online(self) -> bool:
        return True

    def query(self, target: Target, window_seconds: float) -> Sample:
        if target.role == "stable":
            return GOOD
        return next(self.script, GOOD)


class ScriptedGate:
    def __init__(self, states: list[GateState]) -> None:
        self.states, self.calls = states, 0

    def __call__(self) -> GateState:
        self.calls += 1
        return self.states[min(self.calls, len(self.states)) - 1]


def run(script: list[Sample], gate=None, **overrides):
    backend = KServeBackend(
        KServeTarget(), "churn", "churn", FakeKServe(), verify_timeout=0.5, poll_seconds=0.01
    )
    backend.deploy_canary(
        Release("churn", "1", storage_uri="s3://m/1"), Release("churn", "2", storage_uri="s3://m/2")
    )
    # The first query of each version opens the window (a scrape baseline); script entries start after it.
    provider = ScriptedProvider([GOOD, *script])
    controller = CanaryController(policy(interval_seconds=0.01, **overrides), backend, provider, gate=gate)
    return asyncio.run(controller.run())


def test_failures_below_the_limit_do_not_roll_back():
    outcome = run([BAD, GOOD, GOOD], failure_limit=2)
    assert outcome.status == PROMOTED
    assert [c["verdict"] for c in outcome.checks] == ["fail", "pass", "pass"]


def test_the_failure_limit_counts_failures_across_steps():
    outcome = run([BAD, GOOD, BAD], failure_limit=2)
    assert outcome.status == ROLLED_BACK
    assert outcome.reason.startswith("2 failed check(s) reached failure_limit 2")


def test_manual_confirmation_holds_the_last_step_and_keeps_judging():
    waiting, confirmed = GateState(False, None), GateState(True, None)
    gate = ScriptedGate([waiting] * 6 + [confirmed])
    outcome = run([], gate=gate, manual_confirmation=True)
    assert outcome.status == PROMOTED
    assert [c["weight"] for c in outcome.checks][-1] == 50
    assert len(outcome.checks) > 2  # checks went on while waiting at 50 %


def test_abort_while_waiting_for_confirmation_rolls_back():
    gate = ScriptedGate([GateState(False, None)] * 4 + [GateState(False, "on-call says stop")])
    outcome = run([], gate=gate, manual_confirmation=True)
    assert outcome.status == ROLLED_BACK
    assert outcome.reason == "aborted by hand: on-call says stop"


def test_a_failure_while_waiting_for_confirmation_still_rolls_back():
    outcome = run([GOOD, GOOD, BAD], gate=ScriptedGate([GateState(False, None)]), manual_confirmation=True)
    assert outcome.status == ROLLED_BACK
    assert "above max_error_rate" in outcome.reason
