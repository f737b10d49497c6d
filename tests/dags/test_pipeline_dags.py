"""Every DAG file: imports cleanly, follows the house rules, parses without heavy modules; a bad or
duplicate spec is an import error that names the spec file and the field, and hides no other
pipeline's DAGs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowFailException
from support.servers import REPO, venv_python

SPEC_CHECK = "shipyard_specs.py"  # the DAG file that reports bad specs; it defines no DAG
DAG_FILES = sorted(f for f in (REPO / "dags").glob("*.py") if f.name != SPEC_CHECK)
TELCO_SPEC = REPO / "dags" / "pipelines" / "telco_churn.yaml"
TELCO_DAGS = {"shipyard_train_telco_churn", "shipyard_drift_telco_churn", "shipyard_rollback_telco_churn"}
HEAVY_MODULES = (
    "pandas", "sklearn", "xgboost", "mlflow", "kserve", "great_expectations", "matplotlib", "numpy",
)  # fmt: skip
TRAINING_DAG = "shipyard_train_telco_churn"


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[f.name for f in DAG_FILES])
def test_every_dag_file_imports_and_defines_dags(dag_file: Path) -> None:
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    assert bag.dags, f"{dag_file.name} defines no DAG"


def test_the_spec_check_passes_on_the_shipped_specs() -> None:
    bag = DagBag(dag_folder=str(REPO / "dags" / SPEC_CHECK))
    assert (bag.import_errors, bag.dags) == ({}, {})


def test_every_dag_has_tags_an_owner_retries_and_docs(dag_bag: DagBag) -> None:
    assert dag_bag.dags
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} is never retried"


def test_the_training_dag_reads_well_in_the_graph_view(dag_bag: DagBag) -> None:
    dag = dag_bag.dags[TRAINING_DAG]
    steps = ["ingest", "validate", "train", "evaluate", "register"]
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [*(f"pipeline.{s}" for s in steps), "rollout"]
    assert all(t.doc_md for t in dag.tasks)
    assert [t.task_id for t in dag.tasks if t.task_group.group_id != "pipeline"] == ["rollout"]
    assert dag.owner == "data-science"
    assert {"shipyard", "training", "churn"} <= set(dag.tags)
    assert (dag.timetable.timetable.expression, dag.max_active_runs) == ("0 0 * * 1", 1)
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["shipyard://telco_churn/drift"]
    assert {name: p.value for name, p in dag.params.items()} == {
        "window_intervals": 26,
        "skip_tuning": False,
        "force_ingest": False,
        "canary_args": None,
    }
    register = dag.get_task("pipeline.register")
    assert (register.retries, register.retry_exponential_backoff) == (2, 2.0)


def test_an_extension_appends_tasks_after_register() -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator

    from shipyard.dag_factory import build_training_dags
    from shipyard_spec import load_spec

    def rollout(spec, register) -> None:  # what the canary stage plugs in
        register >> EmptyOperator(task_id="rollout", doc_md=f"roll out {spec.name}")

    dags = build_training_dags({TELCO_SPEC: load_spec(TELCO_SPEC)}, after_register=[rollout])
    rollout_task = dags[TRAINING_DAG].get_task("rollout")
    assert (rollout_task.upstream_task_ids, rollout_task.doc_md) == (
        {"pipeline.register"},
        "roll out telco_churn",
    )


@pytest.mark.parametrize("runner", ["local", "kubernetes"])
def test_parsing_imports_no_heavy_module(tmp_path: Path, runner: str) -> None:
    """sys.modules of a fresh interpreter after parsing every DAG file: what a DAG processor pays."""
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        f"heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': sorted(bag.dags), 'heavy': heavy}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SHIPYARD_RUNNER": runner,
    }
    process = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    parsed = json.loads(process.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == []
    assert TRAINING_DAG in parsed["dags"]
    assert parsed["heavy"] == []


def dags_folder(tmp_path: Path, specs: dict[str, dict | str]) -> Path:
    """A dags folder holding the real DAG files, the Telco spec and `specs` (file name → content,
    a mapping dumped as YAML or a text written as it is)."""
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    for dag_file in (REPO / "dags").glob("*.py"):
        shutil.copy(dag_file, dags)
    shutil.copy(TELCO_SPEC, dags / "pipelines")
    for name, spec in specs.items():
        (dags / "pipelines" / name).write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return dags


def telco_with(change: dict) -> dict:
    """The Telco spec, renamed `other`, with `change` (dotted field → value) merged in."""
    spec = yaml.safe_load(TELCO_SPEC.read_text())
    for dotted, value in {"name": "other", **change}.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for key in parents:
            node = node[key]
        node[leaf] = value
    return spec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gates.min_roc_auc": 1.5}, "gates.min_roc_auc"),
        ({"schedule.cron": "every monday"}, "schedule.cron"),
        ({"schedule.timezone": "Mars/Olympus_Mons"}, "schedule.timezone"),
        ({"source.kind": "ftp"}, "source"),
        ({"featurs": {"numeric": ["tenure"]}}, "featurs"),
    ],
)
def test_a_bad_spec_is_an_import_error_naming_the_file_and_the_field_and_hides_nothing_else(
    tmp_path: Path, change: dict, field: str
) -> None:
    dags = dags_folder(tmp_path, {"other.yaml": telco_with(change)})
    bag = DagBag(dag_folder=str(dags))
    [(dag_file, message)] = bag.import_errors.items()
    assert Path(dag_file).name == SPEC_CHECK
    assert f"{dags / 'pipelines' / 'other.yaml'}: {field}" in message
    assert set(bag.dags) == TELCO_DAGS  # the other pipeline's training, drift and rollback DAGs


def other_as_text(edit: tuple[str, str]) -> str:
    """The `other` spec as a person writes it, with one line edited (`edit` = old, new)."""
    text = yaml.safe_dump(telco_with({}), sort_keys=False)
    assert edit[0] in text
    return text.replace(edit[0], edit[1], 1)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # Unquoted yes: a YAML boolean, never the label "yes".
        (
            ("positive_label: 'Yes'", "positive_label: yes"),
            "columns.positive_label: Value error, is the YAML boolean True",
        ),
        # A spec that is not YAML at all (an unclosed flow sequence).
        (("  - tenure\n", "  - [tenure\n"), "(yaml): while parsing a flow sequence"),
    ],
    ids=["yaml-boolean-label", "broken-yaml"],
)
def test_a_spec_as_written_with_a_yaml_mistake_is_its_own_import_error(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    dags = dags_folder(tmp_path, {"other.yaml": other_as_text(edit)})
    bag = DagBag(dag_folder=str(dags))
    [(dag_file, message)] = bag.import_errors.items()
    assert Path(dag_file).name == SPEC_CHECK
    assert f"{dags / 'pipelines' / 'other.yaml'}: {expected}" in message
    assert set(bag.dags) == TELCO_DAGS


def test_a_copied_spec_that_keeps_the_name_takes_nothing_over(tmp_path: Path) -> None:
    """`cp telco_churn.yaml mlc_churn.yaml`, edited but still `name: telco_churn`: not last-file-wins."""
    dags = dags_folder(tmp_path, {"mlc_churn.yaml": telco_with({"name": "telco_churn", "owner": "mlc"})})
    bag = DagBag(dag_folder=str(dags))
    [(dag_file, message)] = bag.import_errors.items()
    assert Path(dag_file).name == SPEC_CHECK
    original, copy = dags / "pipelines" / "telco_churn.yaml", dags / "pipelines" / "mlc_churn.yaml"
    assert f"{copy}: name: 'telco_churn' is already the name of {original}" in message
    assert set(bag.dags) == TELCO_DAGS
    assert {bag.dags[dag_id].owner for dag_id in TELCO_DAGS} == {"data-science"}  # the original's


def test_two_copies_under_other_file_names_both_lose_the_name(tmp_path: Path) -> None:
    twin = telco_with({"name": "twin"})
    dags = dags_folder(tmp_path, {"a.yaml": twin, "b.yaml": twin})
    bag = DagBag(dag_folder=str(dags))
    [message] = bag.import_errors.values()
    a, b = dags / "pipelines" / "a.yaml", dags / "pipelines" / "b.yaml"
    assert f"{a}: name: 'twin' is already the name of {b}" in message
    assert f"{b}: name: 'twin' is already the name of {a}" in message
    assert set(bag.dags) == TELCO_DAGS


TINY_ROWS = (
    "customer_id,churn,event_time,tenure\nC1,Yes,2026-03-03T10:00:00,5\nC2,No,2026-03-04T11:00:00,12\n"
)
WEEK = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))


def tiny_spec(rows: Path, **columns: Any) -> dict:
    return {
        "name": "other",
        "schedule": {"cron": "0 0 * * 1", "start_date": "2026-01-05"},
        "source": {"kind": "files", "paths": [str(rows)], "format": "csv"},
        "columns": {"id": "customer_id", "target": "churn", "event_time": "event_time",
                    "positive_label": "Yes", **columns},
        "features": {"numeric": ["tenure"]},
        "mlflow": {"experiment": "other", "registered_model": "other"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "features", "expected"),
    [
        ({"positive_label": "yes"}, ["tenure"], "columns.positive_label 'yes' differs only in case"),
        ({"target": "churned"}, ["tenure"], "columns.target = 'churned'"),
        ({}, ["tenure", "loyalty_points"], "features.numeric[1] = 'loyalty_points'"),
    ],
    ids=["wrong-case-label", "missing-target", "missing-feature"],
)
def test_a_spec_that_does_not_fit_its_data_loads_and_fails_its_first_step_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columns: dict, features: list[str], expected: str
) -> None:
    """Only the data can tell (a DAG file reads none): the DAGs load, every other pipeline's too, and
    the first task of the run fails for good with the spec field and what the data has."""
    rows = tmp_path / "rows.csv"
    rows.write_text(TINY_ROWS)
    spec = tiny_spec(rows, **columns)
    spec["features"]["numeric"] = features
    monkeypatch.setenv("SHIPYARD_RUNNER", "local")
    monkeypatch.setenv("SHIPYARD_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("SHIPYARD_PIPELINE_PYTHON", venv_python("pipeline"))
    bag = DagBag(dag_folder=str(dags_folder(tmp_path, {"other.yaml": spec})))
    assert bag.import_errors == {}
    assert set(bag.dags) == TELCO_DAGS | {d.replace("telco_churn", "other") for d in TELCO_DAGS}
    ingest = bag.dags["shipyard_train_other"].get_task("pipeline.ingest")
    context = {
        "data_interval_start": WEEK[0],
        "data_interval_end": WEEK[1],
        "run_id": "manual__fit",
        "params": {"window_intervals": 1, "skip_tuning": True, "force_ingest": False},
        "dag_run": SimpleNamespace(run_after=WEEK[1], consumed_asset_events=[]),
    }
    ingest.render_template_fields(context)
    with pytest.raises(AirflowFailException, match=r"ingest: a check failed, not retrying") as failed:
        ingest.execute(context)
    assert expected in str(failed.value)


def test_a_spec_with_scoring_scores_each_validated_interval_beside_training(tmp_path: Path) -> None:
    from shipyard.dag_factory import build_training_dag
    from shipyard_spec import load_spec

    data = yaml.safe_load(TELCO_SPEC.read_text())
    data["scoring"] = {"alias": "champion"}
    spec_path = tmp_path / "scored.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    dag = build_training_dag(load_spec(spec_path), spec_path)
    score = dag.get_task("pipeline.score")
    assert score.upstream_task_ids == {"pipeline.validate"}
    assert score.downstream_task_ids == set()  # a failed scoring never holds a release back
    assert "`champion` version of `telco_churn`" in score.doc_md
    assert "pipeline.score" not in build_training_dag(load_spec(TELCO_SPEC), TELCO_SPEC).task_ids
