"""The `rollout` task appended after `register` in the training DAG (the factory's extension point).

    build_training_dag(spec, spec_path, after_register=[append_rollout])

The task takes register's XCom result and the spec parsed with the DAG. The trigger form's
optional `canary_args` param (e.g. `--fault_error_rate 0.3`) is passed to the canary's
predictor: FAULT INJECTION for demos, empty by default.
"""

from __future__ import annotations

from airflow.sdk import BaseOperator

from shipyard.rollout.operator import CanaryRolloutOperator
from shipyard_spec.model import PipelineSpec

ROLLOUT_TASK_ID = "rollout"


def append_rollout(spec: PipelineSpec, register: BaseOperator) -> CanaryRolloutOperator:
    rollout = CanaryRolloutOperator(
        task_id=ROLLOUT_TASK_ID,
        spec=spec,
        release=register.output,
        canary_args="{{ params.canary_args or '' }}",  # null (the form's empty field) → no arguments
        doc_md=(
            f"Canary rollout of the registered version on the `{spec.rollout.backend}` backend: steps "
            f"{spec.rollout.steps} %, a check every {spec.rollout.interval_seconds:g}s; promotion moves "
            "`champion`, a rollback fails this task with the reason."
        ),
    )
    register >> rollout
    return rollout
