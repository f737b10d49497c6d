"""The pipeline spec schema: every shipped spec loads; a bad spec names the field and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard_spec import SpecError, load_spec, load_specs, parse_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*REPO.glob("dags/pipelines/*.yaml"), *REPO.glob("tests/images/pipeline/specs/*.yaml")])
TELCO = REPO / "dags" / "pipelines" / "telco_churn.yaml"


def telco() -> dict[str, Any]:
    return yaml.safe_load(TELCO.read_text())


def changed(path: str, value: Any) -> dict[str, Any]:
    """The Telco spec with one dotted field set (or removed when value is `...`)."""
    data = telco()
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(leaf)
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem


def test_telco_spec_defaults_for_the_parts_it_leaves_out() -> None:
    spec = load_spec(TELCO)
    assert spec.split.policy == "time"
    assert spec.rollout.steps[-1] == 100
    assert spec.resources_for("train").cpu == "1"
    assert spec.resources_for("ingest").cpu == "500m"
    assert spec.engine == "pandas"


@pytest.mark.parametrize(
    ("path", "value", "field", "problem"),
    [
        ("name", ..., "name", "Field required"),
        ("name", "telco churn", "name", "should match pattern"),
        ("source.kind", "kafka", "source", "does not match any of the expected tags"),
        ("source.table", None, "source", "exactly one of 'table' or 'query'"),
        ("split.test_fraction", 1.5, "split.test_fraction", "less than 1"),
        ("split.validation_fraction", 0.75, "split", "at least 10% to train on"),
        ("split.policy", "random", "(top level)", "leaks the future"),
        ("features.numeric", ["tenure", "churn"], "(top level)", "must not include the id/target"),
        ("features.categorical", ["tenure"], "features", "both numeric and categorical"),
        (
            "expectations.ranges",
            {"tenure": {"min": 10, "max": 1}},
            "expectations.ranges.tenure",
            "greater than max",
        ),
        ("model.tuning", {"max_trials": 0}, "model.tuning.max_trials", "greater than or equal to 1"),
        ("gates.min_roc_auc", 2, "gates.min_roc_auc", "less than or equal to 1"),
        ("rollout.steps", [10, 50], "rollout", "the last step must be 100"),
        ("training.windw_intervals", 4, "training.windw_intervals", "Extra inputs are not permitted"),
        ("columns.positive_label", True, "columns.positive_label", "YAML boolean"),  # `positive_label: yes`
        ("engine", "dask", "engine", "'pandas' or 'spark'"),
        ("engine", "spark", "(top level)", "tuning runs on the pandas engine only"),  # telco tunes
        ("spark", {"executors": {"instances": 2}}, "(top level)", "spark settings are for engine: spark"),
        ("spark.executors.memory", "4GiB", "spark.executors.memory", "should match pattern"),
        ("spark.executors.cores", 0, "spark.executors.cores", "greater than or equal to 1"),
    ],
)
def test_invalid_spec_names_the_field_and_the_problem(
    path: str, value: Any, field: str, problem: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(changed(path, value), "telco_churn.yaml")
    fields = [f for f, _ in raised.value.problems]
    assert field in fields, raised.value.problems
    assert problem in str(raised.value)
    assert "telco_churn.yaml" in str(raised.value)


def test_yaml_syntax_error_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"\(yaml\)"):
        load_spec(path)


def test_loading_a_folder_rejects_each_bad_spec_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "telco_churn.yaml").write_text(TELCO.read_text())
    (tmp_path / "broken.yaml").write_text(
        yaml.safe_dump(changed("name", "broken") | {"gates": {"min_roc_auc": 2}})
    )
    loaded = load_specs(sorted(tmp_path.glob("*.yaml")))
    assert [spec.name for spec in loaded.valid.values()] == ["telco_churn"]
    [error] = loaded.errors
    assert (error.source, [field for field, _ in error.problems]) == (
        str(tmp_path / "broken.yaml"),
        ["gates.min_roc_auc"],
    )
    with pytest.raises(SpecError, match=r"broken\.yaml: gates\.min_roc_auc"):
        loaded.raise_errors()


def test_a_duplicate_name_stays_with_the_file_named_after_it(tmp_path: Path) -> None:
    original, copy = tmp_path / "telco_churn.yaml", tmp_path / "mlc_churn.yaml"
    original.write_text(TELCO.read_text())
    copy.write_text(TELCO.read_text())  # copied, not renamed
    loaded = load_specs([copy, original])
    assert list(loaded.valid) == [original]
    [error] = loaded.errors
    assert error.source == str(copy)
    assert error.problems == [
        ("name", f"'telco_churn' is already the name of {original}: each pipeline needs its own name")
    ]
