"""The evaluation plots a person would rather look at than a table: ROC, PR, calibration,
confusion matrix and feature importance, written as PNG files, from `metrics.Scored` (every
test row, or a Spark summary's weighted entries)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in a pod

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from shipyard_pipeline.metrics import Scored, calibration_bins


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def roc(curves: dict[str, Scored], path: Path) -> Path:
    """ROC curves of the model and its comparators on the same test set."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, scored in curves.items():
        fpr, tpr, _ = roc_curve(scored.labels, scored.scores, sample_weight=scored.weights)
        axes.plot(fpr, tpr, label=name)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test set)")
    axes.legend(loc="lower right")
    return _save(figure, path)


def precision_recall(curves: dict[str, Scored], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, scored in curves.items():
        precision, recall, _ = precision_recall_curve(
            scored.labels, scored.scores, sample_weight=scored.weights
        )
        axes.plot(recall, precision, label=name)
    rate = next(iter(curves.values())).positive_rate
    axes.axhline(rate, linestyle=":", color="grey", label="positive rate")
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall (test set)")
    axes.legend(loc="upper right")
    return _save(figure, path)


def calibration(scored: Scored, path: Path, bins: int = 10) -> Path:
    """Observed rate against mean score in the equal-count bins of `metrics.expected_calibration_error`."""
    _, predicted, observed = calibration_bins(scored, bins)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(predicted, observed, marker="o", label="model")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    axes.set(
        xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (test set)"
    )
    axes.legend(loc="upper left")
    return _save(figure, path)


def confusion(scored: Scored, threshold: float, path: Path) -> Path:
    predicted = (scored.scores >= threshold).astype(int)
    matrix = confusion_matrix(scored.labels, predicted, labels=[0, 1], sample_weight=scored.weights)
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, f"{count:.0f}", ha="center", va="center", color="black")
    axes.set(
        xticks=[0, 1], yticks=[0, 1],
        xticklabels=["negative", "positive"], yticklabels=["negative", "positive"],
        xlabel="predicted", ylabel="actual", title=f"Confusion matrix at threshold {threshold:g}",
    )  # fmt: skip
    return _save(figure, path)


def feature_importance(importances: dict[str, float], path: Path, top: int = 20) -> Path:
    ranked = sorted(importances.items(), key=lambda item: item[1])[-top:]
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(ranked) + 1.2))
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.set(xlabel="gain (share of total)", title=f"Feature importance (top {len(ranked)})")
    return _save(figure, path)
