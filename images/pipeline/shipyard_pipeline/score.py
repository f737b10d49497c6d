"""score: the interval's snapshot scored by a registered version, one predictions partition per interval.

    {root}/{pipeline}/predictions/interval_start=<YYYY-MM-DDTHH:MM:SS>/data.parquet
                                                                       /_MANIFEST.json

The version is the one behind `scoring.alias` (`champion`: the version the predictor serves),
loaded from the registry as the predictor loads it (the same `model.pkl` Pipeline, the same
signature), and fed the rows as the predictor's exact path builds them (numbers as float64,
text as objects with None for missing), so a batch score equals the served score of the same
row. Each row of the partition: the snapshot row's id and event time, `score` (the
probability of the positive label), and the `model_version` and `mlflow_run_id` that scored it.

Idempotent per interval: the partition is written as a snapshot is (data file, then manifest,
each atomically; any earlier manifest removed first), so a re-run replaces it and a reader
never sees two sets of scores for one interval. The snapshot is read and scored
`scoring.batch_rows` rows at a time. No version behind the alias yet is a result
(`no_model`), not an error.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import mlflow.sklearn
import pandas as pd
import pyarrow as pa
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import Model

from shipyard_pipeline import snapshot, storage, tracking
from shipyard_pipeline.context import RunContext, partition_key
from shipyard_pipeline.errors import CheckFailed, StepError
from shipyard_spec.contract import PREDICTIONS_DIR
from shipyard_spec.model import Scoring

log = logging.getLogger(__name__)

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


class Column(StrEnum):
    """Columns a predictions partition adds to the row's id and event time."""

    SCORE = "score"
    MODEL_VERSION = "model_version"
    MLFLOW_RUN_ID = "mlflow_run_id"


class Status(StrEnum):
    SCORED = "scored"
    NO_MODEL = "no_model"


@dataclass(frozen=True)
class ScoringModel:
    """A registered version's Pipeline and the features its signature declares, in order."""

    version: ModelVersion
    pipeline: Any
    numeric: list[str]
    categorical: list[str]
    features: list[str]

    @classmethod
    def load(cls, version: ModelVersion) -> ScoringModel:
        uri = f"models:/{version.name}/{version.version}"
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(artifact_uri=uri, dst_path=tmp)
            signature = Model.load(local).signature
            pipeline = mlflow.sklearn.load_model(local)
        if signature is None:
            raise StepError(f"{version.name} v{version.version} has no signature: its features are unknown")
        inputs = signature.inputs.to_dict()
        return cls(
            version=version,
            pipeline=pipeline,
            numeric=[c["name"] for c in inputs if c["type"] in NUMERIC_TYPES],
            categorical=[c["name"] for c in inputs if c["type"] not in NUMERIC_TYPES],
            features=[c["name"] for c in inputs],
        )

    def features_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows as the predictor's exact path hands them to the Pipeline."""
        missing = [name for name in self.features if name not in rows.columns]
        if missing:
            raise CheckFailed(
                f"the snapshot lacks feature(s) {missing} of {self.version.name} v{self.version.version}"
            )
        columns = {name: rows[name].astype("float64") for name in self.numeric}
        columns |= {
            name: rows[name].astype(object).where(rows[name].notna(), None) for name in self.categorical
        }
        return pd.DataFrame(columns)[self.features]

    def score(self, rows: pd.DataFrame) -> pd.Series:
        return pd.Series(self.pipeline.predict_proba(self.features_frame(rows))[:, 1], index=rows.index)


def predictions_dir(context: RunContext) -> str:
    return storage.join(
        context.pipeline_root, PREDICTIONS_DIR, f"interval_start={partition_key(context.interval_start)}"
    )


def scored_rows(
    model: ScoringModel, chunks: Iterator[pd.DataFrame], keys: list[str]
) -> Iterator[pd.DataFrame]:
    version = model.version
    for rows in chunks:
        scored = rows[keys].copy()
        scored[Column.SCORE.value] = model.score(rows)
        scored[Column.MODEL_VERSION.value] = str(version.version)
        scored[Column.MLFLOW_RUN_ID.value] = version.run_id
        yield scored


def run(context: RunContext) -> dict[str, Any]:
    spec = context.spec
    settings = spec.scoring or Scoring()
    result: dict[str, Any] = {
        "pipeline": spec.name,
        "interval_start": context.interval_start.isoformat(),
        "interval_end": context.interval_end.isoformat(),
        "alias": settings.alias,
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
    target = predictions_dir(context)
    # The schema of the partition comes from the first scored chunk (a snapshot has at least one row).
    chunks = scored_rows(model, published.read_chunks(settings.batch_rows), keys)
    first = next(chunks)
    manifest = {
        "pipeline": spec.name,
        "interval_start": result["interval_start"],
        "interval_end": result["interval_end"],
        "rows": published.manifest["rows"],
        "snapshot_content_hash": published.manifest["content_hash"],
        "model_name": version.name,
        "model_version": str(version.version),
        "mlflow_run_id": version.run_id,
        "run_id": context.run_id,
        "scored_at": datetime.now(UTC).isoformat(),
    }
    written = snapshot.publish_chunks(
        target,
        itertools.chain([first], chunks),
        first.dtypes,
        pa.Schema.from_pandas(first, preserve_index=False),
        manifest,
    )
    log.info(
        "scored %d rows of %s with %s v%s into %s",
        manifest["rows"], published.directory, version.name, version.version, target,
    )  # fmt: skip
    return {
        **result,
        "status": Status.SCORED.value,
        "model_version": str(version.version),
        "mlflow_run_id": version.run_id,
        "rows": manifest["rows"],
        "predictions_uri": written.directory,
        "data_uri": written.data_uri,
        "content_hash": written.manifest["content_hash"],
    }
