"""Load pipeline specs from YAML and turn validation errors into messages that name the field.

`load_specs()` loads a directory's worth of specs so that one bad spec hides nothing else: each
spec is valid on its own or rejected on its own, and a pipeline name used by two files is an
error naming both (never last-file-wins).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
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

    @classmethod
    def combine(cls, errors: Iterable[SpecError]) -> SpecError:
        """One error for several specs; each problem keeps the file it belongs to."""
        errors = list(errors)
        return cls(
            ", ".join(e.source for e in errors),
            [(f"{e.source}: {field}", problem) for e in errors for field, problem in e.problems],
        )


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


def loads_spec(text: str, source: str = "<spec>") -> PipelineSpec:
    """Validate a spec's YAML text; the spec keeps the text (`PipelineSpec.source_text`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(source, [("(yaml)", str(e).replace("\n", " "))]) from e
    spec = parse_spec(data, source)
    spec._source_text = text
    return spec


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate one spec file."""
    return loads_spec(Path(path).read_text(encoding="utf-8"), str(path))


@dataclass
class LoadedSpecs:
    """The valid specs of a set of files by path, and one error per rejected file."""

    valid: dict[Path, PipelineSpec] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)

    def reject(self, path: Path, problems: list[tuple[str, str]]) -> None:
        """Move a loaded spec to the errors (a check made after loading failed)."""
        del self.valid[path]
        self.errors.append(SpecError(str(path), problems))

    def raise_errors(self) -> None:
        """Raise every rejected file's problems at once, if there are any."""
        if self.errors:
            raise SpecError.combine(self.errors)


def load_specs(paths: Iterable[str | Path]) -> LoadedSpecs:
    """Load each file on its own; a pipeline name must be unique across them.

    When files share a `name`, the one named `<name>.yaml` keeps it (a copied spec that forgot
    to rename cannot take the original's pipeline over); every other one is rejected with an
    error naming the files that share it. With no `<name>.yaml` among them, all are rejected.
    """
    loaded = LoadedSpecs()
    for path in map(Path, paths):
        try:
            loaded.valid[path] = load_spec(path)
        except SpecError as e:
            loaded.errors.append(e)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path, spec in loaded.valid.items():
        by_name[spec.name].append(path)
    for name, paths_of_name in by_name.items():
        if len(paths_of_name) < 2:
            continue
        for path in paths_of_name:
            if path.stem == name:
                continue
            others = ", ".join(str(other) for other in paths_of_name if other != path)
            loaded.reject(
                path,
                [("name", f"{name!r} is already the name of {others}: each pipeline needs its own name")],
            )
    return loaded
