"""The signature compatibility gate, pure: which challenger signatures reject requests the
champion accepts, and the reason naming the fields."""

from __future__ import annotations

import json

import pytest

from shipyard.rollout.compatibility import incompatibilities, replay_rejections
from shipyard.rollout.replay import Answer


def mlmodel(*inputs: tuple[str, str, bool]) -> dict:
    specs = [{"name": name, "type": kind, "required": required} for name, kind, required in inputs]
    return {"signature": {"inputs": json.dumps(specs)}}


CHAMPION = mlmodel(("tenure", "double", True), ("contract", "string", True), ("age", "long", False))
EXAMPLE = {
    "columns": ["tenure", "contract", "age"],
    "data": [[1.0, "Month-to-month", 30], [2.0, "Two year", None]],
}


def test_the_same_signature_is_compatible():
    assert incompatibilities(CHAMPION, CHAMPION, EXAMPLE) == []


@pytest.mark.parametrize(
    "challenger",
    [
        # a new optional input, and a widened type (long → double)
        mlmodel(("tenure", "double", True), ("contract", "string", True), ("age", "double", False),
                ("region", "string", False)),
        # an input that became optional
        mlmodel(("tenure", "double", False), ("contract", "string", True), ("age", "long", False)),
    ],
)  # fmt: skip
def test_optional_additions_and_widenings_are_compatible(challenger):
    assert incompatibilities(CHAMPION, challenger, EXAMPLE) == []


def test_a_removed_input_is_named_and_the_example_replay_fails_on_it():
    challenger = mlmodel(("tenure", "double", True), ("age", "long", False))
    problems = incompatibilities(CHAMPION, challenger, EXAMPLE)
    assert problems[0] == "inputs the champion accepts and the challenger rejects: contract"
    assert problems[1] == (
        "the champion's input example is rejected (2 rows): row 0: unknown input 'contract'; "
        "row 1: unknown input 'contract'"
    )


def test_a_changed_type_and_a_new_required_input_are_named():
    challenger = mlmodel(
        ("tenure", "string", True),
        ("contract", "string", True),
        ("age", "long", False),
        ("region", "string", True),
    )
    problems = incompatibilities(CHAMPION, challenger, EXAMPLE)
    assert problems[:2] == [
        "inputs whose type narrowed or changed: tenure double → string",
        "new required inputs existing clients do not send: region",
    ]
    assert "row 0: input 'tenure' = 1.0 is not string, required input 'region' missing" in problems[2]


def test_a_challenger_without_a_signature_is_incompatible():
    assert incompatibilities(CHAMPION, {}, EXAMPLE) == ["the challenger has no input signature"]


def test_replay_names_only_requests_the_champion_answered_and_the_challenger_refused():
    labels = [
        "logged request 0",
        "logged request 1",
        "logged request 2",
        "logged request 3",
        "logged request 4",
    ]
    champion = [
        Answer(200, {}),
        Answer(400, {"error": "bad"}),
        Answer(200, {}),
        Answer(200, {}),
        Answer(200, {}),
    ]
    challenger = [
        Answer(400, {"error": "instance 0: unknown feature(s) ['contract']"}),
        Answer(400, {"error": "bad"}),  # the champion refused it too: not the challenger's fault
        Answer(500, {"error": "boom"}),  # a server error: the analysis judges those
        Answer(None, "ReadTimeout: timed out"),  # no answer: readiness judges that
        Answer(200, {"predictions": [0.1]}),
    ]
    assert replay_rejections(labels, champion, challenger) == [
        "logged request 0: 400 instance 0: unknown feature(s) ['contract']"
    ]
