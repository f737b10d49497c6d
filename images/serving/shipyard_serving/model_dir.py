"""Read one Shipyard model directory (the MLflow sklearn flavour) without mlflow installed.

The register step writes `MLmodel` (flavours and a column signature), `model.pkl` (the pickled
`shipyard_pipeline.modeling.build_pipeline` Pipeline) and `input_example.json`; see the
"Model artifact" contract in docs/architecture.md. Anything else is refused here, at load
time, with the path and what was found: a predictor that starts on the wrong directory
must crash, not answer.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MLMODEL = "MLmodel"
INPUT_EXAMPLE = "input_example.json"
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
CATEGORICAL_TYPES = frozenset({"string"})


class ModelDirError(RuntimeError):
    """The model directory is missing, incomplete, or holds a model this predictor cannot serve."""


@dataclass(frozen=True)
class Feature:
    name: str
    numeric: bool


@dataclass(frozen=True)
class ModelDirectory:
    path: Path
    features: tuple[Feature, ...]
    pipeline: Any
    input_example: dict[str, list[Any]]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.numeric]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if not f.numeric]


def read_model_dir(path: str | Path) -> ModelDirectory:
    """Signature, Pipeline and input example of the model in `path`; ModelDirError if unservable."""
    root = Path(path)
    if not (root / MLMODEL).is_file():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else "no such directory"
        raise ModelDirError(f"no {MLMODEL} file in model directory {root} (found: {found})")
    mlmodel = _read_yaml(root / MLMODEL)
    features = _signature_features(root, mlmodel)
    pipeline = _unpickle_pipeline(root, mlmodel)
    example = _input_example(root, features)
    return ModelDirectory(root, features, pipeline, example)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ModelDirError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(document, dict):
        raise ModelDirError(f"{path} holds {type(document).__name__}, expected an MLmodel mapping")
    return document


def _signature_features(root: Path, mlmodel: dict[str, Any]) -> tuple[Feature, ...]:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        raise ModelDirError(
            f"{root / MLMODEL} has no signature inputs: the predictor validates requests by them"
        )
    columns = json.loads(inputs)
    features = []
    for column in columns:
        kind, name = column.get("type"), column.get("name")
        if name is None or kind not in NUMERIC_TYPES | CATEGORICAL_TYPES:
            raise ModelDirError(
                f"{root / MLMODEL}: signature input {column} is not a named column of type "
                f"{sorted(NUMERIC_TYPES | CATEGORICAL_TYPES)}"
            )
        features.append(Feature(name, numeric=kind in NUMERIC_TYPES))
    return tuple(features)


def _unpickle_pipeline(root: Path, mlmodel: dict[str, Any]) -> Any:
    flavour = (mlmodel.get("flavors") or {}).get("sklearn")
    if flavour is None:
        raise ModelDirError(
            f"{root / MLMODEL} has no sklearn flavour (flavours: {sorted(mlmodel.get('flavors') or {})})"
        )
    if flavour.get("serialization_format") != "pickle":
        raise ModelDirError(
            f"{root / MLMODEL}: serialization_format "
            f"{flavour.get('serialization_format')!r}, expected 'pickle'"
        )
    pickled = root / flavour.get("pickled_model", "model.pkl")
    try:
        with pickled.open("rb") as handle:
            pipeline = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, AttributeError, ModuleNotFoundError, EOFError) as e:
        raise ModelDirError(f"cannot unpickle {pickled}: {e}") from e
    if not hasattr(pipeline, "predict_proba") or list(getattr(pipeline, "classes_", [])) != [0, 1]:
        raise ModelDirError(
            f"{pickled} holds {type(pipeline).__name__} with classes {getattr(pipeline, 'classes_', None)}, "
            "expected a fitted binary classifier Pipeline with classes [0, 1]"
        )
    return pipeline


def _input_example(root: Path, features: tuple[Feature, ...]) -> dict[str, list[Any]]:
    """The stored example as columns (MLflow writes the pandas 'split' orient, a missing value as NaN,
    which is null in a request)."""
    path = root / INPUT_EXAMPLE
    if not path.is_file():
        raise ModelDirError(f"no {INPUT_EXAMPLE} in {root}: the predictor warms up and checks parity on it")
    example = json.loads(path.read_text())
    columns, rows = example.get("columns"), example.get("data")
    names = [f.name for f in features]
    if columns != names or not rows:
        raise ModelDirError(
            f"{path}: columns {columns} with {len(rows or [])} rows do not match the signature {names}"
        )
    return {name: [_null_if_nan(row[i]) for row in rows] for i, name in enumerate(names)}


def _null_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
