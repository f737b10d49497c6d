"""Fixtures: a real Telco model trained once in the pipeline venv, and real predictor processes.

The model is trained by `train_telco_model.py` in the PIPELINE virtualenv (the code path the
train step uses to write the artifact) and served by `python -m shipyard_serving` in this
(serving) virtualenv — the same split as production, where the two images never share a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.servers import free_port, stop_process, venv_python, wait_http_ok

from shipyard_spec.contract import Env, Metric, Outcome

HERE = Path(__file__).resolve().parent
MODEL_NAME = "telco"
MODEL_VERSION = "7"


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    columns: dict[str, list[Any]]
    probabilities: list[float]


@dataclass(frozen=True)
class Predictor:
    url: str
    log_root: Path
    output: Path

    def post(
        self,
        path: str,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, headers={"content-type": content_type, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def sample(self, name: str) -> float:
        """The value of sample `name` (e.g. a histogram's `_sum`) for this model version, from /metrics."""
        _, text = self.get("/metrics")
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
            and sample.labels.get("model_name") == MODEL_NAME
            and sample.labels.get("model_version") == MODEL_VERSION
        ]
        return values[0] if values else 0.0

    def counter(self, outcome: Outcome) -> float:
        """shipyard_requests_total for this model version and `outcome`, from /metrics."""
        _, text = self.get("/metrics")
        labels = f'model_name="{MODEL_NAME}",model_version="{MODEL_VERSION}",outcome="{outcome}"'
        prefix = f"{Metric.REQUESTS}{{{labels}}}"
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
        return values[0] if values else 0.0


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    out = tmp_path_factory.mktemp("trained")
    subprocess.run(
        [venv_python("pipeline"), str(HERE / "train_telco_model.py"), str(out), "--n-estimators", "120"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    reference = json.loads((out / "parity.json").read_text())
    return Trained(out / "model", reference["columns"], reference["probabilities"])


@contextlib.contextmanager
def predictor_process(model_dir: Path, workdir: Path, *args: str, ready: bool = True) -> Iterator[Predictor]:
    """`python -m shipyard_serving` on a free port; yields once it answers (ready, or live if not `ready`)."""
    port = free_port()
    log_root = workdir / "prediction_logs"
    output = workdir / "predictor.log"
    command = [
        venv_python("serving"), "-m", "shipyard_serving",
        "--model_name", MODEL_NAME, "--model_dir", str(model_dir), "--http_port", str(port),
        "--prediction_log_uri", str(log_root), "--prediction_log_flush_seconds", "0.2",
        "--prediction_log_sample_rate", "1", *args,
    ]  # fmt: skip
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, Env.MODEL_VERSION: MODEL_VERSION},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(
                f"{url}/v2/models/{MODEL_NAME}/ready" if ready else f"{url}/v2/health/live", 90, process
            )
            yield Predictor(url, log_root, output)
        except Exception:
            sys.stderr.write(output.read_text())
            raise
        finally:
            stop_process(process, timeout=20)


@pytest.fixture(scope="session")
def predictor(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """The predictor as deployed, with a batch limit that fits the whole Telco data set in one request."""
    with predictor_process(
        trained.model_dir, tmp_path_factory.mktemp("predictor"), "--max_batch_size", "10000"
    ) as p:
        yield p


@pytest.fixture(scope="session")
def rows(trained: Trained) -> Callable[[int, int], list[dict[str, Any]]]:
    """Rows [start, stop) of the parity set as V1 records."""

    def records(start: int, stop: int) -> list[dict[str, Any]]:
        names = list(trained.columns)
        return [{n: trained.columns[n][i] for n in names} for i in range(start, stop)]

    return records
