"""score: the interval's snapshot scored by a registered version, one predictions partition per interval.

    {root}/{pipeline}/predictions/interval_start=<YYYY-MM-DDTHH:MM:SS>/data.parquet
                                                                       /_MANIFEST.json

The version is the one behind `scoring.alias` (`champion`: the version the predictor serves),
scored as the predictor scores (`scoring_model.ScoringModel`), so a batch score equals the
served score of the same row, on the spec's engine (`engines`: pandas in this process, or
Spark's executors; both publish the same partition). Each row of the partition: the snapshot
row's id and event time, `score` (the probability of the positive label), and the
`model_version` and `mlflow_run_id` that scored it.

Idempotent per interval: the partition is written as a snapshot is (data file, then manifest,
each atomically; any earlier manifest removed first), so a re-run replaces it and a reader
never sees two sets of scores for one interval. The snapshot is read and scored
`scoring.batch_rows` rows at a time. No version behind the alias yet is a result
(`no_model`), not an error.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pandas as pd
import pyarrow as pa

from shipyard_pipeline import engines, snapshot, storage, tracking
from shipyard_pipeline.context import RunContext, partition_key
from shipyard_pipeline.errors import CheckFailed, StepError
from shipyard_pipeline.scoring_model import ScoringModel
from shipyard_spec.contract import PREDICTIONS_DIR, Step
from shipyard_spec.model import Scoring

log = logging.getLogger(__name__)


class Status(StrEnum):
    SCORED = "scored"
    NO_MODEL = "no_model"


def predictions_dir(context: RunContext) -> str:
    return storage.join(
        context.pipeline_root, PREDICTIONS_DIR, f"interval_start={partition_key(context.interval_start)}"
    )


def run(context: RunContext) -> dict[str, Any]:
    spec = context.spec
    settings = spec.scoring or Scoring()
    result: dict[str, Any] = {
        "pipeline": spec.name,
        "interval_start": context.interval_start.isoformat(),
        "interval_end": context.interval_end.isoformat(),
        "alias": settings.alias,
        "engine": spec.engine,
    }
    published = snapshot.read_published(context.snapshot_dir())
    if published is None:
        raise StepError(f"no snapshot for this interval at {context.snapshot_dir()}: run ingest first")
    if published.quarantined:
        raise CheckFailed(
            f"snapshot {published.directory} is quarantined ({published.quarantine.get('reason', '')}): "
            "fix the source, re-ingest with --force and validate before scoring it"
        )
    version = tracking.version_by_alias(tracking.connect(), spec.mlflow.registered_model, settings.alias)
    if version is None:
        log.info(
            "no version of %r holds alias %r: nothing scores", spec.mlflow.registered_model, settings.alias
        )
        return {**result, "status": Status.NO_MODEL.value, "model_version": None}
    model = ScoringModel.load(version)
    keys = [c for c in (spec.columns.id, spec.columns.event_time) if c]
    with engines.engine(context, Step.SCORE).scored(model, published, keys, settings.batch_rows) as chunks:
        written = _publish(context, published, model, chunks)
    log.info(
        "scored %d rows of %s with %s v%s on %s into %s",
        written.manifest["rows"], published.directory, model.name, model.version, spec.engine,
        written.directory,
    )  # fmt: skip
    return {
        **result,
        "status": Status.SCORED.value,
        "model_version": model.version,
        "mlflow_run_id": model.run_id,
        "rows": written.manifest["rows"],
        "predictions_uri": written.directory,
        "data_uri": written.data_uri,
        "content_hash": written.manifest["content_hash"],
    }


def _publish(
    context: RunContext, published: snapshot.Snapshot, model: ScoringModel, chunks: Iterator[pd.DataFrame]
) -> snapshot.Snapshot:
    """The interval's partition, replacing any earlier one; its schema is the first scored chunk's
    (a snapshot has at least one row)."""
    first = next(chunks)
    manifest = {
        "pipeline": context.spec.name,
        "interval_start": context.interval_start.isoformat(),
        "interval_end": context.interval_end.isoformat(),
        "rows": published.manifest["rows"],
        "snapshot_content_hash": published.manifest["content_hash"],
        "model_name": model.name,
        "model_version": model.version,
        "mlflow_run_id": model.run_id,
        "run_id": context.run_id,
        "scored_at": datetime.now(UTC).isoformat(),
    }
    return snapshot.publish_chunks(
        predictions_dir(context),
        itertools.chain([first], chunks),
        first.dtypes,
        pa.Schema.from_pandas(first, preserve_index=False),
        manifest,
    )
