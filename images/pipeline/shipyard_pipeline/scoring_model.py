"""A registered version as batch scoring uses it: its Pipeline, its features, and the rows it scores.

Loaded from the registry as the predictor loads it (the same `model.pkl` Pipeline, the same
signature) and fed the rows as the predictor's exact path builds them (numbers as float64,
text as objects with None for missing), so a batch score equals the served score of the same
row. Only plain values are kept (names, version, run id, the Pipeline), so an engine can ship
the model to the processes that score (Spark executors pickle it with the scoring function).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import mlflow.sklearn
import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import Model

from shipyard_pipeline.errors import CheckFailed, StepError

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


class Column(StrEnum):
    """Columns a predictions partition adds to the row's id and event time."""

    SCORE = "score"
    MODEL_VERSION = "model_version"
    MLFLOW_RUN_ID = "mlflow_run_id"


@dataclass(frozen=True)
class ScoringModel:
    """A registered version's Pipeline and the features its signature declares, in order."""

    name: str
    version: str
    run_id: str
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
            name=version.name,
            version=str(version.version),
            run_id=version.run_id,
            pipeline=pipeline,
            numeric=[c["name"] for c in inputs if c["type"] in NUMERIC_TYPES],
            categorical=[c["name"] for c in inputs if c["type"] not in NUMERIC_TYPES],
            features=[c["name"] for c in inputs],
        )

    def features_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows as the predictor's exact path hands them to the Pipeline."""
        missing = [name for name in self.features if name not in rows.columns]
        if missing:
            raise CheckFailed(f"the snapshot lacks feature(s) {missing} of {self.name} v{self.version}")
        columns = {name: rows[name].astype("float64") for name in self.numeric}
        columns |= {
            name: rows[name].astype(object).where(rows[name].notna(), None) for name in self.categorical
        }
        return pd.DataFrame(columns)[self.features]

    def score(self, rows: pd.DataFrame) -> pd.Series:
        """float32: the precision XGBoost computes and the predictor serves (both engines write it)."""
        scores = self.pipeline.predict_proba(self.features_frame(rows))[:, 1]
        return pd.Series(scores, index=rows.index, dtype="float32")

    def scored_rows(self, keys: list[str], chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Each chunk's key columns with its scores and the version that scored them."""
        for rows in chunks:
            scored = rows[keys].copy()
            scored[Column.SCORE.value] = self.score(rows)
            scored[Column.MODEL_VERSION.value] = self.version
            scored[Column.MLFLOW_RUN_ID.value] = self.run_id
            yield scored
