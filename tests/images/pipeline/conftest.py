"""Fixtures for the pipeline steps: the seeded Telco demo database, MLflow, and a step runner.

Steps run in process through `shipyard_pipeline.cli.main` (same argument parsing, exit codes
and stderr as the console script) except in the end-to-end chain, which runs them as
subprocesses exactly as the local Airflow runtime does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from step_runner import TELCO_SPEC, StepRunner
from support.servers import mlflow_server, s3_server

from shipyard_pipeline import demo
from shipyard_spec.contract import Env

SPECS = Path(__file__).resolve().parent / "specs"


@pytest.fixture(scope="session")
def shipyard_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """SHIPYARD_HOME with the seeded Telco database, exported for the spec's `${SHIPYARD_HOME}`."""
    home = tmp_path_factory.mktemp("shipyard-home")
    demo.seed(home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(home))
        yield home


S3_BUCKET = "shipyard"
# moto checks no signature; real stores take these from a Secret or from workload identity.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3-compatible server on loopback (moto) with bucket `shipyard`; the environment a
    pod gets from the chart: the endpoint in AWS_ENDPOINT_URL_S3 and credentials."""
    with s3_server(tmp_path_factory.mktemp("s3"), buckets=(S3_BUCKET,)) as endpoint:
        yield {Env.S3_ENDPOINT_URL.value: endpoint, **S3_CREDENTIALS}


@pytest.fixture(scope="session")
def s3_bucket() -> str:
    return S3_BUCKET


@pytest.fixture(scope="session")
def s3_mlflow_uri(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[str]:
    """MLflow as charts/shipyard/templates/mlflow.yaml runs it: --serve-artifacts, artifacts in s3://."""
    with mlflow_server(
        tmp_path_factory.mktemp("mlflow-s3"), artifacts_destination=f"s3://{S3_BUCKET}/mlflow", env=s3_env
    ) as url:
        yield url


@pytest.fixture(scope="session")
def telco_spec() -> Path:
    return TELCO_SPEC


@pytest.fixture(scope="session")
def last_week() -> tuple[datetime, datetime]:
    """The newest complete weekly interval of the demo data."""
    end = demo.last_monday()
    return end - timedelta(weeks=1), end


@pytest.fixture
def mlflow_env(mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    return mlflow_tracking_uri


@pytest.fixture
def make_runner(tmp_path: Path, last_week: tuple[datetime, datetime]):
    """A runner for one spec over the last demo week, storage under tmp_path."""

    def make(
        spec: Path = TELCO_SPEC, start: datetime | None = None, end: datetime | None = None
    ) -> StepRunner:
        results = tmp_path / f"results-{uuid.uuid4().hex[:6]}"
        results.mkdir()
        return StepRunner(
            spec=spec,
            storage_root=tmp_path / "storage",
            start=start or last_week[0],
            end=end or last_week[1],
            run_id=f"manual__{uuid.uuid4().hex[:8]}",
            results=results,
        )

    return make


@pytest.fixture
def spec_variant(tmp_path: Path):
    """Write a copy of a spec with top-level sections replaced or merged (dicts merge one level deep)."""
    import yaml

    def write(base: Path = TELCO_SPEC, **changes: Any) -> Path:
        data = yaml.safe_load(base.read_text())
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write
