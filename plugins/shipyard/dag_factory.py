"""One training DAG per pipeline spec: ingest → validate → train → evaluate → register
(and validate → score when the spec has a `scoring` section: batch scores of the interval).

The DAG file `dags/shipyard_pipelines.py` calls `build_training_dags()` over the valid specs of
`dags/pipelines/*.yaml` (`load_pipelines()`: a broken or duplicate spec hides no other pipeline).
Each run owns the window [data_interval_start, data_interval_end) of the spec's cron
(`CronDataIntervalTimetable`), so scheduled runs and backfills process disjoint intervals; the
drift DAG's Asset can also queue a run, whose window ends when drift was detected
(`shipyard.window`). Steps run through one of two runners (`shipyard.settings.runner()`), with
the same CLI arguments. Only the Airflow SDK, pydantic and the standard library are imported
here: parsing stays fast.

Extension point: `build_training_dags(specs, after_register=[f])` (in the DAG file) calls each
`f(spec, register)` inside every DAG, after the pipeline group, with the register task: a later
stage (the canary rollout) appends its tasks downstream of `register` without touching this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    BaseOperator,
    CronDataIntervalTimetable,
    Param,
    TaskGroup,
    chain,
)
from airflow.sdk.exceptions import AirflowTimetableInvalid

from shipyard import settings
from shipyard.assets import drift_asset
from shipyard.operators import step_operator
from shipyard.step_command import STEPS
from shipyard_spec import LoadedSpecs, PipelineSpec, load_specs
from shipyard_spec.contract import SPEC_MAX_BYTES, Env, Step, spec_sha256

log = logging.getLogger(__name__)

TaskExtension = Callable[[PipelineSpec, BaseOperator], Any]

STEP_DOCS: dict[Step, str] = {
    Step.INGEST: (
        "Copies the source rows with `{event_time}` in the run's window into a snapshot partition "
        "`{storage}/{pipeline}/snapshots/interval_start=<start>/` (`data.parquet` + `_MANIFEST.json`, "
        "published last). An interval already published is left alone unless **force_ingest** is set, "
        "so re-running an interval changes nothing."
    ),
    Step.VALIDATE: (
        "Checks the snapshot against the spec's expectations (Great Expectations): schema, row count, "
        "target rate, nulls, ranges, allowed values, uniqueness. The report goes next to the run "
        "(`{storage}/{pipeline}/runs/<run_id>/validate/`) and to MLflow. A failed expectation fails the "
        "task at once (no retry) and nothing is trained."
    ),
    Step.TRAIN: (
        "Fits preprocessing + XGBoost on the snapshots of the last **window_intervals** intervals (time "
        "split), with a bounded search on the validation split unless **skip_tuning**. Logs an MLflow run "
        "in experiment `{experiment}`: its id and link are in the task log and the XCom result."
    ),
    Step.EVALUATE: (
        "Scores the test split: metrics, slices, plots and a model card, logged to the training run; "
        "then the gates (minimum ROC AUC, baseline, current champion). A failed gate fails the task at "
        "once (no retry)."
    ),
    Step.REGISTER: (
        "Registers the model as a new version of `{model}` in the MLflow registry with the alias "
        "`challenger` and tags tying it to this Airflow run and window. Idempotent per run."
    ),
    Step.SCORE: (
        "Scores this interval's validated snapshot with the `{alias}` version of `{model}` and writes "
        "`{storage}/{pipeline}/predictions/interval_start=<start>/` (id, event time, score, model "
        "version, MLflow run id). A re-run replaces the interval's partition. Runs beside training: "
        "the scores come from the version serving now, not from the one this run trains."
    ),
}


def training_dag_id(pipeline: str) -> str:
    return f"shipyard_train_{pipeline}"


def schedule_problems(spec: PipelineSpec) -> list[tuple[str, str]]:
    """What Airflow would refuse in the spec's schedule: an unknown time zone, an invalid cron."""
    try:
        ZoneInfo(spec.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        return [("schedule.timezone", f"unknown time zone: {e}")]
    try:
        CronDataIntervalTimetable(spec.schedule.cron, timezone=spec.schedule.timezone).validate()
    except AirflowTimetableInvalid as e:
        return [("schedule.cron", f"{spec.schedule.cron!r}: {e}")]
    return []


def handover_problems(spec: PipelineSpec) -> list[tuple[str, str]]:
    """A spec too large to hand to a step in its environment (`contract.SPEC_MAX_BYTES`)."""
    size = len((spec.source_text or "").encode("utf-8"))
    if size > SPEC_MAX_BYTES:
        return [
            ("(file)", f"{size} bytes; each step gets the spec in ${Env.SPEC_YAML}, at most {SPEC_MAX_BYTES}")
        ]
    return []


def load_pipelines(spec_dir: Path) -> LoadedSpecs:
    """Every spec of `spec_dir` (`*.yaml`), each valid or rejected on its own.

    Every Shipyard DAG file builds its DAGs from `.valid`, so a broken or duplicate spec hides
    no other pipeline's DAGs; `dags/shipyard_specs.py` raises `.errors` as its import error.
    """
    loaded = load_specs(sorted(spec_dir.glob("*.yaml")))
    for path, spec in list(loaded.valid.items()):
        if problems := schedule_problems(spec) or handover_problems(spec):
            loaded.reject(path, problems)
    for error in loaded.errors:
        log.warning("skipping %s", error)
    return loaded


def training_schedule(spec: PipelineSpec) -> AssetOrTimeSchedule:
    """The spec's cron as a data-interval timetable, OR the pipeline's drift Asset (retrain on drift)."""
    timetable = CronDataIntervalTimetable(spec.schedule.cron, timezone=spec.schedule.timezone)
    return AssetOrTimeSchedule(timetable=timetable, assets=[drift_asset(spec.name)])


def trigger_params(spec: PipelineSpec) -> dict[str, Param]:
    """The trigger form of a manual run; scheduled runs use these defaults."""
    return {
        "window_intervals": Param(
            spec.training.window_intervals,
            type="integer",
            minimum=1,
            title="Training window (intervals)",
            description="How many of the latest snapshots the train step fits on.",
        ),
        "skip_tuning": Param(
            False,
            type="boolean",
            title="Skip tuning",
            description="Train with the spec's parameters; no hyper-parameter search.",
        ),
        "force_ingest": Param(
            False,
            type="boolean",
            title="Force re-ingest",
            description="Replace the snapshot of this run's interval even if it is already published.",
        ),
        # Optional: the UI marks a Param required unless its type admits null, and an empty text
        # field is null there, so a default of "" would disable Trigger and Run Backfill.
        "canary_args": Param(
            None,
            type=["null", "string"],
            title="Canary fault injection (demos only)",
            description="Extra predictor arguments for the canary, e.g. `--fault_error_rate 0.3`; "
            "leave empty in real releases.",
        ),
    }


def log_failure_summary(context: dict[str, Any]) -> None:
    """One line per failed task: the place to hook alerts (Slack, PagerDuty, ...) in."""
    ti = context["ti"]
    cause = str(context.get("exception") or "unknown cause").strip().splitlines() or ["unknown cause"]
    log.error(
        "shipyard: %s.%s failed on try %s of run %s: %s",
        ti.dag_id,
        ti.task_id,
        ti.try_number,
        context["run_id"],
        cause[0],
    )


def _short_sha256(spec: PipelineSpec) -> str:
    return spec_sha256(spec.source_text or "")[:12]


def _dag_doc(spec: PipelineSpec, spec_path: Path, runner: settings.Runner, storage: str) -> str:
    return f"""\
### {spec.name}: weekly retraining

{spec.description}

Spec: `{spec_path.name}` (sha256 `{_short_sha256(spec)}`, handed to every step) · runner: **{runner}**
· owner: {spec.owner}

Each run owns the window **[data_interval_start, data_interval_end)** of `{spec.schedule.cron}`
({spec.schedule.timezone}). A run queued by the drift Asset `shipyard://{spec.name}/drift` trains on
the interval that ends when drift was detected, so the drifted days are learned from; a manual
run without a data interval takes the last full interval. Each task log says which and why, and
each step's **Rendered Template** shows the window it ran on (`--interval-start`, `--interval-end`).

- snapshots: `{storage}/{spec.name}/snapshots/interval_start=<start>/`
- run outputs: `{storage}/{spec.name}/runs/<run_id>/<step>/`
- MLflow: experiment `{spec.mlflow.experiment}`, model `{spec.mlflow.registered_model}` (alias `challenger`)

Backfill: `airflow backfill create --dag-id {training_dag_id(spec.name)} --from-date ... --to-date ...
--max-active-runs 1` or Trigger → Backfill in the UI (Max Active Runs 1 there by default). A backfill
has its own limit (the CLI's default is 10): this DAG's one-run-at-a-time does not bind it, and each
week trains on the snapshots the earlier weeks publish. A failed validation or gate fails at once;
other failures are retried.
"""


def _step_task(step: Step, spec: PipelineSpec, runner: settings.Runner, storage_root: str) -> BaseOperator:
    doc = STEP_DOCS[step].format(
        event_time=spec.columns.event_time or "event time",
        storage=storage_root,
        pipeline=spec.name,
        experiment=spec.mlflow.experiment,
        model=spec.mlflow.registered_model,
        alias=spec.scoring.alias if spec.scoring else "",
    )
    return step_operator(
        step, spec, runner=runner, storage_root=storage_root, cron=spec.schedule.cron,
        task_id=str(step), doc_md=doc,
    )  # fmt: skip


def build_training_dag(
    spec: PipelineSpec, spec_path: Path, after_register: Sequence[TaskExtension] = ()
) -> DAG:
    runner = settings.runner()
    storage_root = settings.step_storage_root(runner)
    with DAG(
        dag_id=training_dag_id(spec.name),
        description=spec.description or f"Shipyard training pipeline {spec.name}",
        schedule=training_schedule(spec),
        start_date=datetime.combine(spec.schedule.start_date, time(), ZoneInfo(spec.schedule.timezone)),
        catchup=False,
        max_active_runs=1,  # training reads the snapshots earlier runs published: one run at a time
        params=trigger_params(spec),
        tags=sorted({"shipyard", "training", spec.name, *spec.tags}),
        doc_md=_dag_doc(spec, spec_path, runner, storage_root),
        default_args={
            "owner": spec.owner,
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=15),
            "execution_timeout": timedelta(hours=2),
            "on_failure_callback": log_failure_summary,
        },
    ) as dag:
        with TaskGroup("pipeline", tooltip="ingest → validate → train → evaluate → register"):
            tasks = [_step_task(step, spec, runner, storage_root) for step in STEPS]
            chain(*tasks)
            if spec.scoring is not None:
                # Same interval and snapshot as training, so batch scores never need partitions
                # of another length in the snapshots the training window reads.
                tasks[STEPS.index(Step.VALIDATE)] >> _step_task(Step.SCORE, spec, runner, storage_root)
        for extend in after_register:
            extend(spec, tasks[-1])
    return dag


def build_training_dags(
    specs: Mapping[Path, PipelineSpec], after_register: Sequence[TaskExtension] = ()
) -> dict[str, DAG]:
    """The training DAG of every spec (`load_pipelines(...).valid`), by DAG id."""
    dags = (build_training_dag(spec, path, after_register) for path, spec in specs.items())
    return {dag.dag_id: dag for dag in dags}
