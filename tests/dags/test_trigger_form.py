"""The Trigger and Backfill forms accept every DAG's Params as they come: a user who changes
nothing can press Trigger / Run Backfill.

The forms are built from the serialized DAG (what the API server reads). Airflow 3.3's UI marks
a Param required unless its JSON-schema type admits null, and an empty text field sends null;
the API server then validates the submitted conf with `params.deep_merge(conf).validate()`
(`SerializedDAG.create_dagrun`). This test replays both on every DAG of dags/.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.definitions.param import SerializedParam
from airflow.serialization.serialized_objects import DagSerialization
from support.servers import REPO


def serialized_dags() -> dict[str, Any]:
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return {
        dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in bag.dags.items()
    }


DAGS = serialized_dags()


def form_value(param: SerializedParam) -> Any:
    """What the form submits for an untouched field: its default, an empty string as null."""
    return None if param.value in (None, "") else param.value


def required_but_empty(param: SerializedParam) -> bool:
    """The UI's rule: a typed Param whose type does not admit null must not be empty."""
    kind = param.schema.get("type")
    admits_null = kind is None or kind == "null" or (isinstance(kind, list) and "null" in kind)
    return not admits_null and form_value(param) is None


@pytest.mark.parametrize("dag_id", sorted(DAGS))
def test_every_param_is_valid_at_its_default_as_the_ui_submits_it(dag_id: str) -> None:
    params = DAGS[dag_id].params
    blocked = [name for name, param in params.items() if required_but_empty(param)]
    assert blocked == [], f"{dag_id}: the form would disable Trigger, empty required Params {blocked}"
    conf = {name: form_value(param) for name, param in params.items()}
    params.deep_merge(conf).validate()  # raises ParamValidationError naming the Param


def test_every_param_says_what_it_does() -> None:
    for dag_id, dag in DAGS.items():
        for name, param in dag.params.items():
            assert param.description, f"{dag_id}: Param {name} has no description"
            assert param.schema.get("title"), f"{dag_id}: Param {name} shows its bare name in the form"


def test_the_demo_only_fault_injection_param_is_optional_and_empty() -> None:
    param = DAGS["shipyard_train_telco_churn"].params.get_param("canary_args")
    assert param.value is None
    assert "null" in param.schema["type"]


@pytest.mark.parametrize(
    ("submitted", "expected"), [(None, ""), ("--fault_error_rate 0.3", "--fault_error_rate 0.3")]
)
def test_an_empty_fault_injection_field_gives_the_canary_no_arguments(
    submitted: str | None, expected: str
) -> None:
    bag = DagBag(dag_folder=str(REPO / "dags" / "shipyard_pipelines.py"))
    rollout = bag.dags["shipyard_train_telco_churn"].get_task("rollout")
    rendered = rollout.render_template(rollout.canary_args, {"params": {"canary_args": submitted}})
    assert rendered == expected
