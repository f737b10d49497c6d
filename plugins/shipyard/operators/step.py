"""What both step runners share: the call from the run context, the outcome, the result's log lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from shipyard.step_command import RunOptions, step_arguments, step_environment
from shipyard.window import run_window
from shipyard_spec.contract import ExitCode, Step


@dataclass(frozen=True)
class StepCall:
    """One step of one pipeline, minus the run: the run context fills in the rest."""

    step: Step
    pipeline: str
    # The spec's YAML text as the DAG parsed it (`PipelineSpec.source_text`): handed to the step.
    spec_text: str
    cron: str
    timezone: str
    storage_root: str
    # The timetable's fixed data interval (the drift DAG's 1 day): a run without a data interval
    # takes this much before it was queued. None: the last full interval of `cron`.
    interval: timedelta | None = None

    def arguments(self, context: dict[str, Any], result_path: str | None) -> list[str]:
        """The CLI arguments for the running DAG run: its window, run id and trigger-form Params."""
        return step_arguments(
            self.step,
            spec_text=self.spec_text,
            window=run_window(context, self.cron, self.timezone, self.interval),
            run_id=context["run_id"],
            storage_root=self.storage_root,
            result_path=result_path,
            options=RunOptions.from_params(context["params"]),
        )

    def environment(self) -> dict[str, str]:
        """Environment variables the step needs from the DAG (the spec), the same for both runners."""
        return step_environment(self.spec_text)


def step_failure(step: Step, exit_code: int | None, cause: str) -> AirflowException:
    """A failed check (validation, gate) fails the task for good; anything else may be transient."""
    if exit_code == ExitCode.CHECK_FAILED:
        return AirflowFailException(
            f"{step}: a check failed, not retrying (exit {ExitCode.CHECK_FAILED:d}): {cause}"
        )
    return AirflowException(f"{step} exited with code {exit_code}: {cause}")


def log_result(log: logging.Logger, step: Step, result: dict[str, Any] | None) -> None:
    """Put the MLflow run and the registered version where a reader of the task log looks first."""
    if not result:
        log.warning("%s returned no result", step)
        return
    if "mlflow_run_id" in result:
        log.info("MLflow run %s: %s", result["mlflow_run_id"], result.get("mlflow_run_url", "(no URL)"))
    if "version" in result and "registered_model" in result:
        log.info(
            "registered %s version %s as @%s",
            result["registered_model"],
            result["version"],
            result.get("alias", "?"),
        )
