"""The reference profile: what the champion saw on its test set, kept beside the model.

Drift is measured against the profile of the model version that is serving, never against
"the latest data", so a retrained champion resets the baseline. The profile is small JSON
(an MLflow run artifact, `reference_profile.json`) with, per feature, exactly what the
statistics in `shipyard_pipeline.drift.statistics` need:

    {"format_version": 1, "rows": 1409, "bins": 10,
     "numeric":     {"tenure": {"quantiles": [q0, ..., q10], "counts": [c1, ..., ck, missing]}},
     "categorical": {"contract": {"counts": {"Month-to-month": 770, ..., "__missing__": 0}}},
     "score":       {"quantiles": [...], "counts": [...]},
     "roc_auc": 0.84}

`quantiles` are the reference's quantiles at 0, 1/bins, ..., 1; `counts` are the reference
rows per bin of `statistics.bin_counts` over those quantiles (last entry: missing values).
Null rates and frequencies follow from the counts. `roc_auc` is the model's test-set AUC,
the yardstick for live AUC once labels arrive (null if the profile was built without labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from shipyard_pipeline.drift.statistics import MISSING, bin_counts, interior_edges

PROFILE_ARTIFACT = "reference_profile.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class NumericReference:
    """Quantile grid and per-bin counts of one numeric column (a feature or the score)."""

    quantiles: list[float]
    counts: list[int]

    @property
    def edges(self) -> np.ndarray:
        return interior_edges(self.quantiles)

    @classmethod
    def of(cls, values: pd.Series, bins: int) -> NumericReference:
        values = pd.to_numeric(values, errors="coerce").astype(float)
        present = values.dropna()
        grid = np.linspace(0, 1, bins + 1)
        quantiles = np.quantile(present, grid) if len(present) else np.zeros(bins + 1)
        counts = bin_counts(interior_edges(quantiles), values.to_numpy())
        return cls([float(q) for q in quantiles], [int(c) for c in counts])


@dataclass(frozen=True)
class CategoricalReference:
    """Rows per category of one categorical feature; missing values under `__missing__`."""

    counts: dict[str, int]

    @property
    def categories(self) -> list[str]:
        return [c for c in self.counts if c != MISSING]

    def count_vector(self) -> np.ndarray:
        """Counts in `statistics.category_counts` order: categories, `__other__` (0), missing."""
        return np.array([*(self.counts[c] for c in self.categories), 0, self.counts.get(MISSING, 0)])

    @classmethod
    def of(cls, values: pd.Series) -> CategoricalReference:
        counts = values.dropna().astype(str).value_counts()
        return cls({**{str(k): int(v) for k, v in counts.items()}, MISSING: int(values.isna().sum())})


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference distributions of every feature and of the model's score."""

    rows: int
    bins: int
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    score: NumericReference
    roc_auc: float | None = None

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "numeric": {name: vars(ref) for name, ref in self.numeric.items()},
            "categorical": {name: vars(ref) for name, ref in self.categorical.items()},
            "score": vars(self.score),
            "roc_auc": self.roc_auc,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"reference profile format_version {version!r} is not supported (expected 1)")
        return cls(
            rows=int(data["rows"]),
            bins=int(data["bins"]),
            numeric={name: NumericReference(**ref) for name, ref in data["numeric"].items()},
            categorical={name: CategoricalReference(**ref) for name, ref in data["categorical"].items()},
            score=NumericReference(**data["score"]),
            roc_auc=data.get("roc_auc"),
        )


def build_reference_profile(
    features: pd.DataFrame,
    scores: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    bins: int,
    labels: np.ndarray | None = None,
) -> ReferenceProfile:
    """Profile a test set and the model's scores on it (called by the train step)."""
    return ReferenceProfile(
        rows=len(features),
        bins=bins,
        numeric={name: NumericReference.of(features[name], bins) for name in numeric},
        categorical={name: CategoricalReference.of(features[name]) for name in categorical},
        score=NumericReference.of(pd.Series(scores), bins),
        roc_auc=None if labels is None else float(roc_auc_score(labels, scores)),
    )
