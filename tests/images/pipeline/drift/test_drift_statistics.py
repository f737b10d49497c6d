"""PSI, KS and chi-square on hand-checkable inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shipyard_pipeline.drift.statistics import (
    EPSILON,
    bin_counts,
    category_counts,
    chi_square,
    interior_edges,
    ks_on_grid,
    psi,
)


def test_identical_distributions_have_zero_psi() -> None:
    assert psi(np.array([10, 20, 30, 0]), np.array([1, 2, 3, 0])) == pytest.approx(0.0)


def test_psi_matches_the_textbook_formula() -> None:
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert psi(np.array([50, 50]), np.array([30, 70])) == pytest.approx(expected)


def test_an_empty_reference_bin_is_floored_at_epsilon_not_infinite() -> None:
    value = psi(np.array([100, 0]), np.array([50, 50]))
    assert math.isfinite(value)
    assert value == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - EPSILON) * math.log(0.5 / EPSILON))


def test_psi_refuses_an_all_empty_side() -> None:
    with pytest.raises(ValueError, match="empty bins"):
        psi(np.array([0, 0]), np.array([1, 1]))


def test_bins_are_left_closed_with_open_outer_bins_and_a_missing_bin() -> None:
    edges = interior_edges([0, 10, 20, 30])  # interior edges 10, 20
    counts = bin_counts(edges, np.array([-5, 0, 9.9, 10, 19, 20, 999, np.nan]))
    assert counts.tolist() == [3, 2, 2, 1]


def test_duplicate_quantiles_of_a_binary_feature_collapse_to_one_edge() -> None:
    edges = interior_edges([0, 0, 0, 0, 1, 1])
    assert edges.tolist() == [0.0, 1.0]
    assert bin_counts(edges, np.array([0, 0, 1])).tolist() == [0, 2, 1, 0]


def test_unseen_categories_go_to_other_and_none_to_missing() -> None:
    counts = category_counts(["a", "b"], ["a", "b", "b", "zzz", None, float("nan")])
    assert counts.tolist() == [1, 2, 1, 2]


def test_ks_on_grid_sees_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 5000)
    quantiles = np.quantile(reference, np.linspace(0, 1, 21))
    edges = interior_edges(quantiles)
    ref_counts = bin_counts(edges, reference)
    same_stat, same_p = ks_on_grid(edges, ref_counts, rng.normal(0, 1, 1000))
    shifted_stat, shifted_p = ks_on_grid(edges, ref_counts, rng.normal(0.5, 1, 1000))
    assert same_p > 0.01
    assert shifted_p < 1e-6
    assert shifted_stat == pytest.approx(0.19, abs=0.04)  # the exact KS distance of N(0,1) vs N(0.5,1)
    assert same_stat < shifted_stat


def test_chi_square_flags_a_changed_mix_only() -> None:
    reference = np.array([550, 210, 240, 0, 0])
    _, same_p = chi_square(reference, np.array([56, 20, 24, 0, 0]))
    _, changed_p = chi_square(reference, np.array([90, 5, 5, 0, 0]))
    assert same_p > 0.5
    assert changed_p < 1e-6
