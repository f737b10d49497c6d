"""Drift statistics between a reference distribution (from the profile) and a live sample.

Pure functions over numpy arrays and counts; nothing here reads files or MLflow.

Bins (what the Population Stability Index is computed over):
- numeric: the reference's quantile edges. Interior edges are de-duplicated (a 0/1 feature
  has only one), the outer bins are open (`(-inf, e1)`, ..., `[ek, +inf)`), so a live value
  outside the reference range lands in the first or last bin rather than being dropped.
  Bin i holds `edges[i-1] <= x < edges[i]` (`numpy.searchsorted(..., side="right")`).
- categorical: one bin per reference category, one `__other__` bin for values the
  reference never saw.
- both: one extra bin for missing values, so a jump in the null rate is drift too.

PSI = sum((live_i - ref_i) * ln(live_i / ref_i)) over bin fractions, with every fraction
floored at `EPSILON` so an empty bin contributes a large but finite term. Rule of thumb:
< 0.1 stable, 0.1-0.2 moderate, > 0.2 significant (the spec's default threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

EPSILON = 1e-4
OTHER_CATEGORY = "__other__"
MISSING = "__missing__"


def interior_edges(quantile_edges: Sequence[float]) -> np.ndarray:
    """The de-duplicated inner edges of a quantile grid (its min and max are not bin edges)."""
    return np.unique(np.asarray(quantile_edges, dtype=float)[1:-1])


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts per bin for `interior_edges` plus a last bin for missing values (NaN)."""
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return np.append(counts, np.isnan(values).sum())


def category_counts(categories: Sequence[str], values: Sequence[object]) -> np.ndarray:
    """Counts per reference category, then `__other__`, then missing (None/NaN)."""
    index = {category: i for i, category in enumerate(categories)}
    counts = np.zeros(len(categories) + 2, dtype=np.int64)
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            counts[-1] += 1
        else:
            counts[index.get(str(value), len(categories))] += 1
    return counts


def psi(reference_counts: np.ndarray, live_counts: np.ndarray) -> float:
    """Population Stability Index of two count vectors over the same bins."""
    ref = _fractions(reference_counts)
    live = _fractions(live_counts)
    return float(np.sum((live - ref) * np.log(live / ref)))


def ks_on_grid(
    edges: np.ndarray, reference_counts: np.ndarray, live_values: np.ndarray
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value, on the reference grid.

    The profile keeps the reference as quantile bins, not raw rows, so both empirical CDFs
    are compared at the bin edges: the statistic is the exact KS distance restricted to
    those points (a lower bound of the full one). Missing values are left out, as in
    `scipy.stats.ks_2samp`. The p-value uses the two-sample effective size n*m/(n+m).
    """
    ref = np.asarray(reference_counts[:-1], dtype=float)
    live = np.asarray(live_values, dtype=float)
    live = live[~np.isnan(live)]
    if ref.sum() == 0 or live.size == 0:
        return float("nan"), float("nan")
    ref_cdf = np.cumsum(ref)[:-1] / ref.sum()
    live_cdf = np.searchsorted(np.sort(live), edges, side="left") / live.size
    statistic = float(np.max(np.abs(ref_cdf - live_cdf), initial=0.0))
    effective_n = ref.sum() * live.size / (ref.sum() + live.size)
    return statistic, float(stats.kstwobign.sf(statistic * np.sqrt(effective_n)))


def chi_square(reference_counts: np.ndarray, live_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity (reference vs live) over the bins either side uses."""
    table = np.vstack([reference_counts, live_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _fractions(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0:
        raise ValueError(f"cannot compute PSI over {counts.size} empty bins")
    return np.maximum(counts / total, EPSILON)
