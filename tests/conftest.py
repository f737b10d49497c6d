"""Fixtures shared by every runtime's test run (standard library only)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.servers import mlflow_server


@pytest.fixture(scope="session")
def mlflow_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server for the whole test session; its URL."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url
