"""The two ways a step fails, and the exit codes the DAG tells apart (docs/architecture.md).

A `CheckFailed` is a verdict on the data or the model (validation, gates): retrying cannot
change it, so it exits 3 and the DAG does not retry. A `StepError` is anything else the step
can name (missing table, unreachable MLflow, bad arguments): exit 1, retried by the DAG.
"""

from __future__ import annotations

from shipyard_spec.contract import ExitCode


class StepError(RuntimeError):
    """A step could not do its job; the message is the one-line cause printed on stderr."""

    exit_code = ExitCode.ERROR


class CheckFailed(StepError):
    """The data or the model failed a check; the step's report says which and why."""

    exit_code = ExitCode.CHECK_FAILED
