"""Fixtures: the synthetic reference (the champion's test set) and its profile."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from drift_traffic import CATEGORICAL, NUMERIC, records, traffic

from shipyard_pipeline.drift.profile import ReferenceProfile, build_reference_profile


@pytest.fixture(scope="session")
def make_traffic() -> Callable[..., pd.DataFrame]:
    return traffic


@pytest.fixture(scope="session")
def make_records() -> Callable[..., list[dict[str, object]]]:
    return records


@pytest.fixture(scope="session")
def reference() -> pd.DataFrame:
    """The champion's test set and its scores."""
    return traffic(2000, seed=1)


@pytest.fixture(scope="session")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return build_reference_profile(reference, reference["score"].to_numpy(), NUMERIC, CATEGORICAL, bins=10)
