"""Runs `shipyard-step <step>` in process (`shipyard_pipeline.cli.main`: the console script's
argument parsing, exit codes and stderr) with one run's common arguments.

A module of its own, not the conftest, so test modules can import it: `tests/images/pipeline/drift`
has a conftest too, and `from conftest import` would get whichever was imported first.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from support.servers import REPO

from shipyard_pipeline.cli import main

TELCO_SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"


@dataclass
class Outcome:
    code: int
    result: dict[str, Any] | None
    stderr: str


@dataclass
class StepRunner:
    """Calls `shipyard-step <step>` with one run's common arguments."""

    spec: Path
    storage_root: Path
    start: datetime
    end: datetime
    run_id: str
    results: Path

    def arguments(self, step: str, *extra: str) -> list[str]:
        return [
            step,
            "--spec", str(self.spec),
            "--interval-start", self.start.isoformat(),
            "--interval-end", self.end.isoformat(),
            "--run-id", self.run_id,
            "--storage-root", str(self.storage_root),
            "--result-path", str(self.results / f"{step}.json"),
            *extra,
        ]  # fmt: skip

    def __call__(self, step: str, *extra: str) -> Outcome:
        result_path = self.results / f"{step}.json"
        result_path.unlink(missing_ok=True)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = main(self.arguments(step, *extra))
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        return Outcome(code, result, stderr.getvalue())
