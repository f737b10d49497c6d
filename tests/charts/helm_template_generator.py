"""Render the shipyard chart with the real helm binary and validate every object (Airflow chart-test style).

`render_chart()` writes the values to a file, runs `helm template`, raises with helm's stderr
on failure, parses the documents and validates each built-in object against the Kubernetes
JSON schemas that `kubernetes-validate` ships (strict: unknown fields fail) for several
Kubernetes minor versions. KServe objects are checked separately against the kserve SDK
models (kserve_model_check.py in the serving virtualenv), prometheus-operator ones by tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shipyard"
HELM = os.environ.get("SHIPYARD_HELM", str(REPO / ".venv" / "tools" / "bin" / "helm"))
# Two current minor versions; kubernetes-validate 1.37.0 ships schemas for 1.25 to 1.37.
KUBERNETES_VERSIONS = ("1.36", "1.37")
CUSTOM_API_GROUPS = ("serving.kserve.io/", "monitoring.coreos.com/")
RELEASE = "shipyard"
NAMESPACE = "shipyard"
# What every install must say (values.yaml leaves it empty on purpose): rendered under every test's values.
REQUIRED_VALUES = {"storage": {"root": "s3://shipyard-data/prod"}}


class HelmError(RuntimeError):
    """`helm` exited non-zero; the message carries its stderr."""


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the tools-venv helm (make .venv/tools/bin/helm installs it); raise with stderr on failure."""
    if not Path(HELM).exists():
        raise FileNotFoundError(f"helm not found at {HELM}: run `make .venv/tools/bin/helm`")
    result = subprocess.run([HELM, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} exited with {result.returncode}:\n{result.stderr}")
    return result


def is_builtin(obj: dict[str, Any]) -> bool:
    return not obj["apiVersion"].startswith(CUSTOM_API_GROUPS)


def validate_builtin(obj: dict[str, Any]) -> None:
    """Validate one built-in object against the strict schemas of every KUBERNETES_VERSIONS."""
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            raise AssertionError(f"{name} is invalid for Kubernetes {version} at {where}: {e.message}") from e


@contextlib.contextmanager
def values_args(
    before: list[dict[str, Any]], files: list[Path] | None, after: list[dict[str, Any]]
) -> Iterator[list[str]]:
    """`--values` arguments for dicts (written to temp files) and files, in this order (later wins)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for index, values in enumerate([*before, *(files or []), *after]):
            if isinstance(values, dict):
                path = Path(tmp, f"values-{index}.yaml")
                path.write_text(yaml.safe_dump(values))
                values = path
            args += ["--values", str(values)]
        yield args


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: list[str] | None = None,
    values_files: list[Path] | None = None,
    namespace: str = NAMESPACE,
    name: str = RELEASE,
    validate: bool = True,
    required: dict[str, Any] | None = REQUIRED_VALUES,
) -> list[dict[str, Any]]:
    """The chart's objects for these values (`required`, then files, then the dict), in helm's order."""
    with values_args([required or {}], values_files, [values or {}]) as args:
        args = ["template", name, str(CHART), "--namespace", namespace, *args]
        for template in show_only or []:
            args += ["--show-only", template]
        objects = [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]
    if validate:
        for obj in objects:
            if is_builtin(obj):
                validate_builtin(obj)
    return objects


def kserve_model_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Problems the kserve SDK models find in these objects (run in the serving virtualenv)."""
    python = os.environ.get("SHIPYARD_SERVING_PYTHON", str(REPO / ".venv" / "serving" / "bin" / "python"))
    result = subprocess.run(
        [python, str(Path(__file__).with_name("kserve_model_check.py"))],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kserve_model_check.py exited with {result.returncode}:\n{result.stderr}")
    return json.loads(result.stdout)


def get(obj: dict[str, Any], path: str, default: Any = None) -> Any:
    """A field by dotted path (`spec.template.spec.containers.0.image`); `default` if absent."""
    value: Any = obj
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return default
    return value


def by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
