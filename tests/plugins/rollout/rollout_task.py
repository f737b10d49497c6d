"""The `rollout` task as Airflow runs it, without a scheduler: a pipeline spec for the local
backend, and execute → (defer → trigger → execute_complete)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk.exceptions import TaskDeferred
from rollout_support import TEST_POLICY

from shipyard.rollout.operator import CanaryRolloutOperator
from shipyard.rollout.trigger import CanaryAnalysisTrigger
from shipyard_spec import load_spec

PIPELINE = "rollout_probe"


def write_spec(directory: Path, pipeline: str = PIPELINE, **rollout: Any) -> Path:
    """A spec with the test policy (plus `rollout` overrides) on the local backend."""
    spec = {
        "name": pipeline,
        "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": ["unused.parquet"]},
        "columns": {"id": "customer_id", "target": "churn"},
        "features": {"numeric": ["tenure"]},
        "mlflow": {"experiment": pipeline, "registered_model": pipeline},
        "rollout": {**TEST_POLICY, **rollout},
    }
    path = directory / f"{pipeline}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def operator(spec_path: Path, version: str, model_dir: Path, canary_args=()) -> CanaryRolloutOperator:
    release = {"registered_model": load_spec(spec_path).mlflow.registered_model, "version": version,
               "artifact_path": str(model_dir)}  # fmt: skip
    return CanaryRolloutOperator(
        task_id="rollout", spec=load_spec(spec_path), release=release, canary_args=list(canary_args)
    )


async def collect(trigger: CanaryAnalysisTrigger) -> list:
    return [event async for event in trigger.run()]


def run_task(task: CanaryRolloutOperator) -> dict:
    """One try of the task: execute, and when it defers, the trigger and execute_complete."""
    try:
        return task.execute(context={})
    except TaskDeferred as deferred:
        trigger, method_name = deferred.trigger, deferred.method_name
    assert method_name == "execute_complete"
    _classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs  # what the triggerer stores
    events = asyncio.run(collect(CanaryAnalysisTrigger(**kwargs)))
    assert len(events) == 1
    return task.execute_complete(context={}, event=events[0].payload)


def rollout(spec_path: Path, version: str, model_dir: Path, canary_args=()) -> dict:
    return run_task(operator(spec_path, version, model_dir, canary_args))
