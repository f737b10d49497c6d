"""The shadow comparison's figures and verdicts (pure: no servers)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.rollout.analysis import Verdict
from shipyard.rollout.shadow import ShadowError, ShadowMode, ShadowRejected, judge
from shipyard_spec.model import Rollout, Shadow
from shipyard_spec.shadow import Pair, compare, psi, roc_auc

SCORES = [i / 100 for i in range(100)]
LABELS = [i % 3 == 0 or i > 70 for i in range(100)]


def pairs(challenger, labels=None):
    labels = labels or [None] * len(SCORES)
    return [Pair(a, b, label) for a, b, label in zip(SCORES, challenger, labels, strict=True)]


def test_identical_scores_have_no_difference():
    figures = compare(pairs(SCORES, LABELS), 0.5)
    assert (figures.decision_flips, figures.mean_abs_diff, figures.p99_abs_diff, figures.score_psi) == (
        0,
        0,
        0,
        0,
    )
    assert figures.champion_auc == figures.challenger_auc


def test_flipped_scores_flip_every_decision_and_invert_the_auc():
    figures = compare(pairs([1 - s for s in SCORES], LABELS), 0.5)
    assert figures.decision_flip_ratio == 0.99  # all but 0.5, which is a positive decision either way
    assert figures.challenger_auc == pytest.approx(1 - figures.champion_auc)
    assert figures.p99_abs_diff == pytest.approx(0.98)


def test_auc_counts_ties_half_and_needs_both_classes():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert roc_auc([0.5, 0.5], [False, True]) == 0.5
    assert roc_auc([0.2, 0.3], [True, True]) is None


def test_psi_of_a_constant_against_spread_scores_is_large_and_of_a_small_shift_small():
    assert psi(SCORES, [0.5] * 100) > 5
    assert psi(SCORES, [min(0.999, s + 0.001) for s in SCORES]) < 0.01


def test_too_few_pairs_is_inconclusive_never_a_pass():
    check = judge(ShadowMode.REPLAY, pairs(SCORES)[:10], Shadow(min_rows=50), 0.5)
    assert check.verdict is Verdict.INCONCLUSIVE
    assert check.reason == "10 replay pairs, fewer than shadow.min_rows 50"


def test_errors_and_refusals():
    policy = Shadow()
    assert judge(ShadowMode.LIVE, ShadowError("logs unreadable"), policy, 0.5).verdict is Verdict.ERROR
    refused = judge(ShadowMode.REPLAY, ShadowRejected("HTTP 400 missing input"), policy, 0.5)
    assert (refused.verdict, refused.reason) == (Verdict.FAIL, "HTTP 400 missing input")


def test_a_fail_names_every_broken_limit_and_carries_the_figures():
    check = judge(
        ShadowMode.REPLAY, pairs([0.5] * 100, LABELS), Shadow(min_rows=50, min_labelled_rows=50), 0.5
    )
    assert check.verdict is Verdict.FAIL
    expected = (
        "decision flips 50.0% > max_decision_flip_ratio 5.0%",
        "mean |diff| 0.250 > max_mean_abs_diff",
        "score PSI",
        "AUC drop",
        "(100 rows: decisions flipped 50.0% at threshold 0.5",
    )
    for part in expected:
        assert part in check.reason
    assert check.as_dict()["stage"] == "shadow-replay"
    assert check.as_dict()["decision_flip_ratio"] == 0.5


def test_the_auc_rule_waits_for_enough_labelled_rows():
    # Ten labelled rows scored 0.30..0.39, the champion ranks them right, the challenger reverses them
    # within the same range: every other figure is small.
    challenger = [0.69 - s if 0.295 < s < 0.395 else s for s in SCORES]
    labels = [(s > 0.345) if 0.295 < s < 0.395 else None for s in SCORES]
    labelled = pairs(challenger, labels)
    assert judge(ShadowMode.REPLAY, labelled, Shadow(min_rows=50), 0.5).verdict is Verdict.PASS
    check = judge(ShadowMode.REPLAY, labelled, Shadow(min_rows=50, min_labelled_rows=10), 0.5)
    assert check.verdict is Verdict.FAIL
    assert check.reason.startswith("shadow replay: AUC drop 1.000 > max_auc_drop 0.02 (100 rows")


def test_live_shadow_is_refused_on_kserve_at_parse_time():
    with pytest.raises(ValidationError, match=r"shadow\.live_seconds needs the local backend"):
        Rollout(backend="kserve", shadow=Shadow(live_seconds=60))
    assert Rollout(backend="kserve", shadow=Shadow()).shadow.live_seconds is None
