"""The serving model directory register publishes: exactly the predictor's files, one rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard_pipeline.errors import StepError
from shipyard_pipeline.register import publish_serving_dir
from shipyard_spec.contract import SERVING_MODEL_FILES, serving_model_uri


def model_source(root: Path, files: tuple[str, ...]) -> Path:
    source = root / "source"
    source.mkdir()
    for name in (*files, "conda.yaml", "requirements.txt"):
        (source / name).write_text(name)
    return source


def test_only_the_predictors_files_are_copied_and_a_second_copy_is_skipped(tmp_path: Path) -> None:
    source = model_source(tmp_path, SERVING_MODEL_FILES)
    target = serving_model_uri(str(tmp_path / "storage"), "telco_churn", "4")
    assert target == f"{tmp_path}/storage/telco_churn/models/4"
    assert publish_serving_dir(str(source), target) == target
    assert sorted(p.name for p in Path(target).iterdir()) == sorted(SERVING_MODEL_FILES)
    (source / "model.pkl").write_text("changed")
    publish_serving_dir(str(source), target)
    assert (Path(target) / "model.pkl").read_text() == "model.pkl"


def test_a_model_without_the_predictors_files_is_refused(tmp_path: Path) -> None:
    source = model_source(tmp_path, ("MLmodel",))
    target = str(tmp_path / "served")
    with pytest.raises(StepError, match=r"lacks \['model.pkl', 'input_example.json'\]"):
        publish_serving_dir(str(source), target)
    assert not Path(target).exists()
