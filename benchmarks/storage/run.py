"""Storage benchmark: the pipeline steps' wall time with the storage root on S3 vs on local disk.

    make bench-storage            # or: .venv/pipeline/bin/python benchmarks/storage/run.py [--rounds 2]

Two setups over the Telco demo data, each with its own MLflow server run as the chart runs it
(`--serve-artifacts`): *local* (storage root and artifact destination on disk, the embedded
mode) and *s3* (both in a bucket of moto's standalone S3 server on loopback, the Kubernetes
mode). The 25 history weeks are ingested for both, then every step
(ingest → validate → train → evaluate → register → drift) runs as a `shipyard-step` subprocess,
local then s3 back to back, so that both see the same load on a shared machine. Prints the
median wall time per step (interpreter start included) of `--rounds` runs of the chain.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.servers import mlflow_server, s3_server, venv_python  # noqa: E402

from shipyard_pipeline import demo  # noqa: E402
from shipyard_spec.contract import Alias, Env, Step  # noqa: E402

SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"
BUCKET = "shipyard-bench"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
STEPS = [Step.INGEST, Step.VALIDATE, Step.TRAIN, Step.EVALUATE, Step.REGISTER, Step.DRIFT]


def step_seconds(step: Step, storage_root: str, run_id: str, env: dict[str, str], workdir: Path) -> float:
    start, end = demo.last_monday() - timedelta(weeks=1), demo.last_monday()
    if step == Step.DRIFT:  # the champion's last day of traffic (none logged: the step's own cost)
        now = datetime.now(UTC)
        start, end = now - timedelta(days=1), now
    command = [
        venv_python("pipeline"), "-m", "shipyard_pipeline", step, "--spec", str(SPEC),
        "--interval-start", start.isoformat(), "--interval-end", end.isoformat(), "--run-id", run_id,
        "--storage-root", storage_root, "--result-path", str(workdir / f"{step}.json"),
        *(["--skip-tuning"] if step == Step.TRAIN else []),
    ]  # fmt: skip
    started = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{step} on {storage_root} failed: {completed.stderr[-2000:]}")
    return elapsed


def promote(env: dict[str, str]) -> None:
    """Make the registered version the champion (the rollout's job), so drift has one to check."""
    code = (
        "from mlflow import MlflowClient; c = MlflowClient(); "
        "v = c.get_model_version_by_alias('telco_churn', 'challenger'); "
        f"c.set_registered_model_alias('telco_churn', '{Alias.CHAMPION}', v.version)"
    )
    subprocess.run([venv_python("pipeline"), "-c", code], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="chains per setup (median reported)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its servers
    with (
        tempfile.TemporaryDirectory(prefix="shipyard-bench-storage-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        home = work / "home"
        demo.seed(home)
        endpoint = stack.enter_context(s3_server(work / "s3", buckets=(BUCKET,)))
        s3_env = {Env.S3_ENDPOINT_URL.value: endpoint, **CREDENTIALS}
        base = {**os.environ, **s3_env, Env.HOME.value: str(home)}
        base.pop(Env.PREDICTION_LOG_URI.value, None)
        setups = {
            "local": (str(work / "storage"), stack.enter_context(mlflow_server(work / "mlflow-local"))),
            "s3": (
                f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
                stack.enter_context(
                    mlflow_server(
                        work / "mlflow-s3", artifacts_destination=f"s3://{BUCKET}/mlflow", env=s3_env
                    )
                ),
            ),
        }
        os.environ.update(base)
        seconds: dict[tuple[str, str], list[float]] = {}
        for name, (root, _) in setups.items():
            started = time.monotonic()
            demo.ingest_history(SPEC, root, demo.WEEKS - 1)
            seconds[(name, "ingest-history")] = [time.monotonic() - started]
        for round_ in range(args.rounds):
            for step in STEPS:
                for name, (root, mlflow_uri) in setups.items():
                    env = {**base, Env.MLFLOW_TRACKING_URI.value: mlflow_uri}
                    if step == Step.DRIFT:
                        promote(env)
                    workdir = work / f"results-{name}-{round_}"
                    workdir.mkdir(exist_ok=True)
                    elapsed = step_seconds(step, root, f"bench__{round_}", env, workdir)
                    seconds.setdefault((name, step), []).append(elapsed)
                    print(f"round {round_ + 1} {step:<9} {name:<5} {elapsed:6.1f} s", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(f"{'step':<26}{'local s':>9}{'s3 s':>9}")
    for step in ["ingest-history", *STEPS]:
        local, s3 = (statistics.median(seconds[(name, step)]) for name in ("local", "s3"))
        label = f"{step} (25 weeks)" if step == "ingest-history" else str(step)
        print(f"{label:<26}{local:>9.1f}{s3:>9.1f}")


if __name__ == "__main__":
    main()
