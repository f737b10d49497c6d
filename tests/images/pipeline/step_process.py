"""Run `shipyard-step <step>` as a subprocess, as the local Airflow runner does, and time it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHIPYARD_STEP = Path(sys.executable).with_name("shipyard-step")


def run_cli(
    step: str, common: list[str], result_dir: Path, env: dict[str, str], *extra: str
) -> tuple[dict[str, Any], float]:
    """The step's result JSON and its wall time (interpreter start included); fails on a non-zero exit."""
    result_path = result_dir / f"{step}.json"
    started = time.monotonic()
    completed = subprocess.run(
        [str(SHIPYARD_STEP), step, *common, "--result-path", str(result_path), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, f"{step} exited {completed.returncode}: {completed.stderr[-3000:]}"
    return json.loads(result_path.read_text()), elapsed
