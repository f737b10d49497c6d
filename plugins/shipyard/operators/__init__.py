"""The two step runners: `LocalStepOperator` (subprocess) and `PodStepOperator` (KubernetesPodOperator).

`step_operator()` is the one place the runner picks the operator, for the training steps and
the drift check alike. `PodStepOperator` is imported from `shipyard.operators.pod` only when
the kubernetes runner is chosen: the Kubernetes client costs a DAG file about half a second of
parse time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from shipyard import settings
from shipyard.operators.local import LocalStepOperator
from shipyard.operators.step import StepCall
from shipyard_spec import PipelineSpec
from shipyard_spec.contract import Step


def step_operator(
    step: Step,
    spec: PipelineSpec,
    *,
    runner: settings.Runner,
    storage_root: str,
    cron: str,
    interval: timedelta | None = None,
    **task_kwargs: Any,
) -> BaseOperator:
    """The task that runs `step` of `spec` with `runner`; its window comes from the DAG run.

    `cron` and `interval` describe the DAG's timetable, for runs without a data interval
    (`shipyard.window.run_window`). Both runners hand the step the spec's text as this DAG
    parsed it (`spec.source_text`), so no step reads a copy of its own.
    """
    if spec.source_text is None:
        raise ValueError(f"pipeline {spec.name}: a step needs the spec's text (load it with load_spec)")
    call = StepCall(
        step, spec.name, spec.source_text, cron=cron, timezone=spec.schedule.timezone,
        storage_root=storage_root, interval=interval,
    )  # fmt: skip
    if runner == "local":
        return LocalStepOperator(call=call, **task_kwargs)
    from shipyard.operators.engine_pods import ENGINE_PODS  # the Kubernetes client only when needed
    from shipyard.operators.pod import pod_step_operator

    return pod_step_operator(
        call,
        spec.resources_for(step),
        settings.kubernetes_settings(),
        ENGINE_PODS[spec.engine],
        **task_kwargs,
    )
