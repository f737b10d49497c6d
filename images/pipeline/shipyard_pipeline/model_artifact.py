"""How a fitted Shipyard Pipeline becomes an MLflow model directory the predictor can serve.

One function builds the arguments for both `mlflow.sklearn.save_model` (tests, local
directories) and `mlflow.sklearn.log_model` (the train step), so the two never diverge.
Pickle, not skops: the predictor loads `model.pkl` without mlflow installed, with the
identical scikit-learn/xgboost versions pinned in both images (see docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

INPUT_EXAMPLE_ROWS = 5
# Rows MLflow infers a signature or a dataset record from. Both are per-column types, which a
# sample holding every column's first non-missing value gives exactly as the whole frame does;
# on the whole frame they took as long as the fit (20.7 s and 41 s at 1M training rows).
SAMPLE_ROWS = 10_000


def bounded_sample(frame: pd.DataFrame, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """The first `rows` rows plus, per column, the first row where it is not missing."""
    if len(frame) <= rows:
        return frame
    present = frame.notna().to_numpy()
    first_values = present.argmax(axis=0)[present.any(axis=0)]  # row positions, per column
    return frame.iloc[sorted({*range(rows), *first_values.tolist()})]


def model_kwargs(pipeline: Pipeline, features: pd.DataFrame) -> dict[str, Any]:
    """Signature, input example and format shared by save and log.

    Integer columns are declared `double`: a numeric feature may arrive missing at
    serving time, and the training pipeline imputes it, so the signature must allow it.
    The signature is inferred from a bounded sample of `features` (same types, see above).
    """
    features = bounded_sample(features)
    integers = features.select_dtypes("integer").columns
    features = features.astype(dict.fromkeys(integers, "float64"))
    example = features.head(INPUT_EXAMPLE_ROWS)
    return {
        "sk_model": pipeline,
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        "signature": infer_signature(features, pipeline.predict_proba(example)[:, 1]),
        "input_example": example,
        # `mlflow models serve` then answers with probabilities, like Shipyard's predictor.
        "pyfunc_predict_fn": "predict_proba",
    }


def save_model_dir(pipeline: Pipeline, features: pd.DataFrame, path: str | Path) -> Path:
    """Write a servable model directory (MLmodel, model.pkl, input_example.json) to `path`."""
    mlflow.sklearn.save_model(path=str(path), **model_kwargs(pipeline, features))
    return Path(path)
