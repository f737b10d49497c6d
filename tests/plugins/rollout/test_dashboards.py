"""Every panel of the shipped Grafana dashboard, run as PromQL against a real Prometheus.

Prometheus (Debian `prometheus`) scrapes the real stable and canary predictors of the local
backend (serving venv) under steady load, plus a real Pushgateway (Debian
`prometheus-pushgateway`) with `honor_labels`. What is pushed comes from the code that pushes in
production: the canary weight from a real canary rollout (`RolloutFigures` as the trigger wires
it), a replay shadow comparison made as the shadow stage makes it (both predictors score the same
logged-like rows with `score_rows`, `judge` decides) and pushed by the same `RolloutFigures`, the
drift PSI from the drift step's `push_psi` run in the pipeline venv. Each panel must return
series, with the values pushed where the test knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_server import prometheus_server
from rollout_support import MODEL_NAME, RPS, policy, run_canary
from support.servers import REPO, free_port, pushgateway_server, venv_python

from shipyard.rollout.analysis import Verdict
from shipyard.rollout.backends import Release
from shipyard.rollout.controller import PROMOTED, CanaryController
from shipyard.rollout.dashboard_push import RolloutFigures
from shipyard.rollout.local.load import LoadDriver, load_records
from shipyard.rollout.providers import build_provider
from shipyard.rollout.registry import GateState
from shipyard.rollout.shadow import ShadowCheck, ShadowMode, judge
from shipyard.rollout.shadow_io import score_rows
from shipyard_spec.contract import Env, PushJob, serving_name
from shipyard_spec.model import Shadow
from shipyard_spec.shadow import Pair

pytestmark = pytest.mark.slow

DASHBOARD = json.loads((REPO / "charts/shipyard/files/dashboards/shipyard.json").read_text())
PANELS = [
    (panel["title"], target["expr"]) for panel in DASHBOARD["panels"] for target in panel.get("targets", [])
]
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval: 4 scrapes at least (1 s here)
DRIFT_PSI = {"tenure": 0.031, "contract": 0.27, "monthly_charges": 0.004}
SHADOW_ROWS = 200  # shadow.min_rows by default: fewer would be inconclusive


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


@contextlib.contextmanager
def setting_on_exit(event: threading.Event) -> Iterator[None]:
    try:
        yield
    finally:
        event.set()


@contextlib.contextmanager
def refusing(url: str) -> Iterator[list[int]]:
    """A thread sending a request the predictor refuses (no feature) every 0.2 s; the statuses."""
    statuses: list[int] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(0.2):
            statuses.append(httpx.post(url, json={"instances": [{}]}, timeout=10).status_code)

    sender = threading.Thread(target=send, name="refused-requests")
    sender.start()
    try:
        yield statuses
    finally:
        stop.set()
        sender.join()


def pushes(figures: RolloutFigures, job: PushJob) -> int:
    return sum(int(status["pushed"]) for status in figures.status() if status["job"] == job)


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return value


def wait_for_series(prometheus: str, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The query's series once Prometheus has scraped them (empty after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not (found := query(prometheus, expr)) and time.monotonic() < deadline:
        time.sleep(1)
    return found


def weights_seen(prometheus: str, expr: str) -> set[float]:
    """Every value of the canary weight over the last five minutes (a range query, as Grafana's)."""
    end = time.time()
    response = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": end - 300, "end": end, "step": "1s"},
        timeout=10,
    )
    response.raise_for_status()
    return {float(value) for series in response.json()["data"]["result"] for _, value in series["values"]}


def concrete(expr: str, model: str) -> str:
    """The expression as Grafana sends it for one model."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$model", model)


def push_drift_with_the_drift_step_code(pushgateway: str, pipeline: str, version: str) -> None:
    """`shipyard_pipeline.drift.push.push_psi` in the pipeline venv, on a checked step result."""
    result = {"pipeline": pipeline, "model_version": version, "psi": DRIFT_PSI}
    script = (
        "import json, sys; from shipyard_pipeline.drift.push import push_psi; "
        "print(json.dumps(push_psi(json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [venv_python("pipeline"), "-c", script, json.dumps(result)],
        env={"PATH": "/usr/bin:/bin", Env.PUSHGATEWAY_URL: pushgateway},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert json.loads(done.stdout)["pushed"] == 1, done.stderr


def push_shadow_comparison(figures: RolloutFigures, stack: Any, records: list[dict[str, Any]]) -> ShadowCheck:
    """A replay comparison of the two serving versions on the same rows, pushed as the trigger does."""
    canary_url, stable_url = stack.direct_urls()
    rows = (records * SHADOW_ROWS)[:SHADOW_ROWS]
    champion = score_rows(stable_url, stack.served_name, rows, batch_size=100, timeout=30)
    challenger = score_rows(canary_url, stack.served_name, rows, batch_size=100, timeout=30)
    pairs = [Pair(old, new) for old, new in zip(champion, challenger, strict=True)]
    check = judge(ShadowMode.REPLAY, pairs, Shadow(), threshold=0.5)
    figures.shadow(stack.targets()[0], check)
    return check


def test_every_panel_returns_series_from_real_predictors_and_pushes(local_stack, model_dir, tmp_path):
    """A real canary held at its last step (manual confirmation) while every panel is queried, so
    both versions serve; confirmed afterwards, so the weight ends at 100."""
    served = local_stack.served_name
    assert served == serving_name(MODEL_NAME)
    stable = Release.from_dict(local_stack.state()["stable"]["release"])
    canary = Release(MODEL_NAME, "41", str(model_dir))
    local_stack.deploy_canary(stable, canary)
    ports = [local_stack.state()[role]["port"] for role in ("stable", "canary")]
    records = load_records(model_dir / "input_example.json")
    confirmed = threading.Event()
    with (
        pushgateway_server(tmp_path / "pushgateway") as pushgateway,
        prometheus_server(
            tmp_path / "prometheus",
            [f"127.0.0.1:{p}" for p in ports],
            pushgateway=pushgateway.removeprefix("http://"),
        ) as prometheus,
        LoadDriver(local_stack.url, served, records, RPS),
        ThreadPoolExecutor(1) as analysis,
        setting_on_exit(confirmed),  # a failure below still lets the held canary finish
    ):
        figures = RolloutFigures(pushgateway)
        rollout = policy(
            manual_confirmation=True,
            failure_limit=10,  # this test is about the panels: a slow moment on a busy machine may not end it
            max_p99_latency_ms=5000,
            no_data_deadline_seconds=120,
            metrics={"provider": "prometheus", "prometheus_url": prometheus, "window_seconds": 3},
        )
        controller = CanaryController(
            rollout,
            local_stack,
            build_provider(rollout.metrics),
            gate=lambda: GateState(confirmed.is_set(), None),
            on_weight=figures.weight,
        )
        running = analysis.submit(asyncio.run, controller.run())
        wait_for(
            lambda: pushes(figures, PushJob.ROLLOUT) == 2 or running.done(),
            "the canary at its last step (50 %)",
        )
        assert not running.done(), running.result()
        push_drift_with_the_drift_step_code(pushgateway, MODEL_NAME, canary.version)
        shadow = push_shadow_comparison(figures, local_stack, records)
        assert shadow.verdict is Verdict.PASS, shadow.reason  # the same model on both sides
        # Requests the predictors refuse (4xx) while the panels are queried, so the client-error
        # panel's rate over the last seconds has more than zeros however long the queries take.
        with refusing(f"{local_stack.url}/v1/models/{served}:predict") as refused:
            client_errors = concrete(dict(PANELS)["Client errors (4xx) per version"], served)
            wait_for(  # every outcome's series exists from the start (at 0): wait for the refusals
                lambda: any(float(r["value"][1]) > 0 for r in query(prometheus, client_errors)),
                "a 4xx share above 0 in the client-error panel",
            )
            results = {title: wait_for_series(prometheus, concrete(expr, served)) for title, expr in PANELS}
        assert set(refused) == {400}  # sent, and refused as a client error
        names = httpx.get(f"{prometheus}/api/v1/label/model_name/values", timeout=10).json()["data"]

        confirmed.set()
        outcome = running.result(timeout=120)
        assert outcome.status == PROMOTED, outcome.reason
        weight_expr = concrete(dict(PANELS)["Canary weight"], served)
        over_time = wait_for(
            lambda: seen if 100.0 in (seen := weights_seen(prometheus, weight_expr)) else None,
            "the weight at 100 %",
        )

    empty = [title for title, found in results.items() if not found]
    assert empty == [], f"panels without series: {empty}"
    for title in ("Request rate per version", "p50 latency per version", "p99 latency per version"):
        assert {r["metric"]["model_version"] for r in results[title]} == {stable.version, canary.version}, (
            title
        )
    assert any(float(r["value"][1]) > 0 for r in results["Client errors (4xx) per version"])
    [weight] = results["Canary weight"]
    assert (weight["metric"], float(weight["value"][1])) == ({"model": served, "version": canary.version}, 50)
    assert over_time >= {20.0, 50.0, 100.0}  # the weight over time, as the panel draws it
    assert (pushes(figures, PushJob.ROLLOUT), pushes(figures, PushJob.SHADOW)) == (3, 1)
    psi = {r["metric"]["feature"]: float(r["value"][1]) for r in results["Drift PSI per feature"]}
    assert psi == DRIFT_PSI
    abs_diff = {r["metric"]["statistic"]: float(r["value"][1]) for r in results["Score difference"]}
    assert abs_diff == {"mean": 0.0, "p99": 0.0}
    [paired] = results["Shadow requests"]
    assert (paired["metric"], float(paired["value"][1])) == (
        {"model": served, "version": canary.version},
        200,
    )
    assert served in names  # the dashboard's `model` variable offers the served name


def test_an_unreachable_pushgateway_never_fails_the_rollout(local_stack, model_dir, caplog):
    nobody = f"http://127.0.0.1:{free_port()}"
    figures = RolloutFigures(nobody)
    run = run_canary(local_stack, model_dir, on_weight=figures.weight)

    assert run.outcome.status == PROMOTED, run.outcome.reason
    assert figures.status() == [{"url": nobody, "job": PushJob.ROLLOUT.value, "pushed": 0, "failed": 3}]
    assert f"could not push shipyard_rollout figures of {local_stack.served_name}" in caplog.text
