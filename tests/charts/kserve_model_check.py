"""Check KServe objects against the kserve SDK's models: unknown fields and wrong types.

Runs in the serving virtualenv (the only one with kserve), started by the chart tests as a
subprocess: reads a JSON list of objects on stdin, prints a JSON list of problems on stdout.
The SDK models are generated from the CRDs' OpenAPI schema, so their `attribute_map` (JSON
field names) and `openapi_types` (types) are the fields a cluster would accept.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as kubernetes_models

TOP_LEVEL = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
# Scalars by the SDK's type names; quantities and int-or-string fields are typed loosely.
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "object": (object,),
    "ResourceQuantity": (str, int, float),
}
# Both spellings occur: kserve's models write list[X] and dict(str, X),
# the Kubernetes client's List[X] and Dict[str, X].
LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
DICT = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")


def model_class(type_name: str) -> type:
    """The SDK class for a type name: kserve's own models, else the Kubernetes client's."""
    cls = getattr(kserve_models, type_name, None) or getattr(kubernetes_models, type_name, None)
    if cls is None:
        raise LookupError(f"no kserve or kubernetes model named {type_name!r}")
    return cls


def check(value: Any, type_name: str, path: str) -> list[str]:
    """Problems of `value` read as `type_name`; `path` names the field in messages."""
    if value is None:
        return []
    if match := LIST.match(type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list of {match[1]}, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in check(item, match[1], f"{path}[{i}]")]
    if match := DICT.match(type_name):
        item_type = match[1] or match[2]
        if not isinstance(value, dict):
            return [f"{path}: expected a map of {item_type}, got {type(value).__name__}"]
        return [p for key, item in value.items() for p in check(item, item_type, f"{path}.{key}")]
    if type_name in SCALARS:
        # bool is an int in Python, but not in JSON.
        wrong_bool = isinstance(value, bool) and type_name in {"int", "float", "ResourceQuantity"}
        if wrong_bool or not isinstance(value, SCALARS[type_name]):
            return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    cls = model_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} object, got {type(value).__name__}"]
    attribute_by_field = {field: attribute for attribute, field in cls.attribute_map.items()}
    problems = []
    for field, item in value.items():
        attribute = attribute_by_field.get(field)
        if attribute is None:
            problems.append(f"{path}.{field}: unknown field of {type_name}")
        else:
            problems.extend(check(item, cls.openapi_types[attribute], f"{path}.{field}"))
    return problems


def check_object(obj: dict[str, Any]) -> list[str]:
    """Problems of one KServe object, each prefixed with its kind and name."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    type_name = TOP_LEVEL.get((obj.get("apiVersion"), obj.get("kind")))
    if type_name is None:
        return [f"{name}: not a KServe kind this checker knows: {sorted(TOP_LEVEL)}"]
    return [f"{name}: {problem}" for problem in check(obj, type_name, "")]


def main() -> None:
    objects = json.load(sys.stdin)
    json.dump([problem for obj in objects for problem in check_object(obj)], sys.stdout)


if __name__ == "__main__":
    main()
