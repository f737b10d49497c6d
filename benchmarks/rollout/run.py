"""Rollout benchmark: how fast each kind of bad canary loses its traffic, and what clients see.

    .venv/airflow/bin/python benchmarks/rollout/run.py [--spec dags/pipelines/telco_churn.yaml] [--rps 50]

With the spec's rollout policy (the demo's short intervals) on the local backend (real
predictors behind the pipeline's real HAProxy, steady load from the model's input example,
the haproxy provider), one canary per fault:

| fault | how |
|---|---|
| none | a good canary: promoted; every request must succeed |
| 5xx 30 % | the predictor's fault injection, `--fault_error_rate 0.3` |
| in-model latency +400 ms | `--fault_latency_ms 400` (inside the predictor's own histogram) |
| front-door latency +300 ms | a relay holding each prediction 300 ms before the canary predictor |
| 4xx only | a model trained without `monthly_charges`: 400 to every client still sending it |
| kill -9 | SIGKILL of the canary predictor after its first passing check |
| SIGSTOP | the canary predictor stopped (hung) after its first passing check |
| registry down | the real MLflow server stopped after the first check (the manual gates read it) |
| cannot start | a model directory whose model.pkl is not a pickle (ModelDirError) |

For each: the decision; from the fault's start (the canary's first traffic, or the signal)
the time until HAProxy sends the canary no new request (weight 0, or marked down by a health
check or a refused connection) and until the controller's weights are back at 100 % stable,
against the bound `interval x failure_limit` (for "cannot start": its own start-up, where
the progress deadline used to be waited out; for "registry down": plus the registry hook's
retries, 1 + 2 + 4 s on a refused connection); and the requests that failed for clients (any answer but 200)
out of all sent, split into the fault's own answers (the injected 500s, the canary's 400s)
and the rest (lost: nothing else may fail). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests/plugins/rollout"))

from delay_proxy import delay_proxy  # noqa: E402
from mlflow_rest import register_version  # noqa: E402
from support.servers import mlflow_server, venv_python  # noqa: E402

from shipyard.hooks.mlflow import MlflowHook  # noqa: E402
from shipyard.rollout.backends import Release  # noqa: E402
from shipyard.rollout.backends.local import LocalBackend  # noqa: E402
from shipyard.rollout.controller import CanaryController  # noqa: E402
from shipyard.rollout.local.haproxy import BACKEND  # noqa: E402
from shipyard.rollout.local.load import LoadDriver, load_records  # noqa: E402
from shipyard.rollout.providers import build_provider  # noqa: E402
from shipyard.rollout.registry import MlflowRegistry  # noqa: E402
from shipyard_spec import load_spec  # noqa: E402

MODEL = "bench_churn"
MLFLOW_CONN = "bench_mlflow"
REGISTRY_RETRY_SECONDS = 1 + 2 + 4  # MlflowHook: 4 attempts, backoff 1-2-4 s


class RouteWatch:
    """Polls HAProxy every 20 ms: when the canary first had traffic, when HAProxy stopped sending
    it new requests (weight 0, or its health check / a refused connection marked it down), and
    when the controller's weights were back at 100 % stable."""

    def __init__(self, backend: LocalBackend, prefix: str) -> None:
        self.backend, self.prefix = backend, prefix
        self.first_traffic: float | None = None
        self.traffic_off: float | None = None
        self.back_on_stable: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _observe(self) -> None:
        canary = [s for name, s in self.backend.runtime.servers().items() if name.startswith(self.prefix)]
        weight = sum(s.weight for s in canary)
        serving = any(s.weight and s.status.startswith("UP") for s in canary)
        now = time.monotonic()
        if weight > 0 and self.first_traffic is None:
            self.first_traffic = now
        if self.first_traffic is not None:
            if not serving and self.traffic_off is None:
                self.traffic_off = now
            if weight == 0 and self.back_on_stable is None:
                self.back_on_stable = now

    def _run(self) -> None:
        while not self._stop.is_set():
            self._observe()
            time.sleep(0.02)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        # A dead canary is retired at once: the controller may return before a poll saw weight 0.
        self._observe()


@dataclass
class Fault:
    name: str
    model: str  # "good", "narrow" or "broken"
    args: tuple[str, ...] = ()
    on_first_check: int | None = None  # a signal sent to the canary after its first check
    front_door_ms: float = 0
    registry_down: bool = False  # MLflow stopped after the first check
    own_answers: frozenset[str] = frozenset()  # the answers the fault itself gives clients


FAULTS = [
    Fault("none (good canary)", "good"),
    Fault("5xx 30 %", "good", ("--fault_error_rate", "0.3"), own_answers=frozenset({"500"})),
    Fault("in-model latency +400 ms", "good", ("--fault_latency_ms", "400")),
    Fault("front-door latency +300 ms", "good", front_door_ms=300),
    Fault("4xx only (feature removed)", "narrow", own_answers=frozenset({"400"})),
    Fault("kill -9 after 1st check", "good", on_first_check=signal.SIGKILL),
    Fault("SIGSTOP after 1st check", "good", on_first_check=signal.SIGSTOP),
    Fault("registry down after 1st check", "good", registry_down=True),
    Fault("cannot start (ModelDirError)", "broken"),
]


def train(out: Path, *without: str) -> Path:
    script = REPO / (
        "tests/plugins/rollout/train_without.py" if without else "tests/images/serving/train_telco_model.py"
    )
    command = [venv_python("pipeline"), str(script), *(f"--without={f}" for f in without), str(out)]
    subprocess.run([*command, "--n-estimators", "50"], check=True, capture_output=True)
    return out / "model"


class Registry:
    """A real MLflow server holding the canary's version, for the manual gates; stoppable mid-run."""

    def __init__(self, workdir: Path, models: dict[str, Path]) -> None:
        self.workdir, self.models = workdir, models
        self._server = contextlib.ExitStack()

    def gate_for_new_version(self):
        url = self._server.enter_context(mlflow_server(self.workdir))
        os.environ[f"AIRFLOW_CONN_{MLFLOW_CONN.upper()}"] = url
        version = register_version(url, MODEL, self.models["good"])
        return functools.partial(MlflowRegistry(MlflowHook(MLFLOW_CONN), MODEL).gate, version)

    def stop(self) -> None:
        self._server.close()


def canary_run(
    backend: LocalBackend, policy, models: dict[str, Path], version: int, fault: Fault, rps: float, tmp: Path
):
    stable = Release.from_dict(backend.state()["stable"]["release"])
    canary = Release(MODEL, str(version), str(models[fault.model]), args=list(fault.args))
    records = load_records(models["good"] / "input_example.json")
    signalled: list[float] = []
    relays = contextlib.ExitStack()
    registry = Registry(tmp / f"mlflow-{version}", models) if fault.registry_down else None
    gate = registry.gate_for_new_version() if registry else None

    def on_check(check: dict) -> None:
        if check["index"] != 0:
            return
        if fault.on_first_check is not None:
            os.kill(backend.state()["canary"]["pid"], fault.on_first_check)
            signalled.append(time.monotonic())
        if registry is not None:
            signalled.append(time.monotonic())
            threading.Thread(target=registry.stop).start()  # SIGTERM; the analysis goes on meanwhile

    started = time.monotonic()
    with relays, LoadDriver(backend.url, backend.served_name, records, rps) as load:
        backend.deploy_canary(stable, canary)
        if fault.front_door_ms:
            entry = backend.state()["canary"]
            port = relays.enter_context(delay_proxy(entry["port"], fault.front_door_ms / 1000))
            backend.runtime.command(f"set server {BACKEND}/{entry['server']} addr 127.0.0.1 port {port}")
        with RouteWatch(backend, f"v{version}-") as watch:
            controller = CanaryController(
                policy, backend, build_provider(policy.metrics), gate=gate, on_check=on_check
            )
            outcome = asyncio.run(controller.run())
    ended = time.monotonic()
    if signalled:
        start = signalled[0]
    elif fault.model == "broken":
        start = started  # it never gets traffic: from its deployment
    else:
        start = watch.first_traffic
    end = watch.back_on_stable if watch.first_traffic is not None else ended
    off = watch.traffic_off if watch.first_traffic is not None else ended
    timings = (None, None)
    if start is not None and outcome.status != "promoted":
        timings = tuple(None if t is None else t - start for t in (off, end))
    return outcome, load.outcomes, load.sent, timings


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def row(fault: Fault, outcome, requests: Counter[str], sent: int, timings: tuple, bound: str) -> str:
    failed = {status: n for status, n in requests.items() if status != "200"}
    own = sum(n for status, n in failed.items() if status in fault.own_answers)
    lost = sum(failed.values()) - own
    return (
        f"| {fault.name} | {outcome.status} | {seconds(timings[0])} | {seconds(timings[1])} | {bound} "
        f"| {sum(failed.values())} of {sent} ({dict(failed) or 'none'}) | {lost} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "dags/pipelines/telco_churn.yaml")
    parser.add_argument("--rps", type=float, default=50, help="load; the first step must reach min_requests")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only the faults whose name contains one of these"
    )
    args = parser.parse_args()
    policy = load_spec(args.spec).rollout.model_copy(update={"backend": "local"})
    bound = f"{policy.interval_seconds * policy.failure_limit:g} (interval x failure_limit)"
    print(
        f"policy from {args.spec.name}: steps {policy.steps}, interval {policy.interval_seconds:g}s, "
        f"failure_limit {policy.failure_limit}, min_requests {policy.min_requests}, health checks "
        f"every {policy.local.health_check_interval_seconds:g}s (timeout "
        f"{policy.local.health_check_timeout_seconds:g}s), server timeout "
        f"{policy.local.server_timeout_seconds:g}s; "
        f"load {args.rps:g} rps",
        flush=True,
    )
    lines = [
        "| fault | decision | fault start → no new request to the canary (s) | fault start → weights "
        "100 % stable (s) | bound (s) | failed for clients (of sent) | lost (not the fault's own answers) |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        models = {"good": train(out / "good"), "narrow": train(out / "narrow", "monthly_charges")}
        models["broken"] = out / "broken" / "model"
        shutil.copytree(models["good"], models["broken"])
        (models["broken"] / "model.pkl").write_bytes(b"not a pickle")
        backend = LocalBackend(
            str(out / "serving"), venv_python("serving"), served_name=MODEL, settings=policy.local
        )
        try:
            backend.deploy_stable(Release(MODEL, "1", str(models["good"])), timeout=120)
            chosen = [f for f in FAULTS if not args.only or any(word in f.name for word in args.only)]
            for version, fault in enumerate(chosen, start=2):
                outcome, requests, sent, timings = canary_run(
                    backend, policy, models, version, fault, args.rps, out
                )
                limit = bound
                if fault.model == "broken":
                    limit = f"its start-up (was {policy.progress_deadline_seconds:g})"
                elif fault.registry_down:
                    limit = f"{bound} + {REGISTRY_RETRY_SECONDS} (registry retries)"
                lines.append(row(fault, outcome, requests, sent, timings, limit))
                print(lines[-1], f"— {outcome.reason}", flush=True)
        finally:
            backend.stop_all()
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
