"""What every step is given (spec, data interval, run id, storage root) and where it writes.

The storage layout is part of the contract between steps (docs/architecture.md): a step
finds an earlier step's outputs from the run id alone, so the DAG passes the same common
arguments to every step and nothing else.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shipyard_pipeline import storage
from shipyard_pipeline.errors import StepError
from shipyard_spec.contract import RUNS_DIR, SNAPSHOTS_DIR, Tag
from shipyard_spec.model import PipelineSpec

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str) -> str:
    """Replace `${VAR}` with the environment's value; an unset variable is an error, not ''."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StepError(f"environment variable {name} used in {text!r} is not set")
        return os.environ[name]

    return _VARIABLE.sub(value, text)


def to_utc(value: str | datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to be UTC already."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def partition_key(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC: the interval part of a snapshot directory name."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class RunContext:
    """One step invocation: the pipeline, the run's data interval [start, end) and its storage."""

    spec: PipelineSpec
    interval_start: datetime
    interval_end: datetime
    run_id: str
    storage_root: str

    def __post_init__(self) -> None:
        if self.interval_end <= self.interval_start:
            raise StepError(
                f"interval end {self.interval_end.isoformat()} is not after "
                f"interval start {self.interval_start.isoformat()}"
            )

    @property
    def storage_root_uri(self) -> str:
        """The storage root with `${VAR}` expanded: a local path or an fsspec URI (s3://...)."""
        return expand_env(self.storage_root)

    @property
    def pipeline_root(self) -> str:
        return storage.join(self.storage_root_uri, self.spec.name)

    @property
    def snapshots_root(self) -> str:
        return storage.join(self.pipeline_root, SNAPSHOTS_DIR)

    def snapshot_dir(self, interval_start: datetime | None = None) -> str:
        return storage.join(
            self.snapshots_root, f"interval_start={partition_key(interval_start or self.interval_start)}"
        )

    def step_dir(self, step: str, run_id: str | None = None) -> str:
        """`{root}/{pipeline}/runs/{run_id}/{step}`: reports and results of one step of one run."""
        safe_run_id = re.sub(r"[^A-Za-z0-9_.:+-]", "_", run_id or self.run_id)
        return storage.join(self.pipeline_root, RUNS_DIR, safe_run_id, step)

    def scratch_dir(self, step: str) -> str:
        """`{root}/{pipeline}/runs/{run_id}/{step}/scratch`: one step's temporary files that every
        process of it reaches, wherever it runs (Spark's executors write their parts there). Only
        that step of that run writes there, one try at a time, so a try may empty it first."""
        return storage.join(self.step_dir(step), "scratch")

    def step_result_uri(self, step: str) -> str:
        return storage.join(self.step_dir(step), "result.json")

    def read_step_result(self, step: str) -> dict[str, Any]:
        """The result an earlier step of this run stored; a clear error when it never ran."""
        uri = self.step_result_uri(step)
        if not storage.exists(uri):
            raise StepError(f"no {step} result for run {self.run_id!r} at {uri}: run the {step} step first")
        return storage.read_json(uri)

    def tags(self) -> dict[str, str]:
        """MLflow tags that tie a run or a model version to the Airflow run and its interval."""
        return {
            Tag.PIPELINE: self.spec.name,
            Tag.AIRFLOW_RUN_ID: self.run_id,
            Tag.INTERVAL_START: self.interval_start.isoformat(),
            Tag.INTERVAL_END: self.interval_end.isoformat(),
        }
