"""Canaries on the local backend: real predictor processes (serving venv), the real splitter,
steady load from the model's input example, the scrape provider. Each fault of the serving
image's fault injection must end in a rollback with the right reason."""

from __future__ import annotations

import os
import signal

import pytest
from rollout_support import policy, run_canary, verdicts
from support.servers import free_port

from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.providers.prometheus import PrometheusProvider

pytestmark = pytest.mark.slow


def serving(backend):
    """(served version, weight) by splitter route, and that no canary is left running."""
    state = backend.state()
    return state["stable"]["release"]["version"], state["canary"], backend.routes()


def test_good_canary_is_promoted_through_every_step_without_a_failed_request(local_stack, model_dir):
    run = run_canary(local_stack, model_dir)

    assert run.outcome.status == PROMOTED, run.outcome.reason
    assert [c["weight"] for c in run.outcome.checks] == [20, 50]
    assert verdicts(run.outcome) == ["pass", "pass"]
    assert set(run.requests) == {"200"}
    assert run.requests["200"] > 80
    version, canary, routes = serving(local_stack)
    assert (version, canary) == (run.canary.version, None)
    assert [(r["name"].split("-")[0], r["weight"]) for r in routes] == [(f"v{run.canary.version}", 100)]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (("--fault_error_rate", "0.5"), "above max_error_rate"),
        (("--fault_latency_ms", "300"), "above max_p99_latency_ms 250 ms"),
    ],
)
def test_faulty_canary_is_rolled_back_within_the_failure_limit(local_stack, model_dir, fault, reason):
    run = run_canary(local_stack, model_dir, canary_args=fault)

    assert run.outcome.status == ROLLED_BACK
    assert reason in run.outcome.reason
    # failure_limit 1: the first failed check decides (slow requests may first leave a window short).
    assert verdicts(run.outcome)[-1] == "fail"
    assert set(verdicts(run.outcome)[:-1]) <= {"inconclusive"}
    assert serving(local_stack)[:2] == (run.stable.version, None)
    # The only failed requests are the injected ones, all during the first 20 % step.
    assert set(run.requests) <= {"200", "500"}


def test_never_ready_canary_is_rolled_back_at_the_progress_deadline(local_stack, model_dir):
    run = run_canary(
        local_stack,
        model_dir,
        canary_args=("--fault_never_ready",),
        rollout=policy(progress_deadline_seconds=3),
    )

    assert run.outcome.status == ROLLED_BACK
    assert "not ready within progress_deadline_seconds 3" in run.outcome.reason
    assert run.outcome.checks == []  # never got traffic
    assert set(run.requests) == {"200"}
    assert serving(local_stack)[:2] == (run.stable.version, None)


def test_no_traffic_is_inconclusive_until_the_deadline_then_not_promoted(local_stack, model_dir):
    run = run_canary(local_stack, model_dir, load=False)

    assert run.outcome.status == ROLLED_BACK
    assert "no conclusive check for" in run.outcome.reason
    assert set(verdicts(run.outcome)) == {"inconclusive"}
    assert len(run.outcome.checks) >= 2
    assert serving(local_stack)[:2] == (run.stable.version, None)


def test_unreachable_provider_gives_error_verdicts_never_a_pass(local_stack, model_dir):
    nowhere = PrometheusProvider(f"http://127.0.0.1:{free_port()}", "shipyard", timeout=0.5)
    run = run_canary(local_stack, model_dir, provider=nowhere)

    assert run.outcome.status == ROLLED_BACK
    assert set(verdicts(run.outcome)) == {"error"}
    assert "did not answer" in run.outcome.checks[0]["reason"]


def test_canary_process_killed_mid_canary_is_rolled_back(local_stack, model_dir):
    def kill_canary_after_first_check(check):
        if check["index"] == 0:
            os.kill(local_stack.state()["canary"]["pid"], signal.SIGKILL)

    run = run_canary(local_stack, model_dir, on_check=kill_canary_after_first_check)

    assert run.outcome.status == ROLLED_BACK
    assert verdicts(run.outcome) == ["pass", "fail"]
    assert "canary stopped being ready" in run.outcome.reason
    assert "is not running" in run.outcome.reason
    assert serving(local_stack)[:2] == (run.stable.version, None)
