"""The one model shape Shipyard trains: shared preprocessing + an XGBoost classifier.

Training, evaluation and serving all use this exact scikit-learn Pipeline, so the
transformation a request goes through is the one the model was fitted with. The
serving fast path (images/serving) reproduces these fitted steps in numpy and is
checked for parity against this Pipeline; change the shape here and that check
will refuse the fast path until the serving side learns the new shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

MISSING_CATEGORY = "__missing__"

# Defaults that beat a logistic baseline on small tabular data (see docs/architecture.md);
# the spec's model.params override them key by key.
DEFAULT_XGBOOST_PARAMS: dict[str, float | int | str] = {
    "n_estimators": 400,
    "max_depth": 3,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    # One thread by default: measured with `make bench-scale` (100k rows) on a shared 2-core
    # machine, two OpenMP threads made the fit ~4x slower, not faster (docs/architecture.md,
    # "Scale"). A pod with cores of its own sets `n_jobs` in the spec's model.params.
    "n_jobs": 1,
}


def build_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Median-impute and scale numerics; fill and one-hot categoricals, ignoring unseen ones."""
    return ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
        sparse_threshold=0.0,
    )


def build_pipeline(
    numeric: list[str], categorical: list[str], params: Mapping[str, object] | None = None
) -> Pipeline:
    """The model Shipyard ships: preprocessing followed by XGBoost."""
    merged = {**DEFAULT_XGBOOST_PARAMS, **(params or {})}
    return Pipeline(
        [
            ("preprocess", build_preprocessor(numeric, categorical)),
            ("model", XGBClassifier(eval_metric="logloss", **merged)),
        ]
    )


BASELINE_ROWS = 200_000  # the training rows the baseline is fitted on, at most (evaluate.py)


def build_baseline(numeric: list[str], categorical: list[str]) -> Pipeline:
    """The simple model a challenger must not fall far behind: logistic regression."""
    return Pipeline(
        [
            ("preprocess", build_preprocessor(numeric, categorical)),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    )
