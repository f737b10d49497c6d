"""The real predictor (serving virtualenv) on a model directory, for tests that compare its answers."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from support.servers import free_port, stop_process, venv_python, wait_http_ok


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as a client sends them: JSON null for a missing value."""
    records = frame.astype(object).to_dict(orient="records")
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in records]


@contextlib.contextmanager
def predictor(
    model_dir: Path, model_name: str, version: str, workdir: Path
) -> Iterator[Callable[[pd.DataFrame], list[float]]]:
    """`score(rows)`: the predictor's V1 answer for the rows (one request)."""
    port = free_port()
    command = [
        venv_python("serving"), "-m", "shipyard_serving", "--model_name", model_name,
        "--model_dir", str(model_dir), "--model_version", version, "--http_port", str(port),
        "--max_batch_size", "100000",
    ]  # fmt: skip
    output = workdir / f"predictor-{port}.log"
    url = f"http://127.0.0.1:{port}/v1/models/{model_name}:predict"

    def score(rows: pd.DataFrame) -> list[float]:
        request = urllib.request.Request(
            url,
            data=json.dumps({"instances": json_rows(rows)}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["predictions"]

    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/v2/models/{model_name}/ready", 120, process)
            yield score
        except Exception:
            print(output.read_text())
            raise
        finally:
            stop_process(process, timeout=30)
