"""The two step runners: `LocalStepOperator` (subprocess) and `PodStepOperator` (KubernetesPodOperator).

`step_operator()` is the one place the runner picks the operator, for the training steps and
the drift check alike. `PodStepOperator` is imported from `shipyard.operators.pod` only when
the kubernetes runner is chosen: the Kubernetes client costs a DAG file about half a second of
parse time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
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
    spec_path: Path,
    *,
    runner: settings.Runner,
    storage_root: str,
    cron: str,
    interval: timedelta | None = None,
    **task_kwargs: Any,
) -> BaseOperator:
    """The task that runs `step` of `spec` with `runner`; its window comes from the DAG run.

    `cron` and `interval` describe the DAG's timetable, for runs without a data interval
    (`shipyard.window.run_window`). The local runner reads the spec where it is; a pod reads
    it where the chart mounts `dags/pipelines/` (`spec_dir`).
    """
    window = {"cron": cron, "timezone": spec.schedule.timezone, "interval": interval}
    if runner == "local":
        call = StepCall(step, spec.name, str(spec_path.resolve()), storage_root=storage_root, **window)
        return LocalStepOperator(call=call, **task_kwargs)
    from shipyard.operators.pod import pod_step_operator  # the Kubernetes client only when needed

    kube = settings.kubernetes_settings()
    call = StepCall(step, spec.name, f"{kube.spec_dir}/{spec_path.name}", storage_root=storage_root, **window)
    return pod_step_operator(call, spec.resources_for(step), kube, **task_kwargs)
