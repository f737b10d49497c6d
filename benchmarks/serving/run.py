"""Serving benchmark: Shipyard's predictor vs kserve's ceiling, `mlflow models serve` and naive kserve.

    make bench-serving            # or: .venv/serving/bin/python benchmarks/serving/run.py [--seconds 10]
                                  #     [--stacks ceiling ceiling-front-door shipyard]

Trains the demo model once (tests/images/serving/train_telco_model.py in the pipeline venv,
kept under .shipyard/bench/serving), then serves it with each stack in turn on loopback — the
same `--workers` and OMP_NUM_THREADS=1 for all, per-request log lines off for every kserve
server — and loads each with `hey -c 8` for single-row and 32-row requests. The two ceiling
rows serve a model that answers a constant (ceiling_predictor.py): kserve's ModelServer alone,
then with Shipyard's front door (request limits, request metrics, data plane), so Shipyard's
req/s and p99 are reported as a fraction of the most this server can do in the same run.
Prints one table with the load average, then the predictor's in-process latency (decode +
score) on the fast and the exact path, and the front door's ASGI layers' cost in process.
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.servers import free_port, stop_process_group, venv_python, wait_http_ok  # noqa: E402

MODEL = "telco"
SHIPYARD = "shipyard predictor"
CEILING = "ceiling: kserve + constant model"
CEILING_FRONT_DOOR = "ceiling + Shipyard front door"
LOG_CONFIG = REPO / "images/serving/shipyard_serving/logging.yaml"


@dataclass(frozen=True)
class Stack:
    key: str  # for --stacks
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
    cpu_us_per_request: float  # server processes' CPU time / requests answered


def stacks(model_dir: Path, port: int, workers: int) -> list[Stack]:
    """Ceilings first and next to Shipyard's predictor in time: a shared machine's load drifts."""
    server_args = ["--model_name", MODEL, "--http_port", str(port), "--workers", str(workers)]
    server_args += ["--enable_grpc", "false", "--log_config_file", str(LOG_CONFIG)]
    kserve_args = [*server_args, "--model_dir", str(model_dir)]
    v1 = (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}:predict", "instances")
    mlflow = [venv_python("pipeline"), "-m", "mlflow", "models", "serve", "-m", str(model_dir)]
    mlflow += ["--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    ceiling = [venv_python("serving"), str(Path(__file__).with_name("ceiling_predictor.py")), *server_args]
    return [
        Stack("ceiling", CEILING, ceiling, *v1),
        Stack("ceiling-front-door", CEILING_FRONT_DOOR, [*ceiling, "--front_door", "true"], *v1),
        Stack("shipyard", SHIPYARD, [venv_python("serving"), "-m", "shipyard_serving", *kserve_args], *v1),
        Stack(
            "naive",
            "naive kserve (pandas)",
            [venv_python("serving"), str(Path(__file__).with_name("naive_predictor.py")), *kserve_args],
            *v1,
        ),
        Stack("mlflow", "mlflow models serve", mlflow, "/ping", "/invocations", "dataframe_records"),
    ]


def train(out: Path) -> Path:
    model_dir = out / "model"
    if not (model_dir / "MLmodel").exists():
        print(f"training the demo model into {out} ...", flush=True)
        script = REPO / "tests/images/serving/train_telco_model.py"
        subprocess.run([venv_python("pipeline"), str(script), str(out)], check=True, capture_output=True)
    return model_dir


@contextlib.contextmanager
def serving(stack: Stack, port: int, workdir: Path) -> Iterator[tuple[str, int]]:
    """The stack's URL and its process group id while it serves."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    # `mlflow models serve` execs `uvicorn` from PATH: put the stack's own virtualenv first.
    env["PATH"] = f"{Path(stack.command[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (workdir / f"{stack.key}.log").open("wb")
    # Own process group: `mlflow models serve` runs uvicorn as a child that must stop with it.
    process = subprocess.Popen(
        stack.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + stack.ready_path, timeout=180, process=process)
        yield url, process.pid
    finally:
        stop_process_group(process, timeout=30)
        log.close()


def cpu_seconds(group: int) -> float:
    """User + system CPU seconds used so far by the live processes of one process group (Linux /proc).

    Load-independent where req/s is not: on a machine shared with other work, CPU time per
    request still says what one request costs the server.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def hey(
    url: str, body: Path, seconds: int, concurrency: int, qps: int | None = None
) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, error count (non-200 answers and connection errors); `qps` caps each
    of the `concurrency` workers' request rate (a fixed offered load), unset = as fast as possible."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    command += ["-q", str(qps)] if qps else []
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


def front_door_overhead(repeats: int = 20000) -> list[tuple[str, float]]:
    """Median µs per request of the front door's ASGI layers around an app that answers at once."""
    import asyncio

    from shipyard_serving.limits import RequestLimitMiddleware, RequestLimits
    from shipyard_serving.metrics import RequestMetricsMiddleware, ServedModel

    body = b'{"instances": [{}]}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v1/models/{MODEL}:predict",
        "headers": [(b"content-length", str(len(body)).encode())],
    }

    async def app(scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        return None

    limits = RequestLimitMiddleware(app, RequestLimits())
    layers = [
        ("bare ASGI app", app),
        ("+ request limits", limits),
        ("+ request limits + request metrics", RequestMetricsMiddleware(limits, ServedModel(MODEL, "bench"))),
    ]

    async def median_us(handler) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            await handler(scope, receive, send)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e6

    return [(name, asyncio.run(median_us(handler))) for name, handler in layers]


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def print_ceiling_fractions(results: list[Result]) -> None:
    by = {(r.stack, r.rows): r for r in results}
    print("\nShipyard's predictor against the ceilings of the same run:")
    for ceiling in (CEILING, CEILING_FRONT_DOOR):
        for rows in (1, 32):
            ours, top = by.get((SHIPYARD, rows)), by.get((ceiling, rows))
            if ours and top:
                rate = ours.requests_per_second / top.requests_per_second
                print(
                    f"  vs {ceiling}, {rows} row(s): req/s {rate:.0%} of the ceiling's; "
                    f"p99 {ours.p99_ms:.1f} ms = {ours.p99_ms / top.p99_ms:.2f}x the ceiling's"
                )
    print("where a request's server CPU time goes (µs; differences of the rows above):")
    for rows in (1, 32):
        ceiling, front, ours = (by.get((name, rows)) for name in (CEILING, CEILING_FRONT_DOOR, SHIPYARD))
        if ceiling and front and ours:
            print(
                f"  {rows} row(s): kserve {ceiling.cpu_us_per_request:,.0f}, "
                f"front door {front.cpu_us_per_request - ceiling.cpu_us_per_request:+,.0f}, "
                f"decode + score + model {ours.cpu_us_per_request - front.cpu_us_per_request:+,.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each hey run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=2, help="server worker processes, the same for every stack"
    )
    parser.add_argument(
        "--stacks",
        nargs="+",
        choices=[s.key for s in stacks(Path(), 0, 1)],
        help="only these stacks (default: all)",
    )
    parser.add_argument("--workdir", type=Path, default=REPO / ".shipyard/bench/serving")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey (Debian), or make bench-serving")
    args.workdir.mkdir(parents=True, exist_ok=True)
    # The in-process figures below import shipyard_serving.metrics: as in a 2-worker server,
    # its counters then live in multiprocess files (set before the import, as __main__ does).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(tempfile.mkdtemp(prefix="bench-metrics-")))
    model_dir = train(args.workdir)
    bodies = request_bodies(model_dir, args.workdir)
    results = []
    for stack in stacks(model_dir, port := free_port(), args.workers):
        if args.stacks and stack.key not in args.stacks:
            continue
        print(f"serving with {stack.name} ... ({load_average()})", flush=True)
        with serving(stack, port, args.workdir) as (url, group):
            for rows in (1, 32):
                body = bodies[stack.body_key, rows]
                hey(url + stack.predict_path, body, 2, args.concurrency)  # warm-up
                cpu = cpu_seconds(group)
                rate, p50, p99, errors = hey(url + stack.predict_path, body, args.seconds, args.concurrency)
                cpu_us = (cpu_seconds(group) - cpu) / (rate * args.seconds) * 1e6
                results.append(Result(stack.name, rows, rate, p50, p99, errors, cpu_us))
                print(
                    f"  {rows} row(s): {rate:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                    f"{errors} errors, server CPU {cpu_us:,.0f} µs/request"
                )
    print(
        f"\nhey -z {args.seconds}s -c {args.concurrency}, "
        f"{args.workers} workers per stack, OMP_NUM_THREADS=1; at the end: {load_average()}\n"
    )
    print("| server | rows/request | req/s | p50 ms | p99 ms | errors | server CPU µs/request |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.stack} | {r.rows} | {r.requests_per_second:,.0f} | "
            f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.cpu_us_per_request:,.0f} |"
        )
    print_ceiling_fractions(results)
    naive = {r.rows: r.requests_per_second for r in results if r.stack.startswith("naive")}
    ours = {r.rows: r.requests_per_second for r in results if r.stack == SHIPYARD}
    if naive and ours:
        print(
            "\nspeed-up over the naive kserve predictor: "
            + ", ".join(f"{rows} row(s) {ours[rows] / naive[rows]:.1f}x" for rows in ours)
        )
    print("\nin-process, median µs (one thread):\n")
    print("| path | rows | decode + validate | score |")
    print("|---|---|---|---|")
    for path, rows, decode, score in in_process_latency(model_dir):
        print(f"| {path} | {rows} | {decode:.0f} | {score:.0f} |")
    print("\nthe front door's ASGI layers in process, median µs per request:\n")
    for name, micros in front_door_overhead():
        print(f"  {name:<38} {micros:6.1f}")


if __name__ == "__main__":
    main()
