"""Load fails loudly on a directory that holds no model, or not a model this predictor can serve."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Trained
from support.servers import venv_python

from shipyard_serving.model_dir import ModelDirError, read_model_dir


def _remove(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text((d / name).read_text().replace(old, new))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(_remove("MLmodel"), "no MLmodel file", id="no-mlmodel"),
        pytest.param(
            lambda d: (d / "model.pkl").write_bytes(b"not a pickle"), "cannot unpickle", id="corrupt-pickle"
        ),
        pytest.param(_remove("input_example.json"), "no input_example.json", id="no-input-example"),
        pytest.param(_replace("MLmodel", "  sklearn:", "  onnx:"), "no sklearn flavour", id="other-flavour"),
        pytest.param(_replace("MLmodel", "format: pickle", "format: skops"), "expected 'pickle'", id="skops"),
        pytest.param(
            _replace("MLmodel", '"type": "string"', '"type": "binary"'), "signature input", id="bad-type"
        ),
        pytest.param(
            _replace("input_example.json", '"tenure"', '"months"'), "do not match the signature", id="example"
        ),
    ],
)
def test_unservable_directory_is_refused_naming_the_problem(
    trained: Trained, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained.model_dir, model_dir)
    damage(model_dir)
    with pytest.raises(ModelDirError, match=message):
        read_model_dir(model_dir)


def test_predictor_process_exits_with_the_cause_on_an_empty_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [venv_python("serving"), "-m", "shipyard_serving", "--model_name", "m", "--model_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"no MLmodel file in model directory {tmp_path}" in result.stderr
