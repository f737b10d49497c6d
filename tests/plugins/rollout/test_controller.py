"""Controller rules that need no processes: failure limit, manual confirmation and abort.
Runs on the KServe backend over the emulated cluster (fake_kserve) with scripted metrics."""

from __future__ import annotations

import asyncio

from fake_kserve import FakeKServe
from rollout_support import policy

from shipyard.rollout.analysis import Sample, Verdict
from shipyard.rollout.backends import Release
from shipyard.rollout.backends.kserve import KServeBackend
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK, CanaryController
from shipyard.rollout.providers import Target
from shipyard.rollout.registry import GateState
from shipyard.rollout.shadow import ShadowCheck, ShadowMode
from shipyard_spec.model import KServeTarget, Shadow

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


class ScriptedShadow:
    """A shadow stage whose replay comparisons follow a script (the real one: test_shadow.py)."""

    def __init__(self, verdicts: list[Verdict], live: list[Verdict] = (), **policy) -> None:
        self.policy = Shadow(**policy)
        self.script = iter(verdicts)
        self.live_script = iter(live)
        self.live_started = 0

    def replay(self) -> ShadowCheck:
        verdict = next(self.script)
        return ShadowCheck(ShadowMode.REPLAY, verdict, f"scripted {verdict.value}")

    def start_live(self) -> None:
        self.live_started += 1

    def live(self, since) -> ShadowCheck:
        verdict = next(self.live_script)
        return ShadowCheck(ShadowMode.LIVE, verdict, f"scripted live {verdict.value}")


class CountingBackend(KServeBackend):
    """The emulated KServe backend, counting the requests to stop mirroring."""

    stopped_mirroring = 0

    def stop_mirroring(self) -> None:
        self.stopped_mirroring += 1


def run_with_shadow(shadow: ScriptedShadow, backend: KServeBackend | None = None, **overrides):
    backend = backend or KServeBackend(
        KServeTarget(), "churn", "churn", FakeKServe(), verify_timeout=0.5, poll_seconds=0.01
    )
    backend.deploy_canary(
        Release("churn", "1", storage_uri="s3://m/1"), Release("churn", "2", storage_uri="s3://m/2")
    )
    rollout = policy(interval_seconds=0.01, **overrides)
    controller = CanaryController(rollout, backend, ScriptedProvider([GOOD]), shadow=shadow)
    return asyncio.run(controller.run())


def test_a_failed_shadow_comparison_rolls_back_before_any_traffic_moves():
    outcome = run_with_shadow(ScriptedShadow([Verdict.FAIL]))
    assert (outcome.status, outcome.reason) == (ROLLED_BACK, "scripted fail")
    assert [(c["stage"], c["weight"], c["verdict"]) for c in outcome.checks] == [("shadow-replay", 0, "fail")]


def test_an_inconclusive_shadow_never_passes_it_waits_then_rolls_back():
    outcome = run_with_shadow(ScriptedShadow([Verdict.INCONCLUSIVE] * 100), no_data_deadline_seconds=0.05)
    assert outcome.status == ROLLED_BACK
    assert outcome.reason.startswith(
        "no conclusive shadow replay comparison for 0s (no_data_deadline_seconds"
    )
    assert {c["verdict"] for c in outcome.checks} == {"inconclusive"}


def test_a_shadow_that_becomes_conclusive_lets_the_canary_go_on():
    outcome = run_with_shadow(ScriptedShadow([Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.PASS]))
    assert outcome.status == PROMOTED
    assert [c["verdict"] for c in outcome.checks][:3] == ["inconclusive", "error", "pass"]
    assert [c["weight"] for c in outcome.checks][3:] == [20, 50]


def test_skip_without_logs_lets_an_inconclusive_shadow_go_on_recorded_as_such():
    outcome = run_with_shadow(ScriptedShadow([Verdict.INCONCLUSIVE], skip_without_logs=True))
    assert outcome.status == PROMOTED
    assert outcome.checks[0]["verdict"] == "inconclusive"


def test_a_failed_live_shadow_stops_the_mirroring_then_rolls_back():
    backend = CountingBackend(
        KServeTarget(), "churn", "churn", FakeKServe(), verify_timeout=0.5, poll_seconds=0.01
    )
    shadow = ScriptedShadow([Verdict.PASS], live=[Verdict.FAIL], live_seconds=0.01)
    outcome = run_with_shadow(shadow, backend)
    assert (outcome.status, outcome.reason) == (ROLLED_BACK, "scripted live fail")
    assert (shadow.live_started, backend.stopped_mirroring) == (1, 1)
    assert [c["stage"] for c in outcome.checks] == ["shadow-replay", "shadow-live"]


def test_an_abort_ends_a_shadow_that_keeps_waiting():
    backend = KServeBackend(
        KServeTarget(), "churn", "churn", FakeKServe(), verify_timeout=0.5, poll_seconds=0.01
    )
    backend.deploy_canary(
        Release("churn", "1", storage_uri="s3://m/1"), Release("churn", "2", storage_uri="s3://m/2")
    )
    gate = ScriptedGate([GateState(False, None), GateState(False, "wrong data")])
    shadow = ScriptedShadow([Verdict.INCONCLUSIVE] * 10)
    controller = CanaryController(
        policy(interval_seconds=0.01), backend, ScriptedProvider([GOOD]), gate=gate, shadow=shadow
    )
    outcome = asyncio.run(controller.run())
    assert (outcome.status, outcome.reason) == (ROLLED_BACK, "aborted by hand: wrong data")
    assert len(outcome.checks) == 2
