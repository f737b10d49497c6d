"""`shipyard_rollback_<pipeline>`: roll the current release back to `previous` from the Airflow UI.

Triggered by hand only (no schedule); the trigger form asks for a reason, which ends up as a
tag on the replaced version. Imports of the rollout machinery happen inside the task, so
parsing stays light.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Param, get_current_context, task

from shipyard_spec.model import PipelineSpec


def rollback_dag_id(pipeline: str) -> str:
    return f"shipyard_rollback_{pipeline}"


def build_rollback_dag(spec: PipelineSpec) -> DAG:
    with DAG(
        dag_id=rollback_dag_id(spec.name),
        description=f"Roll {spec.mlflow.registered_model} back to its @previous version (manual)",
        schedule=None,
        start_date=datetime.combine(spec.schedule.start_date, time(), ZoneInfo(spec.schedule.timezone)),
        catchup=False,
        max_active_runs=1,
        params={
            "reason": Param(
                "manual rollback",
                type="string",
                minLength=1,
                title="Reason",
                description="Why: tagged on the version",
            )
        },
        tags=["shipyard", "rollback", spec.name],
        default_args={"owner": spec.owner, "retries": 1, "retry_delay": timedelta(seconds=30)},
        doc_md=__doc__,
    ) as dag:

        @task
        def rollback_to_previous() -> dict[str, Any]:
            """Serve @previous with all traffic and make it @champion again."""
            from shipyard.rollout import manual

            return manual.rollback_to_previous(spec, get_current_context()["params"]["reason"])

        rollback_to_previous()
    return dag
