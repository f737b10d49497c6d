"""Run a step CLI in the pipeline virtualenv as a subprocess: the embedded default runner.

The same arguments and spec hand-over (`StepCall.environment()`) as the pod (shared builder);
output streamed line by line to the task log; the result JSON read from a temporary file and
returned (XCom), as the pod's sidecar would return `/airflow/xcom/return.json`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from shipyard import settings
from shipyard.operators.step import StepCall, log_result, step_failure


class LocalStepOperator(BaseOperator):
    """`python -m shipyard_pipeline <step> ...` with the interpreter of the pipeline virtualenv."""

    template_fields = ("arguments",)
    ui_color = "#e8f4ea"

    def __init__(self, *, call: StepCall, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.call = call
        self.arguments: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Built from the run context here, so the UI's "Rendered Template" shows the real call;
        # `--result-path` (a temporary file) is appended when the step runs.
        self.arguments = self.call.arguments(context, result_path=None)
        super().render_template_fields(context, jinja_env)

    def execute(self, context: Any) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix=f"shipyard-{self.call.step}-") as tmp:
            result_path = Path(tmp) / "return.json"
            command = [
                settings.pipeline_python(), "-m", "shipyard_pipeline",
                *self.arguments, "--result-path", str(result_path),
            ]  # fmt: skip
            self.log.info("running %s", " ".join(command))
            exit_code, tail = self._stream(command)
            if exit_code != 0:
                cause = next((line for line in reversed(tail) if line.startswith("shipyard-step")), None)
                raise step_failure(self.call.step, exit_code, cause or (tail[-1] if tail else "no output"))
            result = json.loads(result_path.read_text())
        log_result(self.log, self.call.step, result)
        return result

    def _stream(self, command: list[str]) -> tuple[int, list[str]]:
        """Run `command`, copying each output line to the task log; the exit code and the last lines."""
        tail: deque[str] = deque(maxlen=20)
        with subprocess.Popen(
            command,
            env={**settings.local_environment(), **self.call.environment()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as self._process:
            assert self._process.stdout is not None
            for line in self._process.stdout:
                line = line.rstrip()
                tail.append(line)
                self.log.info("%s", line)
            exit_code = self._process.wait()
        return exit_code, list(tail)

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
