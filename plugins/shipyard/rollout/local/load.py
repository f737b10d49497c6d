"""A steady request stream for the embedded rollout: the analysis needs traffic to judge.

Sends `--rps` V1 predict requests per second (one record each, cycled from a JSON file in
MLflow's `input_example.json` split format or a list of records) to the pipeline's load
balancer and counts the outcome of every request, so a rollout can be checked for lost
requests afterwards. Every row is sent: a missing value (NaN in the example) goes as JSON
`null`, which the predictor reads as missing; a request that fails in any way is counted
under its status code or `error <exception class>`, never dropped.

    python -m shipyard.rollout.local.load --url http://127.0.0.1:PORT --model-name telco-churn \
        --examples MODEL_DIR/input_example.json --rps 40 [--duration 120]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from shipyard.rollout.replay import missing_as_none


def load_records(path: Path) -> list[dict[str, Any]]:
    """Records from MLflow's split format ({"columns", "data"}) or a plain list of records,
    missing values as None."""
    data = json.loads(path.read_text())
    if isinstance(data, dict) and {"columns", "data"} <= data.keys():
        records = [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
    elif isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        records = data
    else:
        raise ValueError(f"{path}: expected {{'columns', 'data'}} or a list of records")
    return [missing_as_none(record) for record in records]


class LoadDriver:
    """Sends requests at a fixed rate from a small thread pool until stopped; counts by status."""

    def __init__(
        self, url: str, model_name: str, records: list[dict[str, Any]], rps: float, workers: int = 8
    ):
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
        self.records = records
        self.rps = rps
        self.sent = 0  # requests handed to the pool; each one ends up counted in `outcomes`
        self.outcomes: Counter[str] = Counter()
        self.failures: list[tuple[float, str]] = []  # (time, status or error) of every failed request
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers)
        self._thread = threading.Thread(target=self._run, name="load-driver", daemon=True)
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(timeout=30)
        return self._local.client

    def _send(self, record: dict[str, Any]) -> None:
        try:
            status = str(self._client().post(self.endpoint, json={"instances": [record]}).status_code)
        except Exception as e:  # noqa: BLE001 - every outcome is counted, an unanswered request too
            status = f"error {e.__class__.__name__}"
        with self._lock:
            self.outcomes[status] += 1
            if status != "200":
                self.failures.append((time.time(), status))

    def _run(self) -> None:
        start = time.monotonic()
        for n, record in enumerate(itertools.cycle(self.records)):
            if self._stop.is_set():
                return
            delay = start + n / self.rps - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self._pool.submit(self._send, record)
            self.sent += 1

    def start(self) -> LoadDriver:
        self._thread.start()
        return self

    def stop(self) -> Counter[str]:
        """Stop sending, wait for requests in flight, return the outcome counts."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self.outcomes

    def __enter__(self) -> LoadDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the load balancer, e.g. http://127.0.0.1:PORT")
    parser.add_argument("--model-name", required=True)
    parser.add_argument(
        "--examples", type=Path, required=True, help="input_example.json or a JSON list of records"
    )
    parser.add_argument("--rps", type=float, default=40)
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: until interrupted")
    args = parser.parse_args(argv)
    started = time.monotonic()
    driver = LoadDriver(args.url, args.model_name, load_records(args.examples), args.rps).start()
    with contextlib.suppress(KeyboardInterrupt):
        while args.duration is None or time.monotonic() - started < args.duration:
            time.sleep(min(5, args.duration or 5))
            print(f"load: {dict(driver.outcomes)}", flush=True)
    print(f"load: final {dict(driver.stop())}", flush=True)


if __name__ == "__main__":
    main()
