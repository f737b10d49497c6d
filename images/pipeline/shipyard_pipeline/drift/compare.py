"""Compare a live window with the reference profile and decide whether it has drifted.

PSI is the decision metric (thresholds from the spec's `drift` section); the KS and
chi-square p-values are reported beside it for the person reading the report, because
with thousands of rows they flag differences too small to matter.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from shipyard_pipeline.drift.profile import CategoricalReference, NumericReference, ReferenceProfile
from shipyard_pipeline.drift.statistics import (
    MISSING,
    OTHER_CATEGORY,
    bin_counts,
    category_counts,
    chi_square,
    ks_on_grid,
    psi,
)
from shipyard_spec.model import Drift

SCORE = "score"


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one feature (or of the score) with the bins it was measured over."""

    name: str
    kind: Literal["numeric", "categorical", "score"]
    psi: float
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    bins: list[str]
    reference_fractions: list[float]
    live_fractions: list[float]
    threshold: float | None
    drifted: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Whether to retrain, and why, in words that go into logs and the asset event."""

    drift_detected: bool
    reasons: list[str]


def numeric_drift(
    name: str,
    reference: NumericReference,
    live: pd.Series,
    threshold: float | None,
    kind: Literal["numeric", "score"] = "numeric",
) -> ColumnDrift:
    values = pd.to_numeric(live, errors="coerce").to_numpy(dtype=float)
    ref_counts = np.asarray(reference.counts)
    live_counts = bin_counts(reference.edges, values)
    value = psi(ref_counts, live_counts)
    statistic, p_value = ks_on_grid(reference.edges, ref_counts, values)
    return ColumnDrift(
        name=name,
        kind=kind,
        psi=value,
        test="ks",
        statistic=statistic,
        p_value=p_value,
        bins=_numeric_bin_labels(reference.edges),
        reference_fractions=_fractions(ref_counts),
        live_fractions=_fractions(live_counts),
        threshold=threshold,
        drifted=threshold is not None and value > threshold,
    )


def categorical_drift(
    name: str, reference: CategoricalReference, live: pd.Series, threshold: float | None
) -> ColumnDrift:
    categories = reference.categories
    ref_counts = reference.count_vector()
    live_counts = category_counts(categories, live.tolist())
    value = psi(ref_counts, live_counts)
    statistic, p_value = chi_square(ref_counts, live_counts)
    return ColumnDrift(
        name=name,
        kind="categorical",
        psi=value,
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        bins=[*categories, OTHER_CATEGORY, MISSING],
        reference_fractions=_fractions(ref_counts),
        live_fractions=_fractions(live_counts),
        threshold=threshold,
        drifted=threshold is not None and value > threshold,
    )


def compare(profile: ReferenceProfile, live: pd.DataFrame, spec: Drift) -> list[ColumnDrift]:
    """Drift of every profiled feature, then of the score.

    `live` has one column per feature (absent columns count as all-missing) and a `score`
    column. Only key features (all features when the spec lists none) carry a threshold.
    """
    unknown = set(spec.key_features) - set(profile.features)
    if unknown:
        raise ValueError(f"drift.key_features {sorted(unknown)} are not in the reference profile")
    keys = set(spec.key_features or profile.features)
    empty = pd.Series([None] * len(live), index=live.index, dtype=object)
    results = [
        numeric_drift(name, ref, live.get(name, empty), spec.psi_threshold if name in keys else None)
        for name, ref in profile.numeric.items()
    ]
    results += [
        categorical_drift(name, ref, live.get(name, empty), spec.psi_threshold if name in keys else None)
        for name, ref in profile.categorical.items()
    ]
    results.append(numeric_drift(SCORE, profile.score, live[SCORE], spec.score_psi_threshold, kind="score"))
    return results


def verdict(
    drifts: list[ColumnDrift],
    live_auc: float | None = None,
    reference_auc: float | None = None,
    auc_tolerance: float | None = None,
) -> Verdict:
    """Drift when any thresholded PSI is exceeded, or live AUC fell more than the tolerance."""
    reasons = [
        f"{'score' if d.kind == 'score' else 'feature ' + d.name} PSI {d.psi:.3f} > {d.threshold}"
        for d in drifts
        if d.drifted
    ]
    if live_auc is not None and reference_auc is not None and auc_tolerance is not None:
        drop = reference_auc - live_auc
        if drop > auc_tolerance:
            reasons.append(
                f"live ROC AUC {live_auc:.3f} is {drop:.3f} below the champion's test AUC "
                f"{reference_auc:.3f} (tolerance {auc_tolerance})"
            )
    return Verdict(drift_detected=bool(reasons), reasons=reasons)


def _numeric_bin_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all", MISSING]
    labels = [f"< {edges[0]:.4g}"]
    labels += [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">= {edges[-1]:.4g}", MISSING]


def _fractions(counts: np.ndarray) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]
