"""Judging a shadow comparison: pairs of champion and challenger scores in, one of four verdicts out.

Pure: no I/O, no clock (reading logs and asking the challenger live in `shadow_io`, the
sequence of shadow steps in `shadow_stage`). The verdicts are the canary analysis's
(`analysis.Verdict`): `pass`; `fail` with every broken limit and the figures in the reason;
`inconclusive` (fewer than `shadow.min_rows` pairs: no logs yet is never a pass); `error`
(the logs or the challenger could not be read).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shipyard.rollout.analysis import Verdict
from shipyard_spec.contract import Tag
from shipyard_spec.model import Shadow
from shipyard_spec.shadow import Figures, Pair, compare


class ShadowMode(enum.StrEnum):
    REPLAY = "replay"  # the challenger scores the champion's logged requests
    LIVE = "live"  # the stable predictor mirrors live requests to the challenger

    @property
    def tag(self) -> Tag:
        """The version tag that records this mode's last verdict and reason."""
        return Tag.SHADOW_REPLAY if self is ShadowMode.REPLAY else Tag.SHADOW_LIVE


# A shadow comparison's entry in the decision log is `stage: shadow-<mode>` with these figures,
# logged as run metrics `shadow.<mode>.<figure>`.
SHADOW_STAGE_PREFIX = "shadow-"
# Pairs kept in a comparison's entry for its plot (evenly spaced over all pairs).
PLOT_SAMPLE = 500
SHADOW_FIGURES = (
    "rows", "decision_flip_ratio", "mean_abs_diff", "p99_abs_diff", "score_psi",
    "champion_auc", "challenger_auc",
)  # fmt: skip


class ShadowError(Exception):
    """The comparison could not be made (logs unreadable, challenger unreachable): an error verdict."""


class ShadowRejected(Exception):
    """The challenger refused requests the champion answered (4xx): a failed comparison."""


@dataclass(frozen=True)
class ShadowCheck:
    """One judged shadow comparison: the audit-trail record (task log, MLflow)."""

    mode: ShadowMode
    verdict: Verdict
    reason: str
    figures: Figures | None = None
    sample: tuple[Pair, ...] = ()  # up to PLOT_SAMPLE of the pairs judged, for the plot

    def as_dict(self) -> dict[str, Any]:
        entry = {
            "stage": f"{SHADOW_STAGE_PREFIX}{self.mode.value}",
            "verdict": self.verdict.value,
            "reason": self.reason,
            **(self.figures.as_dict() if self.figures else {}),
        }
        if self.sample:
            entry["pairs"] = [[round(p.champion, 6), round(p.challenger, 6)] for p in self.sample]
        return entry


def plot_sample(pairs: list[Pair]) -> tuple[Pair, ...]:
    """At most PLOT_SAMPLE pairs, evenly spaced over `pairs`."""
    step = max(1, -(-len(pairs) // PLOT_SAMPLE))
    return tuple(pairs[::step])


def summary(figures: Figures, threshold: float) -> str:
    """The figures in one line (every reason carries them)."""
    text = (
        f"{figures.rows} rows: decisions flipped {figures.decision_flip_ratio:.1%} at threshold "
        f"{threshold:g}, "
        f"|score difference| mean {figures.mean_abs_diff:.3f} p99 {figures.p99_abs_diff:.3f}, "
        f"score PSI {figures.score_psi:.3f}"
    )
    if figures.champion_auc is not None and figures.challenger_auc is not None:
        text += (
            f", AUC champion {figures.champion_auc:.3f} challenger {figures.challenger_auc:.3f} "
            f"({figures.labelled_rows} labelled rows)"
        )
    return text


def judge(
    mode: ShadowMode,
    pairs: list[Pair] | ShadowError | ShadowRejected,
    policy: Shadow,
    threshold: float,
) -> ShadowCheck:
    """The verdict of one comparison at the decision threshold `threshold`."""
    if isinstance(pairs, ShadowRejected):
        return ShadowCheck(mode, Verdict.FAIL, str(pairs))
    if isinstance(pairs, ShadowError):
        return ShadowCheck(mode, Verdict.ERROR, str(pairs))
    if len(pairs) < policy.min_rows:
        return ShadowCheck(
            mode,
            Verdict.INCONCLUSIVE,
            f"{len(pairs)} {mode.value} pairs, fewer than shadow.min_rows {policy.min_rows}",
            compare(pairs, threshold) if pairs else None,
        )
    figures = compare(pairs, threshold)
    broken = []
    if figures.decision_flip_ratio > policy.max_decision_flip_ratio:
        broken.append(
            f"decision flips {figures.decision_flip_ratio:.1%} > max_decision_flip_ratio "
            f"{policy.max_decision_flip_ratio:.1%}"
        )
    if figures.mean_abs_diff > policy.max_mean_abs_diff:
        broken.append(
            f"mean |diff| {figures.mean_abs_diff:.3f} > max_mean_abs_diff {policy.max_mean_abs_diff:g}"
        )
    if figures.p99_abs_diff > policy.max_p99_abs_diff:
        broken.append(f"p99 |diff| {figures.p99_abs_diff:.3f} > max_p99_abs_diff {policy.max_p99_abs_diff:g}")
    if figures.score_psi > policy.max_score_psi:
        broken.append(f"score PSI {figures.score_psi:.3f} > max_score_psi {policy.max_score_psi:g}")
    if (
        figures.labelled_rows >= policy.min_labelled_rows
        and figures.champion_auc is not None
        and figures.challenger_auc is not None
        and figures.champion_auc - figures.challenger_auc > policy.max_auc_drop
    ):
        drop = figures.champion_auc - figures.challenger_auc
        broken.append(f"AUC drop {drop:.3f} > max_auc_drop {policy.max_auc_drop:g}")
    if broken:
        return ShadowCheck(
            mode,
            Verdict.FAIL,
            f"shadow {mode.value}: {'; '.join(broken)} ({summary(figures, threshold)})",
            figures,
            plot_sample(pairs),
        )
    return ShadowCheck(
        mode,
        Verdict.PASS,
        f"shadow {mode.value} within thresholds: {summary(figures, threshold)}",
        figures,
        plot_sample(pairs),
    )
