"""Test-set metrics, slice metrics and feature importance: plain functions of labels and scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-count bins, weighted by bin size."""
    order = np.argsort(scores)
    error = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            error += len(chunk) * abs(labels[chunk].mean() - scores[chunk].mean())
    return float(error / len(scores))


def classification(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(labels, scores)),
        "calibration_error": expected_calibration_error(labels, scores),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "positive_rate": float(labels.mean()),
        "rows": len(labels),
    }


def slices(
    frame: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    columns: list[str],
    threshold: float,
    min_size: int,
) -> dict[str, Any]:
    """Metrics per value of each slice column; values with fewer than `min_size` rows are skipped."""
    report: dict[str, Any] = {}
    for column in columns:
        if column not in frame.columns:
            report[column] = {"error": f"column {column!r} is not in the test set"}
            continue
        values = frame[column].astype("string").fillna("__missing__").to_numpy()
        groups: dict[str, Any] = {}
        skipped: dict[str, int] = {}
        for value in sorted(set(values)):
            mask = values == value
            size = int(mask.sum())
            if size < min_size:
                skipped[value] = size
            elif len(set(labels[mask])) < 2:
                groups[value] = {"rows": size, "positive_rate": float(labels[mask].mean()), "roc_auc": None}
            else:
                groups[value] = classification(labels[mask], scores[mask], threshold)
        report[column] = {"slices": groups, "skipped_below_min_size": skipped}
    return report


def feature_importance(pipeline: Pipeline, numeric: list[str], categorical: list[str]) -> dict[str, float]:
    """XGBoost gain per input feature: one-hot columns summed back into their source column."""
    names = pipeline.named_steps["preprocess"].get_feature_names_out()
    gains = pipeline.named_steps["model"].feature_importances_
    totals = dict.fromkeys([*numeric, *categorical], 0.0)
    by_length = sorted(categorical, key=len, reverse=True)
    for name, gain in zip(names, gains, strict=True):
        group, _, column = name.partition("__")
        if group == "categorical":
            column = next(c for c in by_length if column.startswith(f"{c}_"))
        totals[column] += float(gain)
    return totals
