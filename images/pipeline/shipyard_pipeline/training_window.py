"""The training window as train uses it, whichever engine holds its rows (`Engine.training_data`).

A window is the deduplicated rows of the window's snapshots (`dataset.load`'s semantics), their
resolved features and their split (`dataset.split`'s policy and cut points). Train fits on it,
stores its split for evaluate, and needs on the step's own process only the test part (for the
reference profile, as evaluate scores it) and bounded samples (the MLflow signature and dataset
records). `PandasWindow` holds the rows in the step process; `spark_window.SparkWindow` in Spark.
"""

from __future__ import annotations

import io
from typing import Protocol

import pandas as pd

from shipyard_pipeline import dataset, snapshot, storage
from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.fitting import Data, Fit, fit_model
from shipyard_pipeline.model_artifact import bounded_sample
from shipyard_spec.model import ModelConfig, PipelineSpec

PARTS = ("train", "validation", "test")


class TrainingWindow(Protocol):
    features: FeatureSet

    @property
    def rows(self) -> dict[str, int]:
        """Rows of each split part, by name (PARTS)."""
        ...

    def fit(self, config: ModelConfig, tune: bool, seed: int) -> Fit:
        """The fitted Pipeline (`fitting.Fit`) on the train part, early stopping on validation."""
        ...

    def write_split(self, uris: dict[str, str]) -> None:
        """Each part as one Parquet file at its URI, in split order, with the snapshots' dtypes."""
        ...

    def part(self, name: str) -> pd.DataFrame:
        """One whole part as a pandas frame (train asks for the test part only)."""
        ...

    def sample(self, name: str) -> pd.DataFrame:
        """`model_artifact.bounded_sample` of a part."""
        ...


class PandasWindow:
    """The window as one pandas frame in the step process (`dataset.load`, `dataset.split`)."""

    def __init__(self, spec: PipelineSpec, snapshots: list[snapshot.Snapshot]) -> None:
        frame = dataset.load(spec, snapshots)
        self.features = dataset.resolve_features(spec, frame)
        self._parts = dataset.split(spec, frame).parts()
        self._spec = spec

    @property
    def rows(self) -> dict[str, int]:
        return {name: len(part) for name, part in self._parts.items()}

    def fit(self, config: ModelConfig, tune: bool, seed: int) -> Fit:
        train, validation, target = self._parts["train"], self._parts["validation"], self._spec.columns.target
        data = Data(
            train[self.features.columns],
            dataset.target_vector(self._spec, train[target]),
            validation[self.features.columns],
            dataset.target_vector(self._spec, validation[target]),
        )
        return fit_model(self.features, config, data, tune=tune, seed=seed)

    def write_split(self, uris: dict[str, str]) -> None:
        for name, part in self._parts.items():
            buffer = io.BytesIO()
            part.to_parquet(buffer, index=False)
            storage.write_bytes_atomic(uris[name], buffer.getvalue())

    def part(self, name: str) -> pd.DataFrame:
        return self._parts[name]

    def sample(self, name: str) -> pd.DataFrame:
        return bounded_sample(self._parts[name])
