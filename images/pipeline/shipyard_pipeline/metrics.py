"""Test-set metrics, slice metrics and feature importance: plain functions of labels and scores."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
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

MISSING_SLICE = "__missing__"


@dataclass(frozen=True)
class Scored:
    """One model's scores of the test rows and their 0/1 labels. `weights[i]` is how many test rows
    entry i stands for: None (one each) when every row is here (pandas engine), the row counts of a
    bounded summary on Spark (`spark_evaluate`). Every metric and plot takes the weights."""

    labels: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.labels) if self.weights is None else round(float(self.weights.sum()))

    @property
    def positive_rate(self) -> float:
        return float(np.average(self.labels, weights=self.weights))

    def part(self, mask: np.ndarray) -> Scored:
        weights = None if self.weights is None else self.weights[mask]
        return Scored(self.labels[mask], self.scores[mask], weights)


@dataclass(frozen=True)
class Scorer:
    """A fitted Pipeline and the columns it reads."""

    pipeline: Any
    columns: list[str]

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(rows[self.columns])[:, 1]


@dataclass(frozen=True)
class TestScores:
    """The test split as an engine scored it: a `Scored` per scorer, and for the entries of the first
    scorer's (the model's: `evaluate.MODEL`) the values of the spec's slice columns in the test set."""

    curves: dict[str, Scored]
    slice_values: pd.DataFrame


def slice_keys(values: pd.Series) -> pd.Series:
    """A slice column's values as the slice report keys them."""
    return values.astype("string").fillna(MISSING_SLICE)


def calibration_bins(scored: Scored, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-count bins over the rows in ascending score order (`np.array_split`'s sizes): each
    non-empty bin's row count, mean score and observed positive rate. An entry that stands for
    several rows is shared between the bins its rows fall into, in proportion."""
    order = np.argsort(scored.scores)
    weights = np.ones(len(order)) if scored.weights is None else scored.weights[order].astype(float)
    size, extra = divmod(scored.rows, bins)
    edges = np.cumsum([0] + [size + 1] * extra + [size] * (bins - extra))
    end = np.cumsum(weights)
    start = end - weights
    counts, predicted, observed = [], [], []
    for low, high in itertools.pairwise(edges):
        share = np.clip(np.minimum(end, high) - np.maximum(start, low), 0, None)
        count = share.sum()
        if count > 0:
            counts.append(count)
            predicted.append(share @ scored.scores[order] / count)
            observed.append(share @ scored.labels[order] / count)
    return np.array(counts), np.array(predicted), np.array(observed)


def expected_calibration_error(scored: Scored, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-count bins, weighted by bin size."""
    counts, predicted, observed = calibration_bins(scored, bins)
    return float(counts @ np.abs(observed - predicted) / counts.sum())


def classification(scored: Scored, threshold: float) -> dict[str, float]:
    labels, scores, weights = scored.labels, scored.scores, scored.weights
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(labels, scores, sample_weight=weights)),
        "pr_auc": float(average_precision_score(labels, scores, sample_weight=weights)),
        "log_loss": float(
            log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1], sample_weight=weights)
        ),
        "brier": float(brier_score_loss(labels, scores, sample_weight=weights)),
        "calibration_error": expected_calibration_error(scored),
        "f1": float(f1_score(labels, predicted, zero_division=0, sample_weight=weights)),
        "precision": float(precision_score(labels, predicted, zero_division=0, sample_weight=weights)),
        "recall": float(recall_score(labels, predicted, zero_division=0, sample_weight=weights)),
        "accuracy": float(accuracy_score(labels, predicted, sample_weight=weights)),
        "positive_rate": scored.positive_rate,
        "rows": scored.rows,
    }


def slices(
    values: pd.DataFrame, scored: Scored, columns: list[str], threshold: float, min_size: int
) -> dict[str, Any]:
    """Metrics per value of each slice column (`values`: the columns for `scored`'s entries);
    values with fewer than `min_size` rows are skipped."""
    report: dict[str, Any] = {}
    for column in columns:
        if column not in values.columns:
            report[column] = {"error": f"column {column!r} is not in the test set"}
            continue
        keys = slice_keys(values[column]).to_numpy()
        groups: dict[str, Any] = {}
        skipped: dict[str, int] = {}
        for value in sorted(set(keys)):
            part = scored.part(keys == value)
            if part.rows < min_size:
                skipped[value] = part.rows
            elif len(set(part.labels)) < 2:
                groups[value] = {"rows": part.rows, "positive_rate": part.positive_rate, "roc_auc": None}
            else:
                groups[value] = classification(part, threshold)
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
