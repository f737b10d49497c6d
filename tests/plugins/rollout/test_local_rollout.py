"""Canaries on the local backend: real predictor processes (serving venv) behind a real HAProxy,
steady load from the model's input example, the haproxy provider. Each fault — injected by
the serving image, or done to the canary process from outside — must end in a rollback with
the right reason, and no request that could be sent again may fail for a client."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
from delay_proxy import delay_proxy
from rollout_support import LOCAL_SERVING, policy, run_canary, verdicts
from support.servers import free_port, venv_python

from shipyard.rollout.backends import Release
from shipyard.rollout.backends.local import LocalBackend
from shipyard.rollout.controller import PROMOTED, ROLLED_BACK
from shipyard.rollout.local.haproxy import BACKEND
from shipyard.rollout.local.load import load_records
from shipyard.rollout.providers.prometheus import PrometheusProvider

pytestmark = pytest.mark.slow


def serving(backend):
    """(stable version, canary entry, {server: weight} in HAProxy)."""
    state = backend.state()
    return state["stable"]["release"]["version"], state["canary"], backend.routes()


def assert_back_on_stable(backend, run):
    version, canary, routes = serving(backend)
    assert (version, canary) == (run.stable.version, None)
    assert list(routes.values()) == [100]
    assert next(iter(routes)).startswith(f"v{run.stable.version}-")


def test_good_canary_is_promoted_through_every_step_without_a_failed_request(local_stack, model_dir):
    run = run_canary(local_stack, model_dir)

    assert run.outcome.status == PROMOTED, run.outcome.reason
    assert [c["weight"] for c in run.outcome.checks] == [20, 50]
    assert verdicts(run.outcome) == ["pass", "pass"]
    assert set(run.requests) == {"200"}
    assert run.requests["200"] > 80
    version, canary, routes = serving(local_stack)
    assert (version, canary) == (run.canary.version, None)
    assert [(name.split("-")[0], weight) for name, weight in routes.items()] == [
        (f"v{run.canary.version}", 100)
    ]


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
    assert_back_on_stable(local_stack, run)
    # The only failed requests are the injected ones, all during the first 20 % step.
    assert set(run.requests) <= {"200", "500"}


def test_a_canary_that_refuses_what_clients_send_is_rolled_back_by_the_client_error_rule(
    local_stack, model_dir, narrow_model_dir
):
    """Trained without `monthly_charges`, the canary answers 400 to every client still sending it.
    Nothing fails on the server side; only the 4xx share against stable's tells."""
    run = run_canary(local_stack, narrow_model_dir, examples=model_dir / "input_example.json")

    assert run.outcome.status == ROLLED_BACK
    assert "client errors (4xx) 100.00% of requests vs stable 0.00%" in run.outcome.reason
    assert "above max_client_error_rate_increase 5.00%" in run.outcome.reason
    failed = run.outcome.checks[-1]
    assert (failed["verdict"], failed["error_rate"], failed["client_error_rate"]) == ("fail", 0.0, 1.0)
    assert_back_on_stable(local_stack, run)
    assert set(run.requests) == {"200", "400"}  # the 400s: only what reached the canary at 20 %


def test_latency_in_front_of_the_model_is_judged_as_clients_see_it(local_stack, model_dir):
    """300 ms before each prediction reaches the canary predictor: its own histogram sees none
    of it; HAProxy's request times do."""
    relay = []

    def route_canary_through_a_slow_front_door():
        canary = local_stack.state()["canary"]
        relay.append(delay_proxy(canary["port"], 0.3))
        port = relay[0].__enter__()
        local_stack.runtime.command(f"set server {BACKEND}/{canary['server']} addr 127.0.0.1 port {port}")

    try:
        run = run_canary(local_stack, model_dir, before_analysis=route_canary_through_a_slow_front_door)
    finally:
        for context in relay:
            context.__exit__(None, None, None)

    assert run.outcome.status == ROLLED_BACK
    assert "above max_p99_latency_ms 250 ms" in run.outcome.reason
    assert run.outcome.checks[-1]["p99_ms"] >= 300
    assert_back_on_stable(local_stack, run)
    assert set(run.requests) == {"200"}


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
    assert_back_on_stable(local_stack, run)


def test_a_canary_that_cannot_start_is_rolled_back_at_once_with_its_cause(local_stack, broken_model_dir):
    run = run_canary(local_stack, broken_model_dir, rollout=policy(progress_deadline_seconds=300))

    assert run.outcome.status == ROLLED_BACK, run.outcome.reason
    assert run.outcome.reason.startswith("canary failed to start: predictor"), run.outcome.reason
    assert "ModelDirError" in run.outcome.reason
    # As soon as the process has exited (its start-up takes 5-40 s on a busy 2-core machine),
    # not at the 300 s progress deadline.
    assert run.seconds < 120
    assert set(run.requests) == {"200"}
    assert_back_on_stable(local_stack, run)


def test_no_traffic_is_inconclusive_until_the_deadline_then_not_promoted(local_stack, model_dir):
    run = run_canary(local_stack, model_dir, load=False)

    assert run.outcome.status == ROLLED_BACK
    assert "no conclusive check for" in run.outcome.reason
    assert set(verdicts(run.outcome)) == {"inconclusive"}
    assert len(run.outcome.checks) >= 2
    assert_back_on_stable(local_stack, run)


def test_unreachable_provider_gives_error_verdicts_never_a_pass(local_stack, model_dir):
    nowhere = PrometheusProvider(f"http://127.0.0.1:{free_port()}", "shipyard", timeout=0.5)
    run = run_canary(local_stack, model_dir, provider=nowhere)

    assert run.outcome.status == ROLLED_BACK
    assert set(verdicts(run.outcome)) == {"error"}
    assert "did not answer" in run.outcome.checks[0]["reason"]


@pytest.mark.parametrize(
    ("sig", "reasons"),
    [
        (signal.SIGKILL, ("exited; its log ends",)),
        # whichever tells first: HAProxy's check, or the readiness probe of the analysis
        (signal.SIGSTOP, ("HAProxy's health check says DOWN, L7TOUT", "does not answer")),
    ],
)
def test_a_killed_or_hung_canary_under_load_loses_no_request_and_leaves_fast(
    local_stack, model_dir, sig, reasons
):
    """kill -9 or SIGSTOP of the canary at 20 %: HAProxy takes it out within one health-check
    interval plus the check's timeout (a refused connection at once), sends every request it
    could not finish there to stable again (refused, reset or timed out after 2 s), so no
    client sees a failure, and the next check rolls back."""
    left_after: list[float] = []

    def watch_canary_leave(server: str, signalled: float) -> None:
        while time.monotonic() - signalled < 30:
            status = local_stack.runtime.servers().get(server)
            if status is None or not status.status.startswith("UP"):
                left_after.append(time.monotonic() - signalled)
                return
            time.sleep(0.02)

    def signal_canary_after_first_check(check):
        if check["index"] == 0:
            canary = local_stack.state()["canary"]
            os.kill(canary["pid"], sig)
            threading.Thread(target=watch_canary_leave, args=(canary["server"], time.monotonic())).start()

    run = run_canary(local_stack, model_dir, on_check=signal_canary_after_first_check)

    bound = LOCAL_SERVING.health_check_interval_seconds + LOCAL_SERVING.health_check_timeout_seconds
    assert left_after, "the canary never left HAProxy's rotation"
    assert left_after[0] <= bound + 0.3, (left_after, bound)  # 0.3 s: the watcher's own latency
    assert run.outcome.status == ROLLED_BACK
    assert verdicts(run.outcome) == ["pass", "fail"]
    assert "canary stopped being ready" in run.outcome.reason
    assert any(reason in run.outcome.reason for reason in reasons), run.outcome.reason
    assert_back_on_stable(local_stack, run)
    assert set(run.requests) == {"200"}, run.requests
    print(f"{signal.Signals(sig).name}: no new request to the canary {left_after[0]:.2f}s after the signal")


def test_two_pipelines_get_their_own_load_balancer_ports_and_serve_side_by_side(
    local_stack, model_dir, tmp_path
):
    """Issue 13: a second pipeline's stack must not take the first one's port or routes."""
    other = LocalBackend(
        str(tmp_path / "other"), venv_python("serving"), served_name="other-probe", settings=LOCAL_SERVING
    )
    try:
        other.deploy_stable(Release("other_probe", "1", str(model_dir)), timeout=60)
        first, second = local_stack.state()["proxy"], other.state()["proxy"]
        assert {first["port"], first["metrics_port"]}.isdisjoint({second["port"], second["metrics_port"]})
        row = load_records(model_dir / "input_example.json")[:1]
        for backend, name in ((local_stack, local_stack.served_name), (other, "other-probe")):
            response = httpx.post(f"{backend.url}/v1/models/{name}:predict", json={"instances": row})
            assert response.status_code == 200, response.text
        assert (
            httpx.post(
                f"{other.url}/v1/models/{local_stack.served_name}:predict", json={"instances": row}
            ).status_code
            == 404
        )
    finally:
        other.stop_all()
    assert list(local_stack.routes().values()) == [100]  # the first pipeline's routes untouched
