"""The daily drift DAG of one pipeline, and the Asset that ties it to the training DAG.

check_drift (the pipeline image's `drift` step) → drift_detected (short-circuit) →
emit_drift_event (outlet: the pipeline's drift Asset). The event is emitted only when the
step says `drift_detected`; the training DAG is scheduled on "its cron OR this asset", so
the event queues a retraining run without waiting for the next scheduled one. The event's
`extra` carries the reasons, so the triggered run can say why it runs.

check_drift runs `shipyard-step drift` through the same runners as the training steps
(`shipyard.operators.step_operator`: a subprocess in the pipeline virtualenv, or a pod with
`spec.resources_for("drift")`); its XCom is the step's result JSON.

Window: `CronTriggerTimetable(drift.cron, interval=1 day)`. A scheduled run at 04:00 checks
[04:00 yesterday, 04:00 today); a manual run checks the 24 hours before it was triggered.
Only the Airflow SDK, pydantic and the standard library are imported here (DAG parsing stays fast).
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, CronTriggerTimetable, get_current_context, task

from shipyard import settings
from shipyard.assets import drift_asset  # defined there so the training DAG file parses fast
from shipyard.operators import step_operator
from shipyard_spec import PipelineSpec
from shipyard_spec.contract import Step

log = logging.getLogger(__name__)

DRIFT_WINDOW = timedelta(days=1)


def drift_dag_id(pipeline: str) -> str:
    return f"shipyard_drift_{pipeline}"


def build_drift_dag(spec: PipelineSpec) -> DAG:
    """One drift DAG per pipeline spec."""
    asset = drift_asset(spec.name)
    runner = settings.runner()
    with DAG(
        dag_id=drift_dag_id(spec.name),
        description=f"Daily drift check of the {spec.mlflow.registered_model} champion; retrains on drift",
        schedule=CronTriggerTimetable(
            spec.drift.cron, timezone=spec.schedule.timezone, interval=DRIFT_WINDOW
        ),
        start_date=datetime.combine(spec.schedule.start_date, time(), ZoneInfo(spec.schedule.timezone)),
        catchup=False,
        max_active_runs=1,
        tags=["shipyard", "drift", spec.name],
        default_args={"owner": spec.owner, "retries": 1, "retry_delay": timedelta(minutes=5)},
        doc_md=__doc__,
    ) as dag:
        check_drift = step_operator(
            Step.DRIFT,
            spec,
            runner=runner,
            storage_root=settings.step_storage_root(runner),
            cron=spec.drift.cron,
            interval=DRIFT_WINDOW,
            task_id="check_drift",
            doc_md="Compares the champion's prediction logs of the run's window with its reference "
            "profile (`shipyard-step drift`); the result JSON is the task's XCom.",
        )

        @task.short_circuit
        def drift_detected(result: dict[str, Any]) -> bool:
            """Go on to the retraining event only when the step found drift."""
            if result["status"] != "checked":
                log.info(
                    "no trigger: %s (counts %s)", result["status"].replace("_", " "), result.get("counts")
                )
            else:
                log.info("drift detected: %s; reasons %s", result["drift_detected"], result["reasons"])
            return bool(result["drift_detected"])

        @task(outlets=[asset])
        def emit_drift_event(result: dict[str, Any]) -> None:
            """Emit the asset event that queues the training DAG; its extra says why."""
            extra = {
                "reason": "drift",
                "reasons": result["reasons"],
                "model_version": result["model_version"],
                "interval_start": result["interval_start"],
                "interval_end": result["interval_end"],
                "report_uri": result.get("report_uri"),
            }
            get_current_context()["outlet_events"][asset].extra = extra
            log.info("emitting %s: %s", asset.uri, extra)

        result = check_drift.output
        drift_detected(result) >> emit_drift_event(result)
    return dag
