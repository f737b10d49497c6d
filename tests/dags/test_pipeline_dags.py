"""Every DAG file: imports cleanly, follows the house rules, parses without heavy modules; a bad
spec is an import error that names the spec file and the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from support.servers import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY_MODULES = ("pandas", "sklearn", "xgboost", "mlflow", "kserve", "great_expectations")
TRAINING_DAG = "shipyard_train_telco_churn"


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[f.name for f in DAG_FILES])
def test_every_dag_file_imports_and_defines_dags(dag_file: Path) -> None:
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    assert bag.dags, f"{dag_file.name} defines no DAG"


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

    def rollout(spec, register) -> None:  # what the canary stage plugs in
        register >> EmptyOperator(task_id="rollout", doc_md=f"roll out {spec.name}")

    dags = build_training_dags([REPO / "dags" / "pipelines" / "telco_churn.yaml"], after_register=[rollout])
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


def spec_with(tmp_path: Path, change: dict) -> Path:
    """A dags folder holding the real DAG file and one telco spec with `change` merged in."""
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "shipyard_pipelines.py", dags)
    spec = yaml.safe_load((REPO / "dags" / "pipelines" / "telco_churn.yaml").read_text())
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = spec
        for key in parents:
            node = node[key]
        node[leaf] = value
    (dags / "pipelines" / "broken.yaml").write_text(yaml.safe_dump(spec))
    return dags


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
def test_a_bad_spec_is_an_import_error_naming_the_file_and_the_field(
    tmp_path: Path, change: dict, field: str
) -> None:
    dags = spec_with(tmp_path, change)
    bag = DagBag(dag_folder=str(dags))
    [(dag_file, message)] = bag.import_errors.items()
    assert Path(dag_file).name == "shipyard_pipelines.py"
    assert f"{dags / 'pipelines' / 'broken.yaml'}: {field}" in message
