"""Where register says the model files are: the server's artifact store when visible, else a copy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard_pipeline.context import RunContext
from shipyard_pipeline.register import local_model_dir
from shipyard_spec import load_spec


def test_proxied_artifacts_resolve_to_the_servers_directory(
    tmp_path: Path, telco_spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "artifacts" / "1" / "models" / "m-abc" / "artifacts"
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    monkeypatch.setenv("SHIPYARD_MLFLOW_ARTIFACTS_DESTINATION", str(tmp_path / "artifacts"))
    context = RunContext(
        load_spec(telco_spec),
        datetime(2026, 1, 5, tzinfo=UTC),
        datetime(2026, 1, 12, tzinfo=UTC),
        "r",
        str(tmp_path),
    )
    assert local_model_dir(context, "mlflow-artifacts:/1/models/m-abc/artifacts", "1") == str(model_dir)
