"""Per-feature drift and the verdict on synthetic traffic with known shifts."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from shipyard_pipeline.drift.compare import compare, verdict
from shipyard_pipeline.drift.profile import ReferenceProfile
from shipyard_spec.model import Drift

ALL_FEATURES = Drift()  # no key_features: every feature carries the threshold


def drifted(profile: ReferenceProfile, live: pd.DataFrame, spec: Drift = ALL_FEATURES) -> set[str]:
    return {d.name for d in compare(profile, live, spec) if d.drifted}


def test_a_fresh_sample_of_the_same_distribution_does_not_drift(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame]
) -> None:
    drifts = compare(profile, make_traffic(1000, seed=2), ALL_FEATURES)
    assert max(d.psi for d in drifts) < 0.05
    assert not verdict(drifts).drift_detected


@pytest.mark.parametrize("shift", [{"tenure"}, {"contract"}, {"tenure", "contract"}])
def test_a_shift_drifts_exactly_the_shifted_features(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame], shift: set[str]
) -> None:
    live = make_traffic(1000, seed=3, shift=frozenset(shift))
    # tenure drives the score in this synthetic model, so shifting it moves the score too
    expected = shift | ({"score"} if "tenure" in shift else set())
    assert drifted(profile, live) == expected


def test_score_drift_alone_is_detected_with_its_reason(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame]
) -> None:
    drifts = compare(profile, make_traffic(1000, seed=4, shift=frozenset({"score"})), ALL_FEATURES)
    assert {d.name for d in drifts if d.drifted} == {"score"}
    decision = verdict(drifts)
    assert decision.drift_detected
    assert decision.reasons[0].startswith("score PSI")


def test_only_key_features_can_trigger(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame]
) -> None:
    live = make_traffic(1000, seed=5, shift=frozenset({"contract"}))
    spec = Drift(key_features=["tenure", "internet_service"])
    drifts = {d.name: d for d in compare(profile, live, spec)}
    assert drifts["contract"].psi > 0.2  # reported ...
    assert drifts["contract"].threshold is None  # ... but not a key feature
    assert not verdict(list(drifts.values())).drift_detected


def test_a_feature_missing_from_the_logs_counts_as_all_missing(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame]
) -> None:
    live = make_traffic(500, seed=6).drop(columns=["internet_service"])
    assert drifted(profile, live) == {"internet_service"}


def test_an_unknown_key_feature_is_named(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame]
) -> None:
    with pytest.raises(ValueError, match=r"\['tenur'\]"):
        compare(profile, make_traffic(10, seed=7), Drift(key_features=["tenur"]))


@pytest.mark.parametrize(("live_auc", "expected"), [(0.80, False), (0.70, True)])
def test_live_auc_below_the_tolerance_is_drift(
    profile: ReferenceProfile, make_traffic: Callable[..., pd.DataFrame], live_auc: float, expected: bool
) -> None:
    drifts = compare(profile, make_traffic(1000, seed=2), ALL_FEATURES)
    decision = verdict(drifts, live_auc=live_auc, reference_auc=0.84, auc_tolerance=0.05)
    assert decision.drift_detected is expected
    assert any("live ROC AUC" in reason for reason in decision.reasons) is expected


def test_profile_round_trips_through_json(profile: ReferenceProfile) -> None:
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile


def test_profile_of_another_format_is_refused(profile: ReferenceProfile) -> None:
    with pytest.raises(ValueError, match="format_version 2"):
        ReferenceProfile.from_dict({**profile.to_dict(), "format_version": 2})
