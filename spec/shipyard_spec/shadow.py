"""Shadow comparison figures: how a challenger's scores differ from the champion's on the same rows.

Pure and standard library only, because two runtimes compute them: the rollout (Airflow side,
no numpy) judges replayed and mirrored pairs with them, and the mirroring stable predictor
exports them as gauges while it mirrors. A few thousand pairs take milliseconds.

- decision flips: rows whose decision (`score >= threshold`) differs between the two;
- |challenger score - champion score|: mean and 99th percentile (nearest rank);
- PSI of the two score distributions over `PSI_BINS` equal-width bins of [0, 1], fractions
  floored at `PSI_FLOOR` as drift does. Not the champion's quantiles: a small model's scores
  take few distinct values, quantile edges fall on them, and an equivalent retrained model
  whose scores move by 0.001 across such an edge measured a PSI of 1.1 (0.0x on fixed bins);
- ROC AUC of both on the rows whose label is known (rank statistic, ties counted half).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PSI_BINS = 10
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Pair:
    """One row scored by both versions; `label` once ground truth arrived (True = positive)."""

    champion: float
    challenger: float
    label: bool | None = None


@dataclass(frozen=True)
class Figures:
    rows: int
    decision_flips: int  # flips_to_positive + flips_to_negative
    decision_flip_ratio: float
    mean_abs_diff: float
    p99_abs_diff: float
    score_psi: float
    labelled_rows: int = 0
    champion_auc: float | None = None
    challenger_auc: float | None = None
    # The decision table: rows the champion calls positive, and the flips each way.
    champion_positives: int = 0
    flips_to_positive: int = 0  # champion negative, challenger positive
    flips_to_negative: int = 0  # champion positive, challenger negative

    def decision_table(self) -> list[list[int]]:
        """[[both positive, champion only], [challenger only, both negative]]: rows by the
        champion's decision (positive, negative), columns by the challenger's."""
        return [
            [self.champion_positives - self.flips_to_negative, self.flips_to_negative],
            [self.flips_to_positive, self.rows - self.champion_positives - self.flips_to_positive],
        ]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def psi(reference: Sequence[float], live: Sequence[float], bins: int = PSI_BINS) -> float:
    """Population stability index of `live` against `reference` (probabilities), equal-width bins."""

    def fractions(values: Sequence[float]) -> list[float]:
        counts = [0] * bins
        for value in values:
            counts[min(bins - 1, max(0, int(value * bins)))] += 1
        return [max(count / len(values), PSI_FLOOR) for count in counts]

    ref, cur = fractions(reference), fractions(live)
    return sum((c - r) * math.log(c / r) for r, c in zip(ref, cur, strict=True))


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a positive row outscores a negative one (None without both classes)."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum, i = 0.0, 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += mean_rank * sum(labels[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def compare(pairs: Sequence[Pair], threshold: float) -> Figures:
    """The figures of a non-empty set of pairs."""
    if not pairs:
        raise ValueError("no pairs to compare")
    champion = [float(p.champion) for p in pairs]
    challenger = [float(p.challenger) for p in pairs]
    diffs = [abs(a - b) for a, b in zip(champion, challenger, strict=True)]
    decisions = [(a >= threshold, b >= threshold) for a, b in zip(champion, challenger, strict=True)]
    to_positive = sum(not old and new for old, new in decisions)
    to_negative = sum(old and not new for old, new in decisions)
    flips = to_positive + to_negative
    labelled = [p for p in pairs if p.label is not None]
    labels = [bool(p.label) for p in labelled]
    return Figures(
        rows=len(pairs),
        decision_flips=int(flips),
        decision_flip_ratio=flips / len(pairs),
        mean_abs_diff=sum(diffs) / len(diffs),
        p99_abs_diff=percentile(diffs, 99),
        score_psi=psi(champion, challenger),
        labelled_rows=len(labelled),
        champion_auc=roc_auc([p.champion for p in labelled], labels) if labelled else None,
        challenger_auc=roc_auc([p.challenger for p in labelled], labels) if labelled else None,
        champion_positives=sum(old for old, _ in decisions),
        flips_to_positive=to_positive,
        flips_to_negative=to_negative,
    )
