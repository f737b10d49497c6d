"""Manual rollback DAGs (airflow): one per valid pipeline spec in dags/pipelines/, built by
shipyard.rollout. Another pipeline's broken spec never hides them (shipyard_specs.py reports it)."""

from __future__ import annotations

from pathlib import Path

from shipyard.dag_factory import load_pipelines
from shipyard.rollout.rollback_dag import build_rollback_dag

for _spec in load_pipelines(Path(__file__).parent / "pipelines").valid.values():
    _dag = build_rollback_dag(_spec)
    globals()[_dag.dag_id] = _dag
