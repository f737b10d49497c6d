"""The fitted Shipyard Pipeline, re-done in numpy: the transformers' learned parameters plus the booster.

`Pipeline.predict_proba(DataFrame)` spends ~95% of a single-row request in pandas and the
ColumnTransformer (docs/reference measured-baselines: 4.5 of 4.8 ms). The fitted steps are
simple arithmetic — median fill, `(x - mean) / scale`, a one-hot lookup that ignores unseen
categories — so they are applied here to plain column arrays, and the matrix goes through the
booster's own trees walked in numpy (trees.py): `Booster.inplace_predict`, what
`XGBClassifier.predict_proba` calls, spends ~160 µs of fixed overhead on a single row.

Only the shape `shipyard_pipeline.modeling.build_pipeline` produces is compiled; any other
shape raises `UnsupportedPipeline`, and the predictor then serves the exact (pandas) path.
A compiled path is still only trusted after `parity()` against the Pipeline (see predictor.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from shipyard_serving.kernels import kernel
from shipyard_serving.trees import TreeEnsemble, UnsupportedBooster


class UnsupportedPipeline(ValueError):
    """The Pipeline is not the shape the fast path reproduces; serve the exact path instead."""


@dataclass(frozen=True)
class CategoricalBlock:
    """One categorical column: the matrix column of each known category's one-hot cell."""

    name: str
    columns: Mapping[Any, int]


class FastPath:
    """Probability of the positive class from feature columns, without pandas."""

    def __init__(self, pipeline: Pipeline, numeric: Sequence[str], categorical: Sequence[str]):
        preprocess, classifier = _split(pipeline)
        blocks = {
            name: (transformer, list(columns)) for name, transformer, columns in preprocess.transformers_
        }
        if (
            set(blocks) - {"remainder"} != {"numeric", "categorical"}
            or blocks.get("remainder", ("drop",))[0] != "drop"
        ):
            raise UnsupportedPipeline(
                f"ColumnTransformer blocks {sorted(blocks)}, expected numeric + categorical"
            )
        numeric_steps, numeric_columns = blocks["numeric"]
        categorical_steps, categorical_columns = blocks["categorical"]
        if numeric_columns != list(numeric) or categorical_columns != list(categorical):
            raise UnsupportedPipeline(
                f"fitted columns {numeric_columns} + {categorical_columns} differ from the signature's "
                f"{list(numeric)} + {list(categorical)}"
            )
        self.numeric = list(numeric)
        self.fill, self.mean, self.scale = _numeric_parameters(numeric_steps)
        self.blocks = _categorical_blocks(categorical_steps, categorical_columns, start=len(self.numeric))
        self.width = len(self.numeric) + sum(len(b.columns) for b in self.blocks)
        if classifier.n_features_in_ != self.width:
            raise UnsupportedPipeline(
                f"booster expects {classifier.n_features_in_} features, transform gives {self.width}"
            )
        if not np.isnan(classifier.missing):
            raise UnsupportedPipeline(f"XGBoost missing={classifier.missing}, expected NaN")
        best = getattr(classifier, "best_iteration", None)
        try:
            self.trees = TreeEnsemble(classifier.get_booster(), (0, best + 1) if best is not None else (0, 0))
        except UnsupportedBooster as e:
            raise UnsupportedPipeline(str(e)) from e

    def transform(self, numeric: np.ndarray, categorical: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """The ColumnTransformer's output for `numeric` (rows x numeric columns, NaN = missing), as
        the float32 matrix XGBoost compares its splits on."""
        # The one-hot cells, as flat positions in the matrix (a dict lookup per value, in Python).
        width = self.width
        ones = [
            row * width + column
            for block in self.blocks
            for row, value in enumerate(categorical[block.name])
            if (column := block.columns.get(value)) is not None
        ]
        return _transform(
            numeric, self.fill, self.mean, self.scale, np.array(ones, dtype=np.int64), self.width
        )

    def predict(self, numeric: np.ndarray, categorical: Mapping[str, Sequence[Any]]) -> np.ndarray:
        return self.trees.predict(self.transform(numeric, categorical))


# Compiled at import for these types (trees.py says why).
@kernel("float32[:, ::1](float64[:, :], float64[::1], float64[::1], float64[::1], int64[::1], int64)")
def _transform(numeric, fill, mean, scale, ones, width):
    """Median fill and `(x - mean) / scale` into the first columns, 1.0 at the one-hot positions:
    one compiled call (the same float64 arithmetic as the fitted transformers, rounded to float32
    as XGBoost rounds its input)."""
    rows, columns = numeric.shape
    matrix = np.zeros((rows, width), dtype=np.float32)
    for row in range(rows):
        for j in range(columns):
            value = numeric[row, j]
            matrix[row, j] = ((fill[j] if np.isnan(value) else value) - mean[j]) / scale[j]
    flat = matrix.reshape(rows * width)
    for position in ones:
        flat[position] = 1.0
    return matrix


def _split(pipeline: Pipeline) -> tuple[ColumnTransformer, XGBClassifier]:
    steps = getattr(pipeline, "named_steps", {})
    preprocess, classifier = steps.get("preprocess"), steps.get("model")
    if (
        len(steps) != 2
        or not isinstance(preprocess, ColumnTransformer)
        or not isinstance(classifier, XGBClassifier)
    ):
        raise UnsupportedPipeline(
            f"pipeline steps {list(steps)}, expected preprocess (ColumnTransformer) + model (XGBClassifier)"
        )
    if classifier.objective != "binary:logistic":
        raise UnsupportedPipeline(f"XGBoost objective {classifier.objective!r}, expected 'binary:logistic'")
    return preprocess, classifier


def _steps(transformer: Any, expected: tuple[type, type]) -> tuple[Any, Any]:
    steps = [step for _, step in getattr(transformer, "steps", [])]
    if len(steps) != 2 or not all(isinstance(s, t) for s, t in zip(steps, expected, strict=True)):
        raise UnsupportedPipeline(f"block {transformer!r}, expected {[t.__name__ for t in expected]}")
    return steps[0], steps[1]


def _numeric_parameters(transformer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    imputer, scaler = _steps(transformer, (SimpleImputer, StandardScaler))
    if imputer.strategy != "median" or imputer.add_indicator or np.isnan(imputer.statistics_).any():
        raise UnsupportedPipeline(f"numeric imputer {imputer!r} with statistics {imputer.statistics_}")
    if not (scaler.with_mean and scaler.with_std):
        raise UnsupportedPipeline(f"scaler {scaler!r}, expected mean and std scaling")
    return imputer.statistics_.astype(np.float64), scaler.mean_, scaler.scale_


def _categorical_blocks(transformer: Any, columns: list[str], start: int) -> list[CategoricalBlock]:
    imputer, encoder = _steps(transformer, (SimpleImputer, OneHotEncoder))
    if imputer.strategy != "constant" or imputer.add_indicator:
        raise UnsupportedPipeline(f"categorical imputer {imputer!r}, expected a constant fill")
    if (
        encoder.handle_unknown != "ignore"
        or encoder.drop is not None
        or encoder.min_frequency is not None
        or encoder.max_categories is not None
    ):
        raise UnsupportedPipeline(
            f"encoder {encoder!r}, expected handle_unknown='ignore', no drop, no infrequent"
        )
    # The constant imputer replaces NaN only: decoded requests carry None for a missing string,
    # which the imputer leaves alone in training too (pandas reads parquet nulls as None), so
    # the raw value is looked up directly.
    blocks, offset = [], start
    for name, categories in zip(columns, encoder.categories_, strict=True):
        cells = {category: offset + i for i, category in enumerate(categories.tolist())}
        if any(isinstance(c, float) for c in cells):
            # A NaN category only arises when training data carried NaN (not None) in a string
            # column; requests never do, and NaN keys do not hash-match, so refuse to guess.
            raise UnsupportedPipeline(f"column {name!r} has a float category in {list(cells)}")
        blocks.append(CategoricalBlock(name, cells))
        offset += len(cells)
    return blocks
