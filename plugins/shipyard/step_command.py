"""The step CLI call, built once for both runners (docs/architecture.md, "Step CLI").

`step_arguments()` and `step_environment()` are pure: the same (step, spec text, window, run id,
storage root, run options) give the same arguments and the same spec hand-over to `shipyard-step`
in a pod and to `python -m shipyard_pipeline` in the local virtualenv. The step gets the spec the
DAG parsed, never a copy of its own: the text in `Env.SPEC_YAML`, its sha256 as an argument (shown
in the UI's Rendered Template), which the step checks. Only the storage root and the result path
differ between the runners, and they are inputs here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.window import Window
from shipyard_spec.contract import SPEC_SHA256_OPTION, Env, Step, spec_sha256

# The training DAG's steps, in order; `drift` runs in the drift DAG.
STEPS: tuple[Step, ...] = (Step.INGEST, Step.VALIDATE, Step.TRAIN, Step.EVALUATE, Step.REGISTER)


@dataclass(frozen=True)
class RunOptions:
    """What a manual run may change (the trigger form's Params); scheduled runs use the defaults."""

    window_intervals: int | None = None  # None: the spec's `training.window_intervals`
    skip_tuning: bool = False
    force_ingest: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunOptions:
        """The training DAG's trigger form; a DAG without one (drift) gets the step defaults."""
        intervals = params.get("window_intervals")
        return cls(
            window_intervals=None if intervals is None else int(intervals),
            skip_tuning=bool(params.get("skip_tuning", False)),
            force_ingest=bool(params.get("force_ingest", False)),
        )


def step_arguments(
    step: Step,
    *,
    spec_text: str,
    window: Window,
    run_id: str,
    storage_root: str,
    result_path: str | None,
    options: RunOptions,
) -> list[str]:
    """`<step> --spec ... --interval-start ... [step options]`: the arguments after the program.

    `result_path=None` leaves `--result-path` out, for a runner that appends a temporary one.
    """
    arguments = [
        str(step),
        SPEC_SHA256_OPTION, spec_sha256(spec_text),
        "--interval-start", window.start.isoformat(),
        "--interval-end", window.end.isoformat(),
        "--run-id", run_id,
        "--storage-root", storage_root,
    ]  # fmt: skip
    if result_path is not None:
        arguments += ["--result-path", result_path]
    if step == Step.INGEST and options.force_ingest:
        arguments.append("--force")
    if step == Step.TRAIN:
        if options.window_intervals is not None:
            arguments += ["--window-intervals", str(options.window_intervals)]
        if options.skip_tuning:
            arguments.append("--skip-tuning")
    return arguments


def step_environment(spec_text: str) -> dict[str, str]:
    """What the step reads from its environment besides the runner's own: the spec's text.

    Plain `str` keys: the Kubernetes provider dumps the pod with PyYAML, which refuses a StrEnum.
    """
    return {str(Env.SPEC_YAML): spec_text}
