"""Rollout benchmark: how fast a bad canary loses its traffic, and what the switches cost.

    .venv/airflow/bin/python benchmarks/rollout/run.py [--spec dags/pipelines/telco_churn.yaml] [--repeats 2]

With the spec's rollout policy (the demo's short intervals) on the local backend (real
predictors, the real splitter, steady load from the model's input example), it measures:

- **time to recover**: from the moment a faulty canary first receives traffic (the fault
  starts: the predictor's fault injection is active from its first request) to the moment
  the splitter routes 100 % to stable again, against the bound `interval x failure_limit`
  (Flagger's default: 60 s x 1);
- **requests lost to switches**: failed requests that are not injected faults (anything but
  the injected 500s), over a full promotion and over the rollbacks. Goal: 0.

Prints one line per run and a summary. Takes about a minute with the demo policy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO / "tests"))

from support.servers import venv_python  # noqa: E402

from shipyard.rollout.backends import Release  # noqa: E402
from shipyard.rollout.backends.local import LocalBackend, free_port  # noqa: E402
from shipyard.rollout.controller import CanaryController  # noqa: E402
from shipyard.rollout.local.load import LoadDriver, load_records  # noqa: E402
from shipyard.rollout.providers import build_provider  # noqa: E402
from shipyard_spec import load_spec  # noqa: E402

MODEL = "bench_churn"
FAULTS = {"error-rate 30%": ["--fault_error_rate", "0.3"], "latency +400 ms": ["--fault_latency_ms", "400"]}


class RouteWatch:
    """Polls the splitter's routes every 20 ms: when the canary got traffic, when it lost it all."""

    def __init__(self, backend: LocalBackend, canary_pid_name: str) -> None:
        self.backend, self.name = backend, canary_pid_name
        self.first_traffic: float | None = None
        self.back_on_stable: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            weights = {r["name"]: r["weight"] for r in self.backend.routes()}
            canary = sum(w for n, w in weights.items() if n.startswith(self.name))
            now = time.monotonic()
            if canary > 0 and self.first_traffic is None:
                self.first_traffic = now
            if canary == 0 and self.first_traffic is not None and self.back_on_stable is None:
                self.back_on_stable = now
            time.sleep(0.02)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def canary_run(backend: LocalBackend, policy, model_dir: Path, version: int, args: list[str], rps: float):
    stable = Release.from_dict(backend.state()["stable"]["release"])
    canary = Release(MODEL, str(version), str(model_dir), args=args)
    records = load_records(model_dir / "input_example.json")
    with LoadDriver(backend.url, MODEL, records, rps) as load:
        backend.deploy_canary(stable, canary)
        with RouteWatch(backend, f"v{version}-") as watch:
            outcome = asyncio.run(CanaryController(policy, backend, build_provider(policy.metrics)).run())
    return outcome, load.outcomes, watch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "dags/pipelines/telco_churn.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rps", type=float, default=50, help="load; the first step must reach min_requests")
    args = parser.parse_args()
    policy = load_spec(args.spec).rollout.model_copy(update={"backend": "local"})
    bound = policy.interval_seconds * policy.failure_limit
    print(
        f"policy from {args.spec.name}: steps {policy.steps}, interval {policy.interval_seconds:g}s, "
        f"failure_limit {policy.failure_limit}, min_requests {policy.min_requests}; load {args.rps:g} rps"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run(
            [
                venv_python("pipeline"),
                str(REPO / "tests/images/serving/train_telco_model.py"),
                str(out),
                "--n-estimators",
                "50",
            ],
            check=True,
            capture_output=True,
        )
        model_dir = out / "model"
        backend = LocalBackend(str(out / "serving"), free_port(), venv_python("serving"))
        recover, lost, total = [], 0, 0
        try:
            backend.deploy_stable(Release(MODEL, "1", str(model_dir)), timeout=120)
            version = 2
            outcome, requests, _ = canary_run(backend, policy, model_dir, version, [], args.rps)
            switch_failures = sum(n for status, n in requests.items() if status != "200")
            lost, total = lost + switch_failures, total + sum(requests.values())
            print(
                f"good canary: {outcome.status} after {len(outcome.checks)} checks; requests {dict(requests)}"
            )
            for name, fault in FAULTS.items():
                for _ in range(args.repeats):
                    version += 1
                    outcome, requests, watch = canary_run(
                        backend, policy, model_dir, version, fault, args.rps
                    )
                    seconds = watch.back_on_stable - watch.first_traffic
                    recover.append(seconds)
                    switch_failures = sum(n for status, n in requests.items() if status not in {"200", "500"})
                    lost, total = lost + switch_failures, total + sum(requests.values())
                    print(
                        f"{name}: {outcome.status} in {seconds:.2f}s from first canary traffic to 100% "
                        "stable "
                        f"(bound {bound:g}s); requests {dict(requests)}; reason: {outcome.reason}"
                    )
        finally:
            backend.stop_all()
    print(
        f"\ntime to recover: median {statistics.median(recover):.2f}s, max {max(recover):.2f}s "
        f"vs bound interval x failure_limit = {bound:g}s (Flagger default 60s x 1)"
    )
    print(f"requests failed by traffic switches: {lost} of {total} (goal 0)")


if __name__ == "__main__":
    main()
