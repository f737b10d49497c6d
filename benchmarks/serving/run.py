"""Serving benchmark: Shipyard's predictor against its kserve ceiling, `mlflow models serve` and naive kserve.

    make bench-serving            # or: .venv/serving/bin/python benchmarks/serving/run.py [--seconds 5]
                                  #     [--rounds 3] [--workers 1] [--stacks ceiling shipyard ...]

Trains the demo model once (tests/images/serving/train_telco_model.py in the pipeline venv,
kept under .shipyard/bench/serving), then starts every chosen stack at once on loopback — the
same `--workers` and OMP_NUM_THREADS=1 for all, per-request log lines off for every kserve
server — and loads them **interleaved**: for each round, each case (1 row at `-c 1`, 1 row at
`-c 8`, 32 rows at `-c 8`), each stack in turn (rotated every round) gets `--seconds` of load.
Figures are pooled over the rounds (req/s = answers / seconds under load, p50/p99 over every
request's latency), so the ceiling and Shipyard see the same drifting load of a shared machine
and their ratio is meaningful even when their absolute figures are not.

Stacks: two ceilings serve a model that answers a constant (ceiling_predictor.py): kserve's
ModelServer alone, then with Shipyard's front door (request limits, request metrics, data
plane); Shipyard's predictor; the naive kserve predictor and `mlflow models serve` (baselines).
REST V1 is loaded with `hey`. The `-grpc` stacks are the ceiling and Shipyard's predictor on
kserve's gRPC V2 endpoint (`--enable_grpc true`), loaded by a small grpc.aio driver in this
process (no gRPC load generator is packaged: ghz is not on PyPI or Debian), so their absolute
figures include a Python client on the same cores; compare them with each other only.
Prints one table with the load average, Shipyard's req/s and p99 as a fraction of each
ceiling's per case, then the predictor's in-process latency (decode + score) on the fast and
the exact path, and the front door's ASGI layers' cost in process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.servers import free_port, stop_process_group, venv_python, wait_http_ok  # noqa: E402

MODEL = "telco"
SHIPYARD = "shipyard predictor"
CEILING = "ceiling: kserve + constant model"
CEILING_FRONT_DOOR = "ceiling + Shipyard front door"
SHIPYARD_NO_SCORING = "shipyard predictor without scoring"
SHIPYARD_NO_RANGE_CHECK = "shipyard predictor without range check"
SHIPYARD_GRPC = "shipyard predictor, gRPC V2"
CEILING_GRPC = "ceiling: kserve + constant model, gRPC V2"
LOG_CONFIG = REPO / "images/serving/shipyard_serving/logging.yaml"
GOAL_SHARE, GOAL_P99_MS = 0.85, 10.0  # issue 16: >= 85 % of the ceiling at one row, p99 <= 10 ms at -c 8


@dataclass(frozen=True)
class Case:
    rows: int
    concurrency: int

    def __str__(self) -> str:
        return f"{self.rows} row{'s' if self.rows > 1 else ''}, -c {self.concurrency}"


CASES = (Case(1, 1), Case(1, 8), Case(32, 8))


@dataclass(frozen=True)
class Stack:
    key: str  # for --stacks
    name: str
    command: list[str]
    ready_path: str
    predict_path: str
    body_key: str  # "instances" for kserve V1, "dataframe_records" for the MLflow scoring server, "grpc"


@dataclass
class Measured:
    """One stack under one case, pooled over the rounds."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    errors: int = 0
    cpu_seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: int) -> float:
        if len(self.latencies) < 2:  # a stack that answered nothing (its errors say why)
            return math.nan
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / len(self.latencies) * 1e6 if self.latencies else math.nan


def stacks(model_dir: Path, workers: int) -> list[Stack]:
    """Every stack; `{port}` in a command is its HTTP port, `{grpc_port}` its gRPC port."""
    server_args = ["--model_name", MODEL, "--http_port", "{port}", "--workers", str(workers)]
    server_args += ["--log_config_file", str(LOG_CONFIG)]
    rest, grpc = [*server_args, "--enable_grpc", "false"], [*server_args, "--enable_grpc", "true"]
    grpc += ["--grpc_port", "{grpc_port}"]
    v1 = (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}:predict", "instances")
    v2_grpc = (f"/v1/models/{MODEL}", "{grpc_port}", "grpc")
    mlflow = [venv_python("pipeline"), "-m", "mlflow", "models", "serve", "-m", str(model_dir)]
    mlflow += ["--env-manager", "local", "--host", "127.0.0.1", "-p", "{port}", "-w", str(workers)]
    ceiling = [venv_python("serving"), str(Path(__file__).with_name("ceiling_predictor.py"))]
    shipyard = [venv_python("serving"), "-m", "shipyard_serving", "--model_dir", str(model_dir)]
    naive = [venv_python("serving"), str(Path(__file__).with_name("naive_predictor.py"))]
    partial = [venv_python("serving"), str(Path(__file__).with_name("partial_predictor.py"))]
    partial += ["--model_dir", str(model_dir)]
    return [
        Stack("ceiling", CEILING, [*ceiling, *rest], *v1),
        Stack("ceiling-front-door", CEILING_FRONT_DOOR, [*ceiling, *rest, "--front_door", "true"], *v1),
        Stack("shipyard", SHIPYARD, [*shipyard, *rest], *v1),
        Stack("no-scoring", SHIPYARD_NO_SCORING, [*partial, "--without", "scoring", *rest], *v1),
        Stack("no-range-check", SHIPYARD_NO_RANGE_CHECK, [*partial, "--without", "range_check", *rest], *v1),
        Stack("ceiling-grpc", CEILING_GRPC, [*ceiling, *grpc], *v2_grpc),
        Stack("shipyard-grpc", SHIPYARD_GRPC, [*shipyard, *grpc], *v2_grpc),
        Stack("naive", "naive kserve (pandas)", [*naive, *rest, "--model_dir", str(model_dir)], *v1),
        Stack("mlflow", "mlflow models serve", mlflow, "/ping", "/invocations", "dataframe_records"),
    ]


def train(out: Path) -> Path:
    model_dir = out / "model"
    if not (model_dir / "MLmodel").exists():
        print(f"training the demo model into {out} ...", flush=True)
        script = REPO / "tests/images/serving/train_telco_model.py"
        subprocess.run([venv_python("pipeline"), str(script), str(out)], check=True, capture_output=True)
    return model_dir


@dataclass(frozen=True)
class Serving:
    stack: Stack
    url: str
    grpc_target: str
    group: int  # process group id


@contextlib.contextmanager
def serving(stack: Stack, workdir: Path) -> Iterator[Serving]:
    """The stack serving on free ports, until the block ends."""
    port, grpc_port = free_port(), free_port()
    command = [arg.format(port=port, grpc_port=grpc_port) for arg in stack.command]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    # `mlflow models serve` execs `uvicorn` from PATH: put the stack's own virtualenv first.
    env["PATH"] = f"{Path(command[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (workdir / f"{stack.key}.log").open("wb")
    # Own process group: `mlflow models serve` runs uvicorn as a child that must stop with it.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + stack.ready_path, timeout=180, process=process)
        yield Serving(stack, url, f"127.0.0.1:{grpc_port}", process.pid)
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


def hey_command(
    url: str, body: Path, seconds: float, concurrency: int, qps: int | None = None, *options: str
) -> list[str]:
    """`qps` caps each of the `concurrency` workers' request rate (a fixed offered load), unset = as
    fast as possible; `options` go before the URL (hey reads no flag after it)."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    command += ["-q", str(qps)] if qps else []
    return [*command, *options, "-D", str(body), url]


def hey(
    url: str, body: Path, seconds: float, concurrency: int, qps: int | None = None
) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, error count (non-200 answers and connection errors), from hey's
    summary (the shadow benchmark's figures)."""
    command = hey_command(url, body, seconds, concurrency, qps)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
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


def hey_requests(url: str, body: Path, seconds: float, concurrency: int) -> tuple[list[float], int]:
    """Latencies (s) of the answered requests and the count of non-200 answers, from hey's per-request
    CSV, to pool percentiles over rounds (the CSV leaves out connection errors: a stack that
    refuses connections shows as a low req/s)."""
    command = hey_command(url, body, seconds, concurrency, None, "-o", "csv")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rows = [line.split(",") for line in output.splitlines()[1:] if line]
    latencies = [float(row[0]) for row in rows if row[6] == "200"]
    return latencies, len(rows) - len(latencies)


def grpc_load(target: str, request: bytes, seconds: float, concurrency: int) -> tuple[list[float], int]:
    """`concurrency` callers on one channel (one HTTP/2 connection, as a gRPC client keeps),
    each sending `request` (a serialized ModelInferRequest) as soon as the last one is answered."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    message = pb.ModelInferRequest.FromString(request)
    latencies: list[float] = []
    errors = 0

    async def run() -> None:
        nonlocal errors
        async with grpc.aio.insecure_channel(target) as channel:
            stub = GRPCInferenceServiceStub(channel)
            deadline = time.perf_counter() + seconds

            async def caller() -> None:
                nonlocal errors
                while (start := time.perf_counter()) < deadline:
                    try:
                        await stub.ModelInfer(message, timeout=30)
                    except grpc.aio.AioRpcError:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(caller() for _ in range(concurrency)))

    asyncio.run(run())
    return latencies, errors


def example_records(model_dir: Path) -> list[dict[str, object]]:
    """The model's input example as request records."""
    example = json.loads((model_dir / "input_example.json").read_text())
    # The example keeps NaN for a missing number (MLflow writes it so); JSON has null for that.
    rows_ = [[None if v != v else v for v in row] for row in example["data"]]
    return [dict(zip(example["columns"], row, strict=True)) for row in rows_]


def request_bodies(model_dir: Path, workdir: Path) -> dict[tuple[str, int], Path]:
    """Request bodies by (body key, rows): JSON for REST, a serialized ModelInferRequest for gRPC."""
    records = example_records(model_dir)
    bodies = {}
    for key in ("instances", "dataframe_records"):
        for rows in {case.rows for case in CASES}:
            path = workdir / f"{key}-{rows}.json"
            path.write_text(json.dumps({key: [records[i % len(records)] for i in range(rows)]}))
            bodies[key, rows] = path
    for rows in {case.rows for case in CASES}:
        path = workdir / f"grpc-{rows}.bin"
        path.write_bytes(grpc_request(model_dir, records, rows))
        bodies["grpc", rows] = path
    return bodies


def grpc_request(model_dir: Path, records: list[dict[str, object]], rows: int) -> bytes:
    """A V2 ModelInferRequest of `rows` rows: FP64 numbers and BYTES strings. gRPC tensors have no
    null, so only the example's complete records are used."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    complete = [r for r in records if None not in r.values()]
    chosen = [complete[i % len(complete)] for i in range(rows)]
    inputs = []
    for name, value in complete[0].items():
        column = [r[name] for r in chosen]
        if isinstance(value, str):
            contents = pb.InferTensorContents(bytes_contents=[v.encode() for v in column])
            inputs.append(
                pb.ModelInferRequest.InferInputTensor(
                    name=name, datatype="BYTES", shape=[rows], contents=contents
                )
            )
        else:
            contents = pb.InferTensorContents(fp64_contents=[float(v) for v in column])
            inputs.append(
                pb.ModelInferRequest.InferInputTensor(
                    name=name, datatype="FP64", shape=[rows], contents=contents
                )
            )
    return pb.ModelInferRequest(model_name=MODEL, id="bench", inputs=inputs).SerializeToString()


@dataclass(frozen=True)
class InProcess:
    path: str
    rows: int
    decode: tuple[float, float]  # median µs: hot, cold
    score: tuple[float, float]


def in_process_latency(model_dir: Path, repeats: int = 2000) -> list[InProcess]:
    """Median µs of decode and of score, per path and batch size, in this (serving) interpreter:
    hot (call after call) and cold (caches flushed before each call, as a loaded server's event
    loop, sockets and other requests flush them between one request's steps)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from shipyard_serving.predictor import Settings, ShipyardModel

    model = ShipyardModel(MODEL, Settings(str(model_dir)))
    model.load()
    fast = model.fast
    records = example_records(model_dir)
    flush = np.zeros(CACHE_FLUSH_BYTES // 8)
    figures = []
    for rows in (1, 32):
        body = {"instances": [records[i % len(records)] for i in range(rows)]}
        batch = model.decoder.decode(body)
        for path, score in (
            ("fast", lambda batch=batch: fast.predict(batch.numeric, batch.categorical)),
            ("exact", lambda batch=batch: model.exact(batch)),
        ):
            n = repeats if path == "fast" else repeats // 10
            decode, scored = (
                tuple(_median_us(call, n, flush if cold else None) for cold in (False, True))
                for call in (lambda body=body: model.decoder.decode(body), score)
            )
            figures.append(InProcess(path, rows, decode, scored))
    return figures


CACHE_FLUSH_BYTES = 8 * 1024 * 1024  # written before each cold call: twice this machine's L1 + L2


def _median_us(call, repeats: int, flush=None) -> float:
    samples = []
    for _ in range(repeats):
        if flush is not None:
            flush += 1.0
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


def whole_app_breakdown(model_dir: Path, repeats: int = 3000, rounds: int = 3) -> list[tuple[str, float]]:
    """Median µs of one 1-row V1 request through kserve's whole ASGI app with Shipyard's front door,
    in process (no socket, no uvicorn), with the served model swapped: the constant model, then
    Shipyard's model with parts of its work taken out one by one. Differences between the rows
    are what each part costs inside the app, where caches are colder than in a loop of its own."""
    import numpy as np
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.model_server import app

    from kserve import ModelServer
    from kserve import logging as kserve_logging
    from shipyard_serving.dataplane import ShipyardDataPlane
    from shipyard_serving.limits import RequestLimits
    from shipyard_serving.metrics import ServedModel
    from shipyard_serving.predictor import Settings, ShipyardModel
    from shipyard_serving.server import FrontDoor, ShipyardRESTServer

    sys.path.insert(0, str(Path(__file__).parent))
    from ceiling_predictor import ConstantModel

    kserve_logging.configure_logging(str(LOG_CONFIG))
    for name in ("kserve", "shipyard_serving"):  # their load and start-up lines, not figures
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    server = ModelServer(http_port=0, workers=1, enable_grpc=False)
    server.dataplane = ShipyardDataPlane(model_registry=server.registered_models)
    front_door = FrontDoor(ServedModel(MODEL, "bench"), RequestLimits())
    rest = ShipyardRESTServer(
        FASTAPI_APP_IMPORT_STRING,
        server.dataplane,
        server.model_repository_extension,
        0,
        front_door=front_door,
    )
    shipyard = ShipyardModel(MODEL, Settings(str(model_dir)))
    shipyard.load()
    no_range = ShipyardModel(MODEL, Settings(str(model_dir)))
    no_range.load()
    no_range.out_of_range = None
    decode_only = ShipyardModel(MODEL, Settings(str(model_dir)))
    decode_only.load()
    decode_only.out_of_range = None
    constant = np.array([0.5])
    decode_only.score = lambda batch: constant
    models = [
        ("kserve + front door, constant model", ConstantModel(MODEL)),
        ("+ decode + validate (no range check, no scoring)", decode_only),
        ("+ scoring (fast path)", no_range),
        ("+ training-range check = Shipyard's predictor", shipyard),
    ]
    server.register_model(models[0][1])
    rest.create_application()
    body = json.dumps({"instances": example_records(model_dir)[:1]}).encode()
    path = f"/v1/models/{MODEL}:predict"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
    }  # fmt: skip

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"in-process request answered {message['status']}")

    async def samples(n: int) -> list[float]:
        taken = []
        for _ in range(n):
            start = time.perf_counter()
            await app(scope, receive, send)
            taken.append(time.perf_counter() - start)
        return taken

    pooled: dict[str, list[float]] = {name: [] for name, _ in models}
    for _ in range(rounds):
        for name, model in models:
            server.registered_models.update(model)
            asyncio.run(samples(200))  # warm-up after the swap
            pooled[name] += asyncio.run(samples(repeats))
    return [(name, statistics.median(taken) * 1e6) for name, taken in pooled.items()]


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def load(
    server: Serving, bodies: dict[tuple[str, int], Path], case: Case, seconds: float
) -> tuple[list[float], int]:
    body = bodies[server.stack.body_key, case.rows]
    if server.stack.body_key == "grpc":
        return grpc_load(server.grpc_target, body.read_bytes(), seconds, case.concurrency)
    return hey_requests(server.url + server.stack.predict_path, body, seconds, case.concurrency)


def measure(
    servers: list[Serving], bodies: dict[tuple[str, int], Path], rounds: int, seconds: float
) -> dict[tuple[str, Case], Measured]:
    """Every case on every stack, interleaved: round by round, case by case, stack by stack (rotated)."""
    results = {(server.stack.name, case): Measured() for server in servers for case in CASES}
    for server in servers:
        for case in CASES:
            load(server, bodies, case, 1)  # warm-up: connections, caches, lazy imports
    for round_ in range(rounds):
        print(f"round {round_ + 1}/{rounds} ({load_average()})", flush=True)
        order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
        for case in CASES:
            for server in order:
                cpu = cpu_seconds(server.group)
                start = time.perf_counter()
                latencies, errors = load(server, bodies, case, seconds)
                measured = results[server.stack.name, case]
                measured.seconds += time.perf_counter() - start
                measured.cpu_seconds += cpu_seconds(server.group) - cpu
                measured.latencies += latencies
                measured.errors += errors
    return results


def print_table(results: dict[tuple[str, Case], Measured]) -> None:
    print("| server | case | req/s | p50 ms | p99 ms | errors | server CPU µs/request |")
    print("|---|---|---|---|---|---|---|")
    for (stack, case), m in results.items():
        print(
            f"| {stack} | {case} | {m.requests_per_second:,.0f} | {m.percentile_ms(50):.1f} | "
            f"{m.percentile_ms(99):.1f} | {m.errors} | {m.cpu_us_per_request:,.0f} |"
        )


def print_ceiling_fractions(results: dict[tuple[str, Case], Measured]) -> None:
    """Shipyard against each ceiling of the same run, per case, and the issue's goal at 1 row, -c 8."""
    pairs = [(SHIPYARD, CEILING), (SHIPYARD, CEILING_FRONT_DOOR), (SHIPYARD_GRPC, CEILING_GRPC)]
    print("\nShipyard's predictor against the ceilings of the same run:")
    for ours_name, ceiling_name in pairs:
        for case in CASES:
            ours, top = results.get((ours_name, case)), results.get((ceiling_name, case))
            if not (ours and top):
                continue
            share = ours.requests_per_second / top.requests_per_second
            p99 = ours.percentile_ms(99)
            goal = ""
            if case == Case(1, 8) and ceiling_name != CEILING_FRONT_DOOR:
                met = share >= GOAL_SHARE and p99 <= GOAL_P99_MS
                verdict = "met" if met else "NOT met"
                goal = f"  [goal >= {GOAL_SHARE:.0%}, p99 <= {GOAL_P99_MS:.0f} ms: {verdict}]"
            print(
                f"  {ours_name} vs {ceiling_name}, {case}: req/s {share:.0%} of the ceiling's, "
                f"p99 {p99:.1f} ms = {p99 / top.percentile_ms(99):.2f}x the ceiling's, "
                f"CPU/request {ours.cpu_us_per_request / top.cpu_us_per_request:.2f}x{goal}"
            )
    print_server_breakdown(results)


# Each part's name, and the stack serving everything up to and including it: differences of
# consecutive stacks' server CPU per request are what each part costs in a loaded server.
PARTS = (
    ("kserve", CEILING),
    ("front door", CEILING_FRONT_DOOR),
    ("model call + decode + validate", SHIPYARD_NO_SCORING),
    ("scoring", SHIPYARD_NO_RANGE_CHECK),
    ("range check", SHIPYARD),
)


def print_server_breakdown(results: dict[tuple[str, Case], Measured]) -> None:
    """Where a request's server CPU time goes, from the stacks of this run (a part whose stack was
    not run is named and counted with the next part measured)."""
    lines = []
    for case in CASES:
        parts, unmeasured, previous = [], [], None
        for part, stack in PARTS:
            unmeasured.append(part)
            if (measured := results.get((stack, case))) is None:
                continue
            cpu = measured.cpu_us_per_request
            figure = f"{cpu:,.0f}" if previous is None else f"{cpu - previous:+,.0f}"
            parts.append(f"{' + '.join(unmeasured)} {figure}")
            unmeasured, previous = [], cpu
        if len(parts) > 1:
            lines.append(f"  {case}: {', '.join(parts)}")
    if lines:
        print("where a request's server CPU time goes (µs; differences of the rows above):", *lines, sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="load per stack, case and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all stacks and cases")
    parser.add_argument(
        "--workers", type=int, default=1, help="server worker processes, the same for every stack"
    )
    all_stacks = [s.key for s in stacks(Path(), 1)]
    parser.add_argument(
        "--stacks", nargs="+", choices=all_stacks, default=all_stacks, help="only these stacks"
    )
    parser.add_argument("--workdir", type=Path, default=REPO / ".shipyard/bench/serving")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey (Debian), or make bench-serving")
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = train(args.workdir)
    bodies = request_bodies(model_dir, args.workdir)
    chosen = [stack for stack in stacks(model_dir, args.workers) if stack.key in args.stacks]
    print(f"starting {', '.join(s.name for s in chosen)} ... ({load_average()})", flush=True)
    with contextlib.ExitStack() as running:
        servers = [running.enter_context(serving(stack, args.workdir)) for stack in chosen]
        results = measure(servers, bodies, args.rounds, args.seconds)
    print(
        f"\n{args.rounds} interleaved rounds of {args.seconds:g} s per stack and case, REST V1 with hey, "
        f"{args.workers} worker(s) per stack, OMP_NUM_THREADS=1; at the end: {load_average()}\n"
    )
    print_table(results)
    print_ceiling_fractions(results)
    # As in the servers: with several workers, shipyard_serving.metrics keeps its counters in
    # multiprocess files (set before its import, as __main__ does; never inherited by the servers).
    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    if args.workers > 1:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    print("\nin-process, median µs (one thread):\n")
    print("| path | rows | decode + validate | score | decode + validate, cold | score, cold |")
    print("|---|---|---|---|---|---|")
    for f in in_process_latency(model_dir):
        hot, cold = f"{f.decode[0]:.0f} | {f.score[0]:.0f}", f"{f.decode[1]:.0f} | {f.score[1]:.0f}"
        print(f"| {f.path} | {f.rows} | {hot} | {cold} |")
    print("\none 1-row V1 request through kserve's whole app in process, median µs:\n")
    previous = None
    for name, micros in whole_app_breakdown(model_dir):
        step = f"({micros - previous:+.0f})" if previous is not None else ""
        print(f"  {name:<52} {micros:6.0f} {step}")
        previous = micros
    print("\nthe front door's ASGI layers in process, median µs per request:\n")
    for name, micros in front_door_overhead():
        print(f"  {name:<38} {micros:6.1f}")
    shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
