"""The rollout in Airflow's DAGs: the task after register, and the manual rollback DAG (no DB needed)."""

from __future__ import annotations

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.xcom_arg import XComArg
from support.servers import REPO

from shipyard.dag_factory import build_training_dag
from shipyard.rollout.dag import append_rollout
from shipyard.rollout.operator import CanaryRolloutOperator
from shipyard_spec import load_spec

SPEC_PATH = REPO / "dags" / "pipelines" / "telco_churn.yaml"


def test_rollout_task_follows_register_and_takes_its_result():
    dag = build_training_dag(load_spec(SPEC_PATH), SPEC_PATH, after_register=[append_rollout])
    rollout = dag.get_task("rollout")
    assert isinstance(rollout, CanaryRolloutOperator)
    assert rollout.upstream_task_ids == {"pipeline.register"}
    assert isinstance(rollout.release, XComArg)
    assert rollout.release.operator.task_id == "pipeline.register"
    assert rollout.retries >= 1  # deferral race in Airflow 3.3.2
    assert rollout.spec["rollout"]["steps"] == [10, 25, 50, 100]


def test_rollback_dag_parses_with_a_reason_param_and_no_schedule():
    bag = DagBag(dag_folder=str(REPO / "dags" / "shipyard_rollback.py"))
    assert bag.import_errors == {}
    dag = bag.dags["shipyard_rollback_telco_churn"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    assert dag.params["reason"] == "manual rollback"
    assert [t.task_id for t in dag.tasks] == ["rollback_to_previous"]
    assert {"shipyard", "rollback", "telco_churn"} <= set(dag.tags)
    assert dag.owner == "data-science"
