"""Serving benchmark: Shipyard's predictor vs `mlflow models serve` vs a naive kserve predictor.

    make bench-serving            # or: .venv/serving/bin/python benchmarks/serving/run.py [--seconds 10]

Trains the demo model once (tests/images/serving/train_telco_model.py in the pipeline venv,
kept under .shipyard/bench/serving), then serves it with each stack in turn on loopback — the
same `--workers` and OMP_NUM_THREADS=1 for all three, per-request log lines off for both kserve
servers — and loads each with `hey -c 8` for single-row and 32-row requests. Prints one table,
then the predictor's in-process latency (decode + score) on the fast and the exact path.
The load generator shares the machine's cores with the server: figures are relative, not absolute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.servers import free_port, venv_python, wait_http_ok  # noqa: E402

MODEL = "telco"
LOG_CONFIG = REPO / "images/serving/shipyard_serving/logging.yaml"


@dataclass(frozen=True)
class Stack:
    name: str
    command: list[str]
    ready_path: str
    predict_path: str
    body_key: str  # "instances" for kserve V1, "dataframe_records" for the MLflow scoring server


@dataclass(frozen=True)
class Result:
    stack: str
    rows: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def stacks(model_dir: Path, port: int, workers: int) -> list[Stack]:
    kserve_args = ["--model_name", MODEL, "--model_dir", str(model_dir), "--http_port", str(port)]
    kserve_args += ["--workers", str(workers), "--enable_grpc", "false", "--log_config_file", str(LOG_CONFIG)]
    v1 = (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}:predict", "instances")
    mlflow = [venv_python("pipeline"), "-m", "mlflow", "models", "serve", "-m", str(model_dir)]
    mlflow += ["--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    return [
        Stack("shipyard predictor", [venv_python("serving"), "-m", "shipyard_serving", *kserve_args], *v1),
        Stack(
            "naive kserve (pandas)",
            [venv_python("serving"), str(Path(__file__).with_name("naive_predictor.py")), *kserve_args],
            *v1,
        ),
        Stack("mlflow models serve", mlflow, "/ping", "/invocations", "dataframe_records"),
    ]


def train(out: Path) -> Path:
    model_dir = out / "model"
    if not (model_dir / "MLmodel").exists():
        print(f"training the demo model into {out} ...", flush=True)
        script = REPO / "tests/images/serving/train_telco_model.py"
        subprocess.run([venv_python("pipeline"), str(script), str(out)], check=True, capture_output=True)
    return model_dir


@contextlib.contextmanager
def serving(stack: Stack, port: int, workdir: Path) -> Iterator[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    # `mlflow models serve` execs `uvicorn` from PATH: put the stack's own virtualenv first.
    env["PATH"] = f"{Path(stack.command[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (workdir / f"{stack.name.split()[0]}.log").open("wb")
    # Own process group: `mlflow models serve` runs uvicorn as a child that must stop with it.
    process = subprocess.Popen(
        stack.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + stack.ready_path, timeout=180, process=process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def hey(url: str, body: Path, seconds: int, concurrency: int) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, error count (non-200 answers and connection errors)."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    output = subprocess.run(
        [*command, "-D", str(body), url], check=True, capture_output=True, text=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    # hey prints no latency distribution when no request succeeded.
    p50, p99 = (
        float(m.group(1)) * 1000 if (m := re.search(rf"{q}% in ([\d.]+) secs", output)) else math.nan
        for q in (50, 99)
    )
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors = sum(n for code, n in statuses.items() if code != 200)
    errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+(?!\d+ responses)", output, re.MULTILINE))
    return rate, p50, p99, errors


def example_records(model_dir: Path) -> list[dict[str, object]]:
    """The model's input example as request records."""
    example = json.loads((model_dir / "input_example.json").read_text())
    # The example keeps NaN for a missing number (MLflow writes it so); JSON has null for that.
    rows_ = [[None if v != v else v for v in row] for row in example["data"]]
    return [dict(zip(example["columns"], row, strict=True)) for row in rows_]


def request_bodies(model_dir: Path, workdir: Path) -> dict[tuple[str, int], Path]:
    records = example_records(model_dir)
    bodies = {}
    for key in ("instances", "dataframe_records"):
        for rows in (1, 32):
            path = workdir / f"{key}-{rows}.json"
            path.write_text(json.dumps({key: [records[i % len(records)] for i in range(rows)]}))
            bodies[key, rows] = path
    return bodies


def in_process_latency(model_dir: Path, repeats: int = 2000) -> list[tuple[str, int, float, float]]:
    """Median µs of decode and of score, per path and batch size, in this (serving) interpreter."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from shipyard_serving.predictor import Settings, ShipyardModel

    model = ShipyardModel(MODEL, Settings(str(model_dir)))
    model.load()
    fast = model.fast
    records = example_records(model_dir)
    figures = []
    for rows in (1, 32):
        body = {"instances": [records[i % len(records)] for i in range(rows)]}
        decode = _median_us(lambda body=body: model.decoder.decode(body), repeats)
        batch = model.decoder.decode(body)
        for path, score in (
            ("fast", lambda batch=batch: fast.predict(batch.numeric, batch.categorical)),
            ("exact", lambda batch=batch: model.exact(batch)),
        ):
            figures.append(
                (path, rows, decode, _median_us(score, repeats if path == "fast" else repeats // 10))
            )
    return figures


def _median_us(call, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each hey run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=2, help="server worker processes, the same for every stack"
    )
    parser.add_argument("--workdir", type=Path, default=REPO / ".shipyard/bench/serving")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey (Debian), or make bench-serving")
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = train(args.workdir)
    bodies = request_bodies(model_dir, args.workdir)
    results = []
    for stack in stacks(model_dir, port := free_port(), args.workers):
        print(f"serving with {stack.name} ...", flush=True)
        with serving(stack, port, args.workdir) as url:
            for rows in (1, 32):
                body = bodies[stack.body_key, rows]
                hey(url + stack.predict_path, body, 2, args.concurrency)  # warm-up
                rate, p50, p99, errors = hey(url + stack.predict_path, body, args.seconds, args.concurrency)
                results.append(Result(stack.name, rows, rate, p50, p99, errors))
                print(
                    f"  {rows} row(s): {rate:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors"
                )
    print(
        f"\nhey -z {args.seconds}s -c {args.concurrency}, "
        f"{args.workers} workers per stack, OMP_NUM_THREADS=1\n"
    )
    print("| server | rows/request | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.stack} | {r.rows} | {r.requests_per_second:,.0f} | "
            f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} |"
        )
    naive = {r.rows: r.requests_per_second for r in results if r.stack.startswith("naive")}
    ours = {r.rows: r.requests_per_second for r in results if r.stack.startswith("shipyard")}
    print(
        "\nspeed-up over the naive kserve predictor: "
        + ", ".join(f"{rows} row(s) {ours[rows] / naive[rows]:.1f}x" for rows in ours)
    )
    print("\nin-process, median µs (one thread):\n")
    print("| path | rows | decode + validate | score |")
    print("|---|---|---|---|")
    for path, rows, decode, score in in_process_latency(model_dir):
        print(f"| {path} | {rows} | {decode:.0f} | {score:.0f} |")


if __name__ == "__main__":
    main()
