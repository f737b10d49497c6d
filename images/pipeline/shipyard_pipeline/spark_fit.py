"""The fit on Spark: preprocessing parameters from Spark aggregates, XGBoost trained by `xgboost.spark`,
and the artifact the pandas engine makes (`modeling.build_pipeline`'s Pipeline), so the
predictor, its fast path and its parity check serve it unchanged.

- Preprocessing: the fitted values of `modeling.build_preprocessor` are computed by two
  aggregations over the training split: each numeric column's median (exact `percentile`, as
  `SimpleImputer(strategy="median")`) and each categorical column's distinct values with
  missing ones as `MISSING_CATEGORY` (as the `OneHotEncoder` after its imputer sees them); then
  the mean and population variance of each numeric column with its missing values imputed (as
  `StandardScaler` sees it after the imputer). The scikit-learn objects are fitted on a few surrogate rows
  holding every category, then given those values: the Pipeline transforms exactly as if it
  had been fitted on the whole split.
- That transform runs on the partitions (`mapInPandas`), and `SparkXGBClassifier` trains on its
  output with the validation split marked by an indicator column for early stopping; the
  booster is cut at the best iteration (the first trees of a fit are those a refit with that
  many trees grows) and loaded into the Pipeline's `XGBClassifier`.

The train and validation parts are Spark DataFrames (`spark_window.SparkWindow`: the window read
and split by Spark); the validation ROC AUC is computed from the validation rows' scores, made on
the executors; only those scores and labels come to the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BooleanType, DoubleType, StructField, StructType
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from xgboost.spark import SparkXGBClassifier

from shipyard_pipeline.dataset import FeatureSet
from shipyard_pipeline.fitting import Fit
from shipyard_pipeline.modeling import DEFAULT_XGBOOST_PARAMS, MISSING_CATEGORY, build_pipeline
from shipyard_spec.model import ModelConfig

log = logging.getLogger(__name__)

FEATURES = "features"
LABEL = "label"  # the frames' target as 1.0 / 0.0 (`dataset.target_vector`)
VALIDATION = "is_validation"
SCORE = "score"


def fit_model(
    session: SparkSession,
    features: FeatureSet,
    config: ModelConfig,
    train: DataFrame,
    validation: DataFrame,
    seed: int,
) -> Fit:
    """`fitting.fit_model` on Spark (no tuning: the spec's params, early stopping on validation).
    `train` and `validation` hold the feature columns and LABEL."""
    params: dict[str, Any] = {"random_state": seed, **config.params}
    columns = [*features.columns, LABEL]
    train, validation = train.select(*columns), validation.select(*columns)
    preprocess = fitted_preprocessor(train, features)
    rows = train.withColumn(VALIDATION, F.lit(False)).unionByName(
        validation.withColumn(VALIDATION, F.lit(True))
    )
    booster, trees = _train_booster(session, rows, preprocess, features, params, config.early_stopping_rounds)
    pipeline = build_pipeline(features.numeric, features.categorical, params).set_params(
        preprocess=preprocess
    )
    model = pipeline.named_steps["model"]
    model.load_model(bytearray(booster.save_raw("json")))
    params = {**params, "n_estimators": trees}
    model.set_params(n_estimators=trees)
    auc = validation_roc_auc(pipeline, validation, features)
    log.info("fitted %d trees on Spark (params %s): validation ROC AUC %.4f", trees, params, auc)
    return Fit(pipeline, params, trees if config.early_stopping_rounds else None, auc, {"enabled": False})


def validation_roc_auc(pipeline: Any, validation: DataFrame, features: FeatureSet) -> float:
    """ROC AUC of the Pipeline's scores of `validation`, scored on the executors."""

    def scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            score = pipeline.predict_proba(batch[features.columns])[:, 1].astype("float64")
            yield pd.DataFrame({SCORE: score, LABEL: batch[LABEL].to_numpy()})

    scored = validation.mapInPandas(scores, f"{SCORE} double, {LABEL} double").toArrow()
    return float(roc_auc_score(scored.column(LABEL).to_numpy(), scored.column(SCORE).to_numpy()))


def fitted_preprocessor(train: DataFrame, features: FeatureSet) -> ColumnTransformer:
    """`build_preprocessor` with the values a fit on the whole of `train` (a Spark DataFrame) gives."""

    def present(name: str) -> Any:  # NaN is missing, as for scikit-learn
        column = F.col(name).cast("double")
        return F.when(F.isnan(column), None).otherwise(column)

    def category(name: str) -> Any:  # missing is MISSING_CATEGORY, as after the categorical imputer
        return F.coalesce(F.col(name).cast("string"), F.lit(MISSING_CATEGORY))

    first = train.agg(
        *(F.percentile(present(c), 0.5).alias(c) for c in features.numeric),
        *(F.collect_set(category(c)).alias(c) for c in features.categorical),
    ).first()
    medians = {c: float(first[c]) for c in features.numeric}
    categories = {c: sorted(first[c]) for c in features.categorical}

    def imputed(name: str) -> Any:
        return F.coalesce(present(name), F.lit(medians[name]))

    moments = train.agg(
        F.count(F.lit(1)).alias("rows"),
        *(F.avg(imputed(c)).alias(f"{c}.mean") for c in features.numeric),
        *(F.var_pop(imputed(c)).alias(f"{c}.variance") for c in features.numeric),
    ).first()
    preprocess = build_pipeline(features.numeric, features.categorical).named_steps["preprocess"]
    preprocess.fit(_surrogate(features, categories))
    numeric = preprocess.named_transformers_["numeric"]
    numeric.named_steps["impute"].statistics_ = np.array([medians[c] for c in features.numeric])
    means = np.array([moments[f"{c}.mean"] for c in features.numeric], dtype=float)
    variances = np.array([moments[f"{c}.variance"] for c in features.numeric], dtype=float)
    scaler = numeric.named_steps["scale"]
    scaler.mean_, scaler.var_ = means, variances
    # A constant column is left unscaled, as StandardScaler does.
    scaler.scale_ = np.where(variances > 10 * np.finfo(float).eps, np.sqrt(variances), 1.0)
    scaler.n_samples_seen_ = moments["rows"]
    return preprocess


def _surrogate(features: FeatureSet, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Rows in which every categorical column takes each of its values (numbers are overwritten)."""
    rows = max([2, *(len(values) for values in categories.values())])
    columns: dict[str, Any] = {c: np.arange(rows, dtype=float) for c in features.numeric}
    columns |= {c: [values[i % len(values)] for i in range(rows)] for c, values in categories.items()}
    return pd.DataFrame(columns)[features.columns]


def _train_booster(
    session: SparkSession,
    rows: DataFrame,
    preprocess: ColumnTransformer,
    features: FeatureSet,
    params: dict[str, Any],
    early_stopping_rounds: int | None,
) -> tuple[Any, int]:
    """The booster `SparkXGBClassifier` fits on the transformed rows, cut at the best iteration."""
    # One array column, not a column per feature: xgboost.spark's list-of-columns input fails on an
    # Arrow batch that holds no validation rows (KeyError 'values'), which any window above a
    # batch (spark.sql.execution.arrow.maxRecordsPerBatch rows) has.
    schema = StructType(
        [
            StructField(FEATURES, ArrayType(DoubleType(), False), False),
            StructField(LABEL, DoubleType(), False),
            StructField(VALIDATION, BooleanType(), False),
        ]
    )

    def transform(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            matrix = preprocess.transform(batch[features.columns]).astype("float64")
            yield pd.DataFrame(
                {
                    FEATURES: list(matrix),
                    LABEL: batch[LABEL].to_numpy(),
                    VALIDATION: batch[VALIDATION].to_numpy(),
                }
            )

    merged = {**DEFAULT_XGBOOST_PARAMS, **params}
    xgb_params = {k: v for k, v in merged.items() if k not in ("n_jobs", "nthread")}
    estimator = SparkXGBClassifier(
        features_col=FEATURES,
        label_col=LABEL,
        validation_indicator_col=VALIDATION,
        num_workers=session.sparkContext.defaultParallelism,
        eval_metric="logloss",
        verbose=False,  # no evaluation line per tree in the step log, as on pandas
        **({"early_stopping_rounds": early_stopping_rounds} if early_stopping_rounds else {}),
        **xgb_params,
    )
    booster = estimator.fit(rows.mapInPandas(transform, schema)).get_booster()
    grown = booster.num_boosted_rounds()
    best = booster.attr("best_iteration")
    trees = int(best) + 1 if early_stopping_rounds and best is not None else grown
    if trees < grown:
        booster = booster[:trees]
    booster.set_attr(best_iteration=None, best_score=None)
    booster.feature_names = None  # the Pipeline hands the model a numpy array, as on pandas
    booster.feature_types = None
    return booster, trees
