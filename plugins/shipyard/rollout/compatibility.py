"""The signature compatibility gate: the challenger must accept every request the champion accepts.

Checked before any traffic moves, from the two versions' `MLmodel` documents and the
champion's input example (pure: no I/O here, `MlflowRegistry.model_files` fetches them):

- every input the champion declares is declared by the challenger too (the predictor rejects
  a request with a column its signature does not name, so a removed feature turns every
  existing client's request into a 400);
- with the same type, or a wider one (`long` → `double`, ...);
- an input only the challenger declares is optional (`required: false`), since existing
  clients do not send it;
- the champion's input example, row by row, passes the challenger's signature (names,
  required inputs present, JSON value types): the same rules the predictor applies to a request.

Then, once the challenger runs at 0 % and before any traffic moves, the same example and a
sample of the requests clients really sent (the champion's prediction log, `replay`) are sent
to both predictors: a request the champion answers and the challenger rejects (4xx) is named by
`replay_rejections` with the challenger's message (which names the field).

An incompatible version stops the rollout with a reason naming the fields, unless the spec's
`rollout.allow_breaking_schema` is true.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shipyard.rollout.replay import Answer

# (champion type, challenger type) pairs where every champion value is a valid challenger value.
WIDENINGS = {("integer", "long"), ("integer", "double"), ("long", "double"), ("float", "double")}
# JSON value types each signature type accepts (bool is not a number here).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "double": (int, float),
    "float": (int, float),
    "long": (int,),
    "integer": (int,),
    "boolean": (bool,),
    "string": (str,),
}
MAX_ROWS_REPORTED = 3


@dataclass(frozen=True)
class Input:
    name: str
    type: str
    required: bool


def signature_inputs(mlmodel: dict[str, Any]) -> dict[str, Input] | None:
    """The named column inputs of an MLmodel signature; None when it has no signature."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    specs = json.loads(raw) if isinstance(raw, str) else raw
    return {s["name"]: Input(s["name"], s["type"], bool(s.get("required", True))) for s in specs}


def example_rows(example: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rows of an input example saved in pandas `split` orient (what Shipyard's models carry)."""
    if not example or "columns" not in example:
        return []
    return [dict(zip(example["columns"], row, strict=True)) for row in example.get("data", [])]


def row_problems(row: dict[str, Any], inputs: dict[str, Input]) -> list[str]:
    """Why a signature would reject this request row (empty: accepted)."""
    problems = [f"unknown input {name!r}" for name in row if name not in inputs]
    for name, spec in inputs.items():
        value = row.get(name)
        if value is None:
            if spec.required:
                problems.append(f"required input {name!r} missing")
            continue
        allowed = JSON_TYPES.get(spec.type)
        wrong_bool = isinstance(value, bool) and bool not in (allowed or ())
        if allowed is not None and (wrong_bool or not isinstance(value, allowed)):
            problems.append(f"input {name!r} = {value!r} is not {spec.type}")
    return problems


def incompatibilities(
    champion: dict[str, Any], challenger: dict[str, Any], champion_example: dict[str, Any] | None
) -> list[str]:
    """Why the challenger would reject requests the champion accepts (empty: compatible)."""
    old, new = signature_inputs(champion), signature_inputs(challenger)
    if new is None:
        return ["the challenger has no input signature"]
    if old is None:
        return []  # nothing declared to compare with; the example replay below has no rows either
    problems = []
    removed = sorted(set(old) - set(new))
    if removed:
        problems.append(f"inputs the champion accepts and the challenger rejects: {', '.join(removed)}")
    retyped = [
        f"{name} {old[name].type} → {new[name].type}"
        for name in sorted(set(old) & set(new))
        if old[name].type != new[name].type and (old[name].type, new[name].type) not in WIDENINGS
    ]
    if retyped:
        problems.append(f"inputs whose type narrowed or changed: {', '.join(retyped)}")
    added = sorted(name for name in set(new) - set(old) if new[name].required)
    if added:
        problems.append(f"new required inputs existing clients do not send: {', '.join(added)}")
    rejected = [(i, row_problems(row, new)) for i, row in enumerate(example_rows(champion_example))]
    rejected = [(i, why) for i, why in rejected if why]
    if rejected:
        shown = "; ".join(f"row {i}: {', '.join(why)}" for i, why in rejected[:MAX_ROWS_REPORTED])
        problems.append(f"the champion's input example is rejected ({len(rejected)} rows): {shown}")
    return problems


def replay_rejections(labels: list[str], champion: list[Answer], challenger: list[Answer]) -> list[str]:
    """The replayed requests the champion answered (200) and the challenger refused (4xx), each
    as `<label>: <status> <challenger's message>`, in request order."""
    return [
        f"{label}: {new.status} {new.message()}"
        for label, old, new in zip(labels, champion, challenger, strict=True)
        if old.ok and new.rejected
    ]
