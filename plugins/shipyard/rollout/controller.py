"""The canary controller: readiness, traffic steps, checks, and the decision to promote or roll back.

One loop for every backend and provider (Flagger's scheduler, Argo's analysis run):

1. wait until the canary is ready (`progress_deadline_seconds`, else roll back; a canary that
   can never become ready — its process exited, its predictor reports a terminal failure —
   ends the wait at once, with the cause in the reason); then, still at 0 %, replay the
   requests the champion accepted (its input example, a sample of its prediction log) against
   both predictors: any the challenger rejects (4xx) rolls back with the requests and the
   challenger's messages named, unless the policy allows a breaking schema;
1b. with a `shadow` policy, still at 0 %: the challenger's predictions compared with the
   champion's (`shadow_stage`: replay of logged requests, then optionally live mirroring); a
   failed comparison rolls back, inconclusive and error ones wait like checks do;
2. for each step below 100 %: move the weight, then every `interval_seconds` judge the window
   before with `analysis.evaluate()` until `checks_per_step` checks passed. A failed check
   (or a canary that stopped being ready) counts toward `failure_limit`; inconclusive and
   error checks wait, but after `no_data_deadline_seconds` without a conclusive check the
   canary fails;
3. with `manual_confirmation`, keep judging at the last step until the version carries the
   confirmation tag;
4. 100 % is the promotion itself: the backend sends all traffic to the canary and clears the
   canary settings. Any failure instead ends in `backend.rollback()`.

An abort tag on the version rolls back at the next check, also while waiting for confirmation.
A gate that cannot be read (the registry is unreachable) rolls back too: traffic goes back to
stable before anything else, and the reason carries the cause.
Every check is logged and handed to the audit sink as it happens, and every weight change
(each step, 100 at promotion, 0 at rollback) to the weight sink, and each judged shadow comparison
to the shadow sink (`dashboard_push.RolloutFigures` in the trigger).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.hooks.mlflow import MlflowError
from shipyard.rollout import replay
from shipyard.rollout.analysis import Check, Thresholds, Verdict, evaluate
from shipyard.rollout.backends import TrafficBackend
from shipyard.rollout.compatibility import replay_rejections
from shipyard.rollout.errors import BackendError, ProviderError
from shipyard.rollout.providers import MetricsProvider, Target
from shipyard.rollout.registry import GateState
from shipyard.rollout.shadow import ShadowCheck
from shipyard.rollout.shadow_stage import ShadowStage
from shipyard_spec.model import Rollout

log = logging.getLogger(__name__)

PROMOTED, ROLLED_BACK = "promoted", "rolled_back"
READINESS_POLL_SECONDS = 0.5
REJECTIONS_REPORTED = 3


@dataclass
class Outcome:
    status: str  # PROMOTED or ROLLED_BACK
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "checks": self.checks}


class RolloutEnded(Exception):
    """Raised inside the loop to end the analysis with a rollback reason."""


class CanaryController:
    def __init__(
        self,
        policy: Rollout,
        backend: TrafficBackend,
        provider: MetricsProvider,
        *,
        gate: Callable[[], GateState] | None = None,
        on_check: Callable[[dict[str, Any]], None] | None = None,
        replay_requests: list[dict[str, Any]] | None = None,
        on_weight: Callable[[Target, int], None] | None = None,
        on_shadow: Callable[[Target, ShadowCheck], None] | None = None,
        shadow: ShadowStage | None = None,
    ) -> None:
        """`replay_requests`: `{"request": label, "inputs": row}` the champion accepts, replayed
        against both predictors once the canary is ready, before any traffic moves."""
        self.policy = policy
        self.backend = backend
        self.provider = provider
        self.gate = gate
        self.on_check = on_check
        self.replay_requests = replay_requests or []
        self.on_weight = on_weight
        self.on_shadow = on_shadow
        self.shadow = shadow
        self.thresholds = Thresholds.from_policy(policy)
        self.window = policy.metrics.window_seconds or policy.interval_seconds
        self.checks: list[dict[str, Any]] = []
        self._failures = 0
        self._last_conclusive = time.monotonic()

    async def run(self) -> Outcome:
        """Analyse, then promote or roll back; never leaves the canary half-way."""
        canary: Target | None = None
        try:
            await self._wait_ready()
            await asyncio.to_thread(self._replay)
            if self.shadow is not None:
                await self._shadow(self.shadow)
            canary = await asyncio.to_thread(self._open_window)
            for weight in self.policy.steps[:-1]:
                await asyncio.to_thread(self.backend.set_canary_weight, weight)
                log.info("canary weight %d%%", weight)
                await self._weight_changed(canary, weight)
                passed = 0
                while passed < self.policy.checks_per_step:
                    passed += await self._judge(weight)
            if self.policy.manual_confirmation:
                await self._await_confirmation(([0, *self.policy.steps])[-2])
        except (RolloutEnded, BackendError) as e:
            reason = str(e) if isinstance(e, RolloutEnded) else f"backend failed: {e}"
            log.warning("rolling back: %s", reason)
            await asyncio.to_thread(self.backend.rollback)
            await self._weight_changed(canary, 0)
            return Outcome(ROLLED_BACK, reason, self.checks)
        await asyncio.to_thread(self.backend.promote)
        await self._weight_changed(canary, 100)
        log.info("promoted after %d checks", len(self.checks))
        return Outcome(PROMOTED, f"passed every step {self.policy.steps}", self.checks)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.policy.progress_deadline_seconds
        while True:
            readiness = await asyncio.to_thread(self.backend.canary_readiness)
            if readiness.ready:
                log.info("canary ready: %s", readiness.reason)
                self._last_conclusive = time.monotonic()
                return
            if readiness.failed:
                raise RolloutEnded(f"canary failed to start: {readiness.reason}")
            if time.monotonic() >= deadline:
                raise RolloutEnded(
                    f"canary not ready within progress_deadline_seconds "
                    f"{self.policy.progress_deadline_seconds:g}: {readiness.reason}"
                )
            await asyncio.sleep(READINESS_POLL_SECONDS)

    def _replay(self) -> None:
        """The compatibility replay at 0 %: requests the champion answers and the challenger refuses."""
        if not self.replay_requests:
            return
        urls = self.backend.direct_urls()
        if urls is None:
            log.info("no direct route to the predictors: replay skipped (the 4xx rule judges)")
            return
        canary_url, stable_url = urls
        name = self.backend.targets()[0].model_name
        rows = [request["inputs"] for request in self.replay_requests]
        rejected = replay_rejections(
            [request["request"] for request in self.replay_requests],
            replay.send(stable_url, name, rows),
            replay.send(canary_url, name, rows),
        )
        if not rejected:
            log.info("replay: the canary accepts every one of %d requests the champion accepts", len(rows))
            return
        reason = (
            f"the canary rejects {len(rejected)} of {len(rows)} replayed requests the champion accepts: "
            + "; ".join(rejected[:REJECTIONS_REPORTED])
        )
        if self.policy.allow_breaking_schema:
            log.warning("%s; going on (rollout.allow_breaking_schema)", reason)
            return
        raise RolloutEnded(reason)

    async def _shadow(self, stage: ShadowStage) -> None:
        """The shadow comparison at 0 %: replay, then live when the policy asks for it."""
        await self._until_conclusive(stage.replay, stage.policy.skip_without_logs)
        if not stage.policy.live_seconds:
            return
        since = datetime.now(UTC)
        await asyncio.to_thread(stage.start_live)
        try:
            log.info("live shadow: stable mirrors to the canary for %gs", stage.policy.live_seconds)
            await asyncio.sleep(stage.policy.live_seconds)
            await self._until_conclusive(lambda: stage.live(since), skip_inconclusive=False)
        finally:
            await asyncio.to_thread(self.backend.stop_mirroring)

    async def _until_conclusive(self, measure: Callable[[], ShadowCheck], skip_inconclusive: bool) -> None:
        """Judge a shadow comparison until it passes (return) or fails (RolloutEnded), every interval;
        inconclusive and error wait up to the no-data deadline (or, with `skip_inconclusive`, an
        inconclusive comparison lets the canary go on, recorded as such)."""
        started = time.monotonic()
        while True:
            check = await asyncio.to_thread(measure)
            self._record_shadow(check)
            await asyncio.to_thread(self._publish_shadow, check)  # a push over the network
            if check.verdict is Verdict.PASS:
                return
            if check.verdict is Verdict.FAIL:
                raise RolloutEnded(check.reason)
            if check.verdict is Verdict.INCONCLUSIVE and skip_inconclusive:
                log.warning("shadow %s inconclusive, skipped: %s", check.mode.value, check.reason)
                return
            waited = time.monotonic() - started
            if waited >= self.policy.no_data_deadline_seconds:
                raise RolloutEnded(
                    f"no conclusive shadow {check.mode.value} comparison for {waited:.0f}s "
                    f"(no_data_deadline_seconds {self.policy.no_data_deadline_seconds:g}); last "
                    f"{check.verdict.value}: {check.reason}"
                )
            await asyncio.sleep(self.policy.interval_seconds)
            await self._check_abort()

    async def _check_abort(self) -> None:
        """The abort tag ends the rollout at the next check (an unreadable registry too)."""
        if self.gate is not None:
            state = await self._gate_state()
            if state.abort_reason:
                raise RolloutEnded(f"aborted by hand: {state.abort_reason}")

    def _publish_shadow(self, check: ShadowCheck) -> None:
        if self.on_shadow is not None:
            self.on_shadow(self.backend.targets()[0], check)

    def _record_shadow(self, check: ShadowCheck) -> None:
        entry = {"index": len(self.checks), "at": time.time(), "weight": 0, **check.as_dict()}
        self.checks.append(entry)
        log.info("shadow %s: %s %s", check.mode.value, check.verdict.value.upper(), check.reason)
        if self.on_check is not None:
            self.on_check(entry)

    def _open_window(self) -> Target:
        """A first query of both versions: delta providers (scrape) take their baseline here.
        Returns the canary's target."""
        targets = self.backend.targets()
        for target in targets:
            try:
                self.provider.query(target, self.window)
            except ProviderError as e:
                log.info("opening the metrics window of %s: %s", target.role, e)
        return targets[0]

    async def _weight_changed(self, canary: Target | None, weight: int) -> None:
        """Tell the weight sink (a push over the network: off the event loop). Before the canary
        was ready no weight was ever set, so there is nothing to tell."""
        if self.on_weight is not None and canary is not None:
            await asyncio.to_thread(self.on_weight, canary, weight)

    def _measure(self) -> Check:
        readiness = self.backend.canary_readiness()
        if not readiness.ready:
            return Check(Verdict.FAIL, f"canary stopped being ready: {readiness.reason}")
        canary_target, stable_target = self.backend.targets()
        samples = []
        for target in (canary_target, stable_target):
            try:
                samples.append(self.provider.query(target, self.window))
            except ProviderError as e:
                samples.append(e)
        return evaluate(samples[0], self.thresholds, stable=samples[1])

    async def _judge(self, weight: int) -> bool:
        """Wait one interval, judge it, record it; True on a pass. Raises RolloutEnded to roll back."""
        await asyncio.sleep(self.policy.interval_seconds)
        await self._check_abort()
        check = await asyncio.to_thread(self._measure)
        self._record(weight, check)
        now = time.monotonic()
        if check.verdict is Verdict.PASS:
            self._last_conclusive = now
            return True
        if check.verdict is Verdict.FAIL:
            self._last_conclusive = now
            self._failures += 1
            if self._failures >= self.policy.failure_limit:
                raise RolloutEnded(
                    f"{self._failures} failed check(s) reached failure_limit {self.policy.failure_limit}: "
                    f"{check.reason}"
                )
            return False
        waited = now - self._last_conclusive
        if waited >= self.policy.no_data_deadline_seconds:
            raise RolloutEnded(
                f"no conclusive check for {waited:.0f}s (no_data_deadline_seconds "
                f"{self.policy.no_data_deadline_seconds:g}); last {check.verdict.value}: {check.reason}"
            )
        return False

    async def _gate_state(self) -> GateState:
        """The manual gates; an unreadable registry ends the rollout (never leaves the canary serving)."""
        try:
            return await asyncio.to_thread(self.gate)
        except MlflowError as e:
            raise RolloutEnded(f"registry unreachable during analysis: {e}") from e

    async def _await_confirmation(self, weight: int) -> None:
        """Keep judging at `weight` until the version is confirmed for 100 %; failures still roll back."""
        log.info("waiting for manual confirmation before 100%% (tag the version to confirm)")
        while self.gate is None or not (await self._gate_state()).confirmed:
            await self._judge(weight)
        log.info("manual confirmation received")

    def _record(self, weight: int, check: Check) -> None:
        entry = {"index": len(self.checks), "at": time.time(), "weight": weight, **check.as_dict()}
        self.checks.append(entry)
        log.info(
            "check %d at %d%%: %s (requests %s, 5xx %s, 4xx %s, p99 %s ms) %s",
            entry["index"], weight, check.verdict.value.upper(), _fmt(check.requests, "{:.0f}"),
            _fmt(check.error_rate, "{:.2%}"), _fmt(check.client_error_rate, "{:.2%}"),
            _fmt(check.p99_ms, "{:.1f}"), check.reason,
        )  # fmt: skip
        if self.on_check is not None:
            self.on_check(entry)


def _fmt(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)
