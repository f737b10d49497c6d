"""Load a pipeline spec from YAML and turn validation errors into messages that name the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from shipyard_spec.model import PipelineSpec


class SpecError(ValueError):
    """An invalid pipeline spec. The message names the file, each bad field and the problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"  {field}: {problem}" for field, problem in problems]
        super().__init__(f"invalid pipeline spec {source}:\n" + "\n".join(lines))


def _field_path(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("sql", "files") and parts and parts[-1] == "source":
            continue  # the discriminator tag pydantic inserts, not a field the user wrote
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def parse_spec(data: object, source: str = "<spec>") -> PipelineSpec:
    """Validate an already-parsed mapping."""
    if not isinstance(data, dict):
        raise SpecError(source, [("(top level)", "expected a mapping of fields")])
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        problems = [(_field_path(err["loc"]), err["msg"]) for err in e.errors()]
        raise SpecError(source, problems) from e


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate one spec file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(str(path), [("(yaml)", str(e).replace("\n", " "))]) from e
    return parse_spec(data, str(path))
