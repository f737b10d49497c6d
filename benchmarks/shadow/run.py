"""Does live shadow mirroring cost the stable path anything? Latency with and without mirroring.

    .venv/serving/bin/python benchmarks/shadow/run.py [--seconds 10] [--rounds 3] [--concurrency 4] [--qps 25]

Serves the demo model (benchmarks/serving's trainer) twice — a plain stable predictor, and the
same version started with the `SHIPYARD_SHADOW_MIRROR_*` variables mirroring every request to a
challenger predictor (the retrained challenger of the shadow tests) — and loads each in turn,
alternating rounds so both see the same machine, with `hey` at a fixed offered load (`-c` workers
of `-q` requests per second each, one row a request). Prints per variant: req/s, p50 and p99 of
the stable path as the client sees it, errors, the stable process's CPU time per request, and the
mirror's counters (paired, dropped, failed). Everything runs on this machine's cores: the
challenger competes with the stable predictor for CPU here, where on Kubernetes it has a pod.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.servers import (  # noqa: E402
    free_port,
    metric_samples,
    stop_process_group,
    venv_python,
    wait_http_ok,
)

from shipyard_spec.contract import Env, Metric  # noqa: E402

_spec = importlib.util.spec_from_file_location("serving_bench", REPO / "benchmarks/serving/run.py")
serving_bench = sys.modules["serving_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serving_bench)

MODEL = "telco"
PLAIN, MIRRORING = "stable", "stable + mirroring"


@contextlib.contextmanager
def predictor(model_dir: Path, version: str, workdir: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A predictor's URL and process group while it serves."""
    port = free_port()
    command = [
        venv_python("serving"), "-m", "shipyard_serving", "--model_name", MODEL,
        "--model_dir", str(model_dir), "--http_port", str(port), "--model_version", version,
    ]  # fmt: skip
    log = (workdir / f"predictor-{port}.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/models/{MODEL}/ready", timeout=180, process=process)
        yield url, process.pid
    finally:
        stop_process_group(process, timeout=30)
        log.close()


def mirror_counters(url: str) -> dict[str, float]:
    """`shipyard_shadow_requests_total` of the mirroring predictor at `url`, by outcome."""
    return {
        dict(labels)["outcome"]: value
        for labels, value in metric_samples(url, Metric.SHADOW_REQUESTS).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each hey run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--qps", type=int, default=25, help="requests per second of each hey worker")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey (Debian), or make bench-shadow")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    model_dir = serving_bench.train(workdir / "champion")
    challenger_dir = workdir / "challenger"
    if not (challenger_dir / "model" / "MLmodel").exists():
        script = REPO / "tests/plugins/rollout/train_shadow_challenger.py"
        subprocess.run([venv_python("pipeline"), str(script), "retrained", str(challenger_dir)], check=True,
                       capture_output=True)  # fmt: skip
    body = workdir / "one-row.json"
    body.write_text(json.dumps({"instances": serving_bench.example_records(model_dir)[:1]}))
    results: dict[str, list[tuple[float, float, float, int, float]]] = {PLAIN: [], MIRRORING: []}
    with (
        predictor(challenger_dir / "model", "2", workdir, {}) as (challenger_url, _),
        predictor(model_dir, "1", workdir, {}) as plain,
        predictor(
            model_dir, "1", workdir, {Env.SHADOW_MIRROR_URL: challenger_url, Env.SHADOW_MIRROR_VERSION: "2"}
        ) as mirroring,
    ):
        path = f"/v1/models/{MODEL}:predict"
        for url, _ in (plain, mirroring):
            serving_bench.hey(url + path, body, 2, args.concurrency)  # warm-up
        for _ in range(args.rounds):
            for name, (url, group) in ((PLAIN, plain), (MIRRORING, mirroring)):
                cpu = serving_bench.cpu_seconds(group)
                rate, p50, p99, errors = serving_bench.hey(
                    url + path, body, args.seconds, args.concurrency, args.qps
                )
                cpu_us = (serving_bench.cpu_seconds(group) - cpu) / max(1, rate * args.seconds) * 1e6
                results[name].append((rate, p50, p99, errors, cpu_us))
                load = serving_bench.load_average()
                print(f"{name}: {rate:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors, "
                      f"{cpu_us:.0f} CPU us/request ({load})", flush=True)  # fmt: skip
        counters = mirror_counters(mirroring[0])
    offered = args.concurrency * args.qps
    print(f"\nhey -z {args.seconds}s -c {args.concurrency} -q {args.qps} (offered {offered} req/s), "
          f"one row a request, {args.rounds} alternating rounds; medians over rounds:")  # fmt: skip
    print("| variant | req/s | p50 ms | p99 ms | errors | stable CPU us/request |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        rate, p50, p99, _, cpu_us = (statistics.median(column) for column in zip(*rows, strict=True))
        errors = sum(row[3] for row in rows)
        print(f"| {name} | {rate:.0f} | {p50:.1f} | {p99:.1f} | {errors} | {cpu_us:.0f} |")
    print(f"mirror counters: {counters}")


if __name__ == "__main__":
    main()
