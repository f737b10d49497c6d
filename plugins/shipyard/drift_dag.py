"""The daily drift DAG of one pipeline, and the Asset that ties it to the training DAG.

check_drift (the pipeline image's `drift` step) → drift_detected (short-circuit) →
emit_drift_event (outlet: the pipeline's drift Asset). The event is emitted only when the
step says `drift_detected`; the training DAG is scheduled on "its cron OR this asset", so
the event queues a retraining run without waiting for the next scheduled one. The event's
`extra` carries the reasons, so the triggered run can say why it runs.

Window: `CronTriggerTimetable(drift.cron, interval=1 day)`. A scheduled run at 04:00 checks
[04:00 yesterday, 04:00 today); a manual run checks the 24 hours before it was triggered.
Only the Airflow SDK and the standard library are imported here (DAG parsing stays fast).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, CronTriggerTimetable, get_current_context, task
from airflow.sdk.exceptions import AirflowException

from shipyard.assets import drift_asset  # defined there so the training DAG file parses fast
from shipyard_spec import PipelineSpec

log = logging.getLogger(__name__)

DRIFT_WINDOW = timedelta(days=1)


def drift_dag_id(pipeline: str) -> str:
    return f"shipyard_drift_{pipeline}"


def storage_root() -> str:
    """`SHIPYARD_STORAGE_ROOT`, else `${SHIPYARD_HOME}/storage` (the embedded default)."""
    explicit = os.environ.get("SHIPYARD_STORAGE_ROOT")
    return explicit or str(Path(os.environ.get("SHIPYARD_HOME", ".shipyard")).resolve() / "storage")


def window_of(context: dict[str, Any]) -> tuple[datetime, datetime]:
    """The run's data interval; asset-triggered and API runs without one get the last 24 hours."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        end = context["dag_run"].run_after
        start = end - DRIFT_WINDOW
        log.info("run has no data interval: checking the %s before %s", DRIFT_WINDOW, end)
    return start, end


def run_drift_step(spec_path: str, start: datetime, end: datetime, run_id: str) -> dict[str, Any]:
    """Run `python -m shipyard_pipeline.drift` in the pipeline virtualenv; return its result.

    Stand-in for the DAG factory's local step runner (subprocess in the pipeline venv /
    KubernetesPodOperator in production): swap this task for that operator with
    step="drift" once it exists, keeping the task id and the XCom result.
    """
    python = os.environ.get("SHIPYARD_PIPELINE_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "return.json"
        command = [
            python, "-m", "shipyard_pipeline.drift", "--spec", spec_path,
            "--interval-start", start.isoformat(), "--interval-end", end.isoformat(),
            "--run-id", run_id, "--storage-root", storage_root(), "--result-path", str(result_path),
        ]  # fmt: skip
        process = subprocess.run(command, capture_output=True, text=True, check=False)
        sys.stderr.write(process.stderr)  # the step's log (its table) goes to the task log
        if process.returncode != 0:
            last = process.stderr.strip().splitlines()[-1:] or ["no output"]
            raise AirflowException(f"drift step exited with {process.returncode}: {last[0]}")
        return json.loads(result_path.read_text())


def build_drift_dag(spec: PipelineSpec, spec_path: str) -> DAG:
    """One drift DAG per pipeline spec."""
    asset = drift_asset(spec.name)
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

        @task
        def check_drift() -> dict[str, Any]:
            """Compare the champion's prediction logs of the window with its reference profile."""
            context = get_current_context()
            start, end = window_of(context)
            return run_drift_step(spec_path, start, end, context["run_id"])

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

        result = check_drift()
        drift_detected(result) >> emit_drift_event(result)
    return dag
